"""`barsafe audit --format html` (engine/report/html_audit.py) and the per-device JSON behind it.

The page is checked twice: as text (what it says, that every input string is escaped, that it
needs nothing from the network, that it is reproducible), and in a real browser: headless
Chromium driven by Playwright clicks the page (sorting, filtering, drill-down, the page-size
selector) and watches its console.  The browser test skips, saying why, without Playwright
(`pip install playwright`, in the test extra) or a Chromium (`apt-get install chromium`): no
browser is downloaded.

    python tests/test_audit_html.py docs/    # the README's screenshots (docs/audit-report*.png)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import audit as audit_module  # noqa: E402
from engine.cli import main  # noqa: E402
from engine.report import html_audit  # noqa: E402

DEVICES = str(ROOT / "corpus" / "devices")
SEED = str(ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml")
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"
EPOCH = "1764806400"  # 2025-12-04 00:00:00 UTC
ARGS = ["audit", DEVICES, "--page-size", "4K,16K,64K", "--no-io-space"]

pytestmark = pytest.mark.usefixtures("private_cache")


def audit(capsys, monkeypatch, *args, fmt="json"):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    code = main([*args, "--format", fmt])
    out, err = capsys.readouterr()
    return code, out, err


def visible_text(page: str) -> str:
    """The page's text as a reader sees it: tags dropped, entities decoded."""
    import html
    body = re.sub(r"<script>.*?</script>|<style>.*?</style>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


# --- JSON: every device with its input -------------------------------------------------------

def test_every_device_is_listed_under_its_input(capsys, monkeypatch):
    code, out, _ = audit(capsys, monkeypatch, *ARGS)
    assert code == 0
    result = json.loads(out)
    devices = result["strategies"]["barsafe"]["64K"]["devices"]
    listed = [(h["input"], slot, kind) for h in result["hosts"] for slot, kind in zip(h["slots"], h["kinds"])]
    assert all(len(h["slots"]) == len(h["kinds"]) > 0 for h in result["hosts"])
    assert len(listed) == devices == sum(k["copies"] for k in result["kinds"])
    assert all(Path(i).is_file() and i.startswith(DEVICES) for i, _, _ in listed)
    assert [h["input"] for h in result["hosts"]] == sorted(h["input"] for h in result["hosts"])  # input order
    for name, slot, kind in listed:  # the host's file holds that device
        assert re.search(rf"^slot: '?{re.escape(slot)}'?$", Path(name).read_text(), re.M)
    for page in result["page_sizes"]:
        for name, by_page in result["strategies"].items():
            for b in by_page[page]["broken"]:
                assert (b["input"], b["slot"]) in {(i, s) for i, s, _ in listed}
    assert result["barsafe_version"] and re.fullmatch(r"[0-9a-f]{12}", result["rules_version"])


def test_each_kind_carries_barsafe_pick_and_the_candidates_of_which(capsys, monkeypatch):
    _, out, _ = audit(capsys, monkeypatch, "audit", SEED, "--page-size", "64K", "--no-io-space")
    (kind,) = json.loads(out)["kinds"]
    main(["which", SEED, "--page-size", "64K", "--no-io-space", "--json"])
    (which,) = json.loads(capsys.readouterr().out)
    page = kind["pages"]["64K"]
    assert page["pick"] == which["recommendation"]["option"] == "bar5"
    assert page["why"] == which["why"]
    assert [{k: v for k, v in c.items() if k != "note"} for c in page["candidates"]] == which["candidates"]
    assert kind["rules"] == which["rules"] == ["mpt3sas"]


def test_identical_devices_are_one_kind(capsys, monkeypatch):
    _, out, _ = audit(capsys, monkeypatch, "audit", SEED, SEED, DEVICES + "/seed", "--page-size", "64K")
    result = json.loads(out)
    assert [h["input"] for h in result["hosts"]][:2] == [SEED, SEED]  # one host per input given
    seed_kinds = {k for h in result["hosts"] if h["input"].endswith("1000-0097.yaml") for k in h["kinds"]}
    assert len(seed_kinds) == 1 and result["kinds"][seed_kinds.pop()]["copies"] == 3


def test_past_the_detail_limit_kinds_keep_their_pick_but_not_their_candidates(capsys, monkeypatch):
    monkeypatch.setattr(audit_module, "DETAIL_LIMIT", 2)
    _, out, _ = audit(capsys, monkeypatch, *ARGS)
    kinds = json.loads(out)["kinds"]
    assert all(p["candidates"] for k in kinds[:2] for p in k["pages"].values())
    assert all(p["candidates"] is None and p["why"] is None for k in kinds[2:] for p in k["pages"].values())
    assert any(p["pick"] and p["pick"] != "off" for k in kinds[2:] for p in k["pages"].values())


# --- the page as text ----------------------------------------------------------------------

def test_the_page_opens_with_what_was_audited_and_a_summary_per_strategy(capsys, monkeypatch):
    _, out, _ = audit(capsys, monkeypatch, *ARGS)
    result = json.loads(out)
    code, page, _ = audit(capsys, monkeypatch, *ARGS, fmt="html")
    assert code == 0
    text = visible_text(page)
    audited = text[text.index("What was audited"):text.index("Summary")]
    for expected in (f"{result['inputs']} given, {result['inputs']} read", "4K, 16K, 64K", "no (--no-io-space",
                     result["barsafe_version"], result["rules_version"], "2025-12-04 00:00:00 UTC"):
        assert expected in audited, expected
    cells = {name: by_page["64K"] for name, by_page in result["strategies"].items()}
    need = cells["barsafe"]["needs_relocation"]
    assert f"64K pages: {need} of {cells['barsafe']['devices']} MSI-X devices need relocation" in text
    for name, cell in cells.items():
        broke = cell["forbid"] or "none"
        line = (f"barsafe breaks {broke} of the {need} devices" if name == "barsafe"
                else f"{name} breaks {broke} of {need} devices that need relocation")
        assert line in text, line
    assert cells["qemu-rfc"]["forbid"] > 0 and cells["barsafe"]["forbid"] == 0  # the point of the report
    legend = text[text.index("Legend"):text.index("Strategies")]
    assert all(f" {k} " in legend for k in ("need", "safe", "warn", "forbid", "refused", "no_pick"))
    strategies = page[page.index('id="strategies-table"'):]
    strategies = strategies[:strategies.index("</table>")]
    assert strategies.count('<tr class="barsafe"') == len(result["page_sizes"])  # barsafe's rows, highlighted


def test_the_host_view_has_a_row_per_device_and_page_with_the_option_to_set(capsys, monkeypatch):
    _, out, _ = audit(capsys, monkeypatch, *ARGS)
    result = json.loads(out)
    _, page, _ = audit(capsys, monkeypatch, *ARGS, fmt="html")
    hosts = page[page.index('id="hosts-table"'):]
    hosts = hosts[:hosts.index("</table>")]
    devices = sum(len(h["kinds"]) for h in result["hosts"])
    assert hosts.count("<tr data-page=") == devices * len(result["page_sizes"])
    mpt = next(h for h in result["hosts"] if "1000-0072-mpt3sas" in h["input"])
    slot = mpt["slots"][0]
    kind = result["kinds"][mpt["kinds"][0]]
    option = f"-device vfio-pci,host=0000:{slot},x-msix-relocation={kind['pages']['64K']['pick']}"
    assert option in hosts
    qemu_takes = re.compile(r"([0-9a-f]{4}:)?[0-9a-f]{2}:[01][0-9a-f]\.[0-7]")  # not VMD's 10000:e2:00.0
    assert hosts.count("x-msix-relocation=") == sum(
        1 for h in result["hosts"] for slot, k in zip(h["slots"], h["kinds"])
        for p in result["kinds"][k]["pages"].values()
        if p["needs_relocation"] and p["pick"] and qemu_takes.fullmatch(slot))
    assert "none: slot &#x27;10000:e2:00.0&#x27;: not a PCI address" in hosts


def test_huge_fleets_are_cut_with_a_note(capsys, monkeypatch):
    monkeypatch.setattr(html_audit, "HOST_ROWS", 5)
    monkeypatch.setattr(html_audit, "BROKEN_ROWS", 3)
    _, page, _ = audit(capsys, monkeypatch, *ARGS, fmt="html")
    hosts = page[page.index('id="hosts-table"'):]
    assert hosts[:hosts.index("</table>")].count("<tr data-page=") == 5 * 3
    text = visible_text(page)
    assert "The first 5 hosts (5 of 52 devices on 52 hosts) are listed here" in text
    assert re.search(r"The first 3 of \d+ rows; --format json lists every one", text)


def test_the_page_fetches_nothing_and_runs_only_its_own_script(capsys, monkeypatch):
    _, page, _ = audit(capsys, monkeypatch, *ARGS, fmt="html")
    assert not re.search(r"\b(src|href|action|srcset)\s*=", page)
    assert "url(" not in page and "@import" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page).group(1)
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    digest = lambda t: "'sha256-" + base64.b64encode(hashlib.sha256(t.encode()).digest()).decode() + "'"
    assert "default-src 'none'" in csp
    assert f"script-src {digest(script)};" in csp and f"style-src {digest(style)};" in csp
    assert page.count("<script") == 1 and page.count("<style") == 1


