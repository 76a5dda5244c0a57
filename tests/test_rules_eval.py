"""What rules say about real candidates: every condition kind holding and failing, with its evidence.

The device is the seed SAS3008 (BAR0 an I/O BAR the 64K ppc64 host cannot see, BAR1 64-bit 64K
with MSI-X, BAR3 64-bit 256K) on Platform(64K, io_space=False), unless a test says otherwise.
Relocation there: bar0 adds a 32-bit prefetchable 64K BAR0; bar1 doubles BAR1 to 128K; bar3
doubles BAR3 to 512K; bar5 adds a 32-bit prefetchable 64K BAR5; bar2 and bar4 are refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine import strategies
from engine.cli import main
from engine.model import Bar, BarKind, Device, Layout, Msix, Platform
from engine import examples
from engine.rules import ast, library
from engine.rules.check import check
from engine.rules.compile import Candidate, compile_file, resolve
from engine.rules.parse import parse
from engine.score import judge, native_layout
from engine.sources import load
from engine.units import KiB

ROOT = Path(__file__).resolve().parents[1]
SEED_PATH = ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml"
SEED = load(str(SEED_PATH))[0]
P64 = Platform(64 * KiB, io_space=False)
P4 = Platform(4 * KiB)
# The same card where an x86 host assigned its I/O BAR0, as the SAS2008 in the shared dumps shows
# it (`Region 0: I/O ports at 8000 [size=256]`): visible to QEMU as an I/O port BAR.  The seed's
# own BAR0 is unassigned, so QEMU never sees it, with or without I/O space (relocate.qemu_view).
SEED_X86 = Device(SEED.slot, SEED.vendor, SEED.device, bars=(Bar(0, BarKind.IO, 256), *SEED.bars[1:]),
                  msix=SEED.msix, modules=SEED.modules)

ROLES = """
role regs = first memory bar
role lastmem = last memory bar
role pio = first io bar
role lastio = last io bar
role wide = first 64bit bar
role lastwide = last 64bit bar
role pf = first prefetchable bar
role lastpf = last prefetchable bar
role big = largest bar
role vectors = msix bar
role fixed = bar3
"""


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BARSAFE_CACHE_DIR", str(tmp_path / "barsafe-cache"))
    monkeypatch.delenv("BARSAFE_CACHE", raising=False)


def compiled(text: str):
    f = parse(text, "t.rules")
    assert check(f, "t") == []
    return compile_file(f)


def candidate(strategy: str, device: Device = SEED, platform: Platform = P64) -> Candidate:
    outcome = strategies.run(strategy, device, platform)
    assert outcome.ok, outcome.refused
    return Candidate(native_layout(device, platform), outcome.layout, platform, strategy, device)


def run(cond: str, strategy: str, guard: str | None = None, device: Device = SEED,
        platform: Platform = P64) -> tuple[bool, str]:
    """(holds, evidence) of `rule r: [when guard] require cond` for one candidate.

    Holds is read from the violations, the evidence from the explain trace (the same sentence
    a violation carries, checked to agree)."""
    when = f"    when {guard}\n" if guard else ""
    cf = compiled(f"ruleset t\n{ROLES}\nrule r:\n{when}    require {cond}\n    else warn \"m\"\n")
    trace: list[str] = []
    violations = cf.evaluate(candidate(strategy, device, platform), trace)
    line = trace[-1]
    assert line.startswith(("  rule r ", "  rule r:"))
    if "does not apply" in line:
        assert not violations
        return True, line
    evidence = line.split(": ", 2)[2]
    if violations:
        (v,) = violations
        assert (v.rule, v.severity, v.message) == ("r", "warn", "m")
        assert v.evidence == evidence and "VIOLATED -> warn" in line
    else:
        assert ": holds: " in line
    return not violations, evidence


def holds(cond: str, strategy: str, *facts: str, **kw) -> str:
    ok, evidence = run(cond, strategy, **kw)
    assert ok, evidence
    for fact in facts:
        assert fact in evidence, (fact, evidence)
    return evidence


def fails(cond: str, strategy: str, *facts: str, **kw) -> str:
    ok, evidence = run(cond, strategy, **kw)
    assert not ok, evidence
    for fact in facts:
        assert fact in evidence, (fact, evidence)
    return evidence


# --- each condition kind, holding and failing -----------------------------------------------

def test_stays():
    fails("regs stays", "bar0", "regs (first memory BAR)", "was BAR1, becomes BAR0", "added by relocation")
    holds("regs stays", "bar5", "regs (first memory BAR) is BAR1 before and after")
    holds("regs stays", "bar1", "is BAR1 before and after")  # extended, still the same BAR
    fails("vectors stays", "bar5", "was BAR1, becomes BAR5, added by relocation")
    fails("pf stays", "bar0", "was none, becomes BAR0, added by relocation")
    holds("pio stays", "bar5", "is none before and after")


def test_stays_when_a_role_moves_to_an_existing_bar():
    # Two 32K BARs: largest is BAR0 (ties: lowest index) until relocation doubles BAR2.
    dev = Device("0000:01:00.0", bars=(Bar(0, BarKind.MEM32, 32 * KiB), Bar(2, BarKind.MEM32, 32 * KiB)),
                 msix=Msix(8, 0, 0, 0, 0x800))
    fails("big stays", "bar2", "big (largest BAR) was BAR0, becomes BAR2", device=dev, platform=P4)
    ev = fails("big stays", "bar2", device=dev, platform=P4)
    assert "added" not in ev
    holds("big stays", "bar0", "is BAR0 before and after", device=dev, platform=P4)


@pytest.mark.parametrize("cond, strategy, ok, facts", [
    ("bar0 is memory", "bar0", True, ["BAR0 is 32-bit prefetchable memory, 64K", "(needs memory)"]),
    ("bar0 is memory", "off", False, ["BAR0 is not implemented", "(needs memory)"]),
    ("bar0 is not memory", "off", True, ["(needs not memory)"]),
    ("bar0 is io", "bar5", False, ["BAR0 is not implemented", "(needs io)"]),
    ("bar1 is 64bit", "bar1", True, ["BAR1 is 64-bit non-prefetchable memory, 128K"]),
    ("bar1 is not 64bit", "off", False, ["BAR1 is 64-bit non-prefetchable memory, 64K", "(needs not 64bit)"]),
    ("bar1 is 32bit", "bar1", False, ["BAR1 is 64-bit", "(needs 32bit)"]),
    ("bar5 is 32bit", "bar5", True, ["BAR5 is 32-bit prefetchable memory, 64K"]),
    ("bar0 is prefetchable", "bar0", True, ["(needs prefetchable)"]),
    ("bar1 is prefetchable", "bar1", False, ["BAR1 is 64-bit non-prefetchable memory"]),
    ("bar1 is not prefetchable", "bar1", True, ["non-prefetchable"]),
    ("bar3 is implemented", "off", True, ["BAR3 is 64-bit non-prefetchable memory, 256K"]),
    ("bar2 is implemented", "bar3", False, ["BAR2 is not implemented", "(needs implemented)"]),
    ("bar2 is not implemented", "bar3", True, ["BAR2 is not implemented (needs not implemented)"]),
])
def test_is_attribute(cond, strategy, ok, facts):
    (holds if ok else fails)(cond, strategy, *facts)


def test_is_attribute_of_an_io_bar_with_io_space():
    holds("bar0 is io", "off", "bar0: BAR0 is I/O, 256 (needs io)", device=SEED_X86, platform=P4)
    fails("bar0 is memory", "bar1", "BAR0 is I/O", device=SEED_X86, platform=P4)
    holds("pio stays", "bar5", "pio (first I/O BAR) is BAR0 before and after", device=SEED_X86, platform=P4)
    # the seed's unassigned I/O BAR0 is an empty slot even where the host has I/O space
    holds("bar0 is not implemented", "off", "bar0: BAR0 is not implemented", platform=P4)


def test_size_comparisons():
    fails("bar1 size <= 64K", "bar1", "bar1: BAR1 size 128K (needs <= 64K)")
    holds("bar1 size <= 64K", "off", "BAR1 size 64K (needs <= 64K)")
    holds("bar3 size == 256K", "bar1", "BAR3 size 256K")
    fails("bar3 size != 256K", "bar1", "(needs != 256K)")
    holds("bar3 size > 256K", "bar3", "BAR3 size 512K (needs > 256K)")
    fails("bar3 size < 256K", "off", "(needs < 256K)")
    holds("bar0 size >= 64K", "bar0", "BAR0 size 64K (needs >= 64K)")
    fails("bar2 size >= 4K", "off", "BAR2 is not implemented (needs size >= 4K)")
    fails("regs size >= 1M", "bar0", "regs (first memory BAR): BAR0 size 64K (needs >= 1M)")


def test_size_in():
    fails("bar3 size in {256K, 1M}", "bar3", "BAR3 size 512K (needs one of 256K, 1M)")
    holds("bar3 size in {256K, 1M}", "off", "BAR3 size 256K")
    fails("bar2 size in {4K}", "off", "BAR2 is not implemented")


def test_unchanged():
    fails("bar1 unchanged", "bar1", "bar1: was 64-bit non-prefetchable memory, 64K,"
                                    " becomes 64-bit non-prefetchable memory, 128K")
    holds("bar1 unchanged", "bar5", "bar1: BAR unchanged (BAR1 is 64-bit non-prefetchable memory, 64K)")
    holds("bar0 unchanged", "off", "BAR0 is not implemented natively, still BAR0 is not implemented")
    fails("regs unchanged", "bar0", "regs (first memory BAR) was BAR1, becomes BAR0")
    holds("fixed unchanged", "bar1", "fixed (BAR3): BAR unchanged")
    assert not run("bar0 unchanged", "bar0")[0]  # a BAR that relocation added is a change


def test_unchanged_evidence_for_an_added_fixed_bar():
    ev = fails("bar0 unchanged", "bar0")
    assert "added" in ev or "not implemented" in ev, ev


def test_size_unchanged():
    fails("bar1 size unchanged", "bar1", "64K", "128K")
    holds("bar1 size unchanged", "bar5", "bar1: size unchanged (BAR1 is 64-bit non-prefetchable memory, 64K)")
    holds("bar3 size unchanged", "bar1", "size unchanged")
    fails("wide size unchanged", "bar1", "wide (first 64-bit BAR)")


def test_end_unchanged():
    fails("bar1 end unchanged", "bar1", "its end moves from 0x10000 to 0x20000",
          "addresses from the end move with it, into the half QEMU fills with MSI-X")
    holds("bar3 end unchanged", "bar1", "bar3: end unchanged (BAR3 is 64-bit non-prefetchable memory, 256K)")
    fails("bar3 end unchanged", "bar3", "moves from 0x40000 to 0x80000")


def test_no_bar_added():
    fails("no bar added", "bar0", "relocation adds BAR0")
    fails("no bar added", "bar5", "relocation adds BAR5")
    holds("no bar added", "bar1", "no BAR added")
    holds("no bar added", "off", "no BAR added")


def test_no_bar_added_below():
    fails("no bar added below native regs", "bar0",
          "relocation adds BAR0 below native regs (first memory BAR) (BAR1)")
    holds("no bar added below native regs", "bar5", "no BAR added below native regs (first memory BAR) (BAR1)")
    fails("no bar added below bar3", "bar0", "relocation adds BAR0 below bar3 (BAR3)")
    holds("no bar added below bar3", "bar5", "no BAR added below bar3 (BAR3)")
    # `below` always means where the role was natively: a role resolved after relocation
    # could be the added BAR itself, with nothing below it.
    fails("no bar added below regs", "bar0", "relocation adds BAR0 below regs (first memory BAR) (BAR1)")
    holds("no bar added below pio", "bar0", "(none)")  # a role that finds no BAR


def test_no_bar_extended():
    fails("no bar extended", "bar1", "relocation extends BAR1 from 64K to 128K")
    fails("no bar extended", "bar3", "relocation extends BAR3 from 256K to 512K")
    holds("no bar extended", "bar5", "no BAR extended")
    holds("no bar extended", "bar0", "no BAR extended")


def test_bar_count_unchanged():
    fails("bar count unchanged", "bar5", "2 BARs natively, 3 after relocation")
    holds("bar count unchanged", "bar1", "2 BARs natively, 2 after relocation")


def test_not_and_or():
    holds("not no bar added", "bar0", "relocation adds BAR0")
    fails("not no bar added", "off", "no BAR added")
    fails("regs stays and no bar extended", "bar1", "relocation extends BAR1 from 64K to 128K")
    ev = fails("no bar added and no bar extended and bar count unchanged", "bar5")
    assert ev == "relocation adds BAR5; 2 BARs natively, 3 after relocation"  # only the failing parts
    holds("regs stays and no bar extended", "bar5", "is BAR1 before and after", "no BAR extended")
    holds("regs stays or no bar extended", "bar0", "no BAR extended")  # the part that holds
    ev = fails("no bar added or bar count unchanged", "bar5")
    assert ev == "relocation adds BAR5; 2 BARs natively, 3 after relocation"  # every failing part
    holds("no bar added or no bar extended", "bar0", "no BAR extended")
    assert run("no bar added or no bar extended", "bar3")[0]
    assert not run("not (no bar added or no bar extended)", "bar3")[0]
    assert run("not (bar1 is io and bar3 is 64bit)", "off")[0]
    assert run("(regs stays or bar0 is io) and not bar3 is io", "bar5")[0]


def test_native_refs_read_the_native_layout():
    fails("native bar0 is implemented", "bar0", "native bar0: natively BAR0 is not implemented")
    holds("bar0 is implemented", "bar0")
    holds("native regs size == 64K", "bar1", "native regs (first memory BAR): BAR1 size 64K")
    fails("regs size == 64K", "bar1", "BAR1 size 128K")
    holds("native bar3 size == 256K", "bar3")
    fails("bar3 size == 256K", "bar3")
    holds("native pf is not implemented", "bar0")  # no prefetchable BAR natively
    fails("pf is not implemented", "bar0", "BAR0 is 32-bit prefetchable memory")
    holds("native bar0 is io", "off", device=SEED_X86, platform=P4)
    fails("native bar0 is io", "off")  # invisible without I/O space


def test_guards_skip_rules():
    ok, line = run("no bar added", "off", guard="bar0 is implemented")
    assert ok and line == "  rule r: does not apply (bar0: BAR0 is not implemented (needs implemented))"
    fails("no bar added", "bar0", "relocation adds BAR0", guard="bar0 is implemented")
    ok, line = run("bar count unchanged", "bar5", guard="native bar0 is io")
    assert ok and "does not apply" in line
    fails("bar count unchanged", "bar5", guard="native bar0 is io", device=SEED_X86, platform=P4)


# --- roles ----------------------------------------------------------------------------------

def role_lines(strategy: str, platform: Platform = P64, device: Device = SEED) -> dict[str, str]:
    cf = compiled(f"ruleset t\n{ROLES}\n")
    trace: list[str] = []
    assert cf.evaluate(candidate(strategy, device, platform), trace) == []
    return {line.split()[1]: line.split(": ", 1)[1] for line in trace}


def test_roles_resolve_in_both_layouts():
    roles = role_lines("bar0")
    assert roles == {
        "regs": "native BAR1, relocated BAR0",
        "lastmem": "native BAR3, relocated BAR3",
        "pio": "native none, relocated none",
        "lastio": "native none, relocated none",
        "wide": "native BAR1, relocated BAR1",
        "lastwide": "native BAR3, relocated BAR3",
        "pf": "native none, relocated BAR0",
        "lastpf": "native none, relocated BAR0",
        "big": "native BAR3, relocated BAR3",
        "vectors": "native BAR1, relocated BAR0",
        "fixed": "native BAR3, relocated BAR3",
    }
    assert role_lines("bar5")["lastmem"] == "native BAR3, relocated BAR5"
    assert role_lines("bar5")["vectors"] == "native BAR1, relocated BAR5"
    assert role_lines("bar3")["vectors"] == "native BAR1, relocated BAR3"
    assert role_lines("bar1", P4, SEED_X86)["pio"] == "native BAR0, relocated BAR0"
    assert role_lines("bar1", P4)["pio"] == "native none, relocated none"


def test_role_trace_names_the_selector():
    cf = compiled(f"ruleset t\n{ROLES}\n")
    trace: list[str] = []
    cf.evaluate(candidate("bar0"), trace)
    assert "  role regs = first memory BAR: native BAR1, relocated BAR0" in trace
    assert "  role pio = first I/O BAR: native none, relocated none" in trace
    assert "  role wide = first 64-bit BAR: native BAR1, relocated BAR1" in trace
    assert "  role big = largest BAR: native BAR3, relocated BAR3" in trace
    assert "  role vectors = BAR holding the MSI-X table: native BAR1, relocated BAR0" in trace
    assert "  role fixed = BAR3: native BAR3, relocated BAR3" in trace


LAYOUT = Layout((Bar(0, BarKind.IO, 256), Bar(1, BarKind.MEM32, 64 * KiB, prefetchable=True),
                 Bar(2, BarKind.MEM64, 16 * KiB), Bar(4, BarKind.MEM64, 64 * KiB, prefetchable=True)),
                Msix(16, 2, 0x2000, 2, 0x3000))


@pytest.mark.parametrize("selector, index", [
    (ast.Ordinal("first", "memory"), 1), (ast.Ordinal("last", "memory"), 4),
    (ast.Ordinal("first", "io"), 0), (ast.Ordinal("last", "io"), 0),
    (ast.Ordinal("first", "64bit"), 2), (ast.Ordinal("last", "64bit"), 4),
    (ast.Ordinal("first", "prefetchable"), 1), (ast.Ordinal("last", "prefetchable"), 4),
    (ast.Largest(), 1),  # 64K twice: the lowest index wins
    (ast.MsixBar(), 2), (ast.Fixed(5), 5),
])
def test_resolve_selectors(selector, index):
    assert resolve(selector, LAYOUT) == index


def test_resolve_finds_nothing():
    empty = Layout((Bar(0, BarKind.MEM32, 4 * KiB),), None)
    assert resolve(ast.Ordinal("first", "io"), empty) is None
    assert resolve(ast.Ordinal("last", "prefetchable"), empty) is None
    assert resolve(ast.MsixBar(), empty) is None
    assert resolve(ast.Largest(), Layout((), None)) is None


# --- shipped rule sets ----------------------------------------------------------------------

def shipped(name: str):
    return library.load([ROOT / "rules" / f"{name}.rules"]).rulesets[name]


@pytest.mark.parametrize("strategy, verdict", [
    ("off", "safe"), ("bar0", "forbid"), ("bar1", "safe"), ("bar5", "safe"), ("qemu-rfc", "forbid"),
    ("reverse", "safe"), ("bar2", "refused"), ("bar4", "refused"),
])
def test_mpt3sas_verdicts_for_the_seed(strategy, verdict):
    j = judge(SEED, P64, strategy, [shipped("mpt3sas")])
    assert j.verdict == verdict


def test_mpt3sas_forbid_names_the_rule_and_the_evidence():
    j = judge(SEED, P64, "bar0", [shipped("mpt3sas")])
    (v,) = j.violations
    assert v.rule_id == "mpt3sas/registers-are-first-memory-bar" and v.severity == "forbid"
    assert v.evidence == "regs (first memory BAR) was BAR1, becomes BAR0, added by relocation"
    path = ROOT / "rules" / "mpt3sas.rules"
    line = path.read_text().splitlines().index("rule registers-are-first-memory-bar:") + 1
    assert v.where == f"{path}:{line}"
    refused = judge(SEED, P64, "bar2", [shipped("mpt3sas")])
    assert refused.violations == () and "consumed by 64-bit BAR 1" in refused.outcome.refused


def test_mpt3sas_matches_the_seed_by_id():
    rs = shipped("mpt3sas")
    rank, why = rs.match(SEED)
    assert rank == 0 and why.startswith("id 1000:0097")


def test_tsi721_examples_pass():
    results = examples.run_ruleset(shipped("tsi721"))
    assert results and all(r.ok for r in results), [r for r in results if not r.ok]
    assert {(r.strategy, r.actual) for r in results} >= {
        ("off", "safe"), ("bar0", "safe"), ("bar2", "forbid"), ("bar4", "forbid"), ("bar3", "refused")}


def test_tsi721_outbound_window_evidence():
    rs = shipped("tsi721")
    example = rs.file.examples[0]
    device = examples.example_device(rs.path, example)
    platform = examples.example_platform(example)
    j = judge(device, platform, "bar2", [rs])
    (v,) = j.violations
    assert v.rule == "outbound-window-bar2" and v.severity == "forbid"
    assert "bar2: was 64-bit non-prefetchable memory, 1M, becomes 64-bit non-prefetchable memory, 2M" in v.evidence
    assert judge(device, platform, "bar0", [rs]).violations == ()


def test_tsi721_csr_rule_on_a_64bit_bar0():
    rs = shipped("tsi721")
    dev = Device(None, bars=(Bar(0, BarKind.MEM64, 512 * KiB), Bar(2, BarKind.MEM32, 16 * KiB)),
                 msix=Msix(64, 0, 0x2C000, 0, 0x2A000))
    j = judge(dev, Platform(64 * KiB), "off", [rs])
    rules = {v.rule: v for v in j.violations}
    assert j.verdict == "forbid"
    assert "needs not 64bit" in rules["csr-bar0"].evidence
    assert "BAR1 is not implemented" in rules["doorbell-bar1"].evidence


# --- the CLI --------------------------------------------------------------------------------

# The rule files this suite was written against; rules/ also receives other engineers' new files.
SHIPPED = [ROOT / "rules" / f"{n}.rules" for n in ("generic", "mpt3sas", "tsi721")]


def test_cli_test_passes_on_the_shipped_rules(capsys):
    code = main(["test", *map(str, SHIPPED)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " 0 failed " in out and "FAIL" not in out


def test_cli_test_fails_on_a_flipped_expectation(tmp_path, capsys):
    src = (ROOT / "rules" / "mpt3sas.rules").read_text()
    lines = src.splitlines(keepends=True)
    flip = next(i for i, l in enumerate(lines) if l.strip() == "expect bar5 safe")
    lines[flip] = lines[flip].replace("expect bar5 safe", "expect bar5 forbid")
    path = tmp_path / "mpt3sas.rules"
    path.write_text("".join(lines))
    code = main(["test", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    fail_lines = [l for l in out.splitlines() if "FAIL" in l]
    assert fail_lines == [f"{path}:{flip + 1}: FAIL mpt3sas: example "
                          "'seed SAS3008 on POWER8 (qemu-devel, December 2017)': bar5: expected forbid, got safe"]
    assert "1 failed" in out.splitlines()[-1]


def test_cli_test_reports_what_the_rules_said(tmp_path, capsys):
    src = (ROOT / "rules" / "mpt3sas.rules").read_text().replace("expect bar0 forbid", "expect bar0 safe", 1)
    (tmp_path / "mpt3sas.rules").write_text(src)
    assert main(["test", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "bar0: expected safe, got forbid" in out
    assert "    mpt3sas/registers-are-first-memory-bar (forbid): regs (first memory BAR) was BAR1," \
           " becomes BAR0, added by relocation" in out


def test_cli_test_fixture_rules(capsys):
    assert main(["test", str(Path(__file__).parent / "data" / "rules" / "ok")]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_cli_explain_seed_at_bar0(tmp_path, capsys):
    for path in SHIPPED:  # a rules directory holding just the shipped files
        shutil.copy(path, tmp_path / path.name)
    code = main(["explain", str(tmp_path), str(SEED_PATH), "--target", "bar0",
                 "--page-size", "64K", "--no-io-space"])
    out = capsys.readouterr().out
    assert code == 0
    assert "mpt3sas matches id 1000:0097" in out
    assert "  role regs = first memory BAR: native BAR1, relocated BAR0" in out
    assert "  role pio = first I/O BAR: native none, relocated none" in out
    assert "rule registers-are-first-memory-bar (" in out and "VIOLATED -> forbid" in out
    assert "rule pio-is-first-io-bar (" in out and "holds: pio (first I/O BAR) is none before and after" in out
    assert "verdict: forbid" in out
    assert "because regs (first memory BAR) was BAR1, becomes BAR0, added by relocation" in out


def test_cli_explain_with_a_rule_file_and_a_safe_target(capsys):
    code = main(["explain", str(ROOT / "rules" / "mpt3sas.rules"), str(SEED_PATH), "--target", "bar5",
                 "--page-size", "64K", "--no-io-space"])
    out = capsys.readouterr().out
    assert code == 0 and "verdict: safe" in out
    assert "role regs = first memory BAR: native BAR1, relocated BAR1" in out


def test_ordinal_roles_with_range_and_size_filter():
    """second/third memory BAR, `in barA..barB` and `with size` resolve like the drivers' loops."""
    from engine.model import Bar, BarKind
    from engine.model import Layout
    from engine.rules import ast
    from engine.rules.compile import resolve
    layout = Layout((Bar(0, BarKind.IO, 256), Bar(1, BarKind.MEM32, 256), Bar(2, BarKind.MEM64, 1 << 20),
                     Bar(4, BarKind.MEM64, 16 << 10)), None)
    assert resolve(ast.Ordinal("second", "memory"), layout) == 2
    assert resolve(ast.Ordinal("third", "memory"), layout) == 4
    assert resolve(ast.Ordinal("third", "memory", 0, 3), layout) is None
    assert resolve(ast.Ordinal("first", "memory", size_op=">=", size=4096), layout) == 2
    assert resolve(ast.Ordinal("last", "memory", 0, 3), layout) == 2


