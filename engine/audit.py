"""Auditing relocation heuristics over many devices: what each strategy picks, and what it breaks.

The audit takes devices one at a time (callers stream them from thousands of
dumps) and keeps only counters and the list of broken devices, so memory
stays bounded.  Verdicts are counted over the devices that need relocation
at that page size: a heuristic is only ever asked for those.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field, fields
from typing import NamedTuple

from .model import Device, Platform
from .score import Answer, Scored, answer
from .units import format_size

DEFAULT_STRATEGIES = ("qemu-rfc", "reverse", "extend-only", "cloud-hypervisor", "pve-tools", "qemu", "off")
BARSAFE = "barsafe"  # barsafe's own recommendation, audited like any strategy
COUNTS = ("safe", "warn", "forbid", "refused", "no_pick")
_KEY_FIELDS = tuple(f.name for f in fields(Device) if f.name not in ("slot", "origin"))


def device_key(device: Device) -> tuple:
    """What decides a device's answer: everything but its slot (IDs, layout, driver, modules).
    A plain tuple: dataclasses.replace(device, slot=None) would check the whole device again."""
    return tuple([getattr(device, name) for name in _KEY_FIELDS])
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


class Verdict(NamedTuple):
    """One distinct device at one page size, as the audit keeps it (memoised)."""
    broken_capability: dict | None  # vendor, device, problems: not a relocation question
    needs_relocation: bool
    strategies: tuple  # per strategy: (bucket, its forbid entry or None, its target BAR or None)
    any_broken: bool  # some strategy's pick breaks a forbid rule
    mined: bool = False  # judged by a mined (not reviewed) rule set


def _bucket(row: Scored | None) -> str:
    """safe/warn/forbid/refused, or no_pick when the strategy leaves MSI-X where it is."""
    if row is None:
        return "no_pick"
    if row.judgement.outcome.refused:
        return "refused"
    if row.target is None:
        return "no_pick"
    return row.verdict


class Tally:
    """The MSI-X devices of consecutive inputs, read but not yet judged: what a Dask worker sends
    back (engine/fleet.py).  Each distinct device (everything but its slot) is kept once, with how
    often it occurs; each occurrence is two small numbers and a slot, in input order, so the audit
    that merges it (Audit.merge) counts and lists exactly what Audit.add would have, in the same
    order.  A fleet's devices are mostly alike, so a tally is far smaller than its inputs."""

    def __init__(self) -> None:
        self.devices: list[Device] = []  # the first occurrence of each distinct device
        self.counts: list[int] = []  # occurrences of each
        self.order = array("I")  # per occurrence, in input order: index into devices
        self.slots: list[str | None] = []  # per occurrence: its slot
        self.input_of = array("I")  # per occurrence: index into names
        self.names: list[str] = []  # every input, read or not, in order
        self.failed: list[tuple[str, str]] = []  # (input, error message), in order
        self._index: dict[tuple, int] | None = {}

    def __getstate__(self) -> dict:  # the index is rebuilt only if needed: half the bytes sent
        state = {k: v for k, v in self.__dict__.items() if k != "_index"}
        state["_index"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def read(self, name: str, devices: list[Device]) -> None:
        """The devices of one input, in order."""
        number = len(self.names)
        self.names.append(name)
        index = self._index
        if index is None:
            index = self._index = {device_key(d): i for i, d in enumerate(self.devices)}
        for device in devices:
            if device.msix is None:
                continue
            key = device_key(device)
            i = index.get(key)
            if i is None:
                i = index[key] = len(self.devices)
                self.devices.append(device)
                self.counts.append(0)
            self.counts[i] += 1
            self.order.append(i)
            self.slots.append(None if device.slot is None else sys.intern(device.slot))
            self.input_of.append(number)

    def fail(self, name: str, error: str) -> None:
        """An input that could not be read: counted as an input, listed as failed."""
        self.names.append(name)
        self.failed.append((name, error))

    def __len__(self) -> int:
        return len(self.order)


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
        self._memo: dict[tuple[tuple, int], Verdict] = {}
        self.mined_devices = 0  # devices judged by a mined (not reviewed) rule set

    def add(self, device: Device) -> list[Verdict] | None:
        """Count one device; its verdicts, one per page size (what record() turns into a row), or
        None for a device without MSI-X, which the audit leaves out."""
        if device.msix is None:
            return None
        # A fleet holds the same device many times over: judge each distinct one once per page
        # size.  Everything but the slot decides the answer (IDs, layout, driver, modules).
        verdicts = self._verdicts(device_key(device), device)
        self._count(verdicts, 1)
        self._list(verdicts, device.slot)
        return verdicts

    def merge(self, tally: Tally, each=None) -> None:
        """Fold in the devices of the inputs after those seen so far, read elsewhere (a Tally):
        the same counts and lists, in the same order, as add() on each device would give.  Each
        distinct device is judged once for the whole run (the memo add() uses), however many
        tallies hold it.  each(input, slot, device, verdicts), if given, is called per device in
        input order, as cmd_audit does after add()."""
        self.inputs += len(tally.names)
        self.failed_inputs.extend(name for name, _ in tally.failed)
        per_device = []
        for device, n in zip(tally.devices, tally.counts):
            verdicts = self._verdicts(device_key(device), device)
            self._count(verdicts, n)
            per_device.append(verdicts)
        listed = [any(v.broken_capability is not None or v.needs_relocation and v.any_broken
                      for v in verdicts) for verdicts in per_device]
        for i, slot in zip(tally.order, tally.slots):  # lists keep input order across devices
            if listed[i]:
                self._list(per_device[i], slot)
        if each is not None:
            for i, slot, name in zip(tally.order, tally.slots, tally.input_of):
                each(tally.names[name], slot, tally.devices[i], per_device[i])

    def _verdicts(self, key: tuple, device: Device) -> list[Verdict]:
        verdicts = []
        for page in self.page_sizes:
            seen = self._memo.get((key, page))
            if seen is None:
                if len(self._memo) >= MEMO_LIMIT:
                    self._memo.clear()
                seen = self._memo[(key, page)] = self._judge(device, page)
            verdicts.append(seen)
        return verdicts

    def _count(self, verdicts: list[Verdict], n: int) -> None:
        """The counters, for n copies of one device."""
        for page, v in zip(self.page_sizes, verdicts):
            if v.mined and page == self.page_sizes[0]:
                self.mined_devices += n
            needs_relocation = v.needs_relocation
            for name, (bucket, _, _) in zip(self.strategies, v.strategies):
                cell = self.cells[(name, page)]
                cell.devices += n
                if needs_relocation:
                    cell.needs_relocation += n
                    setattr(cell, bucket, getattr(cell, bucket) + n)

    def _list(self, verdicts: list[Verdict], slot: str | None) -> None:
        """The lists, for one device at ``slot``: its broken capability, what breaks it."""
        for page, v in zip(self.page_sizes, verdicts):
            if v.broken_capability is not None and page == self.page_sizes[0]:
                self.broken_capabilities.append({"slot": slot, **v.broken_capability})
            if v.needs_relocation and v.any_broken:
                for name, (_, broken, _) in zip(self.strategies, v.strategies):
                    if broken is not None:
                        self.cells[(name, page)].broken.append({"slot": slot, **broken})

    def _judge(self, device: Device, page: int) -> Verdict:
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
            buckets.append((bucket, _broken(a, row) if bucket == "forbid" else None,
                            None if row is None else row.target))
        return Verdict(broken_capability, a.needs_relocation, tuple(buckets),
                       any(b[1] is not None for b in buckets),
                       mined=bool(a.mined))

    def record(self, name: str, slot: str | None, device: Device, verdicts: list[Verdict]) -> dict:
        """One device as a row of `--format jsonl` / `parquet`: where it is, what it is, and per
        page size what each strategy does with it (verdict null where no relocation is needed)."""
        pages = {}
        for page, v in zip(self.page_sizes, verdicts):
            needs = v.needs_relocation
            pages[format_size(page)] = {
                "needs_relocation": needs,
                "strategies": {s: {"verdict": bucket if needs else None,
                                   "target": target if needs else None,
                                   "rule": broken["rule"] if needs and broken else None}
                               for s, (bucket, broken, target) in zip(self.strategies, v.strategies)},
            }
        driver = device.driver if device.driver not in (None, "vfio-pci", "pci-stub") else (
            device.modules[0] if device.modules else device.driver)
        return {"input": name, "slot": slot, "vendor": device.vendor, "device": device.device,
                "subsystem_vendor": device.subsystem_vendor, "subsystem_device": device.subsystem_device,
                "revision": device.revision, "driver": driver,
                "broken_capability": verdicts[0].broken_capability is not None, "pages": pages}

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
