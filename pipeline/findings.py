"""Findings: what checks (validation, profiles, audit) return instead of raising.

A finding has a stable ``code`` (documented in README, never reused for another meaning), a
severity, the path concerned (relative to the bag root, ``/``-separated; empty for the bag itself)
and a message a person can act on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

Severity = Literal["error", "warning", "info"]


class Finding(BaseModel):
    """One problem (or notable fact) found by a check."""

    model_config = ConfigDict(frozen=True)

    code: str
    severity: Severity = "error"
    path: str = ""
    message: str
    expected: str | None = None
    found: str | None = None

    def line(self) -> str:
        """The finding as one human-readable line: ``CODE path: message``."""
        where = f"{self.path}: " if self.path else ""
        return f"{self.code} {where}{self.message}"


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that make a bag invalid."""
    return [f for f in findings if f.severity == "error"]


def warnings(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that do not make a bag invalid but deserve a look."""
    return [f for f in findings if f.severity == "warning"]
