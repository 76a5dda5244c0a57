"""Auditing relocation heuristics over many devices: what each strategy picks, and what it breaks.

The audit takes devices one at a time (callers stream them from thousands of
dumps) and keeps only counters and the list of broken devices, so memory
stays bounded.  Verdicts are counted over the devices that need relocation
at that page size: a heuristic is only ever asked for those.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .model import Device, Platform
from .score import Answer, Scored, answer
from .units import format_size

DEFAULT_STRATEGIES = ("qemu-rfc", "reverse", "extend-only", "cloud-hypervisor", "pve-tools", "qemu", "off")
BARSAFE = "barsafe"  # barsafe's own recommendation, audited like any strategy
COUNTS = ("safe", "warn", "forbid", "refused", "no_pick")
MEMO_LIMIT = 100_000  # distinct (device, page size) answers kept: bounds memory on fleets of unlike hosts


@dataclass
class Cell:
    devices: int = 0
    needs_relocation: int = 0
    safe: int = 0
    warn: int = 0
    forbid: int = 0
    refused: int = 0
    no_pick: int = 0
    broken: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"devices": self.devices, "needs_relocation": self.needs_relocation,
                **{k: getattr(self, k) for k in COUNTS},
                "broken": sorted(self.broken, key=lambda b: (b["vendor"] or 0, b["device"] or 0,
                                                             b["slot"] or "", b["target"] or 0))}


def _bucket(row: Scored | None) -> str:
    """safe/warn/forbid/refused, or no_pick when the strategy leaves MSI-X where it is."""
    if row is None:
        return "no_pick"
    if row.judgement.outcome.refused:
        return "refused"
    if row.target is None:
        return "no_pick"
    return row.verdict


class Audit:
    def __init__(self, library, page_sizes: list[int], strategies: list[str], io_space: bool = True):
        self.library = library
        self.page_sizes = sorted(page_sizes)
        self.strategies = list(strategies) + [BARSAFE]
        self.io_space = io_space
        self.cells = {(s, p): Cell() for s in self.strategies for p in self.page_sizes}
        self.inputs = 0
        self.failed_inputs: list[str] = []
        self.broken_capabilities: list[dict] = []  # not a relocation question: kept out of the verdicts
        self._memo: dict[tuple[Device, int], tuple] = {}
        self.mined_devices = 0  # devices judged by a mined (not reviewed) rule set

    def add(self, device: Device) -> None:
        if device.msix is None:
            return
        # A fleet holds the same device many times over: judge each distinct one once per page
        # size.  Everything but the slot decides the answer (IDs, layout, driver, modules).
        key = replace(device, slot=None)
        for page in self.page_sizes:
            seen = self._memo.get((key, page))
            if seen is None:
                if len(self._memo) >= MEMO_LIMIT:
                    self._memo.clear()
                seen = self._memo[(key, page)] = self._judge(device, page)
            broken_capability, needs_relocation, buckets, mined = seen
            if mined and page == self.page_sizes[0]:
                self.mined_devices += 1
            if broken_capability is not None and page == self.page_sizes[0]:
                self.broken_capabilities.append({"slot": device.slot, **broken_capability})
            for name, (bucket, broken) in zip(self.strategies, buckets):
                cell = self.cells[(name, page)]
                cell.devices += 1
                if not needs_relocation:
                    continue
                cell.needs_relocation += 1
                setattr(cell, bucket, getattr(cell, bucket) + 1)
                if broken is not None:
                    cell.broken.append({"slot": device.slot, **broken})

    def _judge(self, device: Device, page: int) -> tuple:
        """(broken capability or None, needs relocation, (bucket, forbid entry or None) per strategy)."""
        a = answer(device, Platform(page, self.io_space), self.library)
        broken_capability = None
        if a.broken:  # the diagnosis does not depend on the host
            broken_capability = {"vendor": device.vendor, "device": device.device,
                                 "problems": [p.summary for p in a.msix.problems if p.blocking]}
        rows = {r.strategy: r for r in a.candidates}
        buckets = []
        for name in self.strategies:
            row = a.recommendation if name == BARSAFE else rows.get(name)
            bucket = _bucket(row)
            buckets.append((bucket, _broken(a, row) if bucket == "forbid" else None))
        return broken_capability, a.needs_relocation, tuple(buckets), bool(a.mined)

    def result(self) -> dict:
        return {
            "page_sizes": [format_size(p) for p in self.page_sizes],
            "io_space": self.io_space,
            "inputs": self.inputs,
            "inputs_failed": sorted(self.failed_inputs),
            "broken_capabilities": self.broken_capabilities,
            "mined_rule_devices": self.mined_devices,
            "strategies": {s: {format_size(p): self.cells[(s, p)].as_dict() for p in self.page_sizes}
                           for s in self.strategies},
        }


def _broken(a: Answer, row: Scored) -> dict:
    d = a.device
    rule = next(v for v in row.judgement.violations if v.severity == "forbid")
    driver = d.driver if d.driver not in (None, "vfio-pci", "pci-stub") else (
        d.modules[0] if d.modules else d.driver)
    pick = a.recommendation.option if a.recommendation is not None else None
    return {"vendor": d.vendor, "device": d.device, "driver": driver,
            "target": row.target, "rule": rule.rule_id, "barsafe_pick": pick}