def test_hostile_file_names_and_drivers_are_escaped(tmp_path, capsys, monkeypatch):
    text = Path(SEED).read_text()
    evil = tmp_path / "<script>alert(1)<\u202e>'\"&.yaml"
    evil.write_text(text.replace("name: ", "name: <img onerror=alert(2)>&amp;</td></tr><script>x</script> ", 1))
    code, page, err = audit(capsys, monkeypatch, "audit", str(evil), "--page-size", "64K", "--no-io-space",
                            fmt="html")
    assert code == 0, err
    own = re.search(r"<script>.*?</script>", page, re.S).group(0)
    rest = page.replace(own, "")
    assert "<script" not in rest and "<img" not in rest and "\u202e" not in rest
    assert "&lt;script&gt;alert(1)&lt;\\u202e&gt;&#x27;&quot;&amp;.yaml" in rest
    assert "&lt;img onerror=alert(2)&gt;&amp;amp;&lt;/td&gt;" in rest


def test_a_bad_source_date_epoch_is_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "tomorrow\n")
    assert main([*ARGS, "--format", "html"]) == 2
    err = capsys.readouterr().err
    assert err == "barsafe: error: SOURCE_DATE_EPOCH=tomorrow\\n: not a number of seconds since 1970\n"


def test_the_page_is_reproducible_and_the_same_from_dask(tmp_path, capsys, monkeypatch):
    first = audit(capsys, monkeypatch, *ARGS, fmt="html")
    assert audit(capsys, monkeypatch, *ARGS, fmt="html") == first
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        dask = audit(capsys, monkeypatch, *ARGS, "--engine", "dask", "--scheduler", cluster.scheduler_address,
                     fmt="html")
    assert dask == first


