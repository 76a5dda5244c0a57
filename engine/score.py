"""Judging relocation candidates: QEMU's outcome plus the driver rules give a verdict.

Verdicts, best first: safe (no rule broken), warn (a risky assumption), forbid
(the driver breaks), refused (QEMU would not start the device that way).
"""

from __future__ import annotations

from . import strategies
from .frozen import Frozen, _set, replace
from .memo import same_arguments_as_last_call
from .model import Device, Layout, Platform
from .relocate import (Finding, MsixDiagnosis, Outcome, PageAnalysis, RegisterSpan, _visible_bars,
                       analyse_pages, diagnose_msix, visible_bars)
from .rules.compile import Candidate, Violation
from .rules.library import Ruleset

VERDICTS = ("safe", "warn", "forbid", "refused")


class Judgement(Frozen):
    outcome: Outcome
    violations: tuple[Violation, ...]

    def __init__(self, outcome: Outcome, violations: tuple[Violation, ...]) -> None:
        _set(self, "outcome", outcome)
        _set(self, "violations", violations)

    @property
    def verdict(self) -> str:
        if self.outcome.refused is not None:
            return "refused"
        if not self.violations:
            return "safe"
        severities = [v.severity for v in self.violations]
        return "forbid" if "forbid" in severities else "warn" if "warn" in severities else "safe"


def native_layout(device: Device, platform: Platform) -> Layout:
    """What the guest sees with relocation off (refused or not): the baseline rules compare to."""
    return _native_layout(device, platform.io_space)


@same_arguments_as_last_call
def _native_layout(device: Device, io_space: bool) -> Layout:  # the same at every page size
    return Layout(_visible_bars(device, io_space), device.msix)


def judge(device: Device, platform: Platform, strategy: str, rulesets: list[Ruleset],
          trace: list[str] | None = None, by_layout: dict | None = None) -> Judgement:
    """QEMU's outcome for one strategy, and every rule it breaks.

    ``by_layout`` lets the candidates of one answer share rule results: a heuristic that
    picks BAR2 shows the guest the very layout `bar2` does (the same object: relocate keeps
    each target's result for the device and platform it is judging), and rules read nothing
    but the layouts, the platform and the device (not which strategy produced them).  Keyed
    by the layout object: hashing a layout hashes every BAR, and an equal layout that is
    another object is only judged again, to the same result."""
    outcome = strategies.run(strategy, device, platform)
    layout = outcome.layout
    if layout is None:
        if trace is not None:
            trace.append(f"QEMU refuses: {outcome.refused}")
        return Judgement(outcome, ())
    findings = broken_capability_findings(device) + outcome.findings
    known = by_layout.get(id(layout)) if by_layout is not None and trace is None else None
    candidate = None
    if known is None or findings:
        candidate = Candidate(native_layout(device, platform), layout, platform, strategy, device)
    violations: list[Violation] = [_from_finding(f, candidate) for f in findings]
    if trace is not None:
        trace.extend(f"simulator: {f.severity} {f.rule}: {f.message}" for f in findings)
    if known is None:
        ruled = tuple(v for rs in rulesets for v in rs.evaluate(candidate, trace))
        if by_layout is not None:
            by_layout[id(layout)] = (layout, ruled)  # the layout kept: its id stays its own
    else:
        ruled = known[1]
    if not violations:
        return Judgement(outcome, ruled)
    violations.extend(ruled)
    return Judgement(outcome, tuple(violations))


@same_arguments_as_last_call
def broken_capability_findings(device: Device) -> tuple[Finding, ...]:
    """A broken capability (relocate.diagnose_msix) fails every candidate QEMU would accept: the
    host cannot use the device's MSI-X table, whatever layout the guest is shown."""
    return tuple(Finding("msix/broken-capability", "forbid", p.summary)
                 for p in diagnose_msix(device).problems if p.blocking)


def _from_finding(finding, candidate: Candidate) -> Violation:
    """A hazard of the layout itself (e.g. an offset QEMU cannot express) counts like a rule."""
    ruleset, _, rule = finding.rule.partition("/")
    return Violation(ruleset, rule, finding.severity, finding.message, "simulator (engine/relocate.py)",
                     lambda c, text=finding.message: text, candidate)


# --- which: every candidate for one device, and the one to recommend ------------------------

QEMU_CANDIDATES = ("off", *strategies.TARGETS)
_CANDIDATES = QEMU_CANDIDATES + tuple(name for name in strategies.HEURISTICS if name != "off")
_RANK = {"safe": 0, "warn": 1, "forbid": 2, "refused": 3}


