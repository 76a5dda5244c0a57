"""Rule coverage: which MSI-X devices a reviewed rule set judges, which only a mined one
(barsafe mine's drafts), and which only the generic set; per guest driver and per
vendor:device ID.  What a rule author reads to see what a fleet still lacks.

A device's rule sets are chosen as `which` and `audit` choose them (score.choose_rules):
by ID or class, failing that by driver or module; a reviewed set that matches supersedes
mined ones.  Devices are taken one at a time and only counters are kept, so a fleet's
dumps stream through (engine/sources.stream).  No I/O here: the CLI reads the inputs and
pci.ids, and engine/report/coverage.py renders the result.
"""

from __future__ import annotations

from .model import Device
from .names import Lookup, lacks_names, named
from .rules.library import HOST_STUB_DRIVERS
from .score import is_mined

REVIEWED, MINED, GENERIC = "reviewed", "mined", "generic"
KINDS = (REVIEWED, MINED, GENERIC)
# how a rule set claimed the device, from the first word of library.matching's reason
MATCHED_BY = ("id", "class", "driver", "module")


def guest_driver(device: Device) -> str | None:
    """The driver the guest will run: the host's, or its first module when the host binds a
    stub (vfio-pci, pci-stub) for passthrough, as audit names it."""
    if device.driver and device.driver not in HOST_STUB_DRIVERS:
        return device.driver
    return device.modules[0] if device.modules else device.driver


def judged_by(device: Device, library) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(reviewed | mined | generic, the rule sets that judge it, how they matched it)."""
    found = library.matching(device)
    reviewed = [(rs, why) for rs, why in found if not is_mined(rs)]
    chosen = reviewed or found
    how = tuple(dict.fromkeys(why.split(" ", 1)[0] for _, why in chosen))
    kind = REVIEWED if reviewed else MINED if found else GENERIC
    return kind, tuple(rs.name for rs, _ in chosen), how


class _Row:
    __slots__ = ("devices", "counts", "rulesets", "matched_by", "drivers", "ids", "device")

    def __init__(self, device: Device) -> None:
        self.devices = 0
        self.counts = dict.fromkeys(KINDS, 0)
        self.rulesets: dict[str, None] = {}
        self.matched_by: dict[str, None] = {}
        self.drivers: dict[str | None, None] = {}
        self.ids: dict[tuple, None] = {}
        self.device = device  # the first one seen: its names and class stand for the row

    def add(self, device: Device, kind: str, rulesets: tuple[str, ...], how: tuple[str, ...]) -> None:
        self.devices += 1
        self.counts[kind] += 1
        self.rulesets.update(dict.fromkeys(rulesets))
        self.matched_by.update(dict.fromkeys(how))
        self.drivers[guest_driver(device)] = None
        self.ids[(device.vendor, device.device)] = None
        if lacks_names(self.device) and not lacks_names(device):
            self.device = device

    def order(self) -> tuple:
        """Gaps first (only the generic set, then only mined), then the most devices."""
        return (-self.counts[GENERIC], -self.counts[MINED], -self.devices)


class Coverage:
    def __init__(self, library) -> None:
        self.library = library
        self.inputs = 0
        self.failed_inputs: list[str] = []
        self.counts = dict.fromkeys(KINDS, 0)
        self.devices = 0
        self.msix_unknown = 0  # capabilities the input did not show (lspci without root)
        self._drivers: dict[str | None, _Row] = {}
        self._ids: dict[tuple, _Row] = {}

    def read(self, name: str, devices) -> None:
        """The devices of one input (read whole: an input that fails half-way is ``fail``)."""
        self.inputs += 1
        for device in devices:
            self.add(device)

    def fail(self, name: str) -> None:
        self.inputs += 1
        self.failed_inputs.append(name)

    def add(self, device: Device) -> None:
        if device.msix is None:
            self.msix_unknown += device.msix_unknown
            return
        kind, rulesets, how = judged_by(device, self.library)
        self.devices += 1
        self.counts[kind] += 1
        driver = guest_driver(device)
        self._drivers.setdefault(driver, _Row(device)).add(device, kind, rulesets, how)
        self._ids.setdefault((device.vendor, device.device), _Row(device)).add(device, kind, rulesets, how)

    def names_needed(self) -> set[int] | None:
        """The vendors to look up in pci.ids before result(): of the IDs whose devices came
        without names (sysfs, lspci -n); None when every ID has its names."""
        lacking = [row.device for row in self._ids.values() if lacks_names(row.device)]
        return {d.vendor for d in lacking if d.vendor is not None} if lacking else None

    def result(self, names: Lookup | str | None = None) -> dict:
        """The report as plain data (the JSON output; engine/schemas/coverage.json).  ``names``:
        the names of IDs the inputs gave without them (pci.ids: engine/sources/pciids.py), or
        why there are none; None when no ID needed one."""
        ids = []
        for (vendor, device), row in sorted(self._ids.items(), key=lambda kv: (kv[1].order(), _id_key(kv[0]))):
            d = row.device if names is None else named(row.device, names)
            ids.append({"vendor": vendor, "device": device, "name": d.name, "class": d.class_code,
                        "class_name": d.class_name, **_counts(row),
                        "drivers": sorted(row.drivers, key=lambda n: (n is None, n or ""))})
        drivers = [{"driver": driver, **_counts(row),
                    "ids": [{"vendor": v, "device": d} for v, d in sorted(row.ids, key=_id_key)]}
                   for driver, row in sorted(self._drivers.items(),
                                             key=lambda kv: (kv[1].order(), kv[0] is None, kv[0] or ""))]
        unavailable = names if isinstance(names, str) else None
        names_from = None if names is None or unavailable is not None else names.about
        return {"inputs": self.inputs, "inputs_failed": sorted(self.failed_inputs),
                "devices": self.devices, **self.counts, "msix_unknown": self.msix_unknown,
                "names_from": names_from,
                "names_unavailable": unavailable,
                "drivers": drivers, "ids": ids}


def _counts(row: _Row) -> dict:
    return {"devices": row.devices, **row.counts, "rulesets": sorted(row.rulesets),
            "matched_by": [m for m in MATCHED_BY if m in row.matched_by]}


def _id_key(key: tuple) -> tuple:
    vendor, device = key
    return (vendor is None, vendor or 0, device is None, device or 0)
