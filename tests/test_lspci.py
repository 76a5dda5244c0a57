"""The lspci reader on every format users paste, and on the damage real dumps carry."""

from pathlib import Path

import pytest

from engine.errors import InputError
from engine.model import BarKind, Msix
from engine.sources import lspci

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "lspci"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/corpus/lspci absent")

VVNN = """\
02:00.0 RAID bus controller [0104]: Broadcom / LSI MegaRAID SAS-3 3008 [Fury] [1000:005f] (rev 02)
\tDeviceName: Integrated RAID
\tSubsystem: Dell PERC H330 Adapter [1028:1f44]
\tRegion 0: I/O ports at 2000 [size=256]
\tRegion 1: Memory at 91e00000 (64-bit, non-prefetchable) [size=64K]
\tRegion 3: Memory at 91d00000 (64-bit, non-prefetchable) [size=1M]
\tExpansion ROM at <ignored> [disabled]
\tCapabilities: [c0] MSI-X: Enable+ Count=97 Masked-
\t\tVector table: BAR=1 offset=0000e000
\t\tPBA: BAR=1 offset=0000f000
\tKernel driver in use: megaraid_sas
\tKernel modules: megaraid_sas
"""


def test_vvnn_block_gives_ids_bars_msix_and_driver():
    (d,) = lspci.parse(VVNN)
    assert (d.slot, d.vendor, d.device, d.class_code, d.revision) == ("02:00.0", 0x1000, 0x5F, 0x0104, 2)
    assert (d.subsystem_vendor, d.subsystem_device) == (0x1028, 0x1F44)
    assert [(b.index, b.kind, b.size, b.prefetchable) for b in d.bars] == [
        (0, BarKind.IO, 256, False), (1, BarKind.MEM64, 64 << 10, False), (3, BarKind.MEM64, 1 << 20, False)]
    assert d.msix == Msix(97, 1, 0xE000, 1, 0xF000, enabled=True)
    assert (d.driver, d.modules, d.rom_size) == ("megaraid_sas", ("megaraid_sas",), 0)
    assert d.notes == ()


def test_names_only_output_says_ids_are_missing():
    text = VVNN.replace(" [0104]", "").replace(" [1000:005f]", "").replace(" [1028:1f44]", "")
    (d,) = lspci.parse(text)
    assert d.vendor is None and d.class_name == "RAID bus controller"
    assert any("-nn" in n for n in d.notes)
    assert d.msix is not None


def test_numeric_only_output():
    (d,) = lspci.parse("03:00.0 0200: 8086:1521 (rev 01)\n\tSubsystem: 8086:0001\n"
                       "\tRegion 0: Memory at f7c00000 (32-bit, non-prefetchable) [size=1M]\n")
    assert (d.vendor, d.device, d.class_code, d.subsystem_vendor, d.name) == (0x8086, 0x1521, 0x200, 0x8086, None)


def test_single_v_infers_bar_numbers_and_says_so():
    text = ("00:00.0 Serial Attached SCSI controller: LSI Logic / Symbios Logic SAS3008 (rev 02)\n"
            "\tI/O ports at <unassigned> [disabled]\n"
            "\tMemory at 80140000 (64-bit, non-prefetchable)\n"
            "\tMemory at 80100000 (64-bit, non-prefetchable)\n"
            "\tCapabilities: [c0] MSI-X: Enable+ Count=96 Masked-\n")
    (d,) = lspci.parse(text)
    assert [b.index for b in d.bars] == [0, 1, 3]
    assert not d.bar(0).assigned and d.bar(1).size == 0
    assert d.msix is None and d.msix_unknown
    assert any("inferred" in n for n in d.notes) and any("-vvvnn" in n for n in d.notes)


def test_access_denied_asks_for_root():
    (d,) = lspci.parse("00:1f.6 Ethernet controller [0200]: Intel Corporation Device [8086:15b8]\n"
                       "\tCapabilities: <access denied>\n")
    assert d.msix is None and d.msix_unknown
    assert any("root" in n for n in d.notes)


def test_pcilib_warning_spliced_into_a_line_is_removed_and_the_line_rejoined():
    text = VVNN.replace("\t\tVector table: BAR=1 offset=0000e000\n",
                        "\t\tVector table: BAR=1 offset=0000e00pcilib: sysfs_read_vpd: read failed: I/O error\n0\n")
    (d,) = lspci.parse(text)
    assert d.msix.table_offset == 0xE000


def test_sriov_regions_are_not_the_devices_bars():
    text = VVNN.replace("\tKernel driver", "\tCapabilities: [200 v1] Single Root I/O Virtualization (SR-IOV)\n"
                        "\t\tRegion 0: Memory at 0000080010108000 (64-bit, prefetchable)\n\tKernel driver")
    (d,) = lspci.parse(text)
    assert [b.index for b in d.bars] == [0, 1, 3]