def test_added_device_id_and_revision_conditions():
    fails("bar0 added", "off", "not added")
    holds("bar0 added", "bar0", "BAR0 added by relocation")
    holds("regs added", "bar0", "added by relocation")
    holds("device id 1000:0097", "bar0", "device is 1000:0097")
    holds("device id 1000:*", "bar0", "device is 1000:0097")
    fails("device id 10ec:8168", "bar0", "device is 1000:0097")
    holds("revision == 0x02", "bar0", "revision 0x02")
    fails("revision >= 0x07", "bar0", "revision 0x02 (needs >= 0x07)")


# --- ordinal roles: second/third, `in barA..barB`, `with size` -------------------------------

# I/O BAR0, 32-bit 4K BAR1, 64-bit prefetchable 1M BAR2 (with BAR3 its upper half), 32-bit 16K
# BAR4, 32-bit 256-byte BAR5: five BARs, four of them memory.  Listed out of order on purpose:
# resolution goes by BAR index, as the drivers' `for (i = 0; i < 6; i++)` loops do.
MULTI = Layout((Bar(4, BarKind.MEM32, 16 * KiB), Bar(0, BarKind.IO, 256), Bar(5, BarKind.MEM32, 256),
                Bar(2, BarKind.MEM64, 1024 * KiB, prefetchable=True), Bar(1, BarKind.MEM32, 4 * KiB)), None)


