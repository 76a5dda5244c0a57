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
from ..model import (BAR_SLOTS, Bar, BarKind, Device, Msix, bar_size_problem, driver_problem,
                     module_problem)
from ..units import quote

SYSFS_DEVICES = Path("/sys/bus/pci/devices")
# The kernel's own names (drivers/pci/probe.c pci_setup_device: "%04x:%02x:%02x.%d"); a copied
# directory under any other name is read with no slot.
SLOT_RE = re.compile(r"[0-9a-f]{4,8}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]")
PCI_CAP_ID_MSIX = 0x11
PCI_FIND_CAP_TTL = 48  # drivers/pci/pci.c: the most capabilities Linux walks
# drivers/pci/pci-sysfs.c pci_read_config: 64 bytes without CAP_SYS_ADMIN (128 for a CardBus
# bridge), else dev->cfg_size: 256, or 4096 with PCIe extended configuration space.
CONFIG_SIZES = (64, 128, 256, 4096)
MAX_RESOURCE_BYTES = 64 * 1024  # resource_show prints 17 lines of 57 bytes at most
# resource_show: "0x%016llx 0x%016llx 0x%016llx\n" (start, end, flags) per resource.
_RESOURCE_RE = re.compile(r"\s*((?:0[xX])?[0-9a-fA-F]{1,16})\s+((?:0[xX])?[0-9a-fA-F]{1,16})"
                          r"\s+((?:0[xX])?[0-9a-fA-F]{1,16})\s*")

NOT_READABLE_NOTE = ("capabilities not readable: sysfs config holds only the {size}-byte header"
                     " (read without root): run as root to see MSI-X")
# drivers/vfio/pci/vfio_pci_core.c vfio_pci_core_register_device refuses any header type but 0.
BRIDGE_NOTE = ("a PCI-to-PCI bridge (header type 1), not an endpoint: it has two BARs and forwards"
               " address windows to the bus behind it; vfio-pci accepts only header type 0"
               " devices, so it cannot be passed through")
CARDBUS_NOTE = ("a CardBus bridge (header type 2), not an endpoint: vfio-pci accepts only header"
                " type 0 devices, so it cannot be passed through")
CAP_INTO_HEADER_NOTE = ("capability pointer {ptr:#04x} points into the 64-byte header: Linux stops"
                        " walking the capability list there (drivers/pci/pci.c"
                        " __pci_find_next_cap_ttl), so no capability after it is used")


def is_device_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config").is_file()


def read_tree(root: Path = SYSFS_DEVICES) -> list[Device]:
    """Every device under a devices/ directory, in slot order."""
    if not root.is_dir():
        raise InputError("not a directory of PCI devices", Location(str(root)))
    try:
        dirs = sorted(p for p in root.iterdir() if is_device_dir(p))
    except OSError as exc:
        raise InputError(f"cannot list: {exc.strerror or exc}", Location(str(root))) from None
    if not dirs:
        raise InputError("no PCI device directories (with a 'config' file) here", Location(str(root)))
    return [read_device(p) for p in dirs]


