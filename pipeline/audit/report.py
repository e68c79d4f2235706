"""Audit reports for people and programs: terminal text, JSON, a self-contained HTML page, table rows.

Everything here is a pure rendering of an :class:`~pipeline.audit.AuditReport`; nothing reads a
bag or the ledger.  The HTML page carries its own style sheet and no script or external
reference, so a curator can open it from a mail attachment or a shared drive.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pipeline.audit.check import CLASSES
from pipeline.audit.run import AuditReport, BagAudit
from pipeline.bag.names import printable
from pipeline.findings import Finding


def summary(report: AuditReport) -> dict[str, Any]:
    """Counts over the run: bags, damaged bags, files and bytes re-read, findings per code."""
    codes = Counter(f.code for b in report.bags for c in b.checks for f in c.findings)
    return {
        "bags_checked": len(report.bags),
        "bags_damaged": len(report.damaged),
        "files_checked": sum(b.files_checked for b in report.bags),
        "bytes_read": sum(b.bytes_read for b in report.bags),
        "findings": dict(sorted(codes.items())),
    }


def summary_line(report: AuditReport) -> str:
    """One line: how many bags were checked and how many are damaged."""
    s = summary(report)
    verdict = f"{s['bags_damaged']} DAMAGED" if s["bags_damaged"] else "all intact"
    return (f"audited {s['bags_checked']} bag(s), {s['files_checked']} file(s), "
            f"{s['bytes_read']:,} bytes re-read: {verdict}")


def as_json(report: AuditReport) -> dict[str, Any]:
    """The whole report as JSON-ready data (stable keys; the README documents them)."""
    return {
        "run_id": report.run_id,
        "ledger": report.ledger,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat() if report.finished_at else None,
        "options": report.options.as_dict(),
        "summary": summary(report),
        "bags": [_bag_json(b) for b in report.bags],
    }


def _bag_json(bag: BagAudit) -> dict[str, Any]:
    return {
        "name": bag.name,
        "damaged": bag.damaged,
        "locations": [{
            "location": c.location, "damaged": c.damaged, "files_checked": len(c.observed),
            "bytes_read": c.bytes_read,
            "findings": [{**f.model_dump(), "class": CLASSES.get(f.code, f.code)} for f in c.findings],
        } for c in bag.checks],
    }


def to_json_text(report: AuditReport) -> str:
    """The JSON report as text."""
    return json.dumps(as_json(report), indent=2, ensure_ascii=False) + "\n"


def to_text(report: AuditReport) -> str:
    """The report a person reads in a terminal: a line per bag, then every damaged file."""
    lines = [f"Strongroom audit {report.run_id}", f"ledger: {report.ledger}"]
    for bag in report.bags:
        lines.append(f"  {'DAMAGED' if bag.damaged else 'ok     '}  {bag.name}  "
                     f"({bag.files_checked} files, {bag.bytes_read:,} bytes)")
    for bag in report.damaged:
        for check in bag.checks:
            if check.damaged:
                lines.append(f"{bag.name} at {check.location or '(no location)'}:")
                lines.extend(_finding_lines(check.findings))
    if not report.bags:
        lines.append("  no bag was due for an audit")
    lines.append(summary_line(report))
    # File and bag names come from disk: a name with an escape sequence or a line break must not
    # drive the terminal or forge a report line.
    return "\n".join(printable(line) for line in lines) + "\n"


def _finding_lines(findings: Sequence[Finding]) -> list[str]:
    out: list[str] = []
    for f in findings:
        where = f.path or "(the bag)"
        out.append(f"  {f.code} {CLASSES.get(f.code, '')}: {where}: {f.message}")
        if f.expected:
            out.append(f"      expected {f.expected}")
        if f.found:
            out.append(f"      found    {f.found}")
    return out


def artifact_rows(report: AuditReport) -> list[dict[str, str]]:
    """Rows of the Prefect table artifact: one per damaged file, then one summary row."""
    rows = [{"bag": bag.name, "location": check.location, "path": f.path or "(bag)", "code": f.code,
             "class": CLASSES.get(f.code, f.code), "message": f.message,
             "expected": f.expected or "", "found": f.found or ""}
            for bag in report.bags for check in bag.checks for f in check.findings]
    s = summary(report)
    rows.append({"bag": "(summary)", "location": "", "path": "", "code": "",
                 "class": "damaged" if s["bags_damaged"] else "clean",
                 "message": summary_line(report), "expected": "", "found": ""})
    return rows


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}table{border-collapse:collapse;width:100%;margin:1em 0}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.digest{font-family:monospace;font-size:.8em;word-break:break-all}
.damaged{color:#a00;font-weight:bold}.ok{color:#070}
"""


def to_html(report: AuditReport) -> str:
    """A self-contained HTML page of the report (inline style, no script, no external reference)."""
    e = html.escape
    s = summary(report)
    head = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Strongroom audit {e(report.run_id)}</title><style>{_CSS}</style></head><body>")
    verdict = (f"<p class=\"damaged\">{s['bags_damaged']} of {s['bags_checked']} bag(s) damaged</p>"
               if s["bags_damaged"] else f"<p class=\"ok\">All {s['bags_checked']} bag(s) intact</p>")
    meta = (f"<h1>Strongroom fixity audit</h1>{verdict}<p>Run {e(report.run_id)}, ledger {e(report.ledger)}, "
            f"started {e(report.started_at.isoformat())}. {e(summary_line(report))}.</p>")
    damage = "".join(
        f"<tr><td>{e(bag.name)}</td><td>{e(c.location)}</td><td>{e(f.path or '(bag)')}</td>"
        f"<td class=\"damaged\">{e(f.code)} {e(CLASSES.get(f.code, ''))}</td><td>{e(f.message)}</td>"
        f"<td class=\"digest\">{e(f.expected or '')}</td><td class=\"digest\">{e(f.found or '')}</td></tr>"
        for bag in report.bags for c in bag.checks for f in c.findings)
    damage_table = ("<h2>Damaged files</h2><table><tr><th>Bag</th><th>Location</th><th>File</th><th>Class</th>"
                    f"<th>What</th><th>Expected</th><th>Found</th></tr>{damage}</table>" if damage else "")
    bags = "".join(
        f"<tr><td>{e(b.name)}</td><td class=\"{'damaged' if b.damaged else 'ok'}\">"
        f"{'damaged' if b.damaged else 'intact'}</td><td>{b.files_checked}</td><td>{b.bytes_read:,}</td></tr>"
        for b in report.bags)
    bag_table = ("<h2>Bags checked</h2><table><tr><th>Bag</th><th>Outcome</th><th>Files</th><th>Bytes</th></tr>"
                 f"{bags}</table>")
    return f"{head}{meta}{damage_table}{bag_table}</body></html>\n"
