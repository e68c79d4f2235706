"""Helpers of the ``strongroom web`` tests: a collection of bags to serve, and the server as a process.

The collection holds the seed, ingested for real and registered in a SQLite ledger, then audited
once; 250 generated records (for paging, sets and from/until, with known datestamps); a record with
two versions; a record whose title holds ``<script>`` and control characters; and traps for path
escapes (a link to a file outside the bags directory, a bag directory that is a link).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

REPO = Path(__file__).resolve().parents[1]
XSD = REPO / "tests" / "data" / "xsd"
OAI_NS = "http://www.openarchives.org/OAI/2.0/"
OAI_DC_NS = "http://www.openarchives.org/OAI/2.0/oai_dc/"
DC_NS = "http://purl.org/dc/elements/1.1/"
UTC = dt.timezone.utc
#: Datestamps of the generated records: one an hour from this time.
GENERATED_FROM = dt.datetime(2020, 1, 1, tzinfo=UTC)
GENERATED = 250
EVIL_TITLE = "<script>alert('owned')</script> and a DEL\x7f, a C1\x85 and a right-to-left override\u202e here"
SECRET = "outside the bags directory: must never be served"


@dataclass
class Collection:
    """The bags directory and what the tests know about it."""

    root: Path
    bags: Path
    ledger_url: str
    seed_bag: Path
    generated_orgs: dict[str, int] = field(default_factory=dict)  # organisation -> records
    outside: Path = Path()

    @property
    def records(self) -> int:
        """How many records the provider lists: the seed, the generated ones, the versioned and the evil one."""
        return 1 + GENERATED + 2


def generated_bag(bags: Path, record_id: str, version: int, *, title: str, organisation: str,
                  when: dt.datetime, payload: bytes = b"generated payload\n") -> Path:
    """A small, well-formed bag with an oai_dc ``dc.xml``, published at ``when`` (bagit.txt's mtime)."""
    bag = bags / f"{record_id}.v{version}"
    (bag / "metadata").mkdir(parents=True)
    (bag / "data").mkdir()
    (bag / "data" / "item.txt").write_bytes(payload)
    (bag / "manifest-sha256.txt").write_text(f"{hashlib.sha256(payload).hexdigest()}  data/item.txt\n")
    (bag / "bag-info.txt").write_text(f"Source-Organization: {organisation}\nExternal-Identifier: {record_id}\n",
                                      encoding="utf-8")
    dc = etree.Element(f"{{{OAI_DC_NS}}}dc", nsmap={"oai_dc": OAI_DC_NS, "dc": DC_NS})
    for element, text in (("title", title), ("creator", "Strongroom test suite"), ("date", "2001-02-03"),
                          ("identifier", f"urn:strongroom:record:{record_id}")):
        etree.SubElement(dc, f"{{{DC_NS}}}{element}").text = text
    (bag / "metadata" / "dc.xml").write_bytes(etree.tostring(dc, xml_declaration=True, encoding="UTF-8"))
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    stamp = when.timestamp()
    os.utime(bag / "bagit.txt", (stamp, stamp))
    return bag


def make_collection(root: Path) -> Collection:
    """Build the collection under ``root`` (see the module's docstring)."""
    from pipeline.audit import run_audit
    from pipeline.ingest import ingest_record, register_result
    from pipeline.ledger import Ledger

    records = root / "records"
    shutil.copytree(REPO / "records", records)
    bags = root / "bags"
    bags.mkdir()
    result = ingest_record(records / "icg-peru-1986" / "record.yaml", bags)
    assert result.bag is not None, result.error
    ledger_url = f"sqlite:///{bags / '.strongroom-ledger.sqlite'}"
    with Ledger.open(ledger_url) as ledger:
        register_result(result, ledger)
        assert run_audit(ledger).exit_code == 0
    collection = Collection(root, bags, ledger_url, result.bag)
    orgs = ("Archive of the North", "Archive of the South")
    for i in range(GENERATED):
        org = orgs[i % 2]
        collection.generated_orgs[org] = collection.generated_orgs.get(org, 0) + 1
        generated_bag(bags, f"gen-{i:04d}", 1, title=f"Generated record {i}", organisation=org,
                      when=GENERATED_FROM + dt.timedelta(hours=i))
    versioned = GENERATED_FROM - dt.timedelta(days=30)
    generated_bag(bags, "versioned", 1, title="Versioned record, first version", organisation=orgs[0],
                  when=versioned)
    generated_bag(bags, "versioned", 2, title="Versioned record, second version", organisation=orgs[0],
                  when=versioned + dt.timedelta(days=1))
    generated_bag(bags, "evil", 1, title=EVIL_TITLE, organisation="Evil & <Co>", when=versioned)
    collection.outside = root / "outside.txt"
    collection.outside.write_text(SECRET)
    # Traps: a metadata file and a payload file that are links out of the bags directory, and a
    # "bag" that is a link to a directory outside.
    (bags / "evil.v1" / "metadata" / "premis.xml").symlink_to(collection.outside)
    (bags / "evil.v1" / "data" / "secret.txt").symlink_to(collection.outside)
    outside_bag = root / "outside-bag.v1"
    shutil.copytree(bags / "gen-0000.v1", outside_bag)
    (bags / "linked.v1").symlink_to(outside_bag, target_is_directory=True)
    return collection


def tree_digest(root: Path) -> str:
    """A digest of every file's path, bytes and mtime, and every link, under ``root`` (read-only check)."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            h.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_file() and not path.name.endswith(("-shm", "-wal")):
            st = path.stat()
            h.update(f"F {rel} {st.st_mtime_ns} ".encode() + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


class WebServer:
    """``strongroom web`` in its own process on a free loopback port (``--port 0``)."""

    def __init__(self, bags: Path, *args: str) -> None:
        self.bags, self.args = bags, args
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.banner = ""

    def __enter__(self) -> WebServer:
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "web", "--bags", str(self.bags),
                                      "--port", "0", *self.args], cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline()
        if "serving" not in self.banner:
            raise RuntimeError(f"strongroom web did not start: {self.banner}{self.proc.stderr.read()}")  # type: ignore[union-attr]
        self.url = self.banner.split(" at ", 1)[1].split("/ ", 1)[0]
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.url + "/style.css", timeout=2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM; the exit code and what the process printed after its banner."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, err

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


def schema(name: str) -> etree.XMLSchema:
    """One of the vendored XSDs, loaded offline."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(XSD / name), parser))


def oai_schema() -> etree.XMLSchema:
    """OAI-PMH.xsd with the schemas of both formats imported: ``<metadata>`` is checked strictly."""
    text = (f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
            f'<xs:import namespace="{OAI_NS}" schemaLocation="{(XSD / "OAI-PMH.xsd").as_uri()}"/>'
            f'<xs:import namespace="{OAI_DC_NS}" schemaLocation="{(XSD / "oai_dc.xsd").as_uri()}"/>'
            f'<xs:import namespace="http://www.loc.gov/premis/v3" '
            f'schemaLocation="{(XSD / "premis-v3-0.xsd").as_uri()}"/></xs:schema>')
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.fromstring(text.encode(), parser, base_url=str(XSD) + "/"))
