"""Repair reports for people and programs: terminal text, JSON, table rows (pure renderings)."""

from __future__ import annotations

import json
from typing import Any

from pipeline.audit.check import CLASSES
from pipeline.audit.repair import BagRepair, RepairReport
from pipeline.bag.names import printable

_VERB = {"rewrite": "repaired", "quarantine": "quarantined", "restore": "restored"}
_WOULD = {"rewrite": "would repair", "quarantine": "would quarantine", "restore": "would restore"}
_LABEL = {"intact": "intact", "repaired": "REPAIRED", "would-repair": "WOULD REPAIR",
          "unrepairable": "UNREPAIRABLE", "failed": "FAILED", "busy": "BUSY"}


def summary(report: RepairReport) -> dict[str, int]:
    """Bags per outcome, and the files repaired (or, in a dry run, to repair) and quarantined."""
    counts = {k: sum(1 for b in report.bags if b.outcome == k) for k in _LABEL}
    counts["files_repaired"] = sum(1 for b in report.bags for a in b.actions if a.action == "rewrite")
    counts["copies_restored"] = sum(1 for b in report.bags for a in b.actions if a.action == "restore")
    counts["files_quarantined"] = sum(1 for b in report.bags for a in b.actions if a.action == "quarantine")
    return counts


def summary_line(report: RepairReport) -> str:
    """One line: how many bags, and what became of the damaged ones."""
    s = summary(report)
    parts = [f"{s[k]} {_LABEL[k] if k != 'intact' else 'intact'}" for k in _LABEL if s[k]]
    what = "would change" if report.dry_run else "changed"
    return (f"repair: {len(report.bags)} bag(s): {', '.join(parts) or 'none'}; {what} "
            f"{s['files_repaired']} file(s), {s['copies_restored']} whole copy(ies), "
            f"{s['files_quarantined']} quarantined")


def to_text(report: RepairReport) -> str:
    """What a person reads: a line per bag, a line per change, and for UNREPAIRABLE every copy tried."""
    lines = ["Strongroom repair" + (" (dry run: nothing changed)" if report.dry_run else "")]
    for bag in report.bags:
        lines.append(f"  {_LABEL[bag.outcome]:<12} {bag.name}")
        lines.extend(_bag_lines(bag, report.dry_run))
    lines.append(summary_line(report))
    return "\n".join(printable(line) for line in lines) + "\n"


def _bag_lines(bag: BagRepair, dry_run: bool) -> list[str]:
    verbs = _WOULD if dry_run else _VERB
    out = []
    for a in bag.actions:
        what = f"{a.code} {CLASSES.get(a.code, '')}"
        if a.action == "quarantine":
            out.append(f"      {verbs[a.action]} {a.path} ({what}) at {a.location} -> {a.to}")
        elif a.action == "restore":
            out.append(f"      {verbs[a.action]} the whole copy at {a.location} ({what}) from {a.source}")
        else:
            out.append(f"      {verbs[a.action]} {a.path} ({what}) at {a.location} from {a.source}")
    for refusal in bag.refusals:
        out.append(f"      no verified good copy of {refusal.path or 'the whole bag'}; copies tried:")
        out.extend(f"        {location}: {why}" for location, why in refusal.tried)
    out.extend(f"      problem: {p}" for p in bag.problems)
    return out


def as_json(report: RepairReport) -> dict[str, Any]:
    """The whole report as JSON-ready data (stable keys; the README documents them)."""
    return {"dry_run": report.dry_run, "exit_code": report.exit_code, "summary": summary(report),
            "bags": [_bag_json(b) for b in report.bags]}


def _bag_json(bag: BagRepair) -> dict[str, Any]:
    return {
        "name": bag.name, "outcome": bag.outcome,
        "copies": [{"location": c.location, "damaged": c.damaged,
                    "findings": [{**f.model_dump(), "class": CLASSES.get(f.code, f.code)} for f in c.findings]}
                   for c in bag.checks],
        "actions": [{"action": a.action, "location": a.location, "path": a.path, "code": a.code,
                     "source": a.source, "to": a.to} for a in bag.actions],
        "unrepairable": [{"path": r.path, "tried": [{"location": loc, "why": why} for loc, why in r.tried]}
                         for r in bag.refusals],
        "problems": list(bag.problems),
    }


def to_json_text(report: RepairReport) -> str:
    """The JSON report as text."""
    return json.dumps(as_json(report), indent=2, ensure_ascii=False) + "\n"


def artifact_rows(report: RepairReport) -> list[dict[str, str]]:
    """Rows of the Prefect table artifact: one per change or unrepairable file, then a summary row."""
    rows = [{"bag": b.name, "outcome": b.outcome, "action": a.action, "location": a.location,
             "path": a.path or "(bag)", "code": a.code, "source": a.source or a.to}
            for b in report.bags for a in b.actions]
    rows += [{"bag": b.name, "outcome": b.outcome, "action": "none", "location": "; ".join(loc for loc, _ in r.tried),
              "path": r.path or "(bag)", "code": "", "source": "no verified good copy"}
             for b in report.bags for r in b.refusals]
    rows.append({"bag": "(summary)", "outcome": "ok" if report.exit_code == 0 else "unrepaired", "action": "",
                 "location": "", "path": "", "code": "", "source": summary_line(report)})
    return rows