class Scored(Frozen):
    """One row of `barsafe which`: a candidate, its verdict, reasons and MMIO cost."""

    strategy: str
    judgement: Judgement
    mmio_cost: int | None  # extra guest MMIO bytes; None when QEMU refuses

    def __init__(self, strategy: str, judgement: Judgement, mmio_cost: int | None) -> None:
        _set(self, "strategy", strategy)
        _set(self, "judgement", judgement)
        _set(self, "mmio_cost", mmio_cost)

    @property
    def verdict(self) -> str:
        return self.judgement.verdict

    @property
    def target(self) -> int | None:
        return self.judgement.outcome.target

    @property
    def option(self) -> str | None:
        return self.judgement.outcome.option

    def order_key(self) -> tuple:
        """Safe before warn before forbid; then fewer broken rules; then least added MMIO;
        then the highest BAR slot: a BAR placed after all others leaves every existing BAR's
        index and its rank among memory BARs as they were (the seed thread's reverse-search
        argument), and extending a BAR keeps the BAR count."""
        return (_RANK[self.verdict], len(self.judgement.violations), self.mmio_cost or 0,
                -(self.target if self.target is not None else -1))


class Answer(Frozen):
    device: Device
    platform: Platform
    rulesets: tuple[str, ...]  # names; ("generic",) when no driver rules matched
    match_reasons: tuple[str, ...]
    pages: PageAnalysis | None
    needs_relocation: bool
    candidates: tuple[Scored, ...]
    recommendation: Scored | None
    why: str
    msix: MsixDiagnosis  # problems of the capability itself
    mined: tuple[str, ...]  # matched rule sets that barsafe mine drafted (not reviewed)
    fallback: Scored | None  # with no relocation needed: the target for a device that
    # keeps registers beside its MSI-X structures after all (PCIe forbids it; some do)

    def __init__(self, device: Device, platform: Platform, rulesets: tuple[str, ...],
                 match_reasons: tuple[str, ...], pages: PageAnalysis | None,
                 needs_relocation: bool, candidates: tuple[Scored, ...],
                 recommendation: Scored | None, why: str, msix: MsixDiagnosis = MsixDiagnosis(),
                 mined: tuple[str, ...] = (), fallback: Scored | None = None) -> None:
        _set(self, "device", device)
        _set(self, "platform", platform)
        _set(self, "rulesets", rulesets)
        _set(self, "match_reasons", match_reasons)
        _set(self, "pages", pages)
        _set(self, "needs_relocation", needs_relocation)
        _set(self, "candidates", candidates)
        _set(self, "recommendation", recommendation)
        _set(self, "why", why)
        _set(self, "msix", msix)
        _set(self, "mined", mined)
        _set(self, "fallback", fallback)

    @property
    def broken(self) -> bool:
        """Not a relocation question: the capability is broken (no recommendation, ever)."""
        return self.msix.broken


def mmio_cost(device: Device, platform: Platform, outcome: Outcome) -> int | None:
    if outcome.layout is None:
        return None
    return sum([b.size for b in outcome.layout.bars if not b.is_io]) - _native_mmio(device, platform.io_space)


@same_arguments_as_last_call
def _native_mmio(device: Device, io_space: bool) -> int:
    return sum([b.size for b in _visible_bars(device, io_space) if not b.is_io])


def score(device: Device, platform: Platform, name: str, rulesets: list[Ruleset],
          by_layout: dict | None = None) -> Scored:
    j = judge(device, platform, name, rulesets, by_layout=by_layout)
    return Scored(name, j, mmio_cost(device, platform, j.outcome))


def _row(device: Device, platform: Platform, name: str, rulesets: tuple[Ruleset, ...], shared: tuple,
         broken: tuple[Finding, ...]) -> Scored:
    """score() for one candidate of an answer: the same Scored, with what candidates share kept
    in ``shared`` (by layout: the rules' violations and the MMIO the layout adds; by outcome:
    the row, for `barN` at another page size with the same result) and ``broken``
    (broken_capability_findings of the device) given."""
    by_layout, by_outcome = shared
    outcome = strategies.run(name, device, platform)
    seen = by_outcome.get(id(outcome))
    if seen is not None and seen[0] is outcome:
        return seen[1]
    row = _new_row(device, platform, name, rulesets, by_layout, broken, outcome)
    if name in strategies.TARGETS:  # relocate gives `barN` the same outcome for the same result
        by_outcome[id(outcome)] = (outcome, row)
    return row


def _new_row(device: Device, platform: Platform, name: str, rulesets: tuple[Ruleset, ...], shared: dict,
             broken: tuple[Finding, ...], outcome: Outcome) -> Scored:
    layout = outcome.layout
    if layout is None:
        return Scored(name, Judgement(outcome, ()), None)
    known = shared.get(id(layout))
    if known is None:
        candidate = Candidate(native_layout(device, platform), layout, platform, name, device)
        ruled = tuple(v for rs in rulesets for v in rs.evaluate(candidate, None))
        cost = sum([b.size for b in layout.bars if not b.is_io]) - _native_mmio(device, platform.io_space)
        known = shared[id(layout)] = (layout, ruled, cost, candidate)  # the layout kept: its id stays its own
    findings = broken + outcome.findings if outcome.findings else broken
    if not findings:
        return Scored(name, Judgement(outcome, known[1]), known[2])
    violations = tuple(_from_finding(f, known[3]) for f in findings) + known[1]
    return Scored(name, Judgement(outcome, violations), known[2])