def selector(text: str) -> ast.Selector:
    (role,) = parse(f"ruleset t\nrole r = {text}\n", "t.rules").roles
    return role.selector


@pytest.mark.parametrize("text, index", [
    ("first memory bar", 1), ("second memory bar", 2), ("third memory bar", 4), ("last memory bar", 5),
    ("first io bar", 0), ("second io bar", None), ("last io bar", 0),
    ("first 64bit bar", 2), ("second 64bit bar", None), ("last 64bit bar", 2),
    ("first prefetchable bar", 2), ("second prefetchable bar", None),
    # ranges are inclusive at both ends
    ("first memory bar in bar2..bar5", 2), ("second memory bar in bar2..bar5", 4),
    ("third memory bar in bar2..bar5", 5), ("last memory bar in bar0..bar4", 4),
    ("third memory bar in bar0..bar4", 4), ("last memory bar in bar1..bar1", 1),
    ("first memory bar in bar0..bar0", None),  # BAR0 is I/O
    ("first memory bar in bar3..bar3", None),  # the upper half of 64-bit BAR2 is no BAR of its own
    ("first 64bit bar in bar3..bar5", None),
    ("first io bar in bar1..bar5", None),
    ("first memory bar in bar4..bar1", None),  # backwards: nothing (check() rejects it)
    # size filters compare the BAR's size in this layout
    ("first memory bar with size >= 4K", 1), ("second memory bar with size >= 4K", 2),
    ("third memory bar with size >= 4K", 4), ("last memory bar with size >= 4K", 4),
    ("first memory bar with size > 4K", 2), ("first memory bar with size < 4K", 5),
    ("first memory bar with size <= 4K", 1), ("first memory bar with size == 16K", 4),
    ("first memory bar with size != 4K", 2), ("last memory bar with size != 256", 4),
    ("first memory bar with size >= 1T", None), ("first io bar with size == 256", 0),
    ("first prefetchable bar with size < 1M", None),
    # both: the range first, then the size
    ("second memory bar in bar1..bar4 with size <= 16K", 4),
    ("first memory bar in bar3..bar5 with size > 16K", None),
    ("last memory bar in bar0..bar3 with size >= 4K", 2),
    ("second 64bit bar in bar0..bar5 with size >= 0", None),
])
def test_ordinal_resolution_on_several_memory_bars(text, index):
    assert resolve(selector(text), MULTI) == index


