"""The device as the hypervisor sees it: immutable values, derived facts as properties.

A PCI function has six BAR slots.  A 64-bit memory BAR occupies two of them
(its own and the next, which holds the upper address bits), so the next slot
is not free even though nothing is implemented there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from .units import KiB, align_up

BAR_SLOTS = 6
MSIX_ENTRY_SIZE = 16  # PCI_MSIX_ENTRY_SIZE: address lo/hi, data, vector control
PAGE_SIZES = (4 * KiB, 16 * KiB, 64 * KiB)


class BarKind(Enum):
    IO = "io"
    MEM32 = "mem32"
    MEM64 = "mem64"

    @property
    def is_memory(self) -> bool:
        return self is not BarKind.IO


class SlotState(Enum):
    """What occupies one of the six BAR registers."""

    IMPLEMENTED = "implemented"
    UPPER_HALF = "upper-half"  # high dword of the 64-bit BAR below it
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class Bar:
    index: int
    kind: BarKind
    size: int  # bytes; 0 when the source did not say (lspci prints no [size=])
    prefetchable: bool = False
    assigned: bool = True  # the host gave it an address

    def __post_init__(self) -> None:
        if not 0 <= self.index < BAR_SLOTS:
            raise ValueError(f"BAR index {self.index} out of range 0..5")
        if self.kind is BarKind.MEM64 and self.index == BAR_SLOTS - 1:
            raise ValueError("BAR5 cannot be 64-bit: there is no slot for its upper half")
        if self.size < 0:
            raise ValueError("BAR size cannot be negative")
        if self.kind is BarKind.IO and self.prefetchable:
            raise ValueError("an I/O BAR cannot be prefetchable")

    @property
    def is_io(self) -> bool:
        return self.kind is BarKind.IO

    @property
    def is_64bit(self) -> bool:
        return self.kind is BarKind.MEM64


@dataclass(frozen=True, slots=True)
class Msix:
    """The MSI-X capability: where the vector table and pending-bit array live."""

    entries: int
    table_bar: int
    table_offset: int
    pba_bar: int
    pba_offset: int
    enabled: bool | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.entries <= 2048:
            raise ValueError(f"MSI-X table size {self.entries} out of range 1..2048")
        for name in ("table_bar", "pba_bar"):
            bir = getattr(self, name)
            if not 0 <= bir <= 7:
                raise ValueError(f"MSI-X {name} {bir} out of range (BIR is 3 bits)")
        for name in ("table_offset", "pba_offset"):
            off = getattr(self, name)
            if off < 0 or off % 8:
                raise ValueError(f"MSI-X {name} {off:#x} must be a non-negative multiple of 8")

    @property
    def table_bytes(self) -> int:
        return self.entries * MSIX_ENTRY_SIZE

    @property
    def pba_bytes(self) -> int:
        """QEMU's PBA size: one bit per vector, in whole 64-bit words."""
        return align_up(self.entries, 64) // 8


@dataclass(frozen=True, slots=True)
class Device:
    slot: str | None
    vendor: int | None = None
    device: int | None = None
    subsystem_vendor: int | None = None
    subsystem_device: int | None = None
    class_code: int | None = None  # base class << 8 | subclass, as lspci -nn prints it
    revision: int | None = None
    name: str | None = None  # lspci's "vendor device" text
    class_name: str | None = None
    bars: tuple[Bar, ...] = ()
    rom_size: int | None = None
    msix: Msix | None = None
    msix_unknown: bool = False  # MSI-X present but its table location was not in the input
    driver: str | None = None
    modules: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    provenance: tuple[tuple[str, str], ...] = ()  # where the facts come from (records)
    origin: str | None = field(default=None, compare=False)  # file:line it was read from

    def __post_init__(self) -> None:
        indices = [b.index for b in self.bars]
        if indices != sorted(set(indices)):
            raise ValueError(f"BARs must have distinct indices in order, got {indices}")
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


@dataclass(frozen=True, slots=True)
class Platform:
    """The host: its page size decides what QEMU traps; I/O space decides which BARs it sees."""

    page_size: int = 4 * KiB
    io_space: bool = True

    def __post_init__(self) -> None:
        if self.page_size <= 0 or self.page_size & (self.page_size - 1):
            raise ValueError(f"page size {self.page_size} is not a power of two")
