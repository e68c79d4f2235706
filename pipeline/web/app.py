"""The web application: ``/oai`` (OAI-PMH), ``/`` and ``/item/<id>`` (catalogue), the bags' metadata files.

Every route only reads.  A bag is named in a URL by its directory name and must be one the index
knows; a file inside it is found through :meth:`Holdings.bag_file`, which refuses ``..``, absolute
paths and links that lead out of the bag.  Payload files are served only with ``serve_payload``
(their rights may be undetermined), and always as downloads.
"""

from __future__ import annotations

import asyncio
import math
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from pipeline.web.catalogue import PAGE_SIZE, environment, item_page, media_type, summaries
from pipeline.web.holdings import METADATA_FILES, Holdings
from pipeline.web.ledger_view import LedgerView
from pipeline.web.oai import Provider, ProviderConfig

#: No script, no frames, nothing from elsewhere: the pages need only their own stylesheet.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class WebOptions:
    """What ``strongroom web`` serves, and how."""

    bags_dir: Path
    ledger: LedgerView | None
    base_url: str
    repository_name: str = "Strongroom"
    admin_email: str = "archivist@example.org"
    repository_id: str = "strongroom.local"
    serve_payload: bool = False
    page_size: int = 100


def build_app(options: WebOptions) -> Starlette:
    """The Starlette application over one bags directory (and its ledger)."""
    holdings = Holdings(options.bags_dir, options.ledger)
    provider = Provider(holdings, ProviderConfig(
        repository_name=options.repository_name, base_url=options.base_url.rstrip("/") + "/oai",
        admin_email=options.admin_email, repository_id=options.repository_id, page_size=options.page_size))
    env = environment()
    css = (Path(__file__).with_name("templates") / "style.css").read_bytes()

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(repository_name=options.repository_name, oai=provider, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def not_found(what: str) -> HTMLResponse:
        return page("error.html", 404, message=what)

    async def oai(request: Request) -> Response:
        pairs = urllib.parse.parse_qsl(request.url.query, keep_blank_values=True)
        if request.method == "POST":
            body = (await request.body()).decode("utf-8", errors="replace")
            pairs += urllib.parse.parse_qsl(body, keep_blank_values=True)
        xml = await asyncio.to_thread(provider.respond, pairs)
        return Response(xml, media_type="text/xml; charset=UTF-8", headers=SECURITY_HEADERS)

    def holdings_page(request: Request) -> Response:
        index = holdings.index()
        pages = max(1, math.ceil(len(index.holdings) / PAGE_SIZE))
        try:
            number = min(max(1, int(request.query_params.get("page", "1"))), pages)
        except ValueError:
            number = 1
        # Newest first, as an archivist looks for what came in last.
        shown = list(reversed(index.holdings))[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
        return page("holdings.html", items=summaries(holdings, shown), total=len(index.holdings), number=number,
                    pages=pages, ledger=options.ledger)

    def item(request: Request) -> Response:
        index = holdings.index()
        holding = index.by_id.get(request.path_params["record_id"])
        if holding is None:
            return not_found("no such record")
        version = holding.newest
        wanted = request.query_params.get("version")
        if wanted is not None:
            version = next((v for v in holding.versions if str(v.number) == wanted), None)  # type: ignore[assignment]
            if version is None:
                return not_found("no such version of this record")
        return page("item.html", item=item_page(holdings, holding, version), serve_payload=options.serve_payload,
                    ledger=options.ledger)

    def bag_file(request: Request) -> Response:
        found = holdings.index().by_bag.get(request.path_params["bag"])
        rel = request.path_params["path"]
        if found is None:
            return not_found("no such bag")
        metadata = rel.startswith("metadata/") and rel.removeprefix("metadata/") in METADATA_FILES
        if not metadata and not (options.serve_payload and rel.startswith("data/")):
            return page("error.html", 403, message="payload files are not served (start with --serve-payload)"
                        if rel.startswith("data/") else "only the bag's metadata files are served")
        path = holdings.bag_file(found[1], rel)
        if path is None:
            return not_found("no such file in this bag")
        if metadata:
            return Response(path.read_bytes(), media_type=media_type(rel), headers=SECURITY_HEADERS)
        return FileResponse(path, media_type="application/octet-stream", filename=path.name,
                            headers=SECURITY_HEADERS)

    def style(request: Request) -> Response:
        return Response(css, media_type="text/css", headers=SECURITY_HEADERS)

    async def missing(request: Request, exc: Exception) -> Response:
        return not_found("no such page")

    routes = [
        Route("/", holdings_page), Route("/item/{record_id}", item), Route("/oai", oai, methods=["GET", "POST"]),
        Route("/bags/{bag}/{path:path}", bag_file), Route("/style.css", style),
    ]
    return Starlette(routes=routes, exception_handlers={404: missing})