def evaluate(roles: str, cond: str, strategy: str) -> tuple[bool, str, list[str]]:
    """(holds, the rule's trace line, the whole trace) of `require cond` on the seed at strategy."""
    cf = compiled(f"ruleset t\n{roles}\nrule r:\n    require {cond}\n    else warn \"m\"\n")
    trace: list[str] = []
    violations = cf.evaluate(candidate(strategy), trace)
    assert trace[-1].startswith("  rule r ")
    return not violations, trace[-1], trace


SEED_ROLES = """
role mem2 = second memory bar
role mem2hi = second memory bar in bar1..bar5
role mem3 = third memory bar
role lastlow = last memory bar in bar0..bar4
role lastmem = last memory bar
role big = first memory bar with size >= 128K
role bighi = first memory bar in bar2..bar5 with size >= 128K
"""


def test_an_added_bar0_shifts_second_memory_bar_but_not_a_range_above_it():
    # Seed natively: memory BAR1 (64K) and BAR3 (256K).  bar0 adds a memory BAR0 before both.
    ok, line, trace = evaluate(SEED_ROLES, "mem2 stays", "bar0")
    assert not ok
    assert "mem2 (second memory BAR) was BAR3, becomes BAR1" in line
    assert "added" not in line  # BAR1 was already there: the role moved onto an old BAR
    assert "  role mem2 = second memory BAR: native BAR3, relocated BAR1" in trace
    ok, line, trace = evaluate(SEED_ROLES, "mem2hi stays", "bar0")
    assert ok, line
    assert "mem2hi (second memory BAR among BAR1-BAR5) is BAR3 before and after" in line
    assert "  role mem2hi = second memory BAR among BAR1-BAR5: native BAR3, relocated BAR3" in trace


