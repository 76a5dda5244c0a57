"""Auditing relocation heuristics over many devices: what each strategy picks, and what it breaks.

The audit takes devices one at a time (callers stream them from thousands of
dumps) and keeps counters, the list of broken devices and, for the report's
per-host view, each distinct device once (a "kind", judged once, with its
candidate tables for the first DETAIL_LIMIT kinds) and per device only its
kind and slot (two small numbers), so memory grows with how many *different*
devices there are, not with their copies.  Verdicts are counted over the
devices that need relocation at that page size: a heuristic is only ever asked
for those.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import NamedTuple

from . import __version__
from .model import Device, Platform
from .score import Answer, Scored, answer
from .units import format_size

DEFAULT_STRATEGIES = ("qemu-rfc", "reverse", "extend-only", "cloud-hypervisor", "pve-tools", "qemu", "off")
BARSAFE = "barsafe"  # barsafe's own recommendation, audited like any strategy
COUNTS = ("safe", "warn", "forbid", "refused", "no_pick")
_KEY_FIELDS = tuple(f.name for f in fields(Device) if f.name not in ("slot", "origin"))


# device_key(device): what decides a device's answer, everything but its slot (IDs, layout,
# driver, modules), as a plain tuple (dataclasses.replace(device, slot=None) would check the
# whole device again), built in C.
device_key = attrgetter(*_KEY_FIELDS)
DETAIL_LIMIT = 1000  # distinct devices whose candidate tables (every candidate, its reasons) are kept
MEMO_LIMIT = 30_000  # distinct devices whose verdicts are kept when nothing is listed per device (jsonl,
# parquet): bounds memory on fleets of unlike hosts


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
    """One distinct device at one page size, as the audit keeps it (once per distinct device)."""
    broken_capability: dict | None  # vendor, device, problems: not a relocation question
    needs_relocation: bool
    strategies: tuple  # per strategy: (bucket, its forbid entry or None, its target BAR or None)
    any_broken: bool  # some strategy's pick breaks a forbid rule
    mined: bool = False  # judged by a mined (not reviewed) rule set
    pick: str | None = None  # barsafe's recommendation (off, bar0..bar5); None: no safe target
    pick_verdict: str | None = None  # its verdict (safe or warn)
    rules: tuple[str, ...] = ()  # the rule sets that judged it
    detail: tuple | None = None  # why, and every candidate with its reasons (_detail); None past DETAIL_LIMIT


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
    def __init__(self, library, page_sizes: list[int], strategies: list[str], io_space: bool = True,
                 per_device: bool = True):
        """per_device: keep what the report lists per device (each device's input, slot and kind,
        each kind's candidate tables); off for outputs that write their own rows (jsonl, parquet)."""
        self.library = library
        self.page_sizes = sorted(page_sizes)
        self.strategies = list(strategies) + [BARSAFE]
        self.io_space = io_space
        self.per_device = per_device
        self._cells = {(s, p): Cell() for s in self.strategies for p in self.page_sizes}
        self.inputs = 0
        self.failed_inputs: list[str] = []
        self.broken_capabilities: list[dict] = []  # not a relocation question: kept out of the verdicts
        self._mined_devices = 0  # devices judged by a mined (not reviewed) rule set
        # Each distinct device (everything but its slot) is a kind, judged once per page size for
        # the whole run: a fleet holds the same device many times over.
        self._kind_index: dict[tuple, int] = {}
        self._kinds: list[Device] = []  # the first copy of each
        self._kind_verdicts: list[list[Verdict]] = []  # per kind, one per page size
        self._kind_copies: list[int] = []
        # The counters are added up per kind when read (cells, mined_devices): a fleet's inputs
        # bring the same kinds again and again, and counting each input's copies into every
        # strategy's cell at every page size was most of merging an input.
        self._kind_counted = array("Q")  # per kind: its copies already in the counters
        # Per device, in input order (per_device): its kind and slot; per input holding any, its
        # name and where its devices start.  Twelve bytes a device and its slot, interned.
        self._device_kind = array("I")
        self._device_slot: list[str | None] = []
        self._host_names: list[str | None] = []
        self._host_start = array("Q")

    def add(self, device: Device, name: str | None = None) -> list[Verdict] | None:
        """Count one device read from input ``name`` (consecutive devices of one name are one
        host); its verdicts, one per page size (what record() turns into a row), or None for a
        device without MSI-X, which the audit leaves out."""
        if device.msix is None:
            return None
        kind = self._kind(device_key(device), device)
        verdicts = self._kind_verdicts[kind]
        self._kind_copies[kind] += 1
        self._list(verdicts, device.slot, name)
        if self.per_device:
            if not self._host_names or self._host_names[-1] != name:
                self._host_names.append(name)
                self._host_start.append(len(self._device_kind))
            self._device_kind.append(kind)
            self._device_slot.append(None if device.slot is None else sys.intern(device.slot))
        return verdicts

    def merge(self, tally: Tally, each=None) -> None:
        """Fold in the devices of the inputs after those seen so far, read elsewhere (a Tally):
        the same counts and lists, in the same order, as add() on each device would give.  Each
        distinct device is judged once for the whole run, however many tallies hold it.
        each(input, slot, device, verdicts), if given, is called per device in input order, as
        cmd_audit does after add()."""
        self.inputs += len(tally.names)
        self.failed_inputs.extend(name for name, _ in tally.failed)
        kinds = []
        for device, n in zip(tally.devices, tally.counts):
            kind = self._kind(device_key(device), device)
            self._kind_copies[kind] += n
            kinds.append(kind)
        per_device = [self._kind_verdicts[k] for k in kinds]
        listed = [any(v.broken_capability is not None or v.needs_relocation and v.any_broken
                      for v in verdicts) for verdicts in per_device]
        names = tally.names
        for i, slot, name in zip(tally.order, tally.slots, tally.input_of):  # lists keep input order
            if listed[i]:
                self._list(per_device[i], slot, names[name])
        if self.per_device:
            base = len(self._device_kind)
            self._device_kind.extend(kinds[i] for i in tally.order)
            self._device_slot.extend(None if s is None else sys.intern(s) for s in tally.slots)
            last = -1
            for n, name in enumerate(tally.input_of):  # a tally's inputs are new hosts, in order
                if name != last:
                    self._host_names.append(names[name])
                    self._host_start.append(base + n)
                    last = name
        if each is not None:
            for i, slot, name in zip(tally.order, tally.slots, tally.input_of):
                each(names[name], slot, tally.devices[i], per_device[i])

    def _kind(self, key: tuple, device: Device) -> int:
        kind = self._kind_index.get(key)
        if kind is None:
            if not self.per_device and len(self._kinds) >= MEMO_LIMIT:  # nothing refers to them
                self._count()
                self._kind_counted = array("Q")
                self._kind_index.clear()
                self._kinds.clear()
                self._kind_verdicts.clear()
                self._kind_copies.clear()
            detail = self.per_device and len(self._kinds) < DETAIL_LIMIT
            kind = self._kind_index[key] = len(self._kinds)
            self._kinds.append(device)
            self._kind_verdicts.append([self._judge(device, page, detail) for page in self.page_sizes])
            self._kind_copies.append(0)
            self._kind_counted.append(0)
        return kind

    @property
    def cells(self) -> dict[tuple[str, int], Cell]:
        """Per (strategy, page size): its counters and broken devices."""
        self._count()
        return self._cells

    @property
    def mined_devices(self) -> int:
        """Devices judged by a mined (not reviewed) rule set."""
        self._count()
        return self._mined_devices

    def _count(self) -> None:
        """Each kind's copies not counted yet, into the counters."""
        counted = self._kind_counted
        for kind, copies in enumerate(self._kind_copies):
            n = copies - counted[kind]
            if not n:
                continue
            counted[kind] = copies
            for page, v in zip(self.page_sizes, self._kind_verdicts[kind]):
                if v.mined and page == self.page_sizes[0]:
                    self._mined_devices += n
                needs_relocation = v.needs_relocation
                for name, (bucket, _, _) in zip(self.strategies, v.strategies):
                    cell = self._cells[(name, page)]
                    cell.devices += n
                    if needs_relocation:
                        cell.needs_relocation += n
                        setattr(cell, bucket, getattr(cell, bucket) + n)

    def _list(self, verdicts: list[Verdict], slot: str | None, name: str | None) -> None:
        """The lists, for one device at ``slot`` of input ``name``: its broken capability, what
        breaks it."""
        for page, v in zip(self.page_sizes, verdicts):
            if v.broken_capability is not None and page == self.page_sizes[0]:
                self.broken_capabilities.append({"input": name, "slot": slot, **v.broken_capability})
            if v.needs_relocation and v.any_broken:
                for strategy, (_, broken, _) in zip(self.strategies, v.strategies):
                    if broken is not None:
                        self._cells[(strategy, page)].broken.append({"input": name, "slot": slot, **broken})

    def _judge(self, device: Device, page: int, detail: bool = False) -> Verdict:
        a = answer(device, Platform(page, self.io_space), self.library)
        broken_capability = None
        if a.broken:  # the diagnosis does not depend on the host
            broken_capability = {"vendor": device.vendor, "device": device.device,
                                 "problems": [p.summary for p in a.msix.problems if p.blocking]}
        rows = {r.strategy: r for r in a.candidates}
        rec = a.recommendation
        buckets = []
        any_broken = False
        for name in self.strategies:
            row = rec if name == BARSAFE else rows.get(name)
            if row is None:
                buckets.append(("no_pick", None, None))
                continue
            # safe/warn/forbid/refused, or no_pick when the strategy leaves MSI-X where it is
            outcome = row.judgement.outcome
            target = outcome.target
            bucket = "refused" if outcome.refused else "no_pick" if target is None else row.judgement.verdict
            broken = None
            if bucket == "forbid":
                broken = _broken(a, row)
                any_broken = True
            buckets.append((bucket, broken, target))
        return Verdict(broken_capability, a.needs_relocation, tuple(buckets), any_broken,
                       mined=bool(a.mined), pick=None if rec is None else rec.option,
                       pick_verdict=None if rec is None else rec.verdict, rules=tuple(a.rulesets),
                       detail=_detail(a) if detail else None)

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
        return {"input": name, "slot": slot, "vendor": device.vendor, "device": device.device,
                "subsystem_vendor": device.subsystem_vendor, "subsystem_device": device.subsystem_device,
                "revision": device.revision, "driver": guest_driver(device),
                "broken_capability": verdicts[0].broken_capability is not None, "pages": pages}

    def _kind_result(self, kind: int) -> dict:
        d = self._kinds[kind]
        verdicts = self._kind_verdicts[kind]
        pages = {}
        for page, v in zip(self.page_sizes, verdicts):
            pages[format_size(page)] = {
                "needs_relocation": v.needs_relocation,
                "broken_capability": v.broken_capability is not None,
                "pick": v.pick, "verdict": v.pick_verdict,
                "why": None if v.detail is None else v.detail[0],
                "candidates": None if v.detail is None else _candidates(v.detail[1]),
            }
        return {"vendor": d.vendor, "device": d.device, "subsystem_vendor": d.subsystem_vendor,
                "subsystem_device": d.subsystem_device, "revision": d.revision, "class": d.class_code,
                "name": d.name, "driver": guest_driver(d), "rules": list(verdicts[0].rules),
                "copies": self._kind_copies[kind], "pages": pages}

    def hosts(self) -> list[dict]:
        """Each input holding MSI-X devices, in input order, with its devices' slots and kinds as
        two lists (the slot strings interned, the kind numbers shared: 16 bytes a device)."""
        out = []
        numbers = list(range(len(self._kinds)))  # one int object per kind, not one per device
        kinds, slots = self._device_kind, self._device_slot
        ends = [*self._host_start[1:], len(kinds)]
        for name, start, end in zip(self._host_names, self._host_start, ends):
            out.append({"input": name, "slots": slots[start:end],
                        "kinds": [numbers[k] for k in kinds[start:end]]})
        return out

    def result(self) -> dict:
        cells = self.cells
        return {
            "barsafe_version": __version__,
            "rules_version": self.library.version,
            "page_sizes": [format_size(p) for p in self.page_sizes],
            "io_space": self.io_space,
            "inputs": self.inputs,
            "inputs_failed": sorted(self.failed_inputs),
            "broken_capabilities": self.broken_capabilities,
            "mined_rule_devices": self.mined_devices,
            "strategies": {s: {format_size(p): cells[(s, p)].as_dict() for p in self.page_sizes}
                           for s in self.strategies},
            "kinds": [self._kind_result(k) for k in range(len(self._kinds))] if self.per_device else [],
            "hosts": self.hosts(),
        }


def guest_driver(d: Device) -> str | None:
    """The driver the guest will bind: the host's, or its first module where the host binds a stub."""
    return d.driver if d.driver not in (None, "vfio-pci", "pci-stub") else (
        d.modules[0] if d.modules else d.driver)


def _detail(a: Answer) -> tuple:
    """What the report shows when a device is opened: why, and every candidate as `which --json`
    gives it, with a note where a candidate that breaks no rule still needs explaining.  Kept as
    tuples of strings and numbers (_candidates makes the report's dicts of them): the collector
    stops tracking those, where a thousand devices' dicts and lists made every pass rescan them."""
    relocating = a.pages is not None and a.pages.needs_relocation
    candidates = []
    for r in a.candidates:
        outcome = r.judgement.outcome
        note = None
        if outcome.refused:
            pass  # QEMU's message is the candidate's 'refused'
        elif r.strategy == "off" and relocating:
            note = "MSI-X stays in a page shared with device registers: those accesses trap"
        elif r.option is None and outcome.vmm != "qemu":
            note = (outcome.notes[-1] if r.target is None and outcome.notes
                    else f"{outcome.vmm}'s own layout, not a QEMU option")
        candidates.append((r.strategy, r.target, r.verdict, r.mmio_cost, outcome.refused,
                           tuple((v.rule_id, v.severity, v.message, v.evidence) for v in r.judgement.violations),
                           note))
    return a.why, tuple(candidates)


def _candidates(kept: tuple) -> list[dict]:
    """_detail's candidates as the report gives them."""
    return [{"strategy": strategy, "target": target, "verdict": verdict, "mmio_cost": cost, "refused": refused,
             "reasons": [{"rule": rule, "severity": severity, "message": message, "evidence": evidence}
                         for rule, severity, message, evidence in reasons],
             "note": note}
            for strategy, target, verdict, cost, refused, reasons, note in kept]


def _broken(a: Answer, row: Scored) -> dict:
    d = a.device
    rule = next(v for v in row.judgement.violations if v.severity == "forbid")
    pick = a.recommendation.option if a.recommendation is not None else None
    return {"vendor": d.vendor, "device": d.device, "driver": guest_driver(d),
            "target": row.target, "rule": rule.rule_id, "barsafe_pick": pick}
