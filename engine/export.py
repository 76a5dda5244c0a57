"""The lookup table QEMU's 'auto' asks for: vendor:device -> a relocation target reported safe.

QEMU hw/vfio/pci.c vfio_pci_relocate_msix: "TODO: Lookup table for known
devices ... 'auto' becomes a lookup for combinations reported to work".  An
entry is only made where a driver's own rule set (not the generic set)
judges the target safe, and every device record with that ID agrees on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .model import Device, Platform
from .score import answer


@dataclass(frozen=True)
class Entry:
    vendor: int
    device: int
    target: int
    rulesets: tuple[str, ...]
    evidence: str  # what the rules said about the alternatives
    records: tuple[str, ...]  # where the device facts come from


@dataclass(frozen=True)
class Conflict:
    vendor: int
    device: int
    targets: tuple[int, ...]
    records: tuple[str, ...]


def build(devices: list[Device], platform: Platform, library) -> tuple[list[Entry], list[Conflict], int]:
    """(entries, conflicts, devices skipped for want of driver rules or a safe target)."""
    found: dict[tuple[int, int], list[tuple[int, tuple[str, ...], str, str]]] = {}
    skipped = 0
    for d in devices:
        if d.msix is None or d.vendor is None or d.device is None:
            continue
        a = answer(d, platform, library)
        rec = a.recommendation
        if a.rulesets in ((), ("generic",)) or not a.needs_relocation or rec is None or rec.verdict != "safe":
            skipped += 1
            continue
        broken = [f"{r.strategy}: {r.verdict} ({'; '.join(v.rule_id for v in r.judgement.violations)})"
                  for r in a.candidates[1:7] if r.verdict == "forbid"]
        checked = sum(len(rs.rules) for rs in library.rulesets.values() if rs.name in a.rulesets)
        evidence = (f"bar{rec.target} breaks none of {checked} rules"
                    + (f"; {', '.join(broken)}" if broken else ""))
        found.setdefault((d.vendor, d.device), []).append(
            (rec.target, a.rulesets, evidence, _record_name(d)))
    entries, conflicts = [], []
    for (vendor, device), hits in sorted(found.items()):
        targets = sorted({h[0] for h in hits})
        records = tuple(sorted({h[3] for h in hits}))
        if len(targets) > 1:
            conflicts.append(Conflict(vendor, device, tuple(targets), records))
            continue
        target, rulesets, evidence, _ = hits[0]
        entries.append(Entry(vendor, device, target, rulesets, evidence, records))
    return entries, conflicts, skipped


def _record_name(device: Device) -> str:
    """The record's file, relative to the working directory when inside it (stable output)."""
    path = (device.origin or device.slot or "?").split(":")[0]
    if os.path.isabs(path):
        rel = os.path.relpath(path)
        return path if rel.startswith("..") else rel
    return path
