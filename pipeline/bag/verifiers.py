"""The checks a staged bag passes before the writer publishes it.

Two independent verifications run by default: Strongroom's strict validator re-reading the staged
copy (:func:`strongroom_verifier`) and bagit-python's full validation as a second opinion
(:func:`pipeline.bag.second_opinion.bagit_python_findings`).  ``strongroom bag
--no-second-opinion`` (and ``IngestOptions(second_opinion=False)``) keep the first only.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pipeline.bag.tagfiles import manifest_algorithms
from pipeline.findings import Finding

#: Checks a complete staged bag; error findings stop the publication.
Verifier = Callable[[Path], Sequence[Finding]]
#: Progress of a verifier: (bytes done, files done), cumulative.
Progress = Callable[[int, int], None]


def default_verifiers(*, second_opinion: bool = True) -> list[Verifier]:
    """Strongroom's re-read of the staged bag, then (unless ``second_opinion`` is False)
    bagit-python's full validation as an independent second opinion (a new object each call: it
    holds one bag's bagit-python child)."""
    verifiers = [strongroom_verifier()]
    if second_opinion:
        from pipeline.bag.second_opinion import SecondOpinion

        verifiers.append(SecondOpinion())
    return verifiers


def strongroom_verifier(*, progress: Progress | None = None,
                        starting: Callable[[], None] | None = None) -> Verifier:
    """Strongroom's strict validator on a staged bag, re-reading every payload file with one strong digest.

    Every check of a full validation runs (structure, every manifest read and complete, tag
    files, Payload-Oxum); the payload digests are recomputed for :func:`reread_algorithms` of
    the bag's manifests.  ``starting()`` is called first (a progress bar's new stage).
    """
    from pipeline.bag.validator import validate_bag

    def strongroom(path: Path) -> Sequence[Finding]:
        if starting is not None:
            starting()
        recompute = reread_algorithms(manifest_algorithms(path))
        return validate_bag(path, depth="full", progress=progress, recompute=recompute).findings

    return strongroom


#: Digests strong enough alone to prove the staged bytes (md5 and sha1 are not: collisions are
#: made on purpose); the fastest of them on this machine is used.
STRONG_ALGORITHMS = ("sha256", "sha512", "sha384", "sha224")


def reread_algorithms(algorithms: Iterable[str]) -> tuple[str, ...] | None:
    """The one digest the writer's re-read recomputes: the fastest strong one among ``algorithms``.

    Every manifest of a staged bag was computed in the one read of the source, so the staged
    bytes hashing to one strong manifest digest proves them as well as hashing to all of them:
    a second digest only doubles the re-read.  Which one is fastest depends on the CPU (with SHA
    extensions sha256 hashed 1,776 MiB/s here and sha512 768 MiB/s; without them sha512 is the
    faster on 64-bit), so it is measured once.  None (recompute every algorithm) when no
    strong algorithm is among them.
    """
    strong = [a for a in STRONG_ALGORITHMS if a in set(algorithms)]
    if not strong:
        return None
    return (min(strong, key=_hash_seconds),) if len(strong) > 1 else (strong[0],)


@functools.cache
def _hash_seconds(alg: str) -> float:
    """Seconds to hash 4 MiB with ``alg`` (about 3-6 ms), best of 3."""
    block = bytes(1 << 20)
    best = float("inf")
    for _ in range(3):
        h = hashlib.new(alg)
        started = time.perf_counter()
        for _ in range(4):
            h.update(block)
        best = min(best, time.perf_counter() - started)
    return best
