"""`barsafe audit --format html`: one self-contained page an operator can act on.

It opens with what was audited (inputs, page sizes, I/O space, barsafe and rules versions,
date), a one-line summary per strategy and a legend; then the strategies (chart and table,
barsafe's row highlighted), what each strategy breaks, every host's devices with barsafe's pick
and the QEMU option to set, and every distinct device with its candidate table and reasons.
Tables sort (click a header) and filter (type in the box above them); a page-size selector
narrows every view to one host page size.

Self-contained: inline CSS and JavaScript, no link, image or font from anywhere, and a
Content-Security-Policy that allows only this page's own script and style (by their SHA-256),
so a viewer fetches nothing and no text from the input can run.  Every string from the input
goes through safe.long_text (one line, control characters escaped) and html.escape.  Huge
fleets are cut with a note saying what is left out (HOST_ROWS, BROKEN_ROWS); the JSON has all.
"""

from __future__ import annotations

import base64
import hashlib
import html
import time

from ..audit import COUNTS, DETAIL_LIMIT
from ..errors import UsageError
from ..units import format_size
from . import config
from .safe import long_text

HOST_ROWS = 2000  # devices listed in the per-host view (each with a row per page size): a browser
# lays out 6,000 rows in about a second on a loaded 2-core machine, 15,000 in three
BROKEN_ROWS = 2000  # rows of the broken-devices table
COLOURS = {"safe": "#2e7d32", "warn": "#f9a825", "forbid": "#c62828", "refused": "#6a1b9a",
           "no_pick": "#9e9e9e"}

