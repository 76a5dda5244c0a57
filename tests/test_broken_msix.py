"""A broken MSI-X capability is diagnosed, never answered with a relocation target.

The table's BIR naming a slot the device does not implement, an upper half, a
reserved BIR (6, 7) or an I/O BAR, or a table running past its BAR, leaves the
host unable to use the table (Linux msix_map_region / msix_capability_init), so
`which` recommends nothing and exits 1.  A misplaced PBA is diagnosed too, but
the host never reads the PBA and QEMU accepts it once relocated, so `which`
still answers.  A BAR of unknown size is reported as unchecked.
"""

import json

import pytest

from engine import cli
from engine.audit import Audit
from engine.model import Bar, BarKind, Device, Msix, Platform
from engine.relocate import MSG_MSIX_INIT, MSG_PBA_OUTSIDE, diagnose_msix, native_outcome, relocate
from engine.report import config, jsonout, text
from engine.score import answer, judge

K = 1024
X86 = Platform(4 * K)
BAR0_64 = Bar(0, BarKind.MEM64, 16 * K)


pytestmark = pytest.mark.usefixtures("private_cache")



def dev(msix: Msix, bars=(BAR0_64,), vendor=0x1234, device=0x5678) -> Device:
    return Device("0000:01:00.0", vendor=vendor, device=device, bars=bars, msix=msix)


# Each broken table: (device, kind, words the diagnosis must use about the host).
BROKEN_TABLES = {
    "unimplemented slot": (dev(Msix(8, 2, 0x0, 0, 0x3000)), "no-bar", "returns NULL"),
    "upper half of a 64-bit BAR": (dev(Msix(8, 1, 0x0, 0, 0x3000)), "upper-half", "pci_read_bases"),
    "BIR 6": (dev(Msix(8, 6, 0x0, 0, 0x3000)), "reserved-bir", "the expansion ROM"),
    "BIR 7": (dev(Msix(8, 7, 0x0, 0, 0x3000)), "reserved-bir", "SR-IOV VF BAR"),
    "I/O BAR": (dev(Msix(8, 2, 0x0, 0, 0x3000), bars=(BAR0_64, Bar(2, BarKind.IO, 256))), "io-bar",
                "I/O port number"),
    "past the end of its BAR": (dev(Msix(128, 0, 0x3C00, 0, 0x2000)), "past-end", "without checking the BAR's length"),
}


@pytest.mark.parametrize("case", BROKEN_TABLES)
def test_a_broken_table_is_diagnosed_as_broken(case):
    device, kind, host = BROKEN_TABLES[case]
    d = diagnose_msix(device)
    assert d.broken
    (problem,) = [p for p in d.problems if p.structure == "table"]
    assert problem.kind == kind and problem.blocking
    assert host in problem.detail and "msix_map_region" in problem.detail


@pytest.mark.parametrize("case", BROKEN_TABLES)
def test_which_never_recommends_a_target_for_a_broken_table(lib, case):
    device, _, _ = BROKEN_TABLES[case]
    a = answer(device, X86, lib)
    assert a.broken and a.recommendation is None and a.pages is None
    assert "MSI-X capability is broken" in a.why
    # Every layout QEMU would accept is still forbidden: the host cannot use the table.
    accepted = [r for r in a.candidates if r.judgement.outcome.ok]
    assert all(r.verdict == "forbid" for r in accepted)
    assert all(any(v.rule_id == "msix/broken-capability" for v in r.judgement.violations) for r in accepted)


def test_the_table_may_end_exactly_at_the_end_of_its_bar():
    exact = dev(Msix(64, 0, 16 * K - 64 * 16, 0, 0x2000))  # 1K table in the last 1K of a 16K BAR
    assert diagnose_msix(exact).problems == ()
    assert diagnose_msix(dev(Msix(64, 0, 16 * K - 64 * 16 + 8, 0, 0x2000))).broken


