"""Findings: what checks (validation, profiles, audit) return instead of raising.

A finding has a stable ``code`` (documented in README, never reused for another meaning), a
severity, the path concerned (relative to the bag root, ``/``-separated; empty for the bag itself)
and a message a person can act on.

``Finding`` is a frozen, slotted dataclass rather than a pydantic model: every ``strongroom
validate`` imports this module, and pydantic's import alone cost ~0.12 s of a ~0.39 s start-up
(``python -X importtime``), a tenth of validating 10,000 small files.  It keeps the face it had
as a model - keyword construction, equality, hashing, pickling, ``model_dump()`` - and still
refuses a severity it does not know.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

Severity = Literal["error", "warning", "info"]
SEVERITIES: frozenset[str] = frozenset(get_args(Severity))


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem (or notable fact) found by a check."""

    code: str
    severity: Severity = "error"
    path: str = ""
    message: str
    expected: str | None = None
    found: str | None = None

    def __post_init__(self) -> None:
        # What the pydantic model used to check: a finding with a made-up severity would be
        # silently neither an error nor a warning, and so never fail a bag.
        if self.severity not in SEVERITIES:
            raise ValueError(f"finding severity must be one of {sorted(SEVERITIES)}, "
                             f"not {self.severity!r}")
        for name in ("code", "path", "message"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"finding {name} must be a string, not {getattr(self, name)!r}")
        for name in ("expected", "found"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"finding {name} must be a string or None, not {value!r}")

    def line(self) -> str:
        """The finding as one human-readable line: ``CODE path: message``."""
        where = f"{self.path}: " if self.path else ""
        return f"{self.code} {where}{self.message}"

    def model_dump(self) -> dict[str, Any]:
        """The fields as a dict, in declaration order (what the pydantic model's ``model_dump`` gave)."""
        return {"code": self.code, "severity": self.severity, "path": self.path,
                "message": self.message, "expected": self.expected, "found": self.found}


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that make a bag invalid."""
    return [f for f in findings if f.severity == "error"]


def warnings(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that do not make a bag invalid but deserve a look."""
    return [f for f in findings if f.severity == "warning"]