def test_the_readme_audit_example_runs_as_written_from_a_clone(capsys, monkeypatch):
    """README "barsafe audit": the command uses shipped records only, and prints what it shows."""
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"^`barsafe (audit corpus/devices[^`]*)`\n\n```\n(.*?)```", readme, re.M | re.S)
    assert m, "README's audit example is not a command on corpus/devices followed by its output"
    monkeypatch.chdir(ROOT)
    assert main(m.group(1).split()) == 0
    assert capsys.readouterr().out == m.group(2)


# --- in a real browser ---------------------------------------------------------------------

def browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (pip install playwright; it is in the test extra)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium); Playwright's own download is not used")
    return sync_playwright, chromium


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "audit.html"
    mp = pytest.MonkeyPatch()
    mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
    mp.setenv("BARSAFE_CACHE_DIR", str(out.parent / "cache"))
    try:
        assert main([*ARGS, "--format", "html", "-o", str(out)]) == 0
    finally:
        mp.undo()
    return out


def column(page, table: str, header: str) -> list[str]:
    return page.eval_on_selector(
        f"#{table}",
        """(t, header) => { const i = [...t.tHead.rows[0].cells].findIndex(c => c.textContent === header);
             return [...t.tBodies[0].rows].filter(r => !r.hidden).map(r => r.cells[i].textContent); }""",
        header)