def test_cli_which_exits_1_with_the_diagnosis_and_json_carries_it(capsys, monkeypatch):
    device, _, _ = BROKEN_TABLES["unimplemented slot"]
    monkeypatch.setattr(cli, "read_input", lambda args: [device])
    assert cli.main(["which", "-", "--page-size", "4K"]) == 1
    out = capsys.readouterr().out
    assert "recommendation: none: the MSI-X capability is broken" in out
    assert "MSI-X capability broken: MSI-X table BIR 2 names BAR2" in out
    assert "no relocation needed" not in out and "-device" not in out
    assert cli.main(["which", "-", "--page-size", "4K", "--json"]) == 1
    (data,) = json.loads(capsys.readouterr().out)
    assert data["recommendation"] is None
    diag = data["msix_diagnosis"]
    assert diag["broken"] and diag["problems"][0]["kind"] == "no-bar" and diag["problems"][0]["blocking"]
    assert cli.main(["which", "-", "--page-size", "4K", "--emit", "qemu"]) == 1
    assert capsys.readouterr().out == (
        "# 0000:01:00.0: no target can help (the MSI-X capability is broken (MSI-X table BIR 2 names BAR2,"
        " which the device does not implement): the host cannot use the device's MSI-X table, so no"
        " x-msix-relocation target can help)\n")


def test_show_says_broken_not_no_relocation_needed():
    device, _, _ = BROKEN_TABLES["past the end of its BAR"]
    out = text.show(device)
    assert "MSI-X capability broken: MSI-X table at BAR0 0x3c00-0x43ff runs past the end of the 16K BAR" in out
    assert "no relocation needed" not in out and "no relocation verdict: the MSI-X capability is broken" in out
    shown = jsonout.device(device)["msix_diagnosis"]
    assert shown["broken"] and shown["problems"][0]["kind"] == "past-end"


# --- the PBA: diagnosed, but relocation is QEMU's own answer to it ------------------------------

def test_pba_in_an_unimplemented_slot_is_misplaced_not_broken(lib):
    device = dev(Msix(8, 0, 0x2000, 4, 0x0))
    d = diagnose_msix(device)
    (problem,) = d.problems
    assert (problem.structure, problem.kind, problem.blocking, d.broken) == ("PBA", "no-bar", False, False)
    assert native_outcome(device, X86).refused == MSG_PBA_OUTSIDE
    assert relocate(device, X86, 5).ok  # QEMU re-lays table and PBA
    a = answer(device, X86, lib)
    assert a.needs_relocation and a.recommendation is not None and a.recommendation.target is not None
    out = text.which(a)
    assert "MSI-X PBA misplaced: MSI-X PBA BIR 4 names BAR4" in out
    shown = text.show(device)
    assert "no relocation needed" not in shown
    assert f"4K pages: relocation needed: with relocation off QEMU refuses: {MSG_PBA_OUTSIDE}" in shown


def test_pba_partly_past_its_bar_is_refused_by_msix_init_with_relocation_off():
    device = dev(Msix(128, 0, 0x0, 0, 16 * K - 8))  # 16 bytes of PBA from 8 bytes before the end
    (problem,) = diagnose_msix(device).problems
    assert problem.kind == "past-end" and not problem.blocking and MSG_MSIX_INIT in problem.detail
    assert native_outcome(device, X86).refused == MSG_MSIX_INIT


def test_pba_in_the_upper_half_or_an_io_bar_is_misplaced():
    assert diagnose_msix(dev(Msix(8, 0, 0x0, 1, 0x0))).problems[0].kind == "upper-half"
    io = dev(Msix(8, 0, 0x0, 2, 0x0), bars=(BAR0_64, Bar(2, BarKind.IO, 256)))
    (problem,) = diagnose_msix(io).problems
    assert problem.kind == "io-bar" and not problem.blocking


def test_a_reserved_pba_bir_is_broken_because_qemu_reads_past_its_bars(lib):
    device = dev(Msix(8, 0, 0x2000, 7, 0x0))
    (problem,) = diagnose_msix(device).problems
    assert problem.kind == "reserved-bir" and problem.blocking and "vdev->bars[7]" in problem.detail
    assert answer(device, X86, lib).recommendation is None
    assert "BIR 7 is reserved" in relocate(device, X86, 5).refused


def test_qemu_pba_quirk_devices_are_diagnosed_and_said_to_be_corrected(lib):
    chelsio = dev(Msix(4, 0, 0x0, 0, 0x8000), bars=(Bar(0, BarKind.MEM64, 8 * K),), vendor=0x1425, device=0x5803)
    (problem,) = diagnose_msix(chelsio).problems
    assert not problem.blocking and "QEMU also corrects this device's PBA itself (Chelsio T5 VF" in problem.detail
    assert answer(chelsio, X86, lib).candidates[0].judgement.outcome.ok


# --- sizes the input does not give ---------------------------------------------------------------

