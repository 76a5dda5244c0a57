"""Audit reports: plain table, Markdown, JSON and a self-contained HTML page with a chart."""

from __future__ import annotations

import html
import json

from ..audit import COUNTS
from .safe import long_text, markdown as md, printable

_COLOURS = {"safe": "#2e7d32", "warn": "#f9a825", "forbid": "#c62828", "refused": "#6a1b9a",
            "no_pick": "#9e9e9e"}
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
                out.append(f"{name} {page}: {b['slot'] or '-'} [{ident}] {b['driver'] or '?'}"
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
                         f"{b['slot'] or '-'} [{_ident(b)}]: {', '.join(b['problems'])}" for b in broken[:10]))
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
    return json.dumps(result, indent=2, sort_keys=False) + "\n"


def _chart(result: dict) -> str:
    """Stacked horizontal bars, one per strategy and page size, as inline SVG."""
    rows = [(name, page, cell) for name, by_page in result["strategies"].items()
            for page, cell in by_page.items()]
    bar_w, row_h, left = 520, 22, 190
    height = row_h * len(rows) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + bar_w + 20}" height="{height}"'
             f' role="img" aria-label="verdicts per strategy and page size">']
    for i, (name, page, cell) in enumerate(rows):
        y = 10 + i * row_h
        total = cell["needs_relocation"] or 1
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" font-size="12">'
                     f'{_h(name)} {_h(page)}</text>')
        x = left
        for k in COUNTS:
            w = bar_w * cell[k] / total
            if w:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 6}"'
                             f' fill="{_COLOURS[k]}"><title>{k}: {cell[k]}</title></rect>')
            x += w
    y = height - 14
    for j, k in enumerate(COUNTS):
        parts.append(f'<rect x="{left + j * 100}" y="{y - 10}" width="12" height="12" fill="{_COLOURS[k]}"/>'
                     f'<text x="{left + j * 100 + 16}" y="{y}" font-size="12">{k}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _h(text: str) -> str:
    """HTML text: one line, control characters escaped (raw ones are invalid in HTML), then
    the markup characters and quotes as entities (html.escape with quote=True)."""
    return html.escape(long_text(text))


def to_html(result: dict) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in _HEAD)
    body = "".join("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in r) + "</tr>" for r in _rows(result))
    broken = "".join(f"<li>{_h(b)}</li>" for b in _broken_lines(result))
    footer = "".join(f"<p>{_h(f)}</p>" for f in _footer(result))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>barsafe audit</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}</style>
</head><body>
<h1>barsafe audit: MSI-X relocation strategies</h1>
{_chart(result)}
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Broken devices (forbid)</h2><ul>{broken or "<li>none</li>"}</ul>
{footer}
</body></html>
"""


FORMATS = {"table": table, "markdown": markdown, "json": to_json, "html": to_html}
