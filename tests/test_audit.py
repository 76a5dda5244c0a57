"""`barsafe audit`: counts per strategy and page size, what breaks, and every output format."""

import json
from pathlib import Path

import pytest

from engine.audit import Audit
from engine.cli import main
from engine.model import Bar, BarKind, Device
from engine.rules import library
from engine.sources import load

ROOT = Path(__file__).resolve().parents[1]
SEED = str(ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml")
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"
K = 1024


pytestmark = pytest.mark.usefixtures("private_cache")


def run_audit(devices, pages=(64 * K,), io_space=False, names=("qemu-rfc", "reverse", "off"), name="host-a"):
    audit = Audit(library.load(use_cache=False), list(pages), list(names), io_space=io_space)
    for d in devices:
        audit.add(d, name)
    return audit.result()


def test_seed_ground_truth_in_the_audit():
    """SAS3008 + mpt3sas, 64K, no I/O space: qemu-rfc (BAR0) breaks it, reverse and barsafe do not."""
    result = run_audit(load(SEED))
    cell = result["strategies"]["qemu-rfc"]["64K"]
    assert (cell["devices"], cell["needs_relocation"], cell["forbid"]) == (1, 1, 1)
    assert cell["broken"] == [{"input": "host-a", "slot": "0001:03:00.0", "vendor": 0x1000, "device": 0x97,
                               "driver": "mpt3sas", "target": 0,
                               "rule": "mpt3sas/registers-are-first-memory-bar", "barsafe_pick": "bar5"}]
    assert result["strategies"]["reverse"]["64K"]["safe"] == 1
    assert result["strategies"]["barsafe"]["64K"]["safe"] == 1
    assert result["strategies"]["off"]["64K"]["no_pick"] == 1


def test_devices_that_need_no_relocation_are_counted_but_not_judged():
    result = run_audit(load(SEED), pages=(4 * K,), io_space=True)
    cell = result["strategies"]["qemu-rfc"]["4K"]
    assert cell["devices"] == 1 and cell["needs_relocation"] == 0 and cell["forbid"] == 0


def test_devices_without_msix_are_ignored():
    plain = Device("00:02.0", bars=(Bar(0, BarKind.MEM32, 16 * K),))
    assert run_audit([plain])["strategies"]["reverse"]["64K"]["devices"] == 0


def test_json_shape_is_the_documented_one(capsys):
    assert main(["audit", SEED, "--page-size", "4K,64K", "--no-io-space", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["page_sizes"] == ["4K", "64K"]
    assert list(data["strategies"]) == ["qemu-rfc", "reverse", "extend-only", "cloud-hypervisor",
                                        "pve-tools", "qemu", "off", "barsafe"]
    cell = data["strategies"]["qemu"]["64K"]
    assert set(cell) == {"devices", "needs_relocation", "safe", "warn", "forbid", "refused", "no_pick",
                         "broken"}
    assert cell["refused"] == 1


def test_html_report_is_one_self_contained_file(tmp_path):
    out = tmp_path / "audit.html"
    assert main(["audit", SEED, "--no-io-space", "--format", "html", "-o", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<table" in page
    assert "src=" not in page and "href=" not in page  # nothing fetched from elsewhere
    assert "mpt3sas/registers-are-first-memory-bar" in page


def test_markdown_and_table_formats(capsys):
    main(["audit", SEED, "--no-io-space", "--format", "markdown"])
    md = capsys.readouterr().out
    assert md.startswith("| strategy | page |") and "breaks mpt3sas/registers-are-first-memory-bar" in md
    main(["audit", SEED, "--no-io-space"])
    assert "qemu-rfc" in capsys.readouterr().out


def test_output_is_deterministic(capsys):
    main(["audit", SEED, str(ROOT / "corpus/devices"), "--format", "json"])
    first = capsys.readouterr().out
    main(["audit", SEED, str(ROOT / "corpus/devices"), "--format", "json"])
    assert capsys.readouterr().out == first


def test_unknown_strategy_and_bad_page_size_are_usage_errors(capsys):
    assert main(["audit", SEED, "--strategies", "fastest"]) == 2
    assert main(["audit", SEED, "--page-size", "4K,3K"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_bad_input_is_reported_and_the_rest_still_audited(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not lspci\n")
    code = main(["audit", str(bad), SEED, "--no-io-space", "--format", "json"])
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert code == 2 and data["inputs_failed"] == [str(bad)]
    assert data["strategies"]["qemu-rfc"]["64K"]["devices"] == 1
    assert f"{bad}:1: unknown input format" in captured.err


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/corpus/lspci absent")
def test_whole_shared_corpus_audits(capsys):
    assert main(["audit", str(SHARED), "--no-io-space", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"] == 23 and not data["inputs_failed"]
    assert data["strategies"]["barsafe"]["64K"]["forbid"] == 0  # barsafe never recommends a forbid


def test_identical_devices_are_judged_once_and_counted_each(monkeypatch):
    """A fleet: the same device on many hosts costs one judgement per page size, and every copy counts."""
    import dataclasses

    import engine.audit as audit_module
    calls = []
    real = audit_module.answer
    monkeypatch.setattr(audit_module, "answer", lambda *a: calls.append(a[0].slot) or real(*a))
    seed = load(SEED)[0]
    fleet = [dataclasses.replace(seed, slot=f"0001:{bus:02x}:00.0") for bus in range(1, 51)]
    other = dataclasses.replace(seed, revision=3)  # a different device: judged on its own
    result = run_audit([*fleet, other], pages=(4 * K, 64 * K))
    assert len(calls) == 4  # two distinct devices x two page sizes
    one = run_audit([seed], pages=(4 * K, 64 * K))
    for name, pages in result["strategies"].items():
        for page, cell in pages.items():
            single = one["strategies"][name][page]
            assert cell["devices"] == 51 * single["devices"]
            assert cell["forbid"] == 51 * single["forbid"]
            assert len(cell["broken"]) == 51 * len(single["broken"])
    slots = [b["slot"] for b in result["strategies"]["qemu-rfc"]["64K"]["broken"]]
    assert sorted(slots) == sorted([d.slot for d in fleet] + [other.slot])
