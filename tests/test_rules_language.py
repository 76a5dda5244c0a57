"""Language extensions rule authors asked for (`TODO(language)` in rules/): registers beside the
MSI-X structures, a class with its programming interface, an ID with a class, ID ranges.

Each: parse, fmt round trip, check errors, and what the engine does with it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from engine.cli import main
from engine.model import Bar, BarKind, Device, Msix, Platform
from engine.relocate import RegisterSpan, analyse_pages
from engine.rules import ast, library
from engine.rules.check import check
from engine.rules.fmt import fmt
from engine.rules.parse import parse
from engine.score import answer
from engine.sources import load

ROOT = Path(__file__).resolve().parents[1]
AX210 = ROOT / "corpus/devices/linuxhw/8086-2725-iwlwifi-7f733e.yaml"
KiB = 1024
X86 = Platform(4 * KiB)


pytestmark = pytest.mark.usefixtures("private_cache")



def check_messages(text: str, stem: str = "t") -> list[tuple[int, str]]:
    return [(e.location.line, e.message) for e in check(parse(text, f"{stem}.rules"), stem)]


def round_trips(text: str) -> str:
    f = parse(text, "t.rules")
    out = fmt(f)
    again = parse(out, "t.rules")
    assert again.statements == f.statements
    assert fmt(again) == out
    return out


SOURCE = 'source "d.c:1" function f kernel "6.12"\n'


def make_library(tmp_path: Path, files: dict[str, str]) -> library.Library:
    for name, body in files.items():
        (tmp_path / f"{name}.rules").write_text(f'ruleset {name}\n{SOURCE}{body}')
    return library.load([tmp_path], use_cache=False)


# --- registers beside the MSI-X structures ---------------------------------------------------

CITE = 'cite "drivers/net/wireless/intel/iwlwifi/iwl-csr.h:587"'


def test_registers_parse_to_their_node_and_print_canonically():
    f = parse(f'ruleset t\nregisters  bar0 0x2800 .. 0x28FF "interrupt-cause" " registers" {CITE}\n',
              "t.rules")
    (r,) = f.registers
    assert (r.bar, r.start, r.end, r.what.value) == (0, 0x2800, 0x28FF, "interrupt-cause registers")
    assert r.cite.value.endswith("iwl-csr.h:587") and r.span.line == 2
    assert round_trips(fmt(f)) == (
        'ruleset t\n\nregisters bar0 0x2800..0x28ff "interrupt-cause"\n    " registers"\n'
        f"    {CITE}\n")


def test_registers_keep_a_comment_and_round_trip():
    out = round_trips(f'ruleset t\n# why\nregisters bar2 0x0..0x7 "doorbell"  # note\n    {CITE}\n')
    assert "# why" in out and "# note" in out


@pytest.mark.parametrize("line, message", [
    ('registers bar0 0x28ff..0x2800 "x" ' + CITE, "empty range 0x28ff..0x2800: write the lower offset first"),
    ('registers bar0 0x2800..0x28ff "  " ' + CITE,
     'registers need a description: say what they are ("interrupt-cause registers")'),
    ('registers bar0 0x2800..0x28ff "x"',
     "registers need 'cite \"FILE:LINE\"': where the driver defines them (e.g. the header's #define)"),
    ('registers bar0 0x2800..0x28ff "x" cite "iwl-csr.h"', "cite 'iwl-csr.h' must be 'path/file.h:LINE'"),
    ('registers bar0 0x2800..0x28ff "' + "x" * 201 + '" ' + CITE,
     "registers text is 201 characters long; at most 200"),
])
def test_check_rejects_bad_registers(line, message):
    assert check_messages(f"ruleset t\n{line}\n") == [(2, message)]


def test_check_rejects_the_same_registers_twice():
    text = f'ruleset t\nregisters bar0 0x10..0x1f "a" {CITE}\nregisters bar0 0x10..0x1f "b" {CITE}\n'
    assert check_messages(text) == [(3, "registers bar0 0x10..0x1f already stated at line 2")]


@pytest.mark.parametrize("word", ["registers", "cite"])
def test_the_new_keywords_are_reserved_role_names(word):
    assert check_messages(f"ruleset t\nrole {word} = bar0\n") == [
        (2, f"'{word}' is a reserved word; choose another role name")]


def test_a_registers_line_starts_a_statement():
    f = parse(f'ruleset t\nrole regs = bar0\nregisters bar0 0x0..0xf "x"\n  {CITE}\n'
              'rule r:\n    require regs stays\n    else warn "m"\n', "t.rules")
    assert [type(s).__name__ for s in f.statements] == ["Ruleset", "Role", "Registers", "Rule"]


def test_syntax_error_in_registers_is_reported_at_the_token():
    with pytest.raises(Exception) as info:
        parse('ruleset t\nregisters bar6 0x0..0xf "x"\n', "t.rules")
    (error,) = info.value.errors
    assert (error.location.line, error.location.column) == (2, 11)


IWL = Device("03:00.0", vendor=0x8086, device=0x2725, bars=(Bar(0, BarKind.MEM64, 16 * KiB),),
             msix=Msix(16, 0, 0x2000, 0, 0x3000))
CAUSES = RegisterSpan(0, 0x2800, 0x2900, "interrupt-cause registers", "iwlwifi",
                      "drivers/net/wireless/intel/iwlwifi/iwl-csr.h:587")


def test_page_analysis_counts_stated_registers_inside_the_msix_4k_range():
    plain = analyse_pages(IWL.bars, IWL.msix, X86)
    assert not plain.needs_relocation and plain.register_bytes == 0
    pages = analyse_pages(IWL.bars, IWL.msix, X86, registers=(CAUSES,))
    assert (pages.trap_start, pages.trap_end, pages.shared_bytes) == (0x2000, 0x3000, 0)
    assert pages.register_bytes == 0x100 and pages.needs_relocation
    assert pages.registers == ((CAUSES, "table"),)
    assert pages.reason == (
        "with 4K pages QEMU traps BAR0 0x2000-0x2fff for the MSI-X table; iwlwifi keeps"
        " interrupt-cause registers at BAR0 0x2800-0x28ff, in the 4K range of the MSI-X table"
        " (iwl-csr.h:587), where PCIe allows only MSI-X structures, so accesses to them trap")


def test_page_analysis_ignores_stated_registers_it_does_not_trap():
    other_bar = RegisterSpan(2, 0x2800, 0x2900)
    untrapped = RegisterSpan(0, 0x3800, 0x3900)  # the PBA's 4K range, not in the table's page
    outside = RegisterSpan(0, 0x0, 0x100)
    pages = analyse_pages(IWL.bars, IWL.msix, X86, registers=(other_bar, untrapped, outside))
    assert not pages.needs_relocation and pages.registers == ()


def test_page_analysis_with_large_pages_names_registers_beside_the_shared_bytes():
    pages = analyse_pages(IWL.bars, IWL.msix, Platform(64 * KiB), registers=(CAUSES,))
    assert pages.shared_bytes == 8 * KiB and pages.register_bytes == 0x100
    assert pages.reason.endswith("in the 4K range of the MSI-X table (iwl-csr.h:587), accesses to"
                                 " them trap as well")


def test_registers_sharing_the_table_and_pba_range_say_so():
    """The Coral Edge TPU: table 0x46800 and PBA 0x46068 in one 4K range of BAR2."""
    coral = Device(None, bars=(Bar(0, BarKind.MEM64, 16 * KiB), Bar(2, BarKind.MEM64, 1024 * KiB)),
                   msix=Msix(128, 2, 0x46800, 2, 0x46068))
    regs = RegisterSpan(2, 0x46000, 0x46060, "interrupt registers")
    pages = analyse_pages(coral.bars, coral.msix, X86, registers=(regs, regs))
    assert pages.register_bytes == 0x60
    assert pages.registers[0][1] == "table and PBA"
    assert "the device keeps interrupt registers at BAR2 0x46000-0x4605f, in the 4K range of the" \
           " MSI-X table and PBA, where" in pages.reason


def test_which_says_relocation_is_needed_for_iwlwifi_at_4k(lib):
    a = answer(load(str(AX210))[0], X86, lib)
    assert a.rulesets == ("iwlwifi",) and a.needs_relocation
    assert "iwlwifi keeps MSI-X interrupt-cause, mask and IVAR registers at BAR0 0x2800-0x28ff," \
           " in the 4K range of the MSI-X table (iwl-csr.h:587)" in a.why
    assert a.recommendation.strategy != "off" and a.recommendation.target is not None
    assert a.recommendation.verdict == "safe" and a.fallback is None


def test_which_text_for_iwlwifi_at_4k(capsys):
    assert main(["which", str(AX210), "--page-size", "4K"]) == 0
    out = capsys.readouterr().out
    assert "  relocation needed: with 4K pages QEMU traps BAR0 0x2000-0x2fff for the MSI-X table;" \
           " iwlwifi keeps MSI-X interrupt-cause" in out
    assert "recommendation: bar5 (safe, +4K MMIO)" in out


def test_show_and_simulate_agree_with_which_on_stated_registers(capsys):
    """`show` and `simulate` judge the trapped pages with the registers the driver rules state,
    as `which` does: no "no relocation needed" for the AX210 at 4K."""
    assert main(["show", str(AX210)]) == 0
    out = capsys.readouterr().out
    assert "4K pages: relocation needed: with 4K pages QEMU traps BAR0 0x2000-0x2fff" in out
    assert "no relocation needed" not in out
    assert main(["simulate", str(AX210), "--page-size", "4K", "--target", "bar5"]) == 0
    out = capsys.readouterr().out
    assert "host pages 4K, with I/O port space: relocation needed:" in out
    assert "iwlwifi keeps MSI-X interrupt-cause" in out


def test_a_ruleset_collects_registers_from_its_includes(tmp_path):
    lib = make_library(tmp_path, {
        "base": f'registers bar0 0x2800..0x28ff "causes" {CITE}\n',
        "drv": 'include "base.rules"\nmatch id 8086:2725\n'
               f'registers bar0 0x2800..0x28ff "causes" {CITE}\n',
    })
    regs = lib.rulesets["drv"].registers
    assert [(r.owner, r.start, r.end, r.what) for r in regs] == [
        ("drv", 0x2800, 0x2900, "causes"), ("base", 0x2800, 0x2900, "causes")]
    assert lib.rulesets["drv"].parts[0].registers[0].cite.endswith("iwl-csr.h:587")


def test_verify_citations_checks_register_cites(tmp_path):
    spec = importlib.util.spec_from_file_location("verify_citations", ROOT / "tools/verify_citations.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    (tmp_path / "h.h").write_text("/* x */\n#define REG 0x2800\n\n")
    assert tool.check_cite(tmp_path, "h.h:2") is None
    assert "comment" in tool.check_cite(tmp_path, "h.h:1")
    assert "blank" in tool.check_cite(tmp_path, "h.h:3")
    assert "lines" in tool.check_cite(tmp_path, "h.h:9")
    assert "no such file" in tool.check_cite(tmp_path, "g.h:1")


# --- a class with its programming interface ----------------------------------------------------

XHCI = Device("05:00.0", vendor=0x1022, device=0x43EE, class_code=0x0C03, prog_if=0x30,
              bars=(Bar(0, BarKind.MEM64, 32 * KiB),), msix=Msix(8, 0, 0x2000, 0, 0x3000))
EHCI = dataclasses.replace(XHCI, prog_if=0x20)
UNKNOWN = dataclasses.replace(XHCI, prog_if=None)


def test_six_digit_class_parses_with_its_prog_if_and_prints_six_digits():
    f = parse("ruleset t\nmatch class 0x0C0330\nmatch class 0x030000 mask 0xFF0000\nmatch class 0x0c03\n",
              "t.rules")
    assert f.matches == [ast.MatchClass(0x0C0330, None, with_prog_if=True),
                         ast.MatchClass(0x030000, 0xFF0000, with_prog_if=True), ast.MatchClass(0x0C03)]
    assert f.matches[2] != ast.MatchClass(0x0C03, with_prog_if=True)
    assert round_trips(fmt(f)).splitlines()[2:] == [
        "match class 0x0c0330", "match class 0x030000 mask 0xff0000", "match class 0x0c03"]


def test_a_class_with_leading_zeros_keeps_its_width():
    assert round_trips("ruleset t\nmatch class 0x000001\nmatch class 0x0001\n").splitlines()[2:] == [
        "match class 0x000001", "match class 0x0001"]


@pytest.mark.parametrize("line, message", [
    ("match class 0x0c0330 mask 0x1000000",
     "a 6-digit class (with the programming interface) takes a mask of at most 24 bits (e.g. 0xffff00)"),
    ("match class 0x0c033", "class 0xc033 has 5 hex digits: write 4, base class and subclass"
                            " (e.g. 0x0107), or 6 with the programming interface (e.g. 0x0c0330)"),
    ("match class 0x00000c03", "class 0xc03 has 8 hex digits: write 4, base class and subclass"
                               " (e.g. 0x0107), or 6 with the programming interface (e.g. 0x0c0330)"),
    ("match class 0x0c03 mask 0xffff00", "a 4-digit class (base class and subclass) takes a mask of"
                                         " at most 16 bits (e.g. 0xff00); a 6-digit class compares"
                                         " the programming interface too"),
])
def test_check_rejects_bad_class_widths(line, message):
    text = f'ruleset t\nsource "d.c:1" function f kernel "6.12"\n{line}\n'
    assert check_messages(text) == [(3, message)]


@pytest.mark.parametrize("line, device, hit", [
    ("match class 0x0c0330", XHCI, "class 0c0330 (line 3)"),
    ("match class 0x0c0330", EHCI, None),
    ("match class 0x0c0330", UNKNOWN, None),  # prog-if not in the input: never a 6-digit match
    ("match class 0x0c0300 mask 0xffff00", UNKNOWN, "class 0c03 (line 3)"),  # prog-if masked out
    ("match class 0x0c0300 mask 0xffff00", EHCI, "class 0c0320 (line 3)"),
    ("match class 0x0c0320 mask 0xfffff0", EHCI, "class 0c0320 (line 3)"),
    ("match class 0x0c03", UNKNOWN, "class 0c03 (line 3)"),  # 4 digits: as before
    ("match class 0x0c03", EHCI, "class 0c03 (line 3)"),
    ("match class 0x0c0330", dataclasses.replace(XHCI, class_code=None), None),
])
def test_six_digit_class_matches_only_a_known_prog_if(tmp_path, line, device, hit):
    lib = make_library(tmp_path, {"c": f"{line}\n"})
    found = lib.rulesets["c"].match(device)
    assert (found[1] if found else None) == hit


def test_matching_tells_devices_apart_by_prog_if(tmp_path):
    lib = make_library(tmp_path, {"x": "match class 0x0c0330\n", "e": "match class 0x0c0320\n"})
    assert [rs.name for rs, _ in lib.matching(XHCI)] == ["x"]
    assert [rs.name for rs, _ in lib.matching(EHCI)] == ["e"]  # not the cached answer for XHCI
    assert lib.matching(UNKNOWN) == []


def test_shipped_xhci_and_usb4_sets_match_by_their_prog_if(lib):
    nhi = load(str(ROOT / "corpus/devices/linuxhw/8086-1137-thunderbolt-361585.yaml"))[0]
    xhci = load(str(ROOT / "corpus/devices/linuxhw/1022-43ee-xhci_hcd-8f3806.yaml"))[0]
    assert (nhi.prog_if, xhci.prog_if) == (0x40, 0x30)
    assert [rs.name for rs, _ in lib.matching(nhi)] == ["thunderbolt"]
    assert [rs.name for rs, _ in lib.matching(xhci)] == ["xhci_hcd"]
    new_usb4 = dataclasses.replace(nhi, vendor=0x1234, device=0x0001, driver=None, modules=())
    assert [(rs.name, why) for rs, why in lib.matching(new_usb4)] == [
        ("thunderbolt", f"class 0c0340 (line {_line_of('thunderbolt', 'match class 0x0c0340')})")]
    ehci = dataclasses.replace(xhci, vendor=0x1234, device=0x0001, prog_if=0x20, driver=None,
                               modules=())
    assert [rs.name for rs, _ in lib.matching(ehci)] == []


def _line_of(ruleset: str, text: str) -> int:
    return (ROOT / "rules" / f"{ruleset}.rules").read_text().splitlines().index(text) + 1


LSPCI_HEAD = "00:14.0 USB controller [0c03]: Intel Corporation Device [8086:a36d] (rev 10){}\n"
LSPCI_BODY = ("\tRegion 0: Memory at a1220000 (64-bit, non-prefetchable) [size=64K]\n"
              "\tCapabilities: [70] MSI-X: Enable+ Count=8 Masked-\n"
              "\t\tVector table: BAR=0 offset=00002000\n\t\tPBA: BAR=0 offset=00003000\n")


@pytest.mark.parametrize("trailer, verbose, prog_if", [
    (" (prog-if 30 [XHCI])", "\tControl: I/O- Mem+ BusMaster+\n", 0x30),
    (" (prog-if 30 [XHCI])", "", 0x30),
    (" (prog-if 07)", "\tFlags: bus master, fast devsel, latency 0\n", 0x07),
    ("", "\tFlags: bus master, fast devsel, latency 0\n", 0x00),  # lspci -v omits 00 when unnamed
    ("", "\tControl: I/O- Mem+ BusMaster+\n", 0x00),  # so does -vv
    ("", "", None),  # no sign of a verbose listing: unknown
    ("", "\t\tControl: I/O- Mem+\n", None),  # a capability's line, not the device's
])
def test_lspci_reads_the_prog_if(trailer, verbose, prog_if):
    from engine.sources import lspci
    (d,) = lspci.parse(LSPCI_HEAD.format(trailer) + verbose + LSPCI_BODY)
    assert (d.class_code, d.prog_if, d.revision) == (0x0C03, prog_if, 0x10)


def test_lspci_without_a_class_code_infers_no_prog_if():
    from engine.sources import lspci
    text = "00:14.0 Intel Corporation Device (rev 10)\n\tFlags: bus master\n" + LSPCI_BODY
    (d,) = lspci.parse(text)
    assert d.class_code is None and d.prog_if is None


def test_records_keep_the_prog_if(tmp_path):
    from engine.errors import InputError
    from engine.sources import record
    for device in (XHCI, UNKNOWN, dataclasses.replace(XHCI, prog_if=0)):
        text = record.dump(device)
        assert ("prog_if:" in text) == (device.prog_if is not None)
        assert record.parse(text, "r.yaml") == [device]
    assert "prog_if: '30'\n" in record.dump(XHCI)
    with pytest.raises(InputError, match="prog_if must be 1 to 2 hex digits"):
        record.parse(record.dump(XHCI).replace("prog_if: '30'", "prog_if: '300'"), "r.yaml")


def test_device_refuses_a_prog_if_out_of_range():
    with pytest.raises(ValueError, match="prog_if '256' out of range 0..0xff"):
        dataclasses.replace(XHCI, prog_if=0x100)


# --- an ID with a class ------------------------------------------------------------------------

GPU = Device("01:00.0", vendor=0x10DE, device=0x2684, class_code=0x0300, prog_if=0x00,
             bars=(Bar(0, BarKind.MEM32, 16 * 1024 * KiB), Bar(1, BarKind.MEM64, 256 * 1024 * KiB)),
             msix=Msix(9, 0, 0xB90000, 0, 0xBA0000))
HDMI_AUDIO = dataclasses.replace(GPU, device=0x22BA, class_code=0x0403)


def test_match_id_with_a_class_parses_and_round_trips():
    f = parse("ruleset t\nmatch id 10DE:* class 0x0300 mask 0xFF00\n"
              "match id 8086:104f subsystem 8086:* class 0x020000 mask 0xffff00\n", "t.rules")
    assert f.matches == [
        ast.MatchId(0x10DE, None, class_value=0x0300, class_mask=0xFF00),
        ast.MatchId(0x8086, 0x104F, 0x8086, None, True, class_value=0x020000, class_mask=0xFFFF00,
                    class_with_prog_if=True)]
    assert f.matches[0] != ast.MatchId(0x10DE, None)
    assert round_trips(fmt(f)).splitlines()[2:] == [
        "match id 10de:* class 0x0300 mask 0xff00",
        "match id 8086:104f subsystem 8086:* class 0x020000 mask 0xffff00"]


@pytest.mark.parametrize("line, message", [
    ("match id 10de:* class 0x03000", "class 0x3000 has 5 hex digits: write 4, base class and subclass"
                                      " (e.g. 0x0107), or 6 with the programming interface (e.g. 0x0c0330)"),
    ("match id 10de:* class 0x0300 mask 0xff0000", "a 4-digit class (base class and subclass) takes a"
                                                  " mask of at most 16 bits (e.g. 0xff00); a 6-digit"
                                                  " class compares the programming interface too"),
])
def test_check_rejects_a_bad_class_in_a_match_id(line, message):
    assert check_messages(f"ruleset t\n{SOURCE}{line}\n") == [(3, message)]


def test_a_class_after_an_id_is_a_syntax_error_elsewhere():
    with pytest.raises(Exception) as info:
        parse('ruleset t\nrule r: require device id 10de:* class 0x0300 else warn "m"\n', "t.rules")
    assert "unexpected 'class'" in info.value.errors[0].message


@pytest.mark.parametrize("line, device, hit", [
    ("match id 10de:* class 0x0300 mask 0xff00", GPU, "id 10de:2684, class 0300 (line 3)"),
    ("match id 10de:* class 0x0300 mask 0xff00", dataclasses.replace(GPU, class_code=0x0302),
     "id 10de:2684, class 0302 (line 3)"),  # 3D controller: base class display
    ("match id 10de:* class 0x0300 mask 0xff00", HDMI_AUDIO, None),
    ("match id 10de:* class 0x0300 mask 0xff00", dataclasses.replace(GPU, vendor=0x1002), None),
    ("match id 10de:* class 0x0300 mask 0xff00", dataclasses.replace(GPU, class_code=None), None),
    ("match id 1002:* class 0x038000", dataclasses.replace(GPU, vendor=0x1002, class_code=0x0380),
     "id 1002:2684, class 038000 (line 3)"),
    ("match id 1002:* class 0x038000", dataclasses.replace(GPU, vendor=0x1002, class_code=0x0380,
                                                           prog_if=None), None),
])
def test_match_id_with_a_class_needs_both(tmp_path, line, device, hit):
    lib = make_library(tmp_path, {"g": f"{line}\n"})
    found = lib.rulesets["g"].match(device)
    assert found == (None if hit is None else (0, hit))


def test_shipped_nouveau_claims_nvidia_displays_but_not_their_audio(lib):
    assert [rs.name for rs, _ in lib.matching(GPU)] == ["nouveau"]
    assert [rs.name for rs, _ in lib.matching(dataclasses.replace(GPU, vendor=0x12D2))] == ["nouveau"]
    assert lib.matching(dataclasses.replace(HDMI_AUDIO, driver=None, modules=())) == []


def test_shipped_i40e_claims_8086_104f_only_as_ethernet(lib):
    nic = dataclasses.replace(GPU, vendor=0x8086, device=0x104F, class_code=0x0200)
    assert [rs.name for rs, _ in lib.matching(nic)] == ["i40e"]
    assert lib.matching(dataclasses.replace(nic, class_code=0x0280)) == []  # ipw2200's class


def test_shipped_amdgpu_claims_new_parts_by_class(lib):
    navi48 = dataclasses.replace(GPU, vendor=0x1002, device=0x7550)  # not in the ID list
    assert [rs.name for rs, _ in lib.matching(navi48)] == ["amdgpu"]
    mi300 = dataclasses.replace(navi48, device=0x74A1, class_code=0x1200)
    assert [rs.name for rs, _ in lib.matching(mi300)] == ["amdgpu"]
    tahiti = dataclasses.replace(navi48, device=0x6798)  # radeon's by ID, amdgpu's by class
    assert [rs.name for rs, _ in lib.matching(tahiti)] == ["amdgpu", "radeon"]
    hdmi = dataclasses.replace(navi48, device=0xAB28, class_code=0x0403)
    assert lib.matching(hdmi) == []


# --- ID ranges ---------------------------------------------------------------------------------

def test_id_range_parses_and_round_trips():
    f = parse("ruleset t\nmatch id 1AF4:1000..107F\n"
              'rule r:\n    when device id 1af4:1000..103f\n    require bar0 is io\n    else warn "m"\n',
              "t.rules")
    assert f.matches == [ast.MatchId(0x1AF4, 0x1000, device_high=0x107F)]
    assert f.matches[0] != ast.MatchId(0x1AF4, 0x1000)
    assert f.rules[0].guard == ast.DeviceId(0x1AF4, 0x1000, device_high=0x103F)
    out = round_trips(fmt(f))
    assert "match id 1af4:1000..107f\n" in out and "when device id 1af4:1000..103f\n" in out


@pytest.mark.parametrize("text, message, column", [
    ("match id 1af4:1000 subsystem 1af4:0001..0002",
     "ID range '1af4:0001..0002': a range names device IDs in 'match id' and 'device id', not a subsystem", 30),
    ('example "e" {\n    id 1af4:1000..1001\n    msix 1 table bar0 0x0 pba bar0 0x800\n    expect off safe\n}',
     "ID range '1af4:1000..1001': a range names device IDs in 'match id' and 'device id', not an example's"
     " device", 8),
])
def test_an_id_range_elsewhere_is_an_error_at_the_token(text, message, column):
    with pytest.raises(Exception) as info:
        parse(f"ruleset t\n{text}\n", "t.rules")
    (error,) = info.value.errors
    assert error.message == message
    assert (error.location.line, error.location.column) == ((3 if "example" in text else 2), column)


def test_check_rejects_an_empty_id_range():
    text = (f"ruleset t\n{SOURCE}match id 1af4:107f..1000\n"
            'rule r:\n    when device id 1af4:0002..0001\n    require bar0 is io\n    else warn "m"\n')
    assert check_messages(text) == [(3, "empty ID range 1af4:107f..1000: write the lower device ID first"),
                                    (5, "empty ID range 1af4:0002..0001: write the lower device ID first")]


@pytest.mark.parametrize("device_id, hit", [
    (0x1000, True), (0x1041, True), (0x107F, True), (0x0FFF, False), (0x1080, False), (0x1110, False)])
def test_id_range_matches_its_ends_and_nothing_past_them(tmp_path, device_id, hit):
    lib = make_library(tmp_path, {"v": "match id 1af4:1000..107f\n"})
    device = dataclasses.replace(GPU, vendor=0x1AF4, device=device_id, driver=None, modules=())
    assert (lib.rulesets["v"].match(device) is not None) == hit
    assert bool(lib.matching(device)) == hit


def test_device_id_range_in_a_condition(tmp_path):
    from engine.rules.compile import Candidate, compile_file
    from engine.relocate import Layout
    f = parse('ruleset t\nrule legacy:\n    when device id 1af4:1000..103f\n    require bar0 is io\n'
              '    else warn "legacy"\n', "t.rules")
    rules = compile_file(f)
    layout = Layout(GPU.bars, GPU.msix)

    def broken(device_id):
        device = dataclasses.replace(GPU, vendor=0x1AF4, device=device_id)
        return [v.rule for v in rules.evaluate(Candidate(layout, layout, X86, "off", device))]
    assert broken(0x1000) == broken(0x103F) == ["legacy"]
    assert broken(0x1041) == []
    (guard_text,) = [rules.rules[0].guard[1](Candidate(layout, layout, X86, "off",
                                                        dataclasses.replace(GPU, vendor=0x1AF4, device=0x1041)))]
    assert guard_text == "device is 1af4:1041 (not 1af4:1000..103f)"


def test_shipped_virtio_set_claims_the_whole_range(lib):
    for device_id, names in ((0x1041, ["virtio-pci"]), (0x105A, ["virtio-pci"]), (0x1110, [])):
        device = dataclasses.replace(GPU, vendor=0x1AF4, device=device_id, class_code=0x0200)
        assert [rs.name for rs, _ in lib.matching(device)] == names