def test_virtual_flag_on_either_side_and_five_digit_domain():
    (d,) = lspci.parse("10000:e1:00.0 Non-Volatile memory controller [0108]: Seagate FireCuda 510 [1bb1:5012]"
                       " (rev 01) (prog-if 02 [NVM Express])\n"
                       "\tRegion 0: [virtual] Memory at 7fb2554000 (64-bit, prefetchable) [size=16K]\n"
                       "\tRegion 2: Memory at 7fb2538000 [virtual] (64-bit, prefetchable) [size=16K]\n")
    assert d.slot == "10000:e1:00.0" and d.revision == 1 and d.device == 0x5012
    assert [(b.index, b.size) for b in d.bars] == [(0, 16 << 10), (2, 16 << 10)]


@pytest.mark.parametrize("text, line", [
    ("hello world\n", 1),
    ("\n\nnot lspci\n", 3),
    (VVNN.replace("Region 1: Memory at 91e00000 (64-bit, non-prefetchable)", "Region 1: Memory at zz"), 5),
    (VVNN.replace("[size=64K]", "[size=64Q]"), 5),
    (VVNN.replace("Count=97", "Count=4000"), 9),
    (VVNN.replace("Region 3:", "Region 2:"), 1),
])
def test_malformed_input_names_the_line(text, line):
    with pytest.raises(InputError) as err:
        lspci.parse(text, "dump.txt")
    assert err.value.location.path == "dump.txt" and err.value.location.line == line


@needs_shared
def test_every_shared_dump_parses_with_all_its_msix_capabilities():
    files = sorted(SHARED.glob("*.txt"))
    assert len(files) == 23
    total = 0
    for f in files:
        text = f.read_text()
        devices = lspci.parse(text, str(f))
        assert sum(d.msix is not None for d in devices) == text.count("MSI-X: Enable"), f.name
        total += sum(d.msix is not None for d in devices)
    assert total == 62


@needs_shared
def test_the_spliced_vector_table_line_in_a_real_dump():
    devices = lspci.parse((SHARED / "ami-aptio-crb-x86_64-cabba2c402.txt").read_text())
    realtek = [d for d in devices if d.id_text == "10ec:8168"]
    assert realtek and all(d.msix == Msix(4, 4, 0, 4, 0x800, enabled=True) for d in realtek)


@needs_shared
def test_whole_machine_dump_keeps_non_msix_devices():
    devices = lspci.parse((SHARED / "lenovo-thinkcentre-m710q-x86_64-ec95321dfb.txt").read_text())
    assert len(devices) > sum(d.msix is not None for d in devices) > 0


# --- streaming: one device at a time, however large the dump ----------------------------------

def _shared_dumps() -> list[Path]:
    return sorted(SHARED.glob("*.txt")) if SHARED.is_dir() else []


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/corpus/lspci absent")
def test_stream_gives_what_load_gives_for_every_shared_dump():
    from engine.sources import load, stream
    for path in _shared_dumps():
        whole, streamed = load(str(path)), list(stream(str(path)))
        assert streamed == whole, path
        assert [d.origin for d in streamed] == [d.origin for d in whole]


