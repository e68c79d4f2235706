"""Issue 10: runtime errors about an S3 target never repeat its URL's query values.

Usage errors already masked them; an unreachable endpoint (a real connection refused on loopback,
through the CLI in a subprocess) must be masked the same way, as the README promises.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from .conftest import run_cli


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: connections are refused


def test_an_unreachable_s3_endpoint_error_masks_the_query_values(
        moto_endpoint: str, make_bag: Callable[..., Path]) -> None:
    bag = make_bag("rec")
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    url = f"s3://some-bucket/x?endpoint={endpoint}&region=eu-secret-1"
    out = run_cli("deposit", bag, "--to", url, "--no-flow", "--no-ledger", timeout=120)
    assert out.returncode == 1, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strongroom: error: s3://some-bucket/x?endpoint=***&region=***"), lines
    assert "eu-secret-1" not in out.stderr and "endpoint=http" not in out.stderr
