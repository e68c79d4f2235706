"""The catalogue of ``strongroom web`` in a real headless browser (Debian's chromium), and its safety.

The browser loads the holdings and the seed's item page from the server process: the rendered
DOM must show the title and the three links of the provenance chain, as pictured.  Then escaping
(a title with ``<script>`` and control characters), path escapes (``..``, ``%2e%2e``, absolute
paths, links), read-only-ness, and the command's behaviour on bad input and on SIGTERM.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from lxml import html as lxml_html

from tests.web_support import EVIL_TITLE, REPO, SECRET, Collection, WebServer, tree_digest

SEED_TITLE = "Large-scale Massacre of Prisoners in Peru, 1986 - ICG"
CHAIN = ["Comunismo No. 22", "Communism No. 6", "libcom.org"]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium (.ci/run installs it); a machine that cannot install it skips, others fail."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("chromium is absent and this machine has no apt-get to install it")
    pytest.fail("chromium is absent: install it (apt-get install -y chromium); .ci/run does")


def _browse(chromium: str, profile: Path, url: str, *args: str) -> str:
    """What chromium prints for ``url`` (the DOM after rendering, with --dump-dom)."""
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def _raw(server: WebServer, path: str) -> tuple[int, bytes]:
    """GET a path exactly as written (no client-side normalisation of ``..`` or escapes)."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


# -- in the browser ---------------------------------------------------------------------------------

def test_a_real_browser_shows_the_holdings_and_the_seeds_item_page(
        chromium: str, web_server: WebServer, tmp_path: Path) -> None:
    holdings = lxml_html.fromstring(_browse(chromium, tmp_path / "profile", web_server.url + "/", "--dump-dom"))
    titles = [a.text_content() for a in holdings.xpath("//td[@class='title']/a")]
    assert SEED_TITLE in titles
    seed_row = next(a for a in holdings.xpath("//td[@class='title']/a") if a.text_content() == SEED_TITLE).getparent().getparent()
    assert "clean" in seed_row.xpath("td[@class='copies']")[0].text_content()  # the audit's verdict on its one copy

    item = lxml_html.fromstring(_browse(chromium, tmp_path / "profile", web_server.url + "/item/icg-peru-1986",
                                        "--dump-dom"))
    assert item.xpath("//h1[@id='title']")[0].text_content() == SEED_TITLE
    nodes = item.xpath("//*[local-name()='svg'][@id='provenance-chain']/*[local-name()='g']")
    labels = [node.xpath("./*[local-name()='text']")[0].text_content() for node in nodes]
    assert labels == CHAIN
    arrows = item.xpath("//*[local-name()='svg'][@id='provenance-chain']/*[local-name()='path']")
    assert len(arrows) == 2  # 22 -> 6 -> libcom.org; the implied 22 -> libcom.org is not drawn
    links = {a.text_content(): a.get("href") for a in item.xpath("//ul[@class='metadata-links']//a")}
    for name in ("dc.xml", "dcterms.jsonld", "premis.xml"):
        assert links[name] == f"/bags/icg-peru-1986.v1/metadata/{name}"
        assert _get(web_server.url + links[name])[0] == 200
    files = item.xpath("//table[@class='files']//td")
    assert "27,183" in [td.text_content() for td in files]
    assert "246b6f3eecd785210211962ece94d16350e7aec34991bc8c3d85bfcecb822364" in item.text_content()
    assert "Audit run started" in item.xpath("//section[@id='audits']")[0].text_content()
    assert not item.xpath("//script")

    shots = Path(os.environ.get("STRONGROOM_SCREENSHOTS", tmp_path))
    for name, url, size in (("catalogue.png", "/", "1280,900"), ("item.png", "/item/icg-peru-1986", "1280,2000")):
        _browse(chromium, tmp_path / "profile", web_server.url + url, f"--window-size={size}",
                f"--screenshot={shots / name}")
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (shots / name).stat().st_size > 20_000


def test_a_title_with_script_and_control_characters_shows_as_text(
        chromium: str, web_server: WebServer, tmp_path: Path) -> None:
    status, page = _get(web_server.url + "/item/evil")
    assert status == 200
    assert "<script" not in page and "&lt;script&gt;alert(" in page
    assert "\x7f" not in page and "\x85" not in page and "\u202e" not in page
    dom = lxml_html.fromstring(_browse(chromium, tmp_path / "profile", web_server.url + "/item/evil", "--dump-dom"))
    assert not dom.xpath("//script")
    shown = dom.xpath("//h1[@id='title']")[0].text_content()
    assert shown == EVIL_TITLE.replace("\x7f", "U+007F").replace("\x85", "U+0085").replace("\u202e", "U+202E")
    status, holdings = _get(web_server.url + "/?page=6")  # the oldest page holds the evil record
    assert "&lt;script&gt;" in holdings and "<script" not in holdings


