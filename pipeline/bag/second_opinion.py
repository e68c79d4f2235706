"""bagit-python as an independent second opinion on every bag Strongroom writes.

bagit-python 1.9.0 is the reference implementation, but it cannot read one thing RFC 8493
requires: a payload name containing ``%`` (written ``%25`` in manifests).  Its decoder knows only
``%0D``/``%0A``, so it reports such a file as missing and its on-disk name as unexpected.  Those
complaints - and only those - are set aside here and said in an ``info`` finding; every other
complaint is an error that stops publication.
"""

from __future__ import annotations

import logging
from pathlib import Path

import bagit

from pipeline.bag.names import encode_path
from pipeline.findings import Finding

CODE = "SECOND-OPINION"


def bagit_python_findings(bag: Path) -> list[Finding]:
    """Validate ``bag`` fully with bagit-python; its complaints as findings."""
    logger = logging.getLogger("bagit")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # it logs every file it hashes; the findings say what matters
    try:
        bagit.Bag(str(bag)).validate(processes=1)
    except bagit.BagValidationError as exc:
        return _explain(exc)
    except bagit.BagError as exc:
        return [Finding(code=CODE, message=f"bagit-python rejects the bag: {exc}")]
    finally:
        logger.setLevel(level)
    return []


def _explain(exc: bagit.BagValidationError) -> list[Finding]:
    details = list(getattr(exc, "details", []) or [])
    if not details:
        return [Finding(code=CODE, message=f"bagit-python rejects the bag: {exc}")]
    missing = {d.path for d in details if isinstance(d, bagit.FileMissing)}
    unexpected = {d.path for d in details if isinstance(d, bagit.UnexpectedFile)}
    # A name with '%' appears to bagit-python as missing under its encoded form and unexpected
    # under its real one; pair them up, nothing else is excused.
    excused = {p for p in unexpected if "%" in p and encode_path(p) in missing}
    excused_encoded = {encode_path(p) for p in excused}
    found: list[Finding] = []
    for d in details:
        path = getattr(d, "path", "")
        if path in excused or path in excused_encoded:
            continue
        found.append(Finding(code=CODE, path=str(path), message=f"bagit-python: {d}"))
    if excused and not found:
        found.append(Finding(code=CODE, severity="info",
                             message=f"bagit-python agrees, except that it cannot read {len(excused)} "
                                     "payload name(s) containing '%' (its decoder lacks %25)"))
    return found
