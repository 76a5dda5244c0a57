"""`barsafe coverage` as text: the summary, then per driver and per ID, gaps first.

The JSON output is the core's result as it is (engine/coverage.py, engine/schemas/coverage.json).
Names, drivers and rule set names come from input: each passes through ``printable``.
"""

from __future__ import annotations

import json

from .safe import long_text, printable

_KINDS = (("reviewed", "a reviewed driver rule set"), ("mined", "a mined rule set only (not reviewed)"),
          ("generic", "no driver rule set matches: the generic set only"))


def _ident(vendor: int | None, device: int | None) -> str:
    return "????:????" if vendor is None or device is None else f"{vendor:04x}:{device:04x}"


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], numeric: int) -> list[str]:
    """Columns 1..numeric right-aligned; the last column is not padded."""
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    out = []
    for r in (head, *rows):
        cells = [c.rjust(w) if 1 <= i <= numeric else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r[:-1], widths))]
        out.append("  ".join([*cells, r[-1]]).rstrip())
    return out


def _list(items: list, limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit})" if len(items) > limit else "") if items else "-"


def text(result: dict) -> str:
    total = result["devices"]
    lines = [f"{total} MSI-X devices in {result['inputs']} inputs; rule sets that judge them:"]
    width = max(len(str(result[k])) for k, _ in _KINDS)
    for kind, what in _KINDS:
        lines.append(f"  {str(result[kind]).rjust(width)}  {_percent(result[kind], total):>6}  {what}")
    if result["names_from"]:
        lines.append(f"names the inputs lacked: {printable(result['names_from'])}")
    if result["names_unavailable"]:
        lines.append(f"names unavailable: {long_text(result['names_unavailable'])}")
    if result["msix_unknown"]:
        lines.append(f"{result['msix_unknown']} devices may have MSI-X that the input did not show"
                     " (lspci run without root): not counted")
    counts = ("devices", "reviewed", "mined", "generic")
    rows = [(printable(d["driver"]) if d["driver"] is not None else "(none)",
             *(str(d[k]) for k in counts), printable(_list(d["rulesets"])),
             _list([_ident(i["vendor"], i["device"]) for i in d["ids"]], 6))
            for d in result["drivers"]]
    if rows:
        lines += ["", "per driver (the guest's: the host's, or its module where the host binds vfio-pci):"]
        lines += _table(("driver", *counts, "rule sets", "IDs"), rows, len(counts))
    rows = [(_ident(i["vendor"], i["device"]), *(str(i[k]) for k in counts), ",".join(i["matched_by"]) or "-",
             printable(_list(i["rulesets"], 3)), printable(_list([d or "(none)" for d in i["drivers"]], 2)),
             _name(i))
            for i in result["ids"]]
    if rows:
        lines += ["", "per ID:"]
        lines += _table(("ID", *counts, "matched by", "rule sets", "driver", "name"), rows, len(counts))
    if result["inputs_failed"]:
        lines += ["", f"{len(result['inputs_failed'])} inputs could not be read: "
                  + long_text(", ".join(result["inputs_failed"][:10]))]
    return "\n".join(lines) + "\n"


def _name(row: dict) -> str:
    """'Ethernet controller: Intel Corporation 82574L ...', as lspci's device line has it."""
    cls = row["class_name"] or (f"[{row['class']:04x}]" if row["class"] is not None else "")
    name = row["name"] or ""
    return printable(f"{cls}: {name}" if cls and name else cls or name or "-")


def json_text(result: dict) -> str:
    return json.dumps(result, indent=2) + "\n"
