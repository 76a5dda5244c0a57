"""Issue 9, input side: every impossible or hostile input is an InputError naming its place.

Each test feeds one kind of damage to a reader (or through `barsafe show`, which must print
one line `barsafe: error: path:line: ...` and exit 2, never 3).
"""

from __future__ import annotations

import io
import os
import struct
import sys
import time
from pathlib import Path

import pytest
import yaml

from engine import cli
from engine.errors import InputError
from engine.model import Bar, BarKind, Device, Msix
from engine.sources import MAX_INPUT_BYTES, load, lspci, record, sysfs
from engine.units import parse_size, quote


pytestmark = pytest.mark.usefixtures("private_cache")


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


def test_quote_is_short_one_line_and_has_nothing_to_escape_twice():
    assert quote("ab" * 100) == "'" + "ab" * 30 + "...'"
    assert quote("x\n\x1b\u202e\\y") == "'x<U+000A><U+001B><U+202E>\\y'"
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
    ({"driver": "nvme\n"}, "contains '<U+000A>'"),
    ({"modules": ("nvme core",)}, "not a Linux module name"),
    ({"name": "Samsung\x1b[2J"}, "control character '<U+001B>'"),
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


# --- through the CLI: one line, the place, exit 2 ------------------------------------------

HEAD = "02:00.0 RAID bus controller [0104]: Broadcom / LSI MegaRAID SAS-3 3008 [Fury] [1000:005f] (rev 02)\n"
REGION = "\tRegion 0: Memory at 91e00000 (32-bit, non-prefetchable) [size=64K]\n"
MSIX = ("\tCapabilities: [c0] MSI-X: Enable+ Count=4 Masked-\n"
        "\t\tVector table: BAR=0 offset=00002000\n\t\tPBA: BAR=0 offset=00003000\n")
GOOD = HEAD + REGION + MSIX


def fails_at(capsys, path: Path, line: int | None, *words: str, column: int | None = None,
             command: tuple[str, ...] = ("show",), place: Path | None = None) -> str:
    """`barsafe COMMAND path` exits 2 with one line naming the place (``place``, a file inside a
    sysfs directory, else ``path``), line and column; returns that line."""
    rc = cli.main([*command, str(path), *(["--page-size", "64K"] if command == ("which",) else [])])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("barsafe: error: ") and err.count("\n") == 1, err
    where = str(place or path) + (f":{line}" if line is not None else "") + (f":{column}" if column else "")
    assert f"{where}: " in err, err
    for w in words:
        assert w in err, err
    assert len(err) < 400, err  # no unbounded value quoted
    return err


