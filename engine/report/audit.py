"""Audit reports: plain table, Markdown, JSON, and the self-contained HTML page (html_audit.py)."""

from __future__ import annotations

import json

from ..audit import COUNTS
from .safe import long_text, markdown as md, printable

_HEAD = ("strategy", "page", "devices", "need", *COUNTS)


def _rows(result: dict) -> list[tuple[str, ...]]:
    """Raw cells: each format escapes them once, for its own syntax."""
    rows = []
    for name, by_page in result["strategies"].items():
        for page, cell in by_page.items():
            rows.append((name, page, str(cell["devices"]),
                         str(cell["needs_relocation"]), *(str(cell[k]) for k in COUNTS)))
    return rows


def _ident(b: dict) -> str:
    if b["vendor"] is None or b["device"] is None:
        return "????:????"
    return f"{b['vendor']:04x}:{b['device']:04x}"


def _broken_lines(result: dict) -> list[str]:
    out = []
    for name, by_page in result["strategies"].items():
        for page, cell in by_page.items():
            for b in cell["broken"]:
                ident = _ident(b)
                instead = f"; barsafe picks {b['barsafe_pick']}" if b.get("barsafe_pick") else \
                    "; barsafe finds no safe target"
                out.append(f"{name} {page}: {b.get('input') or '-'} {b['slot'] or '-'} [{ident}] {b['driver'] or '?'}"
                           f" -> BAR{b['target']} breaks {b['rule']}{instead}")
    return out


def _footer(result: dict) -> list[str]:
    io = "with" if result["io_space"] else "without"
    lines = [f"{result['inputs']} inputs read, hosts {io} I/O port space;"
             f" verdicts count the devices that need relocation at that page size"]
    broken = result.get("broken_capabilities", [])
    if broken:
        lines.append(f"{len(broken)} devices have a broken MSI-X capability (not a relocation question,"
                     f" counted in no verdict): " + "; ".join(
                         f"{b.get('input') or '-'} {b['slot'] or '-'} [{_ident(b)}]: {', '.join(b['problems'])}"
                         for b in broken[:10]))
    if result.get("mined_rule_devices"):
        lines.append(f"{result['mined_rule_devices']} devices were judged by mined rule sets (drafted by"
                     " barsafe mine from driver source, not reviewed: at most warn)")
    if result["inputs_failed"]:
        lines.append(f"{len(result['inputs_failed'])} inputs could not be read: "
                     + ", ".join(result["inputs_failed"][:10]))
    return lines


def table(result: dict) -> str:
    rows = [_HEAD, *(tuple(printable(c) for c in r) for r in _rows(result))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEAD))]
    lines = ["  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    broken = _broken_lines(result)
    if broken:
        lines += ["", "broken (forbid):", *("  " + long_text(b) for b in broken)]
    return "\n".join(lines + [""] + [long_text(f) for f in _footer(result)]) + "\n"


def markdown(result: dict) -> str:
    lines = ["| " + " | ".join(md(h) for h in _HEAD) + " |", "|" + "---|" * len(_HEAD)]
    lines += ["| " + " | ".join(md(c) for c in r) + " |" for r in _rows(result)]
    broken = _broken_lines(result)
    if broken:
        lines += ["", "Broken (forbid):", "", *(f"- {md(b)}" for b in broken)]
    return "\n".join(lines + [""] + [md(f) for f in _footer(result)]) + "\n"


def to_json(result: dict) -> str:
    """Indented, but each kind and each host on one line: a fleet's hosts are most of the
    document, and one line each keeps it small, greppable and quick to write."""
    lists = [key for key in ("kinds", "hosts") if result.get(key)]
    text = json.dumps({k: ([] if k in lists else v) for k, v in result.items()}, indent=2)
    parts, done = [], 0
    for key in lists:  # top-level keys, after the rest: their '"key": []' is the last in the text
        at = text.index("[]", text.rindex(f'\n  "{key}": ')) + 1
        parts += [text[done:at], "\n    ", ",\n    ".join(map(json.dumps, result[key])), "\n  "]
        done = at
    parts += [text[done:], "\n"]
    return "".join(parts)


def to_html(result: dict, generated: int | None = None) -> str:
    from .html_audit import to_html as page  # only here: it imports hashlib (4 MB of OpenSSL)
    return page(result, generated)


FORMATS = {"table": table, "markdown": markdown, "json": to_json, "html": to_html}


def render(fmt: str, result: dict, generated: int | None = None) -> str:
    """The report in ``fmt``; ``generated`` (seconds since 1970) dates the HTML page."""
    return to_html(result, generated) if fmt == "html" else FORMATS[fmt](result)