@same_arguments_as_last_call
def _rule_results(device: Device, library, io_space: bool) -> dict:
    """judge's ``by_layout`` for every page size of one device in a row: rules read the layouts
    and the device, never the page size, and the native layout and many relocated ones (a BAR
    extended past the MSI-X size) are the same at every page size (relocate).  And _row's rows
    by outcome."""
    return {}, {}


MINED_NOTE = ("mined rule set: drafted from the driver's C source by barsafe mine, not reviewed;"
              " its rules give at most warn")


def is_mined(rs: Ruleset) -> bool:
    """A rule set whose file says `status mined`."""
    return rs.file.status == "mined"


def choose_rules(device: Device, library) -> tuple[list[Ruleset], tuple[str, ...], tuple[str, ...]]:
    """(rule sets, their names, why they apply): driver rules by match, else the generic set."""
    found = library.matching(device)
    if any(not is_mined(rs) for rs, _ in found):  # a reviewed set supersedes mined drafts
        found = [(rs, why) for rs, why in found if not is_mined(rs)]
    if found:
        return ([rs for rs, _ in found], tuple(rs.name for rs, _ in found),
                tuple(f"{rs.name}: matches {why}" + (f" ({MINED_NOTE})" if is_mined(rs) else "")
                      for rs, why in found))
    generic = library.rulesets.get("generic")
    if generic is None:
        return [], (), ("no rule file matches this device (by ID, class, driver or module), and the"
                        " rules given have no generic set: no rule judges it",)
    reason = ("no rule file matches this device (by ID, class, driver or module):"
              " the generic set applies")
    return [generic], ("generic",), (reason,)


def stated_registers(rulesets: list[Ruleset]) -> tuple[RegisterSpan, ...]:
    """Registers the matched rule sets place beside the MSI-X structures (`registers`
    statements): the page analysis counts them as device registers in the trapped pages."""
    return tuple(dict.fromkeys(r for rs in rulesets for r in rs.registers))


@same_arguments_as_last_call
def _rules_for(device: Device, library) -> tuple:
    """choose_rules, the registers those rule sets state and the names of the mined ones, once
    for the page sizes an audit asks one device about in a row."""
    rulesets, names, reasons = choose_rules(device, library)
    mined = tuple(n for n in names if n in library.rulesets and is_mined(library.rulesets[n]))
    return tuple(rulesets), names, reasons, stated_registers(rulesets), mined


def answer(device: Device, platform: Platform, library) -> Answer:
    """Every candidate for one MSI-X device, and the one to recommend (README "Choosing");
    `mined` names the matched rule sets that are mined, not reviewed."""
    found = _answer(device, platform, library)
    mined = _rules_for(device, library)[4]
    return replace(found, mined=mined) if mined else found


def _answer(device: Device, platform: Platform, library) -> Answer:
    assert device.msix is not None
    rulesets, names, reasons, registers, _ = _rules_for(device, library)
    diagnosis = diagnose_msix(device)
    shared = _rule_results(device, library, platform.io_space)
    broken = broken_capability_findings(device)
    rows = [_row(device, platform, name, rulesets, shared, broken) for name in _CANDIDATES]
    if diagnosis.broken:
        why = (f"the MSI-X capability is broken ({diagnosis.reason}): the host cannot use the device's"
               f" MSI-X table, so no x-msix-relocation target can help")
        return Answer(device, platform, names, reasons, None, False, tuple(rows), None, why, diagnosis)
    pages = analyse_pages(visible_bars(device, platform), device.msix, platform, registers=registers)
    off = rows[0]
    needs = pages.needs_relocation or not off.judgement.outcome.ok
    targets = [r for r in rows[1:len(QEMU_CANDIDATES)] if r.verdict in ("safe", "warn")]
    if not needs and off.verdict in ("safe", "warn"):
        # "No relocation needed" rests on the PCIe rule that nothing else lives in the 4K ranges
        # of the table and PBA; lspci cannot show a device that breaks it (an FPGA on qemu-devel,
        # January 2020, had registers beside its table: x-msix-relocation=bar2 fixed it).
        fallback = min(targets, key=Scored.order_key) if targets else None
        return Answer(device, platform, names, reasons, pages, False, tuple(rows), off,
                      f"no relocation needed: {pages.reason}", diagnosis, fallback=fallback)
    if not needs:  # the driver's rules fail the device's own layout: say that, not "trapped page"
        off_why = "; ".join(f"{v.rule_id}: {v.evidence}" for v in off.judgement.violations)
        why_off = f"the driver's rules already fail without relocation ({off_why})"
    elif off.judgement.outcome.ok:
        why_off = "relocation off keeps the slow trapped page"
    else:
        why_off = f"with relocation off QEMU refuses: {off.judgement.outcome.refused}"
    if not targets:
        broken = "; ".join(f"{r.strategy}: {r.verdict}" for r in rows[1:len(QEMU_CANDIDATES)])
        why = f"no target is safe for this driver ({broken}); {why_off}"
        return Answer(device, platform, names, reasons, pages, needs, tuple(rows), None, why, diagnosis)
    best = min(targets, key=Scored.order_key)
    why = pages.reason if pages.needs_relocation else why_off
    return Answer(device, platform, names, reasons, pages, needs, tuple(rows), best, why, diagnosis)