def write(tmp_path: Path, text: str | bytes, name: str = "in.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("command", [("show",), ("which",)])
@pytest.mark.parametrize("text, line, words", [
    (GOOD.replace("[size=64K]", "[size=4097]"), 2, "not a power of two"),
    (GOOD.replace("[size=64K]", "[size=12K]"), 2, "not a power of two"),
    (GOOD.replace("[size=64K]", "[size=99999999999G]"), 2, "larger than the 64-bit address space"),
    (GOOD.replace("[size=64K]", "[size=" + "9" * 5000 + "]"), 2, "5000 digits"),
    (GOOD.replace("[size=64K]", "[size=4G]"), 2, "larger than a 32-bit BAR"),
    (GOOD.replace("Region 0", "Region " + "1" * 5000), 2, "more digits than lspci prints"),
    (GOOD.replace("Region 0", "Region \u0663"), 2, "cannot read BAR line"),
    (GOOD.replace("91e00000", "1" * 17), 2, "BAR address"),
    (GOOD.replace("Count=4", "Count=" + "9" * 5000), 3, "more digits than lspci prints"),
    (GOOD.replace("BAR=0 offset=00002000", "BAR=" + "9" * 5000 + " offset=00002000"), 4, "BAR number"),
    (GOOD.replace("offset=00002000", "offset=100002000"), 4, "offset"),
    (GOOD.replace("[size=64K]", "[enhanced] [size=12K]"), 2, "Enhanced Allocation"),
])
def test_lspci_numbers_no_device_can_have(capsys, tmp_path, command, text, line, words):
    fails_at(capsys, write(tmp_path, text), line, words, command=command)


@pytest.mark.parametrize("text, line, words", [
    (GOOD + "\tKernel driver in use: nvme --> hookscript: local:snippets/x.pl\n", 6, "contains '>'"),
    (GOOD + "\tKernel driver in use: nvme\x1b[2J\n", 6, "contains '<U+001B>'"),
    (GOOD + "\tKernel modules: nvme, evil;rm\n", 6, "not a Linux module name"),
    (GOOD + "02:00.8 RAID bus controller [0104]: x [1000:005f]\n", 6, "function '8' must be 0 to 7"),
    (GOOD + "02:20.0 RAID bus controller [0104]: x [1000:005f]\n", 6, "00 to 1f"),
    (HEAD.replace("Broadcom", "Broad\x1bcom") + REGION, 1, "control character"),
    (HEAD + REGION.replace("\t", "   "), 2, "indented with 3 spaces"),
    (GOOD + REGION.replace("\t", "        ").replace("Region 0", "Region 2"), 6, "indented with 8 spaces among"),
    (HEAD + REGION.lstrip("\t"), 2, "tab-indented detail line"),
    (GOOD + "\tKernel driver in use: a\n\tKernel driver in use: b\n", 7, "printed twice"),
    (GOOD + MSIX, 6, "MSI-X capability printed twice"),
    (GOOD + REGION, 6, "BAR0 printed twice"),
])
def test_lspci_lines_lspci_cannot_have_printed(capsys, tmp_path, text, line, words):
    fails_at(capsys, write(tmp_path, text), line, words)


def test_a_table_line_after_another_capability_is_not_msix(tmp_path):
    text = (HEAD + REGION + "\tCapabilities: [c0] MSI-X: Enable+ Count=4 Masked-\n"
            "\tCapabilities: [d0] Vital Product Data\n\t\tVector table: BAR=0 offset=00002000\n"
            "\t\tPBA: BAR=0 offset=00003000\n")
    (d,) = lspci.parse(text)
    assert d.msix is None and d.msix_unknown


def test_lspci_regexes_are_linear_on_long_lines():
    """`\\s*\\(` with search() and `\\s*\\[` with findall() rescanned runs of spaces: quadratic."""
    start = time.monotonic()
    for text in (HEAD.rstrip("\n") + " " * 200_000 + "x\n" + REGION,
                 HEAD + REGION.replace("[size=64K]", " " * 200_000 + "[size=64K]")):
        lspci.parse(text)
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("separator", ["\x0c", "\x1c", "\x85", "\u2028"])
def test_line_numbers_count_newlines_only(separator):
    """str.splitlines also splits at these: every line number after one would be off by one."""
    with pytest.raises(InputError) as err:
        lspci.parse(HEAD + f"\tDeviceName: a{separator}b\n" + "bad\n")
    assert err.value.location.line == 3
    with pytest.raises(InputError) as err:
        lspci.parse(HEAD.replace("Broadcom", f"Broad{separator}com") + REGION)
    assert err.value.location.line == 1 and "control character" in err.value.message


# --- encodings ------------------------------------------------------------------------------

def stdin_bytes(monkeypatch, data: bytes) -> None:
    """Standard input as a C-locale process gets it: an ASCII text layer over the bytes."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="ascii"))


def test_non_utf8_record_on_stdin_names_line_and_column_in_any_locale(capsys, monkeypatch):
    stdin_bytes(monkeypatch, b"bars: []\nname: caf\xe9\n")
    rc = cli.main(["show", "-"])
    err = capsys.readouterr().err
    assert rc == 2 and "<stdin>:2:10: not UTF-8 text (byte 0xe9)" in err, err


def test_utf8_on_stdin_is_read_as_utf8_whatever_the_locale(capsys, monkeypatch):
    stdin_bytes(monkeypatch, "bars: []\nname: Caf\u00e9 NAND\n".encode())
    assert cli.main(["show", "-"]) == 0
    assert "Caf\u00e9 NAND" in capsys.readouterr().out


def test_lspci_with_raw_vpd_bytes_is_read(capsys, monkeypatch):
    """ls-vpd.c print_vpd_string passes bytes >= 0x80 through: a Latin-1 VPD string is real lspci output."""
    stdin_bytes(monkeypatch, (HEAD + "\tCapabilities: [e0] Vital Product Data\n").encode()
                + b"\t\tProduct Name: Carte r\xe9seau\n" + (REGION + MSIX).encode())
    assert cli.main(["show", "-"]) == 0
    assert "64K" in capsys.readouterr().out


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path):
    (d,) = load(str(write(tmp_path, b"\xef\xbb\xbf" + GOOD.encode())))
    assert d.slot == "02:00.0"


def test_utf16_with_a_byte_order_mark_is_read(tmp_path):
    """Windows PowerShell's `lspci -vvv > dump.txt` (through WSL) writes UTF-16LE with a BOM."""
    (d,) = load(str(write(tmp_path, GOOD.encode("utf-16"))))
    assert d.slot == "02:00.0" and d.msix is not None
    with pytest.raises(InputError, match="UTF-16"):
        load(str(write(tmp_path, b"\xff\xfe" + GOOD.encode("utf-16-le")[:-1])))


def test_closed_or_unreadable_stdin_is_an_input_error(monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(InputError, match="no standard input"):
        load("-")


def test_input_size_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr("engine.sources.MAX_INPUT_BYTES", 1000)
    with pytest.raises(InputError, match="larger than"):
        load(str(write(tmp_path, GOOD * 100)))
    assert MAX_INPUT_BYTES >= 16 << 20  # a whole large machine's lspci -vvv fits


def test_a_file_name_with_a_nul_byte_is_an_input_error():
    with pytest.raises(InputError, match="NUL"):
        load("dump\0.txt")


# --- YAML records ---------------------------------------------------------------------------

RECORD_MSIX = "msix: {entries: 4, table: {bar: 0, offset: '0x2000'}, pba: {bar: 0, offset: '0x3000'}}\n"
BARS = "bars:\n  - {index: 0, kind: mem32, size: 64K}\n"


@pytest.mark.parametrize("text, line, column, words", [
    ("bars:\n  - {index: 0, kind: mem32, size: 4097}\n", 2, 35, "not a power of two"),
    ("bars:\n  - {index: 0, kind: mem32, size: 12K}\n", 2, 35, "not a power of two"),
    ("bars:\n  - {index: 0, kind: mem64, size: 99999999999G}\n", 2, 35, "64-bit address space"),
    ("bars:\n  - {index: " + "1" * 5000 + ", kind: mem32}\n", 2, 13, "too long"),
    (BARS + RECORD_MSIX.replace("'0x2000'", "0x100000000"), 3, 44, "32-bit offset field"),
    (BARS + RECORD_MSIX.replace("'0x2000'", "1" * 5000), 3, 44, "too long"),
    (BARS + RECORD_MSIX.replace("'0x2000'", "' 1_0'"), 3, 44, "must be a number"),
    ("rom: -1\n" + BARS, 1, 6, "cannot be negative"),
    ("class: '-1'\n" + BARS, 1, 8, "hex digits"),
    ("revision: 'fff'\n" + BARS, 1, 11, "1 to 2 hex digits"),
    ("revision: " + "f" * 5000 + "\n" + BARS, 1, 11, "1 to 2 hex digits"),
    ("id: '+123:0097'\n" + BARS, 1, 5, "1000:0097"),
    ("barsafe: true\n" + BARS, 1, 10, "unsupported record format"),
    ("barsafe: 1.0\n" + BARS, 1, 10, "unsupported record format"),
    ("barsafe: 2001-13-45\n" + BARS, 1, 10, "month must be in 1..12"),
    ("slot: \"00:01.0\\n--> x\"\n" + BARS, 1, 7, "not a PCI address"),
    ("slot: '00:01.8'\n" + BARS, 1, 7, "0 to 7"),
    ("driver: 'nvme --> x'\n" + BARS, 1, 9, "contains '>'"),
    ("driver: \"vfio-pci\\nhookscript: local:snippets/x\"\n" + BARS, 1, 9, "contains '<U+000A>'"),
    ("modules: [nvme, 'a b']\n" + BARS, 1, 17, "not a Linux module name"),
    ("name: \"a\\x1b[2Jb\"\n" + BARS, 1, 7, "control character"),
    ("notes: [\"a\\u2028b\"]\n" + BARS, 1, 9, "control character"),
    ("name: a\x01b\n" + BARS, 1, 8, "not allowed"),
    ("bars: !foo []\n", 1, 7, "YAML tags"),
    ("bars: !!python/object/apply:os.system [echo]\n", 1, 7, "YAML tags"),
    ("slot: !!str 00:01.0\n" + BARS, 1, 7, "YAML tags"),
    ("bars: []\n<<: {slot: '00:01.0'}\n", 2, 1, "merge keys"),
    ("bars: &b []\nnotes: *b\n", 1, 7, "anchors"),
    ("bars: []\nname: *x\n", 2, 7, "aliases"),
    ("bars: []\n? [a]\n: 1\n", 2, 3, "plain names"),
    ("bars: []\n" + "z" * 1000 + ": 1\n", 2, 1, "unknown key 'zzzzzzzzzz"),
    ("bars: [" + "{index: 0, kind: io}, " * 10_000 + "]\n", 1, 140, "more than 6 BARs"),
    ("bars: [{index: 1, kind: io}, {index: 1, kind: io}]\n", 1, 7, "distinct indices"),
])
def test_record_mistakes_name_line_and_column(capsys, tmp_path, text, line, column, words):
    fails_at(capsys, write(tmp_path, text, "dev.yaml"), line, words, column=column)


@pytest.mark.parametrize("loader", ["libyaml", "python"])
@pytest.mark.parametrize("text", ["bars: " + "[" * 10_000 + "]" * 10_000 + "\n",
                                  "bars:\n" + "".join(" " * i + "- \n" for i in range(1, 3000))])
def test_deep_nesting_is_a_clear_error_not_a_recursion_error(monkeypatch, loader, text):
    """libyaml stops at its own limit (1000 levels); PyYAML's parser has none, so ours (32) does."""
    if loader == "python":
        monkeypatch.setattr(record, "_Loader", yaml.SafeLoader)
    elif not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML built without libyaml")
    with pytest.raises(InputError) as err:
        record.parse(text, "deep.yaml")
    assert "nest" in err.value.message and err.value.location.line in (1, 2, 33, 34)


def test_billion_laughs_fails_fast_at_its_first_anchor(tmp_path):
    lines = ["bars: []", "notes: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"n{i}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    start = time.monotonic()
    with pytest.raises(InputError) as err:
        record.parse("\n".join(lines) + "\n", "lol.yaml")
    assert time.monotonic() - start < 1
    assert (err.value.location.line, err.value.location.column) == (2, 8)
    assert "anchors" in err.value.message


def test_node_and_record_counts_are_capped(monkeypatch):
    monkeypatch.setattr(record, "MAX_NODES", 50)
    with pytest.raises(InputError, match="more than 50 YAML nodes"):
        record.parse("bars: [" + ", ".join(["x"] * 100) + "]\n")
    monkeypatch.setattr(record, "MAX_DEVICES", 2)
    with pytest.raises(InputError, match="more than 2 device records") as err:
        record.parse("- {bars: []}\n" * 3)
    assert err.value.location.line == 3


def test_records_of_every_shipped_kind_still_read():
    root = Path(__file__).resolve().parents[1] / "corpus" / "devices"
    files = sorted(root.rglob("*.yaml"))
    assert files and all(record.parse(f.read_text(), str(f)) for f in files)


def test_a_record_may_start_with_any_known_key(tmp_path):
    (d,) = load(str(write(tmp_path, "class: '0107'\n" + BARS, "dev.yaml")))
    assert d.class_code == 0x0107


# --- sysfs ----------------------------------------------------------------------------------

def sysfs_device(tmp_path: Path, *, config: bytes | None = None, resource: bytes | None = None,
                 name: str = "0000:03:00.0") -> Path:
    path = tmp_path / name
    path.mkdir()
    if config is None:
        c = bytearray(256)
        struct.pack_into("<HHHH", c, 0, 0x1000, 0x0097, 0x6, 0x10)
        struct.pack_into("<I", c, 0x10, 0x0000_0000)  # BAR0 mem32, address set below
        c[0x34] = 0x50
        struct.pack_into("<BBHII", c, 0x50, 0x11, 0, 3, 0x2000, 0x3000)
        struct.pack_into("<I", c, 0x10, 0x9000_0000)
        config = bytes(c)
    (path / "config").write_bytes(config)
    if resource is None:
        resource = b"0x0000000090000000 0x000000009000ffff 0x0000000000040200\n" + b"0x0 0x0 0x0\n" * 5
    (path / "resource").write_bytes(resource)
    return path


def test_a_good_sysfs_device_reads(tmp_path):
    d = sysfs.read_device(sysfs_device(tmp_path))
    assert d.slot == "0000:03:00.0" and d.bar(0).size == 64 << 10 and d.msix.entries == 4


@pytest.mark.parametrize("resource, line, words", [
    (b"0x90000000 0x90001000 0x40200\n", 1, "not a power of two"),
    (b"0x90000000 0x8fffffff 0x40200\n", 1, "below where it starts"),
    (b"0x90000000 0x9000ffff 0x4\xff\n", 1, "not text"),
    (b"0x90000000 0x" + b"f" * 17 + b" 0x40200\n", 1, "expected 'start end flags'"),
    (b"0x90000000 0x" + b"9" * 5000 + b" 0x40200\n", 1, "expected 'start end flags'"),
    (b"0x90000000 0x9000ffff\n", 1, "expected 'start end flags'"),
])
def test_sysfs_resource_damage(capsys, tmp_path, resource, line, words):
    path = sysfs_device(tmp_path, resource=resource)
    fails_at(capsys, path, line, words, place=path / "resource")


def config_with(**changes: int) -> bytes:
    """A 256-byte endpoint config with a capability list; x0e=1 sets byte 0x0e to 1."""
    c = bytearray(256)
    struct.pack_into("<HHHH", c, 0, 0x8086, 0x1234, 0x6, 0x10)
    for offset, value in changes.items():
        c[int(offset[1:], 16)] = value
    return bytes(c)


def test_a_bridge_says_it_is_one_and_what_that_means(tmp_path):
    d = sysfs.read_device(sysfs_device(tmp_path, config=config_with(x0e=0x01, x34=0)))
    assert any("bridge (header type 1), not an endpoint" in n and "vfio-pci" in n for n in d.notes)
    assert d.subsystem_vendor is None


def test_a_64_byte_config_is_an_unprivileged_read_not_an_absent_msix(tmp_path):
    d = sysfs.read_device(sysfs_device(tmp_path, config=config_with(x34=0x50)[:64]))
    assert d.msix is None and d.msix_unknown and "64-byte header" in d.notes[-1]


@pytest.mark.parametrize("config, words", [
    (config_with()[:100], "100 bytes"),
    (config_with() * 20, "more than 4096"),
    (b"\xff" * 256, "all ones"),
    (config_with(x0e=0x05), "header type 5"),
    (config_with(x34=0xFC, xfc=0x11), "runs past the end"),
])
def test_sysfs_config_damage(capsys, tmp_path, config, words):
    path = sysfs_device(tmp_path, config=config, resource=b"")
    fails_at(capsys, path, None, words, place=path / "config")


def test_a_capability_pointer_into_the_header_ends_the_walk_as_in_linux(tmp_path):
    d = sysfs.read_device(sysfs_device(tmp_path, config=config_with(x34=0x20), resource=b""))
    assert d.msix is None and not d.msix_unknown and "points into the 64-byte header" in d.notes[-1]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_driver_link_with_a_hostile_name_is_refused(tmp_path):
    path = sysfs_device(tmp_path)
    os.symlink("../../bus/pci/drivers/vfio-pci\nhookscript: x", path / "driver")
    with pytest.raises(InputError) as err:
        sysfs.read_device(path)
    assert err.value.location.path == str(path / "driver") and "contains '<U+000A>'" in err.value.message


def test_a_directory_name_that_is_no_slot_gives_no_slot(tmp_path):
    d = sysfs.read_device(sysfs_device(tmp_path, name="0000:03:00.0\nx"))
    assert d.slot is None


# --- fuzz: seeded damage to real inputs never ends in an internal error ----------------------
#
# Each case damages a real input (a shared lspci dump, a corpus record, a sysfs tree written
# from a corpus record) with one to three seeded mutations and runs `show` and `which` on it.
# Either may answer (0), answer negatively (1) or refuse the input (2, one line); 3 (a bug) and a
# traceback never.  What the readers accept must survive `show --format yaml` and read back equal:
# a damaged input is refused or read as some device, never half-read.  A failure names its seed:
# fuzz_case(kind, seed, tmp_path) rebuilds the input.

import random
import re

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"
RECORDS = sorted((ROOT / "corpus" / "devices").rglob("*.yaml"))
LSPCI_CASES, RECORD_CASES, SYSFS_CASES = 1000, 700, 250  # about 17 s of CPU in all


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three of: byte flips, line deletion/duplication, digit insertion, tab -> spaces,
    truncation, non-UTF-8 bytes, odd characters, a number replaced by a boundary value (which
    keeps the input readable and tests what comes after the reader)."""
    for _ in range(rng.randint(1, 3)):
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        op = rng.randrange(10)
        if op == 0 and data:  # flip one byte
            k = rng.randrange(len(data))
            data = data[:k] + bytes([data[k] ^ (1 << rng.randrange(8))]) + data[k + 1:]
        elif op == 1:
            del lines[i]
            data = b"\n".join(lines)
        elif op == 2:
            lines.insert(i, lines[i])
            data = b"\n".join(lines)
        elif op == 3:  # a long run of digits next to an existing digit, or anywhere
            digits = [m.start() for m in re.finditer(rb"[0-9a-f]", data)] or [0]
            k = rng.choice(digits)
            data = data[:k] + rng.choice([b"9", b"1", b"f", b"0"]) * rng.choice([3, 17, 40, 5000]) + data[k:]
        elif op == 4:
            lines[i] = lines[i].replace(b"\t", b" " * rng.choice([1, 2, 4, 8]))
            data = b"\n".join(lines)
        elif op == 5:
            data = data[:rng.randrange(len(data) + 1)]
        elif op == 6 and data:  # bytes that are no UTF-8
            k = rng.randrange(len(data))
            data = data[:k] + rng.choice([b"\xff", b"\xc3", b"\xe9", b"\x80\x80", b"\xed\xa0\x80"]) + data[k:]
        elif op in (8, 9):
            numbers = list(re.finditer(rb"(?<![0-9a-zA-Z])[0-9a-f]+[KMGT]?(?![0-9a-zA-Z])", data))
            if numbers:
                m = rng.choice(numbers)
                data = data[:m.start()] + rng.choice(EXTREMES) + data[m.end():]
        else:  # a character some reader must refuse or keep: control, separator, YAML syntax
            k = rng.randrange(len(data) + 1)
            data = data[:k] + rng.choice([b"\x00", b"\x1b", b"\r", b"\x0c", b"\xc2\x85", b"\xe2\x80\xa8",
                                          b"&a ", b"*a", b"!!python/object ", b"<<: ", b"[", b"{",
                                          b"-->", b"\n\t\t"]) + data[k:]
    return data


EXTREMES = [b"0", b"1", b"4", b"5", b"6", b"7", b"8", b"16", b"2047", b"2048", b"2049", b"fff8",
            b"fffffff8", b"ffffffff", b"00000000", b"4K", b"1G", b"2G", b"4G", b"1T", b"8388608T",
            b"ffff", b"10000", b"0x0", b"0xfffffff8"]


def lspci_blocks() -> list[bytes]:
    blocks = []
    for f in sorted(SHARED.glob("*.txt")):
        text = f.read_bytes()
        starts = [m.start() for m in re.finditer(rb"^[0-9a-f]{2,8}:[0-9a-f:.]+ ", text, re.MULTILINE)]
        blocks.append(text)
        blocks += [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]
    return blocks


def sysfs_tree(root: Path, devices: list[Device]) -> Path:
    """A devices/ directory as the kernel shows it: config, resource and a driver link."""
    tree = root / "devices"
    tree.mkdir(parents=True)
    for n, d in enumerate(devices):
        path = tree / f"0000:{n + 1:02x}:00.0"
        path.mkdir()
        c = bytearray(256)
        struct.pack_into("<HHHH", c, 0, d.vendor or 0x1234, d.device or 0x5678, 0x6, 0x10 if d.msix else 0)
        c[0x08], c[0x0A], c[0x0B] = d.revision or 0, (d.class_code or 0) & 0xFF, (d.class_code or 0) >> 8
        resource = [(0, 0, 0)] * 13
        base = 0x4000_0000
        for bar in d.bars:
            size = bar.size or 4096
            bits = 0x1 if bar.is_io else (0x4 if bar.is_64bit else 0) | (0x8 if bar.prefetchable else 0)
            struct.pack_into("<I", c, 0x10 + 4 * bar.index, (base & 0xFFFF_FFF0) | bits)
            resource[bar.index] = (base, base + size - 1, 0x40200)
            base += max(size, 1 << 20)
        if d.msix:
            m = d.msix
            c[0x34] = 0x50
            struct.pack_into("<BBHII", c, 0x50, 0x11, 0, m.entries - 1, m.table_offset | m.table_bar,
                             m.pba_offset | m.pba_bar)
        (path / "config").write_bytes(bytes(c))
        (path / "resource").write_text("".join("0x%016x 0x%016x 0x%016x\n" % r for r in resource))
        if d.driver:
            os.symlink(f"../../../bus/pci/drivers/{d.driver}", path / "driver")
    return tree


def fuzz_case(kind: str, seed: int, tmp: Path) -> Path:
    rng = random.Random(f"{kind}-{seed}")
    if kind == "lspci":
        blocks = _LSPCI_BLOCKS
        path = tmp / f"lspci-{seed}.txt"
        path.write_bytes(mutate(rng.choice(blocks), rng))
        return path
    if kind == "record":
        source = rng.choice(RECORDS)
        path = tmp / f"record-{seed}.yaml"
        path.write_bytes(mutate(source.read_bytes(), rng))
        return path
    devices = [d for f in rng.sample(RECORDS, 2) for d in record.parse(f.read_text(), str(f))]
    tree = sysfs_tree(tmp / f"sysfs-{seed}", devices)
    victim = rng.choice(sorted(tree.iterdir()))
    target = victim / rng.choice(["config", "resource", "resource", "driver"])
    if target.name == "driver":
        if target.is_symlink():  # a damaged driver name; a path component holds 255 bytes
            head, name = os.readlink(target).rsplit("/", 1)
            name = mutate(name.encode(), rng).replace(b"\0", b"").replace(b"/", b"!")[:255] or b"x"
            target.unlink()
            os.symlink(head.encode() + b"/" + name, target)
    else:
        target.write_bytes(mutate(target.read_bytes(), rng))
    return tree


_LSPCI_BLOCKS = lspci_blocks() if SHARED.is_dir() else []


def run_fuzz(capsys, tmp_path, kind: str, cases: int) -> tuple[int, int]:
    failures, refused = [], 0
    for seed in range(cases):
        path = fuzz_case(kind, seed, tmp_path)
        for command in (["show", str(path)], ["which", str(path), "--page-size", "64K"]):
            rc = cli.main(command)
            out, err = capsys.readouterr()
            if rc not in (0, 1, 2) or "Traceback" in err + out or (rc == 2 and err.count("\n") != 1):
                failures.append(f"fuzz_case({kind!r}, {seed}): {command[0]} exit {rc}: {err.strip()[:300]}")
            if command[0] == "show" and rc == 0:
                devices = load(str(path))
                if record.parse(record.dump_all(devices), "again.yaml") != devices:
                    failures.append(f"fuzz_case({kind!r}, {seed}): does not read back from YAML")
            refused += rc == 2
    assert not failures, "\n".join(failures[:20])
    return cases, refused


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/corpus/lspci absent")
def test_fuzz_damaged_lspci_dumps(capsys, tmp_path):
    cases, refused = run_fuzz(capsys, tmp_path, "lspci", LSPCI_CASES)
    assert 0 < refused < 2 * cases  # the mutations reach both the readers' refusals and answers


def test_fuzz_damaged_records(capsys, tmp_path):
    cases, refused = run_fuzz(capsys, tmp_path, "record", RECORD_CASES)
    assert 0 < refused < 2 * cases


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_fuzz_damaged_sysfs_trees(capsys, tmp_path):
    cases, refused = run_fuzz(capsys, tmp_path, "sysfs", SYSFS_CASES)
    assert 0 < refused < 2 * cases
