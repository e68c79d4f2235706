"""CLI commands: placeholder module, filled in by the work on this command group."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add this module's commands to the ``strongroom`` parser (none yet)."""
