"""OAI-PMH at scale: a full ListRecords harvest of 10,000 records from ``strongroom web``, against
reading the same 10,000 ``dc.xml`` files straight from disk.

    python benchmarks/harvest_bench.py harvest BAGS   # one measured job (bench.py runs it)

The harvest job starts the server itself (``strongroom web --port 0``), waits until it answers,
then times the harvest only: every page over HTTP, each parsed and its resumption token followed,
100 records a page.  Its peak memory is the larger of the harvester's and the server's (the server
is a child the job waits for).  The bags are generated once: the seed's own ``dc.xml`` with a new
title and identifier per record, a Source-Organization (two sets), one datestamp a minute.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

from measure import Case, run_rounds  # noqa: E402
from report import Row  # noqa: E402

PY = sys.executable
RECORDS = 10_000
OAI = "{http://www.openarchives.org/OAI/2.0/}"
DC = "{http://purl.org/dc/elements/1.1/}"


def run(data: Path, out: Path, rounds: int) -> dict[str, Case]:
    """The harvest and the plain read of the same files, interleaved."""
    bags = generate(data / "harvest", RECORDS)
    me = str(Path(__file__).resolve())
    cases = [Case("harvest/oai-listrecords", [PY, me, "harvest", str(bags)]),
             Case("harvest/read-dc-files", [PY, me, "read", str(bags)])]
    print(f"# harvest: {len(cases)} commands x {rounds} round(s), {RECORDS:,} records", file=sys.stderr)
    run_rounds(cases, rounds, REPO)
    return {c.name: c for c in cases}


def rows(results: dict[str, Case]) -> list[Row]:
    """The issue's row: the harvest's time against the plain read, and the harvest's peak memory."""
    harvest, read = results.get("harvest/oai-listrecords"), results.get("harvest/read-dc-files")
    if not harvest or not read or not harvest.samples or not read.samples:
        return []
    return [Row(f"(info) OAI-PMH ListRecords harvest of {RECORDS:,} records (100 a page) vs reading the "
                f"{RECORDS:,} dc.xml files", f"cost of the protocol ({harvest.median():.1f} s vs "
                f"{read.median():.1f} s)", harvest.median() / read.median(), None),
            Row(f"OAI-PMH harvest of {RECORDS:,} records, peak memory (server or harvester)", "≤ 150 MB",
                harvest.peak_mb(), 150.0, unit="MB")]


def generate(root: Path, count: int) -> Path:
    """``count`` bags with the seed's dc.xml (retitled), built once under ``root/bags``."""
    from lxml import etree

    from pipeline.dublin_core import to_oai_dc
    from pipeline.records import load_record

    bags = root / "bags"
    stamp = root / ".ready"
    if stamp.is_file() and stamp.read_text() == str(count):
        return bags
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    bags.mkdir(parents=True)
    seed = etree.fromstring(to_oai_dc(load_record(REPO / "records" / "icg-peru-1986" / "record.yaml").record))
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    for n in range(count):
        bag = bags / f"bench-{n:05d}.v1"
        (bag / "metadata").mkdir(parents=True)
        seed.find(f"{DC}title").text = f"Strongroom harvest benchmark item {n}"  # type: ignore[union-attr]
        seed.find(f"{DC}identifier").text = f"urn:strongroom:record:bench-{n:05d}"  # type: ignore[union-attr]
        (bag / "metadata" / "dc.xml").write_bytes(etree.tostring(seed, xml_declaration=True, encoding="UTF-8"))
        (bag / "bag-info.txt").write_text(f"Source-Organization: Benchmark archive {n % 2}\n")
        (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
        os.utime(bag / "bagit.txt", (start + 60 * n, start + 60 * n))
    stamp.write_text(str(count))
    return bags


def harvest(bags: Path) -> int:
    """Start the server, harvest every record, stop the server; print the harvest's own time."""
    server = subprocess.Popen([PY, "-m", "pipeline.cli", "web", "--bags", str(bags), "--port", "0"], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    banner = server.stdout.readline()
    base = banner.split(" at ", 1)[1].split("/ ", 1)[0]
    try:
        _wait(base)
        started = time.perf_counter()
        records, pages = _harvest(f"{base}/oai")
        inner = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    if records != RECORDS:
        raise SystemExit(f"harvested {records} records, expected {RECORDS}")
    print(json.dumps({"inner": inner, "records": records, "pages": pages}))
    return 0


def _wait(base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/style.css", timeout=5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _harvest(endpoint: str) -> tuple[int, int]:
    from lxml import etree

    query, records, pages = "verb=ListRecords&metadataPrefix=oai_dc", 0, 0
    while True:
        with urllib.request.urlopen(f"{endpoint}?{query}", timeout=120) as response:
            doc = etree.fromstring(response.read(), etree.XMLParser(resolve_entities=False, no_network=True))
        pages += 1
        records += len(doc.findall(f"{OAI}ListRecords/{OAI}record"))
        token = doc.findtext(f"{OAI}ListRecords/{OAI}resumptionToken")
        if not token:
            return records, pages
        query = "verb=ListRecords&resumptionToken=" + urllib.parse.quote(token)


def read(bags: Path) -> int:
    """Read and parse (safely) every bag's dc.xml, as a harvest's lower bound."""
    from pipeline.premis import parse_xml

    started = time.perf_counter()
    titles = 0
    for bag in sorted(bags.iterdir()):
        root = parse_xml((bag / "metadata" / "dc.xml").read_bytes(), bag.name)
        titles += root.find(f"{DC}title") is not None
    print(json.dumps({"inner": time.perf_counter() - started, "records": titles}))
    return 0


if __name__ == "__main__":
    command, target = sys.argv[1], Path(sys.argv[2])
    raise SystemExit({"harvest": harvest, "read": read}[command](target))
