"""Issue 9, input side: every impossible or hostile input is an InputError naming its place.

Each test feeds one kind of damage to a reader (or through `barsafe show`, which must print
one line `barsafe: error: path:line: ...` and exit 2, never 3).
"""

from __future__ import annotations

import pytest

from engine.model import Bar, BarKind, Device, Msix
from engine.units import parse_size, quote


# --- sizes and numbers ---------------------------------------------------------------------

@pytest.mark.parametrize("text, words", [
    ("9" * 5000, "5000 digits"),           # int() would raise Python's 4300-digit ValueError
    ("9" * 24 + "G", "24 digits"),
    ("99999999999G", "larger than the 64-bit address space"),
    ("\u0663K", "not a size"),              # ARABIC-INDIC DIGIT THREE: int() would take it
    ("4Q", "not a size"),
])
def test_parse_size_refuses_what_no_address_space_holds(text, words):
    with pytest.raises(ValueError) as err:
        parse_size(text)
    assert words in str(err.value) and len(str(err.value)) < 200


def test_parse_size_still_reads_lspci_sizes():
    assert [parse_size(t) for t in ("256", "64K", "1M", "2G", "8388608T", "00016K")] == [
        256, 64 << 10, 1 << 20, 2 << 30, 1 << 63, 16 << 10]


def test_quote_is_short_and_one_line():
    assert quote("a\nb" * 100) == repr(("a\nb" * 100)[:60] + "...")
    assert "\n" not in quote("x\n" * 10)
    assert quote(10 ** 5000) == "<a 16610-bit number>"


# --- the model: the backstop every source passes through -----------------------------------

@pytest.mark.parametrize("bar, words", [
    (Bar(0, BarKind.MEM32, 4097), "not a power of two"),
    (Bar(0, BarKind.MEM32, 12 << 10), "not a power of two"),
    (Bar(0, BarKind.MEM32, 4 << 30), "larger than a 32-bit BAR"),
    (Bar(0, BarKind.IO, 4 << 30), "larger than an I/O BAR"),
    (Bar(0, BarKind.MEM64, 1 << 64), "larger than a 64-bit BAR"),
])
def test_a_device_cannot_have_an_impossible_bar(bar, words):
    with pytest.raises(ValueError, match=words):
        Device("00:01.0", bars=(bar,))


def test_possible_extremes_and_unknown_size_are_kept():
    Device("00:01.0", bars=(Bar(0, BarKind.MEM32, 2 << 30), Bar(1, BarKind.MEM64, 1 << 63),
                            Bar(3, BarKind.IO, 1), Bar(4, BarKind.MEM32, 0)))


def test_a_relocated_layout_may_still_hold_what_a_device_cannot():
    """Cloud Hypervisor builds non-power-of-two BARs and QEMU can push an offset past 32 bits:
    relocate.py reports those, so Bar and Msix themselves must not refuse them."""
    Bar(0, BarKind.MEM64, 3 << 12)
    Msix(4, 0, 1 << 33, 0, (1 << 33) + 64)


@pytest.mark.parametrize("fields, words", [
    ({"msix": Msix(4, 0, 1 << 32, 0, 0)}, "32-bit offset field"),
    ({"revision": -1}, "revision"),
    ({"class_code": 0x10000}, "class_code"),
    ({"rom_size": -1}, "ROM size cannot be negative"),
    ({"rom_size": 3000}, "not a power of two"),
    ({"slot": "00:01.0\n--> x"}, "not a PCI address"),
    ({"slot": "00:20.0"}, "00 to 1f"),
    ({"slot": "00:01.8"}, "0 to 7"),
    ({"driver": "nvme --> hookscript: x"}, "contains '>'"),
    ({"driver": "nvme\n"}, "contains '\\n'"),
    ({"modules": ("nvme core",)}, "not a Linux module name"),
    ({"name": "Samsung\x1b[2J"}, "control character '\\x1b'"),
    ({"class_name": "a\u2028b"}, "control character"),
])
def test_a_device_cannot_have_impossible_fields(fields, words):
    with pytest.raises(ValueError) as err:
        Device(**{"slot": "00:01.0", **fields})
    assert words in str(err.value)


@pytest.mark.parametrize("slot", ["00:01.0", "0000:03:00.0", "10000:e1:00.0", "0001:1f:1f.7"])
def test_real_slots_are_valid(slot):
    assert Device(slot).slot == slot


@pytest.mark.parametrize("driver", ["vfio-pci", "xhci_hcd", "pci1xxxx serial", "speedfax+ pci",
                                    "CAF\u00c9 NAND", "B2C2 FlexcopII!II(b)!III"])
def test_real_driver_names_are_valid(driver):
    """Names of in-tree PCI drivers in Linux 6.12 (the last as kobject_set_name turns '/' into '!')."""
    assert Device("00:01.0", driver=driver).driver == driver
