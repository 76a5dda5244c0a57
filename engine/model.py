"""The device as the hypervisor sees it: immutable values, derived facts as properties.

A PCI function has six BAR slots.  A 64-bit memory BAR occupies two of them
(its own and the next, which holds the upper address bits), so the next slot
is not free even though nothing is implemented there.
"""

from __future__ import annotations

import re
from enum import Enum

from .frozen import Frozen, _set, replace
from .units import KiB, align_up, char_category, format_size, is_hex, is_pow2, quote

BAR_SLOTS = 6
MSIX_ENTRY_SIZE = 16  # PCI_MSIX_ENTRY_SIZE: address lo/hi, data, vector control
PAGE_SIZES = (4 * KiB, 16 * KiB, 64 * KiB)
# Table Offset/BIR and PBA Offset/BIR are 32-bit registers, the BIR in bits 2:0 (PCI 3.0 6.8.2).
# Only a real device is held to it: a simulated relocation may compute a wider offset, which
# relocate.py reports as the overflow it is.
MSIX_OFFSET_LIMIT = 1 << 32
MAX_ROM_SIZE = 1 << 31  # the Expansion ROM BAR is a 32-bit register (address bits 31:11)
MAX_DEVICES = 1 << 16  # per input: one PCI domain has 256 buses x 32 devices x 8 functions


class BarKind(Enum):
    IO = "io"
    MEM32 = "mem32"
    MEM64 = "mem64"

    @property
    def is_memory(self) -> bool:
        return self is not BarKind.IO


# A BAR's size is its lowest writable address bit (Linux drivers/pci/probe.c pci_size:
# "size & ~(size-1)"), so a power of two no larger than the register's top address bit: bit 31
# for a 32-bit memory or I/O BAR, bit 63 for a 64-bit one.  PCI 3.0 6.2.5.1 asks I/O BARs to
# stay within 256 bytes, but Linux does not enforce that (it masks I/O sizes only with
# IO_SPACE_LIMIT: 64K on x86, 16M on arm64), so neither does barsafe: only the impossible is refused.
MAX_BAR_SIZE = {BarKind.IO: 1 << 31, BarKind.MEM32: 1 << 31, BarKind.MEM64: 1 << 63}
_BAR_WIDTH = {BarKind.IO: "an I/O", BarKind.MEM32: "a 32-bit", BarKind.MEM64: "a 64-bit"}


def _size_text(size: int) -> str:
    return f"{format_size(size)} ({size:#x} bytes)" if size >= 1024 else f"{size} bytes"


def bar_size_problem(kind: BarKind, size: int) -> str | None:
    """Why a real device cannot have a BAR of this kind and size (0: size unknown, allowed)."""
    if size < 0:
        return "BAR size cannot be negative"
    if size and not is_pow2(size):
        return (f"BAR size {_size_text(size)} is not a power of two: a BAR's size is its"
                f" lowest writable address bit")
    if size > MAX_BAR_SIZE[kind]:
        return (f"BAR size {_size_text(size)} is larger than {_BAR_WIDTH[kind]} BAR can"
                f" describe (at most {format_size(MAX_BAR_SIZE[kind])})")
    return None


def rom_size_problem(size: int) -> str | None:
    if size < 0:
        return "ROM size cannot be negative"
    if size and not is_pow2(size):
        return f"ROM size {_size_text(size)} is not a power of two (it is sized like a BAR)"
    if size > MAX_ROM_SIZE:
        return f"ROM size {_size_text(size)} is larger than the 32-bit ROM BAR can describe (2G)"
    return None


# lspci.c show_slot_name prints "%04x:" for the domain (a 32-bit number: 5 digits behind Intel
# VMD, whose domains start at 0x10000), then show_slot_path "%02x:%02x.%d": bus, device (5 bits,
# so at most 1f) and function (3 bits); sysfs names devices the same way with the domain always
# present.  Nothing else may stand where a slot goes into a QEMU or Proxmox configuration.
# is_slot checks it without compiling the pattern (tests/test_startup.py holds the two equal).
SLOT_PATTERN = r"(?:[0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[01][0-9a-fA-F]\.[0-7]"
# A module name is a kbuild file name with '-' turned into '_', at most MODULE_NAME_LEN - 1 = 55
# characters (include/linux/module.h); older pcimap lookups print the '-' form.
MODULE_PATTERN = r"[A-Za-z0-9_-]{1,55}"
_MODULE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# A driver name is struct pci_driver .name as sysfs shows it under /sys/bus/pci/drivers, where
# kobject_set_name turns '/' into '!'.  In-tree PCI drivers use more than [A-Za-z0-9_-]: spaces
# ("pci1xxxx serial", "intel ips"), '+' ("speedfax+ pci"), non-ASCII letters ("CAFÉ NAND");
# other names carry '(', ')' and '.'.  None needs ':', '<', '>', '=', ',', '#', quotes or
# control characters, the characters that could start a new option or close a comment in a
# hypervisor configuration ("-->", "hookscript:").
_DRIVER_PUNCT = frozenset(" _-+.()!")
DRIVER_NAME_MAX = 255  # NAME_MAX: one sysfs directory entry


