"""CLI command ``web``: the OAI-PMH data provider and the catalogue, served until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import socket
from pathlib import Path
from typing import Any

from pipeline.errors import StrongroomError, UsageError

_DESCRIPTION = (
    "Serve, read-only, an OAI-PMH 2.0 data provider at /oai (oai_dc and premis of every record's newest "
    "bag) and a catalogue of the holdings at / (copies, audits, provenance chain), until SIGTERM or Ctrl-C. "
    "Binds to 127.0.0.1 unless --host says otherwise. Exit 0 when stopped, 1 when the ledger cannot be "
    "read or the port cannot be taken, 2 on usage errors (a missing bags directory or ledger file).")


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``web``."""
    w = sub.add_parser("web", help="serve the OAI-PMH provider and the catalogue (read-only) until stopped",
                       description=_DESCRIPTION)
    w.add_argument("--bags", type=Path, default=Path("bags"), metavar="DIR", help="the bags directory")
    w.add_argument("--ledger", metavar="URL", default=None,
                   help="fixity ledger URL (default: $STRONGROOM_LEDGER, else <bags>/.strongroom-ledger.sqlite "
                        "if present)")
    w.add_argument("--host", default="127.0.0.1", help="address to listen on")
    w.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free port)")
    w.add_argument("--base-url", metavar="URL",
                   help="the public URL of the site (default: http://HOST:PORT); OAI-PMH's baseURL is it + /oai")
    w.add_argument("--admin-email", default="archivist@example.org", metavar="E",
                   help="the administrator's address that Identify gives (set it to a real one)")
    w.add_argument("--repository-name", default="Strongroom", metavar="N", help="the name Identify and pages show")
    w.add_argument("--repository-id", default="strongroom.local", metavar="ID",
                   help="the repository part of OAI identifiers (oai:ID:record); keep it stable")
    w.add_argument("--serve-payload", action="store_true",
                   help="also serve payload files (off by default: their rights may be undetermined)")
    w.set_defaults(handler=run_web)


def run_web(args: argparse.Namespace) -> int:
    """Check the input, take the port, serve until stopped."""
    app, sock, ledger = _prepare(args, host=args.host, port=args.port)
    _serve(app, sock)
    if ledger is not None:
        ledger.close()
    print("strongroom web: stopped", flush=True)
    return 0


def serve_options(parser: argparse.ArgumentParser) -> None:
    """``strongroom serve --web``: the same site beside the deployments, with the defaults of ``web``."""
    parser.add_argument("--web", action="store_true",
                        help="also serve the OAI-PMH provider and the catalogue (as `strongroom web`)")
    parser.add_argument("--web-host", default="127.0.0.1", metavar="HOST", help="address of --web")
    parser.add_argument("--web-port", type=int, default=8080, metavar="PORT", help="port of --web (0: any free)")


def start_beside(args: argparse.Namespace) -> None:
    """With ``--web``, take the port now (a port in use fails before Prefect starts) and serve the
    site from a daemon thread, which ends with the process."""
    if not getattr(args, "web", False):
        return
    import threading

    defaults = argparse.Namespace(base_url=None, admin_email="archivist@example.org", repository_name="Strongroom",
                                  repository_id="strongroom.local", serve_payload=False)
    app, sock, _ = _prepare(argparse.Namespace(**{**vars(defaults), **vars(args)}), host=args.web_host,
                            port=args.web_port)
    threading.Thread(target=_serve, args=(app, sock), name="strongroom web", daemon=True).start()


def _prepare(args: argparse.Namespace, *, host: str, port: int) -> tuple[Any, socket.socket, Any]:
    """The application, its listening socket and the ledger it reads; the banner printed."""
    if not args.bags.is_dir():
        raise UsageError(f"{args.bags}: no such bags directory")
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port}: not a port number")
    if "@" not in args.admin_email:
        raise UsageError(f"--admin-email {args.admin_email}: not an e-mail address")
    from pipeline.web.ledger_view import LedgerView

    ledger = LedgerView.open(args.ledger, args.bags)
    sock = _listen(host, port)
    bound, actual = sock.getsockname()[:2]
    shown = f"[{bound}]" if ":" in bound else bound
    base = (args.base_url or f"http://{shown}:{actual}").rstrip("/")
    from pipeline.web.app import WebOptions, build_app

    app = build_app(WebOptions(bags_dir=args.bags, ledger=ledger, base_url=base, repository_name=args.repository_name,
                               admin_email=args.admin_email, repository_id=args.repository_id,
                               serve_payload=args.serve_payload))
    print(f"strongroom web: serving {args.bags} at http://{shown}:{actual}/ (OAI-PMH: {base}/oai)"
          f"{'' if ledger else '; no ledger found'}", flush=True)
    return app, sock, ledger


def _listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket: a port in use is one line, before anything is served."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise StrongroomError(f"{host}:{port}: cannot listen: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _serve(app: Any, sock: socket.socket) -> None:
    """Run uvicorn on ``sock`` until SIGTERM or SIGINT, then return (exit 0, no traceback).

    uvicorn stops cleanly on either signal and then raises it again for the handler it found;
    the handler installed here takes it (and one that arrives before uvicorn's own) as "stop".
    In another thread than the main one (``serve --web``) signals are left to the main thread.
    """
    import threading

    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    main = threading.current_thread() is threading.main_thread()

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
