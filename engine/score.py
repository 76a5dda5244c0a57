"""Judging relocation candidates: QEMU's outcome plus the driver rules give a verdict.

Verdicts, best first: safe (no rule broken), warn (a risky assumption), forbid
(the driver breaks), refused (QEMU would not start the device that way).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import strategies
from .model import Device, Platform
from .relocate import Layout, Outcome, visible_bars
from .rules.compile import Candidate, Violation
from .rules.library import Ruleset

VERDICTS = ("safe", "warn", "forbid", "refused")


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    violations: tuple[Violation, ...]

    @property
    def verdict(self) -> str:
        if not self.outcome.ok:
            return "refused"
        severities = {v.severity for v in self.violations}
        return "forbid" if "forbid" in severities else "warn" if "warn" in severities else "safe"


def native_layout(device: Device, platform: Platform) -> Layout:
    """What the guest sees with relocation off (refused or not): the baseline rules compare to."""
    return Layout(visible_bars(device, platform), device.msix)


def judge(device: Device, platform: Platform, strategy: str, rulesets: list[Ruleset],
          trace: list[str] | None = None) -> Judgement:
    outcome = strategies.run(strategy, device, platform)
    if outcome.layout is None:
        if trace is not None:
            trace.append(f"QEMU refuses: {outcome.refused}")
        return Judgement(outcome, ())
    candidate = Candidate(native_layout(device, platform), outcome.layout, platform, strategy)
    violations: list[Violation] = []
    for rs in rulesets:
        violations.extend(rs.evaluate(candidate, trace))
    return Judgement(outcome, tuple(violations))