def is_slot(text: str) -> bool:
    """re.fullmatch(SLOT_PATTERN, text): [DDDD[DDDD]:]BB:DD.F, device 00-1f, function 0-7."""
    head, tail = text[:-7], text[-7:]
    return (len(tail) == 7 and is_hex(tail[:2], 2, 2) and tail[2] == ":" and tail[3] in "01"
            and is_hex(tail[4], 1) and tail[5] == "." and tail[6] in "01234567"
            and (not head or (head[-1] == ":" and is_hex(head[:-1], 8, 4))))


def is_module_name(text: str) -> bool:
    """re.fullmatch(MODULE_PATTERN, text)."""
    return 1 <= len(text) <= 55 and _MODULE_CHARS.issuperset(text)


def slot_problem(slot: str) -> str | None:
    if is_slot(slot):
        return None
    m = re.fullmatch(r"(?:([0-9a-fA-F]+):)?([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-9a-fA-F]+)", slot)
    if m:
        domain, bus, dev, fn = m.groups()
        if domain is not None and not 4 <= len(domain) <= 8:
            return f"PCI domain {quote(domain)} must be 4 to 8 hex digits"
        if len(bus) != 2:
            return f"PCI bus {quote(bus)} must be 2 hex digits"
        if len(dev) != 2 or int(dev, 16) > 0x1F:
            return f"PCI device {quote(dev)} must be 2 hex digits, 00 to 1f"
        return f"PCI function {quote(fn)} must be 0 to 7"
    return f"not a PCI address: {quote(slot)} (expected [DDDD:]BB:DD.F, e.g. 0000:03:00.0)"


def driver_problem(name: str) -> str | None:
    if not name or len(name) > DRIVER_NAME_MAX:
        return f"driver name must be 1 to {DRIVER_NAME_MAX} characters"
    if name != name.strip(" "):
        return f"driver name {quote(name)} has leading or trailing spaces"
    bad = next((ch for ch in name if not (ch.isalnum() or ch in _DRIVER_PUNCT)), None)
    if bad is not None:
        return (f"driver name {quote(name)} contains {quote(bad)}: Linux driver names are"
                f" letters, digits, spaces and _-+.()!")
    return None


def module_problem(name: str) -> str | None:
    if is_module_name(name):
        return None
    return (f"module name {quote(name)} is not a Linux module name"
            f" (1 to 55 of A-Z a-z 0-9 _ -)")


def text_problem(text: str) -> str | None:
    """Free text (device and class names, notes) may hold any printable character, tabs too.

    Control characters and Unicode line/paragraph separators are refused: lspci prints names from
    pci.ids, which holds none, and would break a report line.  Other odd characters (bidi
    controls, private use) are kept and escaped where text is rendered (engine/report)."""
    if text.isascii() and text.replace("\t", " ").isprintable():
        return None  # no ASCII control character: most text, without a look at each character
    for ch in text:
        if ch != "\t" and char_category(ch) in ("Cc", "Zl", "Zp"):
            return f"control character {quote(ch)} in text {quote(text)}"
    return None


class SlotState(Enum):
    """What occupies one of the six BAR registers."""

    IMPLEMENTED = "implemented"
    UPPER_HALF = "upper-half"  # high dword of the 64-bit BAR below it
    EMPTY = "empty"