def test_unknown_bar_size_is_said_not_guessed(lib):
    device = dev(Msix(8, 2, 0x1000, 2, 0x2000), bars=(BAR0_64, Bar(2, BarKind.MEM32, 0)))
    d = diagnose_msix(device)
    assert d.problems == () and not d.broken
    assert len(d.unchecked) == 2 and "BAR2's size is not in the input" in d.unchecked[0]
    assert "MSI-X not checked: BAR2's size is not in the input" in text.show(device)
    assert jsonout.device(device)["msix_diagnosis"]["unchecked"] == list(d.unchecked)


def test_a_slot_problem_is_found_even_when_the_size_is_unknown():
    device = dev(Msix(8, 3, 0x0, 2, 0x0), bars=(BAR0_64, Bar(2, BarKind.MEM32, 0)))
    d = diagnose_msix(device)
    assert d.broken and [p.kind for p in d.problems] == ["no-bar"] and len(d.unchecked) == 1


# --- everywhere else ------------------------------------------------------------------------------

def test_judge_fails_every_accepted_layout_of_a_broken_device(lib):
    device, _, _ = BROKEN_TABLES["unimplemented slot"]
    j = judge(device, X86, "bar5", [lib.rulesets["generic"]])
    assert j.outcome.ok and j.verdict == "forbid"
    assert j.violations[0].rule_id == "msix/broken-capability"


def test_audit_keeps_broken_capabilities_out_of_the_verdicts(lib):
    device, _, _ = BROKEN_TABLES["unimplemented slot"]
    audit = Audit(lib, [4 * K, 64 * K], ["qemu-rfc", "off"])
    audit.add(device, "host-a")
    result = audit.result()
    assert result["broken_capabilities"] == [{"input": "host-a", "slot": "0000:01:00.0", "vendor": 0x1234, "device": 0x5678,
                                              "problems": ["MSI-X table BIR 2 names BAR2, which the device"
                                                           " does not implement"]}]
    cell = result["strategies"]["qemu-rfc"]["4K"]
    assert cell["devices"] == 1 and cell["needs_relocation"] == 0 and cell["forbid"] == 0
    from engine.report import audit as audit_report
    assert "1 devices have a broken MSI-X capability" in audit_report.table(result)


def test_emit_for_a_mix_of_broken_and_good_devices(lib):
    good = Device("0000:02:00.0", vendor=0x1234, device=0x5678, bars=(BAR0_64,), msix=Msix(8, 0, 0x2000, 0, 0x3000))
    broken, _, _ = BROKEN_TABLES["BIR 7"]
    out = config.emit("qemu", [answer(broken, Platform(64 * K), lib), answer(good, Platform(64 * K), lib)])
    lines = out.split("\n")
    assert lines[0].startswith("# 0000:01:00.0: no target can help (the MSI-X capability is broken")
    assert lines[1].startswith("-device vfio-pci,host=0000:02:00.0,x-msix-relocation=bar")


def test_a_yaml_record_with_a_broken_table_is_never_answered_with_a_target(tmp_path, capsys):
    record = tmp_path / "broken.yaml"
    record.write_text("barsafe: 1\nslot: 0000:01:00.0\nid: 1234:5678\n"
                      "bars:\n  - {index: 0, kind: mem64, size: 16K}\n"
                      "msix:\n  entries: 8\n  table: {bar: 2, offset: '0x0'}\n  pba: {bar: 0, offset: '0x3000'}\n")
    code = cli.main(["which", str(record), "--page-size", "4K"])
    out, err = capsys.readouterr()
    # A reader may reject the capability (exit 2) or barsafe diagnoses it (exit 1); never a target.
    assert code in (1, 2) and "-device" not in out
    if code == 1:
        assert "MSI-X capability is broken" in out


def test_simulate_marks_every_accepted_layout_of_a_broken_device(capsys, monkeypatch):
    device, _, _ = BROKEN_TABLES["upper half of a 64-bit BAR"]
    monkeypatch.setattr(cli, "read_input", lambda args: [device])
    assert cli.main(["simulate", "-", "--page-size", "4K", "--all"]) == 0
    blocks = capsys.readouterr().out.split("\n== ")[1:]
    accepted = [b for b in blocks if "\trefused:" not in b]
    assert accepted and all("FINDING (forbid, msix/broken-capability): MSI-X table BIR 1 names the upper half"
                            in b for b in accepted)
    assert text.page_verdict(device, X86).startswith("no relocation verdict: the MSI-X capability is broken")
