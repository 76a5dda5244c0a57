"""Hypothesis strategies for random *valid* PCI devices with MSI-X, shared by the property tests.

Slots: empty / io / mem32 / mem64 (mem64 only below BAR5; its upper-half slot stays empty).
Sizes are powers of two: io 4..256 bytes, mem32 4K..mem32_max (1G unless asked), mem64 4K..16G.
The MSI-X table lies in a memory BAR (offset a multiple of 8, fully inside, and below 4 GiB since
the capability's offset field is 32 bits); the PBA (align_up(entries, 64) / 8 bytes) lies in a
memory BAR too, not overlapping the table.
"""

from __future__ import annotations

from hypothesis import assume, strategies as st

from engine.model import BAR_SLOTS, PAGE_SIZES, Bar, BarKind, Device, Msix, Platform
from engine.units import GiB, KiB, align_up

OFFSET_LIMIT = 1 << 32  # Table Offset/BIR and PBA Offset/BIR are 32-bit registers


def pow2(lo: int, hi: int) -> st.SearchStrategy[int]:
    """A power of two in [lo, hi], small ones favoured (a full small BAR is where edges are)."""
    a, b = lo.bit_length() - 1, hi.bit_length() - 1
    return st.one_of(st.integers(a, b), st.integers(a, min(b, a + 3))).map(lambda e: 1 << e)


def _offset(draw, lo: int, hi: int) -> int:
    """A multiple of 8 in [lo, hi] (both multiples of 8), edges favoured."""
    return draw(st.one_of(st.sampled_from([lo, hi]), st.integers(lo // 8, hi // 8).map(lambda n: n * 8)))


@st.composite
def devices(draw, mem32_max: int = 1 * GiB) -> Device:
    bars: list[Bar] = []
    index = 0
    while index < BAR_SLOTS:
        kinds = ["empty", "io", "mem32"] + (["mem64"] if index + 1 < BAR_SLOTS else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "io":
            bars.append(Bar(index, BarKind.IO, draw(pow2(4, 256)), assigned=draw(st.booleans())))
        elif kind != "empty":
            size = draw(pow2(4 * KiB, mem32_max if kind == "mem32" else 16 * GiB))
            bars.append(Bar(index, BarKind(kind), size, prefetchable=draw(st.booleans()),
                            assigned=draw(st.booleans())))
        index += 2 if kind == "mem64" else 1

    memory = [b for b in bars if b.kind.is_memory]
    assume(memory)
    table_bar = draw(st.sampled_from(memory))
    most = min(2048, table_bar.size // 16)
    entries = draw(st.one_of(st.integers(1, most), st.integers(max(1, most - 2), most)))  # full BARs
    table_bytes, pba_bytes = entries * 16, align_up(entries, 64) // 8
    table_offset = _offset(draw, 0, min(table_bar.size, OFFSET_LIMIT) - table_bytes)

    # Free ranges [lo, hi] for the PBA's offset, per memory BAR.
    ranges = []
    for bar in memory:
        top = min(bar.size, OFFSET_LIMIT) - pba_bytes
        if bar is not table_bar:
            ranges.append((bar, 0, top))
            continue
        if table_offset >= pba_bytes:
            ranges.append((bar, 0, table_offset - pba_bytes))
        if top >= table_offset + table_bytes:
            ranges.append((bar, table_offset + table_bytes, top))
    assume(ranges)
    pba_bar, lo, hi = draw(st.sampled_from(ranges))
    msix = Msix(entries, table_bar.index, table_offset, pba_bar.index, _offset(draw, lo, hi),
                enabled=draw(st.booleans()))

    ident = st.integers(0, 0xFFFF)
    return Device(
        slot=f"0000:{draw(st.integers(0, 0xFF)):02x}:{draw(st.integers(0, 0x1F)):02x}.{draw(st.integers(0, 7))}",
        vendor=draw(st.integers(1, 0xFFFE)), device=draw(ident),
        subsystem_vendor=draw(st.integers(1, 0xFFFE)), subsystem_device=draw(ident),
        class_code=draw(ident), revision=draw(st.integers(0, 0xFF)),
        bars=tuple(bars), msix=msix)


platforms = st.builds(Platform, page_size=st.sampled_from(PAGE_SIZES), io_space=st.booleans())