class Bar(Frozen):
    index: int
    kind: BarKind
    size: int  # bytes; 0 when the source did not say (lspci prints no [size=])
    prefetchable: bool  # default False
    assigned: bool  # the host gave it an address; default True

    def __init__(self, index: int, kind: BarKind, size: int, prefetchable: bool = False,
                 assigned: bool = True) -> None:
        if not 0 <= index < BAR_SLOTS:
            raise ValueError(f"BAR index {index} out of range 0..5")
        if kind is BarKind.MEM64 and index == BAR_SLOTS - 1:
            raise ValueError("BAR5 cannot be 64-bit: there is no slot for its upper half")
        if size < 0:
            raise ValueError("BAR size cannot be negative")
        if kind is BarKind.IO and prefetchable:
            raise ValueError("an I/O BAR cannot be prefetchable")
        _set(self, "index", index)
        _set(self, "kind", kind)
        _set(self, "size", size)
        _set(self, "prefetchable", prefetchable)
        _set(self, "assigned", assigned)

    @property
    def is_io(self) -> bool:
        return self.kind is BarKind.IO

    @property
    def is_64bit(self) -> bool:
        return self.kind is BarKind.MEM64


class Msix(Frozen):
    """The MSI-X capability: where the vector table and pending-bit array live."""

    entries: int
    table_bar: int
    table_offset: int
    pba_bar: int
    pba_offset: int
    enabled: bool | None  # default None: not in the input

    def __init__(self, entries: int, table_bar: int, table_offset: int, pba_bar: int, pba_offset: int,
                 enabled: bool | None = None) -> None:
        if not 1 <= entries <= 2048:
            raise ValueError(f"MSI-X table size {entries} out of range 1..2048")
        for name, bir in (("table_bar", table_bar), ("pba_bar", pba_bar)):
            if not 0 <= bir <= 7:
                raise ValueError(f"MSI-X {name} {bir} out of range (BIR is 3 bits)")
        for name, off in (("table_offset", table_offset), ("pba_offset", pba_offset)):
            if off < 0 or off % 8:
                raise ValueError(f"MSI-X {name} {off:#x} must be a non-negative multiple of 8")
        _set(self, "entries", entries)
        _set(self, "table_bar", table_bar)
        _set(self, "table_offset", table_offset)
        _set(self, "pba_bar", pba_bar)
        _set(self, "pba_offset", pba_offset)
        _set(self, "enabled", enabled)

    @property
    def table_bytes(self) -> int:
        return self.entries * MSIX_ENTRY_SIZE

    @property
    def pba_bytes(self) -> int:
        """QEMU's PBA size: one bit per vector, in whole 64-bit words."""
        return align_up(self.entries, 64) // 8


