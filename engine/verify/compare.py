"""Observed against predicted: the guest's layout field by field, the driver against the verdict."""

from __future__ import annotations

from dataclasses import dataclass

from ..model import Device
from ..relocate import Outcome
from ..units import format_size


@dataclass(frozen=True)
class Difference:
    field: str  # e.g. "BAR2 size", "MSI-X table offset"
    predicted: str
    observed: str

    def __str__(self) -> str:
        return f"{self.field}: simulate says {self.predicted}, the guest shows {self.observed}"


def _bar_text(b) -> str:
    if b is None:
        return "no BAR"
    pf = ", prefetchable" if b.prefetchable else ""
    return f"{b.kind.value}{pf}, {format_size(b.size)}"


def layout_differences(predicted: Outcome, observed: Device) -> list[Difference]:
    """Every field in which the guest's view differs from `simulate`: BAR index, kind,
    prefetch, size; MSI-X entries, table and PBA BAR and offset."""
    assert predicted.layout is not None
    diffs: list[Difference] = []
    want = {b.index: b for b in predicted.layout.bars}
    got = {b.index: b for b in observed.bars}
    for i in sorted(set(want) | set(got)):
        p, o = want.get(i), got.get(i)
        if p is None or o is None:
            diffs.append(Difference(f"BAR{i}", _bar_text(p), _bar_text(o)))
            continue
        if p.kind != o.kind:
            diffs.append(Difference(f"BAR{i} kind", p.kind.value, o.kind.value))
        if p.prefetchable != o.prefetchable:
            diffs.append(Difference(f"BAR{i} prefetchable", str(p.prefetchable).lower(),
                                    str(o.prefetchable).lower()))
        if p.size != o.size:
            diffs.append(Difference(f"BAR{i} size", format_size(p.size), format_size(o.size)))
    pm, om = predicted.layout.msix, observed.msix
    if pm is None or om is None:
        if (pm is None) != (om is None):
            diffs.append(Difference("MSI-X", "absent" if pm is None else "present",
                                    "absent" if om is None else "present"))
        return diffs
    for label, a, b in (("MSI-X entries", pm.entries, om.entries),
                        ("MSI-X table BAR", pm.table_bar, om.table_bar),
                        ("MSI-X table offset", pm.table_offset, om.table_offset),
                        ("MSI-X PBA BAR", pm.pba_bar, om.pba_bar),
                        ("MSI-X PBA offset", pm.pba_offset, om.pba_offset)):
        if a != b:
            fmt = (lambda v: f"{v:#x}") if "offset" in label else str
            diffs.append(Difference(label, fmt(a), fmt(b)))
    return diffs


def refusal_agrees(predicted: str | None, qemu_said: str) -> bool:
    """QEMU's message contains barsafe's (barsafe quotes QEMU's words)."""
    return predicted is not None and predicted.lower() in qemu_said.lower()


def observed_outcome(accepted: bool, driver_bound: bool, msix_fired: bool) -> str:
    """refused | works | fails | quiet (bound, but no MSI-X interrupt seen: inconclusive)."""
    if not accepted:
        return "refused"
    if not driver_bound:
        return "fails"
    return "works" if msix_fired else "quiet"


def agreement(verdict: str, observed: str) -> tuple[bool | None, str]:
    """(agrees?, a plain sentence); None when the observation cannot decide."""
    if observed == "quiet":
        return None, "the driver bound but no MSI-X interrupt was seen: neither confirms nor refutes"
    expected = {"refused": "refused", "forbid": "fails", "safe": "works", "warn": "works"}[verdict]
    if expected == observed:
        return True, f"agrees: predicted {verdict}, observed {observed}"
    return False, f"DIFFERS: barsafe predicted {verdict}, the guest {observed}"
