"""The one exception hierarchy of the Strongroom library.

Checks return findings (see :mod:`pipeline.findings`); actions raise one of these.  Every leaf
carries the data a caller needs to report the problem in one line, and ``str(exc)`` *is* that line
(without the ``strongroom: error:`` prefix the CLI adds).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.findings import Finding


class StrongroomError(Exception):
    """Root of everything the library raises."""


class UsageError(StrongroomError):
    """The caller asked for something that cannot be done as asked (CLI exit code 2)."""


class RecordError(StrongroomError):
    """A metadata record is unreadable or invalid.

    ``problems`` holds one line per problem (``field.path: message``), ``line`` the YAML line
    when the problem is a syntax error.
    """

    def __init__(self, path: Path, problems: Sequence[str], *, line: int | None = None) -> None:
        self.path, self.problems, self.line = path, tuple(problems), line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {'; '.join(self.problems)}")


class PayloadError(StrongroomError):
    """A payload file named by a record or a source tree cannot be bagged (missing, unsafe, ...)."""

    def __init__(self, source: Path, payload: str, problem: str) -> None:
        self.source, self.payload, self.problem = source, payload, problem
        super().__init__(f"{source}: payload '{payload}' {problem}")


class FixityError(StrongroomError):
    """A digest differs from the one it must equal."""

    def __init__(self, path: Path | str, algorithm: str, expected: str, found: str) -> None:
        self.path, self.algorithm, self.expected, self.found = path, algorithm, expected, found
        super().__init__(f"{path}: {algorithm} mismatch, expected {expected}, found {found}")


class BagWriteError(StrongroomError):
    """A bag could not be written; nothing was published."""


class BagInvalidError(StrongroomError):
    """A bag failed validation.  ``findings`` are the errors that explain why."""

    def __init__(self, bag: Path, findings: Sequence[Finding]) -> None:
        self.bag, self.findings = bag, tuple(findings)
        first = f": {self.findings[0].line()}" if self.findings else ""
        more = f" (and {len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
        super().__init__(f"{bag}: invalid bag{first}{more}")


class LedgerError(StrongroomError):
    """The fixity ledger cannot be opened, migrated or written."""


class DepositError(StrongroomError):
    """A deposit failed; the destination holds no partial bag that looks complete."""


class RetryableError(StrongroomError):
    """A failure that is safe to retry (network, throttling).  Flows retry only these."""


class RetryableDepositError(DepositError, RetryableError):
    """A deposit failed for a reason that is safe to retry."""


class DepositMismatchError(DepositError):
    """The copy at a deposit destination differs from the bag: verification failed, or the
    destination already holds a different (or damaged) bag under that name.  Nothing was
    published or overwritten.  ``findings`` say file by file what differs."""

    def __init__(self, location: str, findings: Sequence[Finding], *, problem: str) -> None:
        self.location, self.findings, self.problem = location, tuple(findings), problem
        first = f": {self.findings[0].line()}" if self.findings else ""
        more = f" (and {len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
        super().__init__(f"{location}: {problem}{first}{more}")


class MetadataError(StrongroomError):
    """A metadata document (PREMIS, Dublin Core XML) is malformed, unsafe or not what it claims."""


class IntakeError(StrongroomError):
    """Records could not be authored or imported as asked; nothing was written.

    ``problems`` holds one line per problem, each naming its file (and CSV line or option).
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{self.problems[0] if self.problems else 'nothing written'}{more}")


class RepairError(StrongroomError):
    """A repair was refused or could not be carried out (the ledger holds no reference for the bag, ...)."""