class Device(Frozen, uncompared=("origin",)):
    # Every field but slot defaults to None, or to () for the tuples and False for msix_unknown.
    slot: str | None
    vendor: int | None
    device: int | None
    subsystem_vendor: int | None
    subsystem_device: int | None
    class_code: int | None  # base class << 8 | subclass, as lspci -nn prints it
    prog_if: int | None  # programming interface, the class code's low byte; None: not in the input
    revision: int | None
    name: str | None  # lspci's "vendor device" text
    class_name: str | None
    bars: tuple[Bar, ...]
    rom_size: int | None
    msix: Msix | None
    msix_unknown: bool  # MSI-X present but its table location was not in the input
    driver: str | None
    modules: tuple[str, ...]
    notes: tuple[str, ...]
    provenance: tuple[tuple[str, str], ...]  # where the facts come from (records)
    origin: str | None  # file:line it was read from; not compared

    def __init__(self, slot: str | None, vendor: int | None = None, device: int | None = None,
                 subsystem_vendor: int | None = None, subsystem_device: int | None = None,
                 class_code: int | None = None, prog_if: int | None = None, revision: int | None = None,
                 name: str | None = None, class_name: str | None = None, bars: tuple[Bar, ...] = (),
                 rom_size: int | None = None, msix: Msix | None = None, msix_unknown: bool = False,
                 driver: str | None = None, modules: tuple[str, ...] = (), notes: tuple[str, ...] = (),
                 provenance: tuple[tuple[str, str], ...] = (), origin: str | None = None) -> None:
        _set(self, "slot", slot)
        _set(self, "vendor", vendor)
        _set(self, "device", device)
        _set(self, "subsystem_vendor", subsystem_vendor)
        _set(self, "subsystem_device", subsystem_device)
        _set(self, "class_code", class_code)
        _set(self, "prog_if", prog_if)
        _set(self, "revision", revision)
        _set(self, "name", name)
        _set(self, "class_name", class_name)
        _set(self, "bars", bars)
        _set(self, "rom_size", rom_size)
        _set(self, "msix", msix)
        _set(self, "msix_unknown", msix_unknown)
        _set(self, "driver", driver)
        _set(self, "modules", modules)
        _set(self, "notes", notes)
        _set(self, "provenance", provenance)
        _set(self, "origin", origin)
        self._check()

    def _check(self) -> None:
        """What a real device (as a source reads it, or a rule example describes it) can be.

        Readers check the same things first, to point at the line; this is the backstop.
        Layouts a simulation computes are not Devices and are not held to these bounds."""
        for name, top in (("vendor", 0xFFFF), ("device", 0xFFFF), ("subsystem_vendor", 0xFFFF),
                          ("subsystem_device", 0xFFFF), ("class_code", 0xFFFF), ("prog_if", 0xFF),
                          ("revision", 0xFF)):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= top:
                raise ValueError(f"{name} {quote(value)} out of range 0..{top:#x}")
        problem = None
        if self.slot is not None:
            problem = slot_problem(self.slot)
        if problem is None and self.driver is not None:
            problem = driver_problem(self.driver)
        for module in self.modules:
            problem = problem or module_problem(module)
        for text in (self.name, self.class_name, *self.notes,
                     *(part for pair in self.provenance for part in pair)):
            if text is not None:
                problem = problem or text_problem(text)
        for bar in self.bars:
            problem = problem or bar_size_problem(bar.kind, bar.size)
        if self.rom_size is not None:
            problem = problem or rom_size_problem(self.rom_size)
        if self.msix is not None:
            for what, offset in (("table", self.msix.table_offset), ("PBA", self.msix.pba_offset)):
                if offset >= MSIX_OFFSET_LIMIT:
                    problem = problem or (f"MSI-X {what} offset {offset:#x} does not fit the"
                                          f" capability's 32-bit offset field")
        if problem is not None:
            raise ValueError(problem)
        indices = [b.index for b in self.bars]
        if indices != sorted(set(indices)):
            raise ValueError(f"BARs must have distinct indices in order, got {quote(indices)}")
        for bar in self.bars:
            if bar.is_64bit and bar.index + 1 in indices:
                raise ValueError(
                    f"BAR{bar.index} is 64-bit, so slot {bar.index + 1} holds its upper half"
                    f" and cannot be a BAR of its own")

    def bar(self, index: int) -> Bar | None:
        for bar in self.bars:
            if bar.index == index:
                return bar
        return None

    def slot_state(self, index: int) -> SlotState:
        if self.bar(index) is not None:
            return SlotState.IMPLEMENTED
        below = self.bar(index - 1) if index > 0 else None
        if below is not None and below.is_64bit:
            return SlotState.UPPER_HALF
        return SlotState.EMPTY

    @property
    def id_text(self) -> str:
        if self.vendor is None or self.device is None:
            return "????:????"
        return f"{self.vendor:04x}:{self.device:04x}"

    @property
    def label(self) -> str:
        return f"{self.slot or '-'} [{self.id_text}]" + (f" {self.name}" if self.name else "")

    def with_layout(self, bars: tuple[Bar, ...], msix: Msix | None) -> "Device":
        return replace(self, bars=bars, msix=msix)


class Layout(Frozen):
    """BARs and MSI-X capability as the guest sees them: the device's own (relocation off) or
    what a relocation computes (engine/relocate.py).  Rules compare two of them; computed
    layouts are not Devices and are not held to a real device's bounds."""

    bars: tuple[Bar, ...]
    msix: Msix | None
    device_backed: int | None  # bytes of the MSI-X BAR backed by the device; None (default): all

    def __init__(self, bars: tuple[Bar, ...], msix: Msix | None, device_backed: int | None = None) -> None:
        _set(self, "bars", bars)
        _set(self, "msix", msix)
        _set(self, "device_backed", device_backed)

    def bar(self, index: int) -> Bar | None:
        for bar in self.bars:
            if bar.index == index:
                return bar
        return None


class Platform(Frozen):
    """The host: its page size decides what QEMU traps; I/O space decides which BARs it sees."""

    page_size: int  # default 4K
    io_space: bool  # default True

    def __init__(self, page_size: int = 4 * KiB, io_space: bool = True) -> None:
        if page_size <= 0 or page_size & (page_size - 1):
            raise ValueError(f"page size {page_size} is not a power of two")
        _set(self, "page_size", page_size)
        _set(self, "io_space", io_space)