def _read(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", Location(str(path))) from None


def read_device(path: Path) -> Device:
    config_path = path / "config"
    where = Location(str(config_path))
    config = _read(config_path, CONFIG_SIZES[-1])
    if len(config) < 64:
        raise InputError(f"config space is {len(config)} bytes; a PCI header needs 64", where)
    vendor, device = struct.unpack_from("<HH", config, 0)
    header_type = config[0x0E] & 0x7F
    if len(config) not in CONFIG_SIZES or (len(config) == 128 and header_type != 2):
        raise InputError(f"config space is {'more than 4096' if len(config) > 4096 else len(config)}"
                         f" bytes; the kernel gives 64 (without root), 256 or 4096: a truncated"
                         f" or padded copy?", where)
    if vendor == 0xFFFF:
        raise InputError("config space reads all ones (vendor ffff): the device is absent,"
                         " powered off or was removed", where)
    if header_type > 2:
        raise InputError(f"header type {header_type} is not one PCI defines (0 endpoint,"
                         f" 1 PCI bridge, 2 CardBus bridge)", where)
    resources = _resources(path)
    have_resources = (path / "resource").is_file()
    notes: list[str] = []
    fields: dict = {
        "slot": path.name if SLOT_RE.fullmatch(path.name) else None,
        "vendor": vendor, "device": device,
        "revision": config[0x08],
        "class_code": config[0x0B] << 8 | config[0x0A],
        "prog_if": config[0x09],
        "origin": str(path),
    }
    slots = BAR_SLOTS if header_type == 0 else 2 if header_type == 1 else 0
    if header_type == 0:
        fields["subsystem_vendor"], fields["subsystem_device"] = struct.unpack_from("<HH", config, 0x2C)
    else:
        notes.append(BRIDGE_NOTE if header_type == 1 else CARDBUS_NOTE)
    bars = []
    index = 0
    while index < slots:
        raw = struct.unpack_from("<I", config, 0x10 + 4 * index)[0]
        start, size, line = resources.get(index, (0, 0, None))
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
                raise InputError("BAR5 claims to be 64-bit: there is no register for its upper half",
                                 where)
            if (problem := bar_size_problem(kind, size)):
                raise InputError(f"BAR{index}: {problem}", Location(str(path / "resource"), line))
            # A resource line of zeros is a resource the kernel emptied (it could not or would not
            # assign it): unassigned, whatever address the register still holds; VFIO reports its
            # region with size 0 (relocate.qemu_view).  Without a resource file, the register says.
            assigned = bool(addr or start) and (size > 0 or not have_resources)
            try:
                bars.append(Bar(index, kind, size, prefetchable=prefetch, assigned=assigned))
            except ValueError as exc:
                raise InputError(f"BAR{index}: {exc}", where) from None
        index += 2 if implemented and kind is BarKind.MEM64 else 1
    fields["msix"], fields["msix_unknown"], note = _msix(config, header_type, where)
    if note is not None:
        notes.append(note)  # last: the CLI quotes a device's last note when MSI-X is unknown
    fields["driver"] = _link_name(path / "driver", driver_problem)
    module = _link_name(path / "driver" / "module", module_problem)
    fields["modules"] = (module,) if module else ()
    try:
        return Device(bars=tuple(bars), notes=tuple(notes), **fields)
    except ValueError as exc:
        raise InputError(str(exc), Location(str(path))) from None


def _resources(path: Path) -> dict[int, tuple[int, int, int]]:
    """BAR index -> (start, size, line) from the `resource` file; no file, no sizes."""
    out: dict[int, tuple[int, int, int]] = {}
    resource = path / "resource"
    if not resource.is_file():
        return out
    data = _read(resource, MAX_RESOURCE_BYTES)
    if len(data) > MAX_RESOURCE_BYTES:
        raise InputError(f"larger than {MAX_RESOURCE_BYTES} bytes: not a sysfs resource file",
                         Location(str(resource)))
    for number, raw in enumerate(data.split(b"\n")[:BAR_SLOTS], start=1):
        where = Location(str(resource), number)
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            raise InputError("not text: resource_show prints hex numbers only", where) from None
        m = _RESOURCE_RE.fullmatch(line)
        if not m:
            if not line.strip():
                break  # the file ended before this BAR's line
            raise InputError(f"expected 'start end flags' in hex, got {quote(line)}", where)
        start, end, _flags = (int(g, 16) for g in m.groups())
        if end < start:
            raise InputError(f"resource ends ({end:#x}) below where it starts ({start:#x})", where)
        if end:
            out[number - 1] = (start, end - start + 1, number)
    return out


def _msix(config: bytes, header_type: int, where: Location) -> tuple[Msix | None, bool, str | None]:
    """Walk the capability list as Linux does: (MSI-X, whether unknown, a note on what was seen)."""
    status = struct.unpack_from("<H", config, 0x06)[0]
    if not status & 0x10:  # PCI_STATUS_CAP_LIST
        return None, False, None
    if len(config) < 256:
        return None, True, NOT_READABLE_NOTE.format(size=len(config))
    ptr = config[0x14 if header_type == 2 else 0x34]  # PCI_CB_CAPABILITY_LIST, PCI_CAPABILITY_LIST
    seen = set()
    for _ in range(PCI_FIND_CAP_TTL):
        if not ptr:
            break
        if ptr < 0x40:
            return None, False, CAP_INTO_HEADER_NOTE.format(ptr=ptr)
        ptr &= ~3
        if ptr in seen:
            break
        seen.add(ptr)
        cap_id, nxt = config[ptr], config[ptr + 1]
        if cap_id == 0xFF:  # Linux reads an ID of ff as the end of the list
            break
        if cap_id == PCI_CAP_ID_MSIX:
            if ptr + 12 > len(config):
                raise InputError(f"MSI-X capability at {ptr:#x} runs past the end of the"
                                 f" {len(config)}-byte config space", where)
            ctrl, table, pba = struct.unpack_from("<HII", config, ptr + 2)
            try:
                return (Msix((ctrl & 0x7FF) + 1, table & 7, table & ~7, pba & 7, pba & ~7,
                             enabled=bool(ctrl & 0x8000)), False, None)
            except ValueError as exc:
                raise InputError(f"MSI-X capability at {ptr:#x}: {exc}", where) from None
        ptr = nxt
    return None, False, None


def _link_name(path: Path, problem) -> str | None:
    """The name a sysfs link points to (driver, module), checked like any other input."""
    try:
        name = os.path.basename(os.readlink(path))
    except OSError:
        return None
    if (why := problem(name)):
        raise InputError(why, Location(str(path)))
    return name
