"""The lab's results: verify's JSON per device, a table, the problems, and corpus cases."""

from __future__ import annotations

import json
from pathlib import Path


def collect(out: Path, devices: list[dict], l1_seconds: float, kernel: str) -> dict:
    l1 = {}
    if (out / "l1.json").is_file():
        l1 = json.loads((out / "l1.json").read_text())
    plan = json.loads((out / "plan.json").read_text()) if (out / "plan.json").is_file() else {}
    cmd = out / "l1-command.txt"
    summary = {"l1_seconds": round(l1_seconds, 1), "l1_kernel": kernel, "l1": l1, "devices": {},
               "lab_command": plan.get("lab_command", ""), "case_timeout": plan.get("timeout", 420.0),
               "l1_command": cmd.read_text().strip() if cmd.is_file() else ""}
    for d in devices:
        name = d["name"]
        entry: dict = {"targets": d["targets"], "l1": l1.get("devices", {}).get(name, {})}
        path = out / f"{name}.json"
        if path.is_file() and path.read_text().strip():
            try:
                entry["verify"] = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                entry["error"] = f"verify printed no JSON: {exc}"
        elif (out / f"{name}.txt").is_file():
            entry["text"] = (out / f"{name}.txt").read_text()
        else:
            err = (out / f"{name}.stderr")
            entry["error"] = (err.read_text().strip() if err.is_file() else "") or "no result (L1 did not run it)"
        l1_lspci = out / f"{name}.l1-lspci"
        entry["l1_lspci"] = l1_lspci.read_text() if l1_lspci.is_file() else ""
        summary["devices"][name] = entry
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def rows(summary: dict) -> list[dict]:
    out = []
    for name, entry in summary["devices"].items():
        for c in entry.get("verify", {}).get("candidates", []):
            out.append({"device": name, **c})
    return out


def yn(v) -> str:
    return "-" if v is None else "yes" if v else "no"


def table(summary: dict) -> str:
    head = ("device", "target", "QEMU", "layout==simulate", "driver", "MSI-X fired", "barsafe", "agrees", "s")
    lines = [head]
    for r in rows(summary):
        lines.append((r["device"], r["target"],
                      "accepted" if r["accepted"] else r["observed"],
                      yn(r["layout_equal"]), r["driver"] or ("no" if r["accepted"] else "-"),
                      yn(r["msix_interrupts"] > 0) if r["accepted"] else "-",
                      r["verdict"], yn(r["agrees"]), f"{r['seconds']:.0f}" if r["seconds"] else "-"))
    for name, entry in summary["devices"].items():
        if "error" in entry:
            lines.append((name, "-", "error: " + entry["error"].splitlines()[-1][:80], "", "", "", "", "", ""))
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(l, widths)).rstrip() for l in lines)


def known_for(row: dict):
    from .devices import DEVICES
    dev = DEVICES.get(row["device"])
    return dev.known if dev else None


def explained(row: dict) -> bool:
    """Every way this row differs is a known, reported difference of its device."""
    known = known_for(row)
    if known is None:
        return False
    fields_ok = all(d["field"] in known.fields for d in row["differences"])
    refusal = row["predicted"].get("refused") is not None and row["accepted"]
    if refusal and row["target"] not in known.accepted_targets:
        return False
    if not refusal and not row["differences"]:
        return False  # it differs in the driver's outcome alone: not what is known
    return fields_ok


def problems(summary: dict) -> list[str]:
    out = []
    for name, entry in summary["devices"].items():
        if "error" in entry:
            out.append(f"{name}: {entry['error'].splitlines()[-1] if entry['error'] else 'error'}")
        got = {c["target"] for c in entry.get("verify", {}).get("candidates", [])}
        if "verify" in entry and got != set(entry["targets"]):
            out.append(f"{name}: results for {sorted(got)}, asked {entry['targets']}")
    for r in rows(summary):
        if r["agrees"] is False and not explained(r):
            out.append(f"{r['device']} {r['target']}: {r['summary']}")
        if r["observed"] == "timeout":
            out.append(f"{r['device']} {r['target']}: the guest timed out")
    return out


def known(summary: dict) -> list[str]:
    """Known differences seen (KNOWN) and known differences no longer seen (GONE)."""
    out = []
    seen: dict[str, bool] = {}
    for r in rows(summary):
        k = known_for(r)
        if k is None:
            continue
        seen.setdefault(r["device"], False)
        if r["agrees"] is False and explained(r):
            seen[r["device"]] = True
            diffs = "; ".join(f"{d['field']}: simulate {d['predicted']}, guest {d['observed']}"
                              for d in r["differences"])
            out.append(f"KNOWN {r['device']} {r['target']}: {r['summary']}" + (f" ({diffs})" if diffs else ""))
    for device, was_seen in seen.items():
        k = known_for({"device": device})
        if was_seen:
            out.append(f"KNOWN {device}: {k.why}")
        else:
            out.append(f"GONE {device}: the known difference was not seen this time; remove it from"
                       f" lab/devices.py if barsafe was fixed ({k.why})")
    return out


def write_cases(summary: dict, folder: Path) -> list[Path]:
    from .cases import write_all
    return write_all(summary, folder)
