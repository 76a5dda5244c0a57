"""Sizes the way lspci prints them (64K, 1M, 256) and the power-of-two arithmetic QEMU uses."""

from __future__ import annotations

import re

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_SUFFIX = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": 1024 * GiB}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'64K' -> 65536. Raises ValueError on anything else."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (expected e.g. 256, 64K, 1M, 2G)")
    return int(m.group(1)) * _SUFFIX[m.group(2).upper()]


def format_size(value: int) -> str:
    """pciutils lspci.c show_size: divide by 1024 while it divides evenly."""
    suffixes = ["", "K", "M", "G", "T"]
    i = 0
    while i < len(suffixes) - 1 and value and value % 1024 == 0:
        value //= 1024
        i += 1
    return f"{value}{suffixes[i]}"


def align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment


def pow2ceil(value: int) -> int:
    """QEMU util/host-utils.h pow2ceil: the smallest power of two >= value (1 for 0)."""
    if value <= 1:
        return 1
    return 1 << (value - 1).bit_length()


def is_pow2(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0