def test_third_memory_bar_appears_when_relocation_adds_one():
    ok, line, _ = evaluate(SEED_ROLES, "mem3 stays", "bar5")
    assert not ok and "mem3 (third memory BAR) was none, becomes BAR5, added by relocation" in line
    ok, line, _ = evaluate(SEED_ROLES, "mem3 added", "bar5")
    assert ok and "BAR5 added by relocation" in line
    ok, line, _ = evaluate(SEED_ROLES, "mem3 added", "bar3")
    assert not ok and line.endswith("mem3 (third memory BAR) resolves to no BAR")
    ok, line, _ = evaluate(SEED_ROLES, "mem3 stays", "bar3")
    assert ok and "is none before and after" in line


def test_a_range_keeps_last_memory_bar_off_an_added_bar5():
    ok, line, _ = evaluate(SEED_ROLES, "lastmem stays", "bar5")
    assert not ok and "was BAR3, becomes BAR5, added by relocation" in line
    ok, line, _ = evaluate(SEED_ROLES, "lastlow stays", "bar5")
    assert ok and "lastlow (last memory BAR among BAR0-BAR4) is BAR3 before and after" in line


def test_a_size_filter_sees_the_relocated_size():
    # bar1 doubles BAR1 to 128K: it now passes `with size >= 128K` and comes before BAR3.
    ok, line, trace = evaluate(SEED_ROLES, "big stays", "bar1")
    assert not ok
    assert "big (first memory BAR of size >= 128K) was BAR3, becomes BAR1" in line
    assert "  role big = first memory BAR of size >= 128K: native BAR3, relocated BAR1" in trace
    ok, line, _ = evaluate(SEED_ROLES, "bighi stays", "bar1")  # the range leaves BAR1 out
    assert ok and "(first memory BAR among BAR2-BAR5 of size >= 128K) is BAR3 before and after" in line
    ok, line, _ = evaluate(SEED_ROLES, "big stays", "bar3")  # extending BAR3 itself changes nothing
    assert ok, line
    ok, line, _ = evaluate(SEED_ROLES, "big size >= 512K and native big size == 256K", "bar3")
    assert ok and "native big (first memory BAR of size >= 128K): BAR3 size 256K" in line


def test_compiled_selectors_agree_with_resolve_on_every_corpus_layout():
    """compile_selector is resolve specialised: the same BAR for every selector of the shipped
    rules, on every layout the simulator makes of every corpus device."""
    from engine import strategies as strats
    from engine.model import PAGE_SIZES, Platform
    from engine.rules.compile import compile_selector, resolve
    lib = library.load()
    selectors = {role.selector for f in lib.files.values() for role in f.of(ast.Role)}
    selectors |= {ast.Ordinal(order, kind) for order in ("first", "second", "third", "last")
                  for kind in ("memory", "io", "64bit", "prefetchable")}
    assert len(selectors) > 20
    layouts = []
    for path in sorted((ROOT / "corpus" / "devices").rglob("*.yaml")):
        for device in load(str(path)):
            if device.msix is None:
                continue
            for page in PAGE_SIZES:
                for name in strats.all_names():
                    o = strats.run(name, device, Platform(page, io_space=False))
                    if o.layout is not None:
                        layouts.append(o.layout)
    assert len(layouts) > 500
    for sel in selectors:
        fast = compile_selector(sel)
        for layout in layouts:
            assert fast(layout) == resolve(sel, layout), (sel, layout)