# -- over HTTP ------------------------------------------------------------------------------------

def test_the_holdings_page_through_every_record(web_server: WebServer, web_collection: Collection) -> None:
    seen: list[str] = []
    for number in range(1, 7):
        status, page = _get(f"{web_server.url}/?page={number}")
        assert status == 200
        seen += [a.get("href") for a in lxml_html.fromstring(page).xpath("//td[@class='title']/a")]
    assert len(seen) == len(set(seen)) == web_collection.records
    assert seen[0] == "/item/icg-peru-1986"  # newest first


ESCAPES = [
    "/bags/icg-peru-1986.v1/metadata/../../../outside.txt",
    "/bags/icg-peru-1986.v1/metadata/%2e%2e/%2e%2e/%2e%2e/outside.txt",
    "/bags/icg-peru-1986.v1/metadata/..%2f..%2f..%2foutside.txt",
    "/bags/%2e%2e/outside.txt",
    "/bags/..%2f..%2foutside.txt/metadata/dc.xml",
    "/bags/icg-peru-1986.v1//etc/passwd",
    "/bags/icg-peru-1986.v1/%2Fetc%2Fpasswd",
    "/bags/icg-peru-1986.v1/metadata/%2Fetc%2Fpasswd",
    "/bags/linked.v1/metadata/dc.xml",      # a bag directory that is a link out
    "/bags/evil.v1/metadata/premis.xml",    # a metadata file that is a link out
    "/bags/evil.v1/data/secret.txt",        # a payload file that is a link out
    "/bags/icg-peru-1986.v1/data/000_5b99444169de3d3a.txt",  # payload, not served by default
    "/bags/icg-peru-1986.v1/bag-info.txt",
    "/item/..%2f..%2foutside",
    "/../../etc/passwd",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_no_request_reaches_outside_the_bags_or_a_payload_file(web_server: WebServer, path: str) -> None:
    status, body = _raw(web_server, path)
    assert status in (400, 403, 404), (status, body[:200])
    assert SECRET.encode() not in body and b"root:" not in body and b"Copyright Undetermined" not in body


def test_serve_payload_serves_payload_files_and_still_no_escape(web_collection: Collection) -> None:
    seed = web_collection.seed_bag / "data" / "000_5b99444169de3d3a.txt"
    with WebServer(web_collection.bags, "--serve-payload") as server:
        status, body = _raw(server, "/bags/icg-peru-1986.v1/data/000_5b99444169de3d3a.txt")
        assert status == 200 and body == seed.read_bytes()
        for path in ("/bags/evil.v1/data/secret.txt", "/bags/icg-peru-1986.v1/data/../../outside.txt",
                     "/bags/icg-peru-1986.v1/data/%2e%2e/%2e%2e/outside.txt", "/bags/linked.v1/data/item.txt",
                     "/bags/icg-peru-1986.v1/data/%2e%2e/metadata/../../outside.txt"):
            status, body = _raw(server, path)
            assert status in (403, 404) and SECRET.encode() not in body, path
        status, page = _get(server.url + "/item/icg-peru-1986")
        assert 'href="/bags/icg-peru-1986.v1/data/000_5b99444169de3d3a.txt"' in page


def test_no_request_changes_a_bag_or_the_ledger(web_server: WebServer, web_collection: Collection) -> None:
    before = tree_digest(web_collection.bags)
    for path in ("/", "/?page=2", "/item/icg-peru-1986", "/item/versioned?version=1", "/item/evil",
                 "/bags/icg-peru-1986.v1/metadata/premis.xml", "/oai?verb=ListRecords&metadataPrefix=oai_dc",
                 "/oai?verb=GetRecord&metadataPrefix=premis&identifier=oai:strongroom.local:icg-peru-1986"):
        assert _raw(web_server, path)[0] == 200, path
    assert tree_digest(web_collection.bags) == before


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_web_front_cannot_write_to_the_ledger(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    from pipeline.ledger import Ledger
    from pipeline.web.ledger_view import LedgerView

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}" if backend == "sqlite" else request.getfixturevalue("fresh_pg_url")
    Ledger.open(url).close()  # a ledger at the newest schema
    view = LedgerView.open(url, tmp_path)
    assert view is not None
    with pytest.raises(SQLAlchemyError, match="(?i)read.?only"):
        with view.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM bags"))
    assert view.registered() == {}
    view.close()


# -- the command ----------------------------------------------------------------------------------

def _web(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "web", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_bad_input_is_one_line_and_a_non_zero_exit(web_collection: Collection, tmp_path: Path) -> None:
    missing = _web("--bags", str(tmp_path / "absent"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "absent" in missing.stderr
    bad_ledger = _web("--bags", str(web_collection.bags), "--ledger", f"sqlite:///{tmp_path / 'none.sqlite'}")
    assert bad_ledger.returncode != 0 and bad_ledger.stderr.count("\n") == 1 and "none.sqlite" in bad_ledger.stderr
    unreachable = _web("--bags", str(web_collection.bags), "--ledger", "postgresql://nobody@127.0.0.1:1/none")
    assert unreachable.returncode == 1 and unreachable.stderr.count("\n") == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = _web("--bags", str(web_collection.bags), "--port", str(port))
    assert in_use.returncode == 1 and in_use.stderr.count("\n") == 1 and "in use" in in_use.stderr
    for result in (missing, bad_ledger, unreachable, in_use):
        assert "Traceback" not in result.stderr


def test_it_binds_loopback_and_stops_cleanly_on_sigterm(web_collection: Collection) -> None:
    server = WebServer(web_collection.bags)
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        code, out, err = server.stop()
    assert code == 0 and "stopped" in out and "Traceback" not in err


# -- strongroom serve --web -----------------------------------------------------------------------

def test_serve_web_refuses_a_port_in_use_before_starting_prefect(web_collection: Collection,
                                                                  tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", "serve", "--records", str(web_collection.root /
                               "records"), "--bags", str(web_collection.bags), "--web", "--web-port",
                               str(taken.getsockname()[1])], cwd=REPO, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")})
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "in use" in done.stderr
    assert "Prefect" not in done.stdout  # refused before Prefect was started


def test_serve_web_serves_the_site_beside_the_deployments(web_collection: Collection, tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "HOME": str(tmp_path)}
    env.pop("PREFECT_API_URL", None)
    serve = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--records",
                              str(web_collection.root / "records"), "--bags", str(web_collection.bags), "--web",
                              "--web-port", "0"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert serve.stdout is not None
        banner = serve.stdout.readline()
        assert banner.startswith("strongroom web: serving"), banner + serve.stderr.read()  # type: ignore[union-attr]
        url = banner.split(" at ", 1)[1].split("/ ", 1)[0]
        status, body = _get(url + "/oai?verb=Identify")
        assert status == 200 and "<repositoryName>Strongroom</repositoryName>" in body
        assert _get(url + "/item/icg-peru-1986")[0] == 200
    finally:
        serve.send_signal(signal.SIGTERM)
        out, err = serve.communicate(timeout=120)
    assert serve.returncode == 0 and "Traceback" not in err


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_damaged_copy_shows_as_damaged_with_its_audit_history(backend: str, tmp_path: Path,
                                                                 request: pytest.FixtureRequest) -> None:
    from pipeline.audit import run_audit
    from pipeline.ingest import ingest_record, register_result
    from pipeline.ledger import Ledger

    shutil.copytree(REPO / "records", tmp_path / "records")
    bags = tmp_path / "bags"
    bags.mkdir()
    result = ingest_record(tmp_path / "records" / "icg-peru-1986" / "record.yaml", bags)
    assert result.bag is not None, result.error
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}" if backend == "sqlite" else request.getfixturevalue("fresh_pg_url")
    payload = result.bag / "data" / "000_5b99444169de3d3a.txt"
    with Ledger.open(url) as ledger:
        register_result(result, ledger)
        assert run_audit(ledger).exit_code == 0
        data = bytearray(payload.read_bytes())
        data[0] ^= 1
        payload.write_bytes(bytes(data))
        assert run_audit(ledger).exit_code != 0
    with WebServer(bags, "--ledger", url) as server:
        holdings = lxml_html.fromstring(_get(server.url + "/")[1])
        assert [d.text_content() for d in holdings.xpath("//span[@class='outcome']")] == ["damaged"]
        item = lxml_html.fromstring(_get(server.url + "/item/icg-peru-1986")[1])
    rows = item.xpath("//section[@id='audits']//tbody/tr")
    assert [r.get("class") for r in rows] == ["clean", "damaged"]  # oldest first
    assert "AUD001 data/000_5b99444169de3d3a.txt" in rows[1].text_content()
    assert item.xpath("//section[@id='copies']//tbody/tr")[0].get("class") == "damaged"