LEGEND = (
    ("need", "needs relocation: at that page size the MSI-X table or PBA shares a host page with other"
             " BAR space, so QEMU traps the registers beside it (every access a VM exit) unless MSI-X"
             " moves. Verdicts count these devices only; for the others every strategy leaves MSI-X"
             " where it is and nothing is judged."),
    ("safe", "the strategy's pick breaks no rule of the guest driver."),
    ("warn", "the pick breaks a warn rule (a driver assumption that may matter), or the device's"
             " driver has no rule file and the generic set judged it (it never says safe about a"
             " relocation)."),
    ("forbid", "the pick breaks a forbid rule: the guest driver is known to fail with that layout."),
    ("refused", "QEMU refuses that option for this device: the VM does not start."),
    ("no_pick", "the strategy leaves MSI-X where it is (it found nothing to move it to, or it never"
                " moves it): the traps stay. For barsafe: no safe or warn target exists."),
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:110em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #ccc;padding:2px 7px;text-align:left;vertical-align:top}
td.n{text-align:right}
th.sortable{cursor:pointer;background:#f3f3f3;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.barsafe td,li.barsafe{background:#e3f2fd;font-weight:bold}
.safe{color:#2e7d32}.warn{color:#a66d00}.forbid{color:#c62828;font-weight:bold}
.refused{color:#6a1b9a}.no_pick{color:#666}
code{font-size:.92em}
td.config code{white-space:nowrap}
td.host{max-width:20em;overflow-wrap:anywhere}td.device{max-width:18em}
.devname{display:block;font-size:.82em;color:#444}
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-1px}
.sw-safe{background:#2e7d32}.sw-warn{background:#f9a825}.sw-forbid{background:#c62828}
.sw-refused{background:#6a1b9a}.sw-no_pick{background:#9e9e9e}.sw-need{background:#1565c0}
dl.audited{display:grid;grid-template-columns:max-content auto;gap:2px 1em}
dl.audited dt{font-weight:bold}dl.audited dd{margin:0}
dl.legend dt{font-weight:bold;margin-top:.3em}dl.legend dd{margin-left:1.6em}
.controls{margin:.4em 0}.controls input{width:24em}
button.kind{font:inherit;font-family:monospace;cursor:pointer;border:1px solid #90caf9;background:#e3f2fd;padding:0 4px}
details.kind{margin:.3em 0;border:1px solid #ddd;padding:.2em .5em}
details.kind[open]{border-color:#1565c0}
details.kind summary{cursor:pointer}
.note{color:#555}
"""

_SCRIPT = """
(function () {
  "use strict";
  var pageSelect = document.getElementById("page");
  function pageOf() { return pageSelect ? pageSelect.value : "all"; }
  function filterTable(table) {
    var box = document.querySelector('input[data-for="' + table.id + '"]');
    var words = box ? box.value.toLowerCase().split(/\\s+/).filter(Boolean) : [];
    var page = pageOf(), shown = 0, total = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var onPage = !row.dataset.page || page === "all" || row.dataset.page === page;
      if (onPage) { total++; }
      var show = onPage;
      if (show && words.length) {
        var text = row.textContent.toLowerCase();
        show = words.every(function (w) { return text.indexOf(w) >= 0; });
      }
      row.hidden = !show;
      if (show) { shown++; }
    });
    var count = document.querySelector('[data-count="' + table.id + '"]');
    if (count) { count.textContent = shown + " of " + total + " rows"; }
  }
  function applyPage() {
    var page = pageOf();
    document.querySelectorAll("[data-page]").forEach(function (el) {
      if (el.tagName !== "TR") { el.hidden = page !== "all" && el.dataset.page !== page; }
    });
    document.querySelectorAll("table.data").forEach(filterTable);
  }
  function key(cell) {
    var raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
    var num = Number(raw);
    return raw !== "" && !isNaN(num) ? [0, num, ""] : [1, 0, raw.toLowerCase()];
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return [key(row.cells[col]), i, row];
    });
    rows.sort(function (a, b) {
      var x = a[0], y = b[0];
      if (x[0] !== y[0]) { return x[0] - y[0]; }
      if (x[1] !== y[1]) { return dir * (x[1] - y[1]); }
      if (x[2] !== y[2]) { return dir * (x[2] < y[2] ? -1 : 1); }
      return a[1] - b[1];
    });
    var sorted = document.createDocumentFragment();
    rows.forEach(function (r) { sorted.appendChild(r[2]); });
    body.appendChild(sorted);
  }
  document.querySelectorAll("th.sortable").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  document.querySelectorAll("input[data-for]").forEach(function (box) {
    box.addEventListener("input", function () {
      filterTable(document.getElementById(box.dataset.for));
    });
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.kind");
    if (!button) { return; }
    var detail = document.getElementById("kind-" + button.dataset.kind);
    if (detail) { detail.open = true; detail.scrollIntoView({block: "start"}); }
  });
  if (pageSelect) { pageSelect.addEventListener("change", applyPage); }
  applyPage();
}());
"""


def _h(text: object) -> str:
    """HTML text from input: one line, control characters escaped (raw ones are invalid in
    HTML), then the markup characters and both quotes as entities (safe in attributes too)."""
    return html.escape(long_text(text))


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _ident(vendor, device) -> str:
    return "????:????" if vendor is None or device is None else f"{vendor:04x}:{device:04x}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _date(generated: int | None) -> str:
    if generated is None:
        return "not recorded"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(generated))


def _default_page(result: dict) -> str:
    """The largest page size at which some device needs relocation (the one to act on)."""
    pages = result["page_sizes"]
    barsafe = result["strategies"]["barsafe"]
    needing = [p for p in pages if barsafe[p]["needs_relocation"]]
    return (needing or pages)[-1]


def _th(names, sortable: bool = True) -> str:
    cls = ' class="sortable"' if sortable else ""
    return "<tr>" + "".join(f"<th{cls}>{_h(n)}</th>" for n in names) + "</tr>"


def _controls(table_id: str, what: str) -> str:
    return (f'<div class="controls"><label>Filter {_h(what)}: <input type="search" data-for="{table_id}"'
            f' placeholder="words, all must match"></label> <span class="note" data-count="{table_id}"></span></div>')


def _audited(result: dict, generated: int | None) -> str:
    pages = result["page_sizes"]
    first = result["strategies"]["barsafe"][pages[0]]
    failed = result["inputs_failed"]
    kinds = result.get("kinds", [])
    hosts = result.get("hosts", [])
    inputs = f"{result['inputs']:,} given, {result['inputs'] - len(failed):,} read"
    if failed:
        shown = ", ".join(_h(f) for f in failed[:20]) + (", ..." if len(failed) > 20 else "")
        inputs += f", {len(failed):,} could not be read ({shown})"
    else:
        inputs = _h(inputs)
    rows = [
        ("inputs", inputs),
        ("hosts", _h(f"{len(hosts):,} inputs hold MSI-X devices")),
        ("MSI-X devices", _h(f"{first['devices']:,}, {len(kinds):,} distinct (each judged once)")),
        ("page sizes", _h(", ".join(pages))),
        ("I/O port space", _h("yes" if result["io_space"] else "no (--no-io-space: I/O BARs vanish)")),
        ("strategies", _h(", ".join(result["strategies"]))),
        ("barsafe", _h(result.get("barsafe_version") or "?")),
        ("rules version", _h(result.get("rules_version") or "?")),
        ("date", _h(_date(generated))),
    ]
    return '<dl class="audited" id="audited">' + "".join(
        f"<dt>{_h(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _summary_line(name: str, cell: dict) -> str:
    need = cell["needs_relocation"]
    if name == "barsafe":
        text = (f"barsafe breaks {cell['forbid'] or 'none'} of the {need:,} devices that need"
                f" relocation; {cell['safe']:,} safe, {cell['warn']:,} with warnings")
        if cell["no_pick"]:
            text += f"; no safe target for {cell['no_pick']:,}"
        return text
    text = f"{name} breaks {cell['forbid'] or 'none'} of {need:,} devices that need relocation"
    extra = []
    if cell["refused"]:
        extra.append(f"QEMU refuses it for {cell['refused']:,}")
    if cell["no_pick"]:
        extra.append(f"leaves MSI-X in place (traps stay) for {cell['no_pick']:,}")
    if cell["warn"]:
        extra.append(f"{cell['warn']:,} with warnings")
    extra.append(f"{cell['safe']:,} safe")
    return text + "; " + ", ".join(extra)


def _summary(result: dict) -> str:
    parts = []
    for page in result["page_sizes"]:
        cells = {name: by_page[page] for name, by_page in result["strategies"].items()}
        devices = cells["barsafe"]["devices"]
        need = cells["barsafe"]["needs_relocation"]
        head = (f"{page} pages: {need:,} of {devices:,} MSI-X devices need relocation" if need else
                f"{page} pages: none of {devices:,} MSI-X devices needs relocation (every MSI-X"
                " table and PBA has its host pages to itself); nothing to judge")
        items = ""
        if need:
            items = "<ul>" + "".join(
                f'<li class="{"barsafe" if name == "barsafe" else "strategy"}">{_h(_summary_line(name, cell))}</li>'
                for name, cell in cells.items()) + "</ul>"
        parts.append(f'<div class="summary" data-page="{_h(page)}"><p><strong>{_h(head)}</strong></p>{items}</div>')
    return "".join(parts)


def _legend() -> str:
    return '<dl class="legend" id="legend-list">' + "".join(
        f'<dt><span class="swatch sw-{k}"></span>{_h(k)}</dt><dd>{_h(text)}</dd>' for k, text in LEGEND) + "</dl>"


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
        weight = ' font-weight="bold"' if name == "barsafe" else ""
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" font-size="12"{weight}>'
                     f'{_h(name)} {_h(page)}</text>')
        x = left
        for k in COUNTS:
            w = bar_w * cell[k] / total
            if w:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 6}"'
                             f' fill="{COLOURS[k]}"><title>{_h(k)}: {cell[k]}</title></rect>')
            x += w
    y = height - 14
    for j, k in enumerate(COUNTS):
        parts.append(f'<rect x="{left + j * 100}" y="{y - 10}" width="12" height="12" fill="{COLOURS[k]}"/>'
                     f'<text x="{left + j * 100 + 16}" y="{y}" font-size="12">{_h(k)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _strategy_table(result: dict) -> str:
    rows = []
    for name, by_page in result["strategies"].items():
        for page, cell in by_page.items():
            cls = ' class="barsafe"' if name == "barsafe" else ""
            nums = "".join(f'<td class="n {k}">{cell[k]}</td>' for k in COUNTS)
            rows.append(f'<tr{cls} data-page="{_h(page)}"><td>{_h(name)}</td><td>{_h(page)}</td>'
                        f'<td class="n">{cell["devices"]}</td><td class="n">{cell["needs_relocation"]}</td>'
                        f"{nums}</tr>")
    head = _th(("strategy", "page", "devices", "need", *COUNTS))
    return (_controls("strategies-table", "strategies")
            + f'<table class="data" id="strategies-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>')


def _broken_table(result: dict) -> tuple[str, int]:
    rows = []
    total = 0
    for name, by_page in result["strategies"].items():
        for page, cell in by_page.items():
            for b in cell["broken"]:
                total += 1
                if len(rows) >= BROKEN_ROWS:
                    continue
                pick = b.get("barsafe_pick")
                rows.append(
                    f'<tr data-page="{_h(page)}"><td>{_h(name)}</td><td>{_h(page)}</td>'
                    f'<td>{_h(b.get("input") or "-")}</td><td><code>{_h(b["slot"] or "-")}</code></td>'
                    f'<td><code>{_ident(b["vendor"], b["device"])}</code></td><td>{_h(b["driver"] or "?")}</td>'
                    f'<td data-sort="{b["target"]}">BAR{b["target"]}</td><td class="forbid">{_h(b["rule"])}</td>'
                    f'<td class="{"safe" if pick else "no_pick"}">{_h(pick or "no safe target")}</td></tr>')
    if not rows:
        return '<p>No strategy breaks any device (no pick breaks a forbid rule).</p>', 0
    head = _th(("strategy", "page", "host (input)", "slot", "device", "driver", "target", "breaks rule",
                "barsafe picks"))
    cut = "" if total <= BROKEN_ROWS else (
        f'<p class="note">The first {BROKEN_ROWS:,} of {total:,} rows; --format json lists every one.</p>')
    return (_controls("broken-table", "broken devices") + cut
            + f'<table class="data" id="broken-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>',
            total)


def _config_line(slot: str | None, page: dict) -> str:
    """The QEMU option for barsafe's pick at that page size, or why there is none."""
    if page["broken_capability"]:
        return "none: the MSI-X capability is broken (no relocation can help)"
    if not page["needs_relocation"]:
        return "none needed"
    if page["pick"] is None:
        return "none: no safe target (open the device for what each target breaks)"
    try:
        return config.qemu_device(slot, page["pick"])
    except UsageError as exc:  # no slot, or none QEMU's host= takes (a VMD domain): say so
        return f"none: {exc}"


def _pick_cell(page: dict) -> str:
    if page["broken_capability"]:
        return '<td class="forbid">broken capability</td>'
    if not page["needs_relocation"]:
        return '<td class="no_pick">off (not needed)</td>'
    if page["pick"] is None:
        return '<td class="forbid">none</td>'
    return f'<td class="{_h(page["verdict"])}">{_h(page["pick"])} ({_h(page["verdict"])})</td>'


def _hosts_table(result: dict) -> str:
    kinds = result.get("kinds", [])
    hosts = result.get("hosts", [])
    rows = []
    listed_hosts = listed = 0
    total = sum(len(h["kinds"]) for h in hosts)
    for host in hosts:
        if listed + len(host["kinds"]) > HOST_ROWS and listed:
            break
        listed_hosts += 1
        name = _h(host["input"] if host["input"] is not None else "-")
        for slot_of, k in zip(host["slots"], host["kinds"]):
            listed += 1
            kind = kinds[k]
            ident = _ident(kind["vendor"], kind["device"])
            button = (f'<button class="kind" data-kind="{k}" title="open its candidate table">{ident}</button>'
                      if k < DETAIL_LIMIT else f"<code>{ident}</code>")
            slot = _h(slot_of or "-")
            for page, detail in kind["pages"].items():
                rows.append(
                    f'<tr data-page="{_h(page)}"><td class="host">{name}</td><td><code>{slot}</code></td>'
                    f'<td class="device">{button}<span class="devname">{_h(kind["name"] or "")}</span></td>'
                    f'<td>{_h(kind["driver"] or "-")}</td>'
                    f'<td>{_h(page)}</td><td>{"yes" if detail["needs_relocation"] else "no"}</td>'
                    f'{_pick_cell(detail)}<td class="config"><code>{_h(_config_line(slot_of, detail))}</code></td></tr>')
    if not rows:
        return "<p>No input holds an MSI-X device.</p>"
    cut = "" if listed >= total else (
        f'<p class="note">The first {_plural(listed_hosts, "host")} ({listed:,} of {total:,} devices on'
        f' {len(hosts):,} hosts) are listed here; --format json lists every host, --format jsonl every'
        " device with its input.</p>")
    head = _th(("host (input)", "slot", "device", "driver", "page", "need", "barsafe picks",
                "QEMU option to set"))
    return (_controls("hosts-table", "hosts and devices") + cut
            + f'<table class="data" id="hosts-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>')


def _cost(cost: int | None) -> str:
    if cost is None:
        return "-"
    return "+0" if cost == 0 else f"+{format_size(cost)}"


def _candidates(page: dict) -> str:
    rows = []
    for c in page["candidates"]:
        reasons = [f"{r['rule']} ({r['severity']}): {r['evidence'] or r['message']}" for r in c["reasons"]]
        reasons += [f"QEMU: {c['refused']}"] if c["refused"] else []
        reasons += [c["note"]] if c["note"] else []
        reason = "<br>".join(_h(r) for r in reasons)
        target = "-" if c["target"] is None else f"BAR{c['target']}"
        chosen = ' class="barsafe"' if c["strategy"] == page["pick"] else ""  # barsafe's pick
        rows.append(f'<tr{chosen}><td>{_h(c["strategy"])}</td><td>{target}</td>'
                    f'<td class="{_h(c["verdict"])}">{_h(c["verdict"])}</td>'
                    f'<td class="n" data-sort="{-1 if c["mmio_cost"] is None else c["mmio_cost"]}">'
                    f'{_cost(c["mmio_cost"])}</td><td>{reason}</td></tr>')
    head = _th(("candidate", "target", "verdict", "added MMIO", "reasons"))
    return f'<table class="candidates"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _kinds(result: dict) -> str:
    kinds = result.get("kinds", [])
    parts = []
    for k, kind in enumerate(kinds[:DETAIL_LIMIT]):
        ident = _ident(kind["vendor"], kind["device"])
        picks = ", ".join(f"{p}: {d['pick'] or 'none'}" for p, d in kind["pages"].items())
        head = (f"<code>{ident}</code> {_h(kind['name'] or '')} <span class=\"note\">driver"
                f" {_h(kind['driver'] or 'none')}; {kind['copies']:,} {'copy' if kind['copies'] == 1 else 'copies'};"
                f" rules {_h(', '.join(kind['rules']))}; barsafe picks {_h(picks)}</span>")
        body = []
        for page, detail in kind["pages"].items():
            need = "relocation needed" if detail["needs_relocation"] else "no relocation needed"
            if detail["candidates"] is None:
                inner = (f"<p>{_h(page)} pages: {_h(need)}; barsafe picks {_h(detail['pick'] or 'none')}."
                         " Candidate tables are kept for the first"
                         f" {DETAIL_LIMIT:,} distinct devices: run barsafe which on this device for the rest.</p>")
            else:
                inner = (f"<p><strong>{_h(page)} pages</strong>: {_h(need)}; barsafe picks"
                         f" <strong>{_h(detail['pick'] or 'none')}</strong>"
                         f" ({_h(detail['verdict'] or 'no safe target')}).</p>"
                         f'<p class="note">Why: {_h(detail["why"])}</p>' + _candidates(detail))
            body.append(f'<div data-page="{_h(page)}">{inner}</div>')
        parts.append(f'<details class="kind" id="kind-{k}"><summary>{head}</summary>{"".join(body)}</details>')
    cut = "" if len(kinds) <= DETAIL_LIMIT else (
        f'<p class="note">The first {DETAIL_LIMIT:,} of {len(kinds):,} distinct devices are listed;'
        " --format json has every one.</p>")
    return cut + "".join(parts)


def _footer(result: dict) -> str:
    lines = []
    broken = result.get("broken_capabilities", [])
    if broken:
        lines.append(f"{len(broken):,} devices have a broken MSI-X capability (not a relocation question,"
                     " counted in no verdict): " + "; ".join(
                         f"{b.get('input') or '-'} {b['slot'] or '-'} [{_ident(b['vendor'], b['device'])}]:"
                         f" {', '.join(b['problems'])}" for b in broken[:20]))
    if result.get("mined_rule_devices"):
        lines.append(f"{result['mined_rule_devices']:,} devices were judged by mined rule sets (drafted by"
                     " barsafe mine from driver source, not reviewed: at most warn).")
    return "".join(f'<p class="note">{_h(line)}</p>' for line in lines)


def to_html(result: dict, generated: int | None = None) -> str:
    """The page; ``generated``: the report's date, seconds since 1970 (SOURCE_DATE_EPOCH or now)."""
    pages = result["page_sizes"]
    default = _default_page(result)
    options = "".join(f'<option value="{_h(p)}"{" selected" if p == default else ""}>{_h(p)}</option>'
                      for p in pages) + '<option value="all">all page sizes</option>'
    broken, broken_total = _broken_table(result)
    csp = (f"default-src 'none'; style-src {_csp_hash(_STYLE)}; script-src {_csp_hash(_SCRIPT)};"
           " img-src 'none'; base-uri 'none'; form-action 'none'")
    hosts = result.get("hosts", [])
    devices = result["strategies"]["barsafe"][pages[0]]["devices"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>barsafe audit</title>
<style>{_STYLE}</style>
</head><body>
<h1>barsafe audit: MSI-X relocation over {_h(f"{devices:,}")} devices on {_h(f"{len(hosts):,}")} hosts</h1>
<section id="what"><h2>What was audited</h2>{_audited(result, generated)}</section>
<p class="controls"><label>Page size shown: <select id="page">{options}</select></label>
<span class="note">(the summary, tables and device details follow it)</span></p>
<section id="summary"><h2>Summary</h2>{_summary(result)}</section>
<section id="legend"><h2>Legend</h2>{_legend()}</section>
<section id="strategies"><h2>Strategies</h2>{_chart(result)}{_strategy_table(result)}</section>
<section id="broken"><h2>What each strategy breaks ({broken_total:,} rows, forbid)</h2>{broken}</section>
<section id="hosts"><h2>Hosts: barsafe's pick and the QEMU option per device</h2>
<p class="note">Click a device for its candidate table and reasons. libvirt and Proxmox lines: barsafe which
INPUT --slot SLOT --emit libvirt|proxmox.</p>{_hosts_table(result)}</section>
<section id="devices"><h2>Devices: each distinct device, its candidates and reasons</h2>{_kinds(result)}</section>
<footer>{_footer(result)}</footer>
<script>{_SCRIPT}</script>
</body></html>
"""