def test_in_chromium_summary_legend_sort_filter_drill_down_and_no_console_errors(report):
    sync_playwright, chromium = browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            console = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())

            # What was audited, the summary and the legend open the page.
            assert "2025-12-04 00:00:00 UTC" in page.inner_text("#audited")
            summary = page.locator("#summary li:visible")
            assert summary.count() == 8  # the seven default strategies and barsafe, at 64K
            assert re.fullmatch(r"qemu-rfc breaks [1-9]\d* of \d+ devices that need relocation; .*",
                                summary.nth(0).inner_text())
            assert summary.nth(7).inner_text().startswith("barsafe breaks none of the")
            highlighted = page.eval_on_selector("#summary li.barsafe:visible", "e => getComputedStyle(e).backgroundColor")
            plain = page.eval_on_selector("#summary li.strategy", "e => getComputedStyle(e).backgroundColor")
            assert highlighted != plain
            assert page.locator("#legend dt").all_inner_texts() == ["need", "safe", "warn", "forbid", "refused",
                                                                   "no_pick"]
            assert page.locator("#legend dd:visible").count() == 6

            # barsafe's row is highlighted in the strategies table.
            row = page.locator("#strategies-table tr.barsafe:visible")
            assert row.count() == 1 and row.evaluate("e => getComputedStyle(e.cells[0]).fontWeight") == "700"

            # Sorting: a header click orders the column, a second click reverses it.
            before = column(page, "strategies-table", "forbid")
            page.click("#strategies-table th:text-is('forbid')")
            up = column(page, "strategies-table", "forbid")
            assert up == sorted(up, key=int) and up != before
            page.click("#strategies-table th:text-is('forbid')")
            assert column(page, "strategies-table", "forbid") == sorted(up, key=int, reverse=True)
            assert page.get_attribute("#strategies-table th:text-is('forbid')", "aria-sort") == "descending"
            page.click("#hosts-table th:text-is('driver')")
            drivers = column(page, "hosts-table", "driver")
            assert drivers == sorted(drivers, key=str.lower)

            # Filtering: typing hides the rows that do not match; clearing brings them back.
            rows = page.locator("#hosts-table tbody tr:visible").count()
            assert rows == 52  # every device at the page size shown
            page.fill("input[data-for=hosts-table]", "r8169 64K")
            hosts = page.locator("#hosts-table tbody tr:visible")
            assert 0 < hosts.count() < rows and all("r8169" in t for t in hosts.all_inner_texts())
            assert page.inner_text("[data-count=hosts-table]") == f"{hosts.count()} of {rows} rows"
            page.fill("input[data-for=hosts-table]", "")
            assert page.locator("#hosts-table tbody tr:visible").count() == rows

            # Drill-down: a device opens on its candidate table and reasons.
            page.fill("input[data-for=hosts-table]", "mpt3sas")
            button = page.locator("#hosts-table tbody tr:visible button.kind").first
            kind = button.get_attribute("data-kind")
            candidates = page.locator(f"#kind-{kind} table.candidates:visible")
            assert candidates.count() == 0
            button.click()
            assert candidates.count() == 1  # the 64K one: the details follow the page size
            text = candidates.inner_text()
            assert "mpt3sas/registers-are-first-memory-bar (forbid)" in text and "QEMU: Invalid MSI-X" in text
            assert page.locator(f"#kind-{kind} tr.barsafe:visible").inner_text().startswith("bar5")

            # The page-size selector narrows every view.
            page.fill("input[data-for=hosts-table]", "")
            page.select_option("#page", "4K")
            assert page.locator("#summary li:visible").count() == 8
            assert page.inner_text("#summary .summary:visible").startswith("4K pages:")
            page.select_option("#page", "all")
            assert page.locator("#hosts-table tbody tr:visible").count() == 3 * rows

            assert requests == [report.as_uri()]  # nothing fetched but the page itself
            assert console == []
        finally:
            browser.close()


def screenshots(folder: Path) -> list[Path]:
    """The README's pictures of the shipped corpus's report: its opening (what was audited, the
    summary, the legend), the host view filtered to the SAS controllers, and one opened device."""
    import os
    import tempfile
    from playwright.sync_api import sync_playwright
    os.environ.setdefault("SOURCE_DATE_EPOCH", EPOCH)
    shots = [folder.resolve() / f"audit-report{part}.png" for part in ("", "-hosts", "-device")]
    os.chdir(ROOT)  # inputs named as the README's command names them
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.html"
        assert main(["audit", "corpus/devices", *ARGS[2:], "--format", "html", "-o", str(out)]) == 0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"))
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            page.goto(out.as_uri())
            page.screenshot(path=shots[0])
            page.fill("input[data-for=hosts-table]", "sas")
            page.evaluate("document.getElementById('hosts').scrollIntoView()")
            page.screenshot(path=shots[1])
            page.locator("#hosts-table tbody tr:visible button.kind").nth(3).click()
            page.screenshot(path=shots[2])
            browser.close()
    return shots


if __name__ == "__main__":
    print(*screenshots(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"), sep="\n")