def test_stream_fails_where_load_fails_after_the_good_devices(tmp_path):
    from engine.errors import InputError
    from engine.sources import load, stream
    good = "00:01.0 Ethernet controller [0200]: X [8086:1521]\n\tRegion 0: Memory at f0000000 (32-bit, non-prefetchable) [size=64K]\n"
    bad = tmp_path / "dump.txt"
    bad.write_text("$ sudo lspci -vvvnn\n" + good + good.replace("00:01.0", "00:02.0")
                   + "00:03.0 Ethernet controller [0200]: X [8086:1521]\n\tRegion 0: Memory at zz\n")
    with pytest.raises(InputError) as whole:
        load(str(bad))
    got = []
    with pytest.raises(InputError) as streamed:
        for d in stream(str(bad)):
            got.append(d.slot)
    assert str(streamed.value) == str(whole.value) and ":7:" in str(whole.value)
    assert got == ["00:01.0", "00:02.0"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/corpus/lspci absent")
def test_streaming_memory_does_not_grow_with_the_dump(tmp_path):
    """Peak Python allocations while streaming 40 machines' worth is about that of one."""
    import tracemalloc

    from engine.sources import stream
    one = b"".join(p.read_bytes() for p in _shared_dumps())
    small, big = tmp_path / "one.txt", tmp_path / "forty.txt"
    small.write_bytes(one)
    big.write_bytes(one * 40)

    def peak(path: Path) -> int:
        tracemalloc.start()
        count = sum(1 for _ in stream(str(path)))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count
        return top
    assert peak(big) < 1.5 * peak(small)


# --- tabs turned into spaces: the structure is recovered from the indentation's step --------------

def _expanded(text: str, width: int) -> str:
    """``text`` through coreutils `expand -t WIDTH` (what a terminal or `expand` does to a dump)."""
    import shutil
    import subprocess
    if shutil.which("expand") is None:
        pytest.skip("coreutils expand not on PATH")
    out = subprocess.run(["expand", "-t", str(width)], input=text.encode(), capture_output=True, check=True)
    return out.stdout.decode()


@needs_shared
@pytest.mark.parametrize("width", [8, 4, 2])
def test_space_indented_shared_dumps_read_as_their_tab_originals(tmp_path, width):
    from engine.sources import load, stream
    for path in _shared_dumps():
        original = lspci.parse(path.read_text(), str(path))
        spaced = _expanded(path.read_text(), width)
        assert "\t" not in spaced
        assert lspci.parse(spaced, str(path)) == original, path
        assert [d.origin for d in lspci.parse(spaced, str(path))] == [d.origin for d in original]
        copy = tmp_path / path.name
        copy.write_text(spaced)
        assert load(str(copy)) == list(stream(str(copy))) == original, path


def test_space_indentation_that_does_not_tell_the_depth_is_named():
    spaced = VVNN.replace("\t", "    ")
    assert lspci.parse(spaced) == lspci.parse(VVNN)
    cases = [  # (text, line, words)
        (spaced.replace("    Region 3", "      Region 3"), 6, "indented with 6 spaces, not a multiple of the 4"),
        (VVNN.replace("\tRegion 3", "        Region 3"), 6, "indented with 8 spaces among lines indented with tabs"),
        (VVNN.replace("\t", "   "), 2, "indented with 3 spaces"),
        (spaced.replace("        PBA", "    \tPBA"), 10, "spaces and then a tab"),
    ]
    for text, line, words in cases:
        with pytest.raises(InputError) as exc:
            lspci.parse(text, "dump.txt")
        assert exc.value.location.line == line and words in exc.value.message, (words, str(exc.value))


# --- reading fast: blocks cut by one scan, each distinct device parsed once -----------------------

def test_a_device_repeated_at_other_slots_is_the_same_device_there():
    other = VVNN.replace("02:00.0", "0000:81:00.0").replace(
        "\tDeviceName: Integrated RAID\n", "\tDeviceName: Slot 4\n\tCapabilities: [148 v1] Device Serial Number 01-02\n")
    first, again, moved = lspci.parse(VVNN + VVNN.replace("02:00.0", "03:00.0") + other, "fleet.txt")
    assert first == lspci.parse(VVNN)[0]
    for d, slot, line in ((again, "03:00.0", 13), (moved, "0000:81:00.0", 25)):
        assert (d.slot, d.origin) == (slot, f"fleet.txt:{line}")
        assert {f: getattr(d, f) for f in lspci._FIELDS} == {f: getattr(first, f) for f in lspci._FIELDS}


@needs_shared
def test_parsed_once_or_every_time_the_devices_are_the_same(monkeypatch):
    dumps = [(str(p), p.read_text()) for p in _shared_dumps()]
    warm = [lspci.parse(text, path) for path, text in dumps]
    monkeypatch.setattr(lspci, "CACHE_LIMIT", 1)  # every device parsed anew
    monkeypatch.setattr(lspci, "REWRITE_LIMIT", 1)
    lspci._parsed.clear()
    lspci._rewritten.clear()
    cold = [lspci.parse(text, path) for path, text in dumps]
    assert cold == warm
    assert [[d.origin for d in ds] for ds in cold] == [[d.origin for d in ds] for ds in warm]


@needs_shared
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_dump_read_in_pieces_of_any_size_is_the_whole_dump(tmp_path, monkeypatch, newline):
    """Blocks, cut lines, carriage returns and multi-byte characters cut between two reads."""
    from engine.sources import load, stream
    text = "".join(p.read_text() for p in _shared_dumps()).replace("\n", newline)
    path = tmp_path / "all.txt"
    path.write_bytes(("\ufeff$ sudo lspci -vvvnn\n" + text.replace("Intel", "Intél")).encode())
    whole = load(str(path))
    for size in (1, 7, 4096):
        monkeypatch.setattr(lspci, "READ_BYTES", size)
        lspci._parsed.clear()
        lspci._rewritten.clear()
        streamed = list(stream(str(path)))
        assert streamed == whole and [d.origin for d in streamed] == [d.origin for d in whole], size
