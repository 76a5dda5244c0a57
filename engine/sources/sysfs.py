"""Reader for a sysfs PCI device directory (/sys/bus/pci/devices/DDDD:BB:DD.F or a copy).

`config` gives IDs, BAR types and the MSI-X capability (PCI Local Bus spec
6.2.5 BAR encoding; MSI-X capability ID 0x11: Message Control, Table
Offset/BIR, PBA Offset/BIR).  `resource` gives sizes ("start end flags" per
line, as drivers/pci/pci-sysfs.c resource_show prints them).  Unprivileged
readers get only the first 64 bytes of `config`, so capabilities may be
unreadable: that is said, never guessed.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

from ..errors import InputError, Location
from ..model import BAR_SLOTS, Bar, BarKind, Device, Msix
from .lspci import ACCESS_DENIED_NOTE

SYSFS_DEVICES = Path("/sys/bus/pci/devices")
SLOT_RE = re.compile(r"^[0-9a-f]{4,5}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
PCI_CAP_ID_MSIX = 0x11


def is_device_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config").is_file()


def read_tree(root: Path = SYSFS_DEVICES) -> list[Device]:
    """Every device under a devices/ directory, in slot order."""
    if not root.is_dir():
        raise InputError("not a directory of PCI devices", Location(str(root)))
    dirs = sorted(p for p in root.iterdir() if is_device_dir(p))
    if not dirs:
        raise InputError("no PCI device directories (with a 'config' file) here", Location(str(root)))
    return [read_device(p) for p in dirs]


def read_device(path: Path) -> Device:
    try:
        config = (path / "config").read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read config: {exc.strerror}", Location(str(path / "config"))) from None
    if len(config) < 64:
        raise InputError(f"config space is {len(config)} bytes; a PCI header needs 64",
                         Location(str(path / "config")))
    sizes, resource_starts = _resources(path)
    vendor, device = struct.unpack_from("<HH", config, 0)
    header_type = config[0x0E] & 0x7F
    notes: list[str] = []
    fields: dict = {
        "slot": path.name if SLOT_RE.match(path.name) else None,
        "vendor": vendor, "device": device,
        "revision": config[0x08],
        "class_code": config[0x0B] << 8 | config[0x0A],
        "origin": str(path),
    }
    slots = BAR_SLOTS if header_type == 0 else 2 if header_type == 1 else 0
    if header_type == 0:
        fields["subsystem_vendor"], fields["subsystem_device"] = struct.unpack_from("<HH", config, 0x2C)
    bars = []
    index = 0
    while index < slots:
        raw = struct.unpack_from("<I", config, 0x10 + 4 * index)[0]
        size = sizes.get(index, 0)
        if raw & 1:
            kind, prefetch, addr = BarKind.IO, False, raw & ~0x3
        else:
            kind = BarKind.MEM64 if (raw >> 1) & 3 == 2 else BarKind.MEM32
            prefetch = bool(raw & 0x8)
            addr = raw & ~0xF
            if kind is BarKind.MEM64 and index + 1 < slots:
                addr |= struct.unpack_from("<I", config, 0x14 + 4 * index)[0] << 32
        implemented = bool(raw or size)
        if implemented:
            if kind is BarKind.MEM64 and index == BAR_SLOTS - 1:
                raise InputError("BAR5 claims to be 64-bit", Location(str(path / "config")))
            assigned = bool(addr) or bool(resource_starts.get(index))
            bars.append(Bar(index, kind, size, prefetchable=prefetch, assigned=assigned))
        index += 2 if implemented and kind is BarKind.MEM64 else 1
    fields["msix"], unknown = _msix(config)
    if unknown:
        fields["msix_unknown"] = True
        notes.append(ACCESS_DENIED_NOTE.replace("lspci was run", "sysfs config was read"))
    fields["driver"] = _link_name(path / "driver")
    module = _link_name(path / "driver" / "module")
    fields["modules"] = (module,) if module else ()
    try:
        return Device(bars=tuple(bars), notes=tuple(notes), **fields)
    except ValueError as exc:
        raise InputError(str(exc), Location(str(path))) from None


def _resources(path: Path) -> tuple[dict[int, int], dict[int, int]]:
    sizes: dict[int, int] = {}
    starts: dict[int, int] = {}
    resource = path / "resource"
    if not resource.is_file():
        return sizes, starts
    for number, line in enumerate(resource.read_text().splitlines(), start=1):
        if number > BAR_SLOTS:
            break
        parts = line.split()
        try:
            start, end, flags = (int(p, 16) for p in parts)
        except ValueError:
            raise InputError(f"expected 'start end flags' in hex, got {line!r}",
                             Location(str(resource), number)) from None
        if end:
            sizes[number - 1] = end - start + 1
            starts[number - 1] = start
    return sizes, starts


def _msix(config: bytes) -> tuple[Msix | None, bool]:
    """Walk the capability list; (capability, whether the list was unreadable)."""
    status = struct.unpack_from("<H", config, 0x06)[0]
    if not status & 0x10:
        return None, False
    ptr = config[0x34] & 0xFC
    seen = set()
    while ptr and ptr not in seen:
        if ptr + 12 > len(config):
            return None, True
        seen.add(ptr)
        cap_id, nxt = config[ptr], config[ptr + 1] & 0xFC
        if cap_id == PCI_CAP_ID_MSIX:
            ctrl, table, pba = struct.unpack_from("<HII", config, ptr + 2)
            return Msix((ctrl & 0x7FF) + 1, table & 7, table & ~7, pba & 7, pba & ~7,
                        enabled=bool(ctrl & 0x8000)), False
        ptr = nxt
    return None, False


def _link_name(path: Path) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None
