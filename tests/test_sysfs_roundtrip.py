"""Round trip: random device -> fake sysfs tree -> real `lspci -vvvnn` and engine.sources.sysfs -> same facts.

pciutils 3.9 (lib/sysfs.c, lspci.c show_bases) reads a BAR's size from the sysfs `resource`
line (end - start + 1, 0 unless end > start), its type and prefetchability from the line's
flags, and prints the address from the line's start.  An unassigned BAR (start 0, end size-1,
as the kernel leaves it) prints as `<unassigned>` when its config dword is 0 (a 32-bit
non-prefetchable BAR) and `<ignored>` otherwise (type bits set); with I/O decoding on, an
unassigned I/O BAR prints as port 0000.  All of these parse as assigned=False, so `assigned`
round-trips through lspci too.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings

from engine.model import Bar, BarKind, Device, Msix
from engine.sources import lspci, sysfs
from engine.units import KiB
from strategies_devices import devices

LSPCI = shutil.which("lspci")
if LSPCI is None:
    pytest.skip("lspci (pciutils) is not installed", allow_module_level=True)

# include/linux/ioport.h resource flags, as drivers/pci/pci-sysfs.c resource_show prints them.
IORESOURCE_IO, IORESOURCE_MEM, IORESOURCE_PREFETCH = 0x100, 0x200, 0x2000
IORESOURCE_SIZEALIGN, IORESOURCE_MEM_64 = 0x40000, 0x100000
PM_CAP, MSIX_CAP = 0x40, 0x50


def bar_bits(bar: Bar) -> int:
    """The low (read-only) bits of the BAR register."""
    if bar.is_io:
        return 0x1
    return (0x4 if bar.is_64bit else 0x0) | (0x8 if bar.prefetchable else 0x0)


def addresses(device: Device) -> dict[int, int]:
    """Plausible, naturally aligned addresses for the assigned BARs: each kind packed downwards by size."""
    bases = {BarKind.IO: (0x1000, 0x10000), BarKind.MEM32: (0x4000_0000, 1 << 32),
             BarKind.MEM64: (0x40_0000_0000, 1 << 48)}
    nxt = {kind: lo for kind, (lo, _) in bases.items()}
    out = {}
    for bar in sorted((b for b in device.bars if b.assigned), key=lambda b: -b.size):
        lo, hi = bases[bar.kind]
        if nxt[bar.kind] + bar.size > hi:  # out of room (rare): overlap rather than misalign
            nxt[bar.kind] = lo
        out[bar.index], nxt[bar.kind] = nxt[bar.kind], nxt[bar.kind] + bar.size
    return out


def write_sysfs(root: Path, device: Device) -> Path:
    path = root / "devices" / device.slot
    path.mkdir(parents=True)
    c = bytearray(256)
    addr = addresses(device)
    io_on = any(b.is_io and b.index in addr for b in device.bars)
    mem_on = any(b.kind.is_memory and b.index in addr for b in device.bars)
    struct.pack_into("<HHHH", c, 0, device.vendor, device.device,
                     0x4 | (0x1 if io_on else 0) | (0x2 if mem_on else 0),
                     0x10 if device.msix else 0)
    c[0x08], c[0x0A], c[0x0B] = device.revision, device.class_code & 0xFF, device.class_code >> 8
    c[0x09] = device.prog_if or 0
    resource = [(0, 0, 0)] * 7
    for bar in device.bars:
        a = addr.get(bar.index, 0)
        struct.pack_into("<I", c, 0x10 + 4 * bar.index, (a & 0xFFFF_FFFF) | bar_bits(bar))
        if bar.is_64bit:
            struct.pack_into("<I", c, 0x14 + 4 * bar.index, a >> 32)
        flags = (IORESOURCE_IO if bar.is_io else IORESOURCE_MEM) | IORESOURCE_SIZEALIGN | bar_bits(bar)
        flags |= (IORESOURCE_MEM_64 if bar.is_64bit else 0) | (IORESOURCE_PREFETCH if bar.prefetchable else 0)
        resource[bar.index] = (a, a + bar.size - 1, flags)
    struct.pack_into("<HH", c, 0x2C, device.subsystem_vendor, device.subsystem_device)
    if (m := device.msix) is not None:
        c[0x34] = PM_CAP  # a Power Management capability first, so the list has to be walked
        struct.pack_into("<BBHH", c, PM_CAP, 0x01, MSIX_CAP, 0x0003, 0x0008)
        struct.pack_into("<BBHII", c, MSIX_CAP, 0x11, 0x00, (m.entries - 1) | (0x8000 if m.enabled else 0),
                         m.table_offset | m.table_bar, m.pba_offset | m.pba_bar)
    (path / "config").write_bytes(bytes(c))
    (path / "resource").write_text("".join("0x%016x 0x%016x 0x%016x\n" % line for line in resource))
    for name, value in (("vendor", f"0x{device.vendor:04x}"), ("device", f"0x{device.device:04x}"),
                        ("class", f"0x{device.class_code << 8 | (device.prog_if or 0):06x}"),
                        ("revision", f"0x{device.revision:02x}"),
                        ("subsystem_vendor", f"0x{device.subsystem_vendor:04x}"),
                        ("subsystem_device", f"0x{device.subsystem_device:04x}"), ("irq", "0")):
        (path / name).write_text(value + "\n")
    return path


def run_lspci(root: Path) -> str:
    # stderr carries "lspci: Unable to load libkmod resources" where kmod has no data: ignored.
    done = subprocess.run([LSPCI, "-A", "linux-sysfs", "-O", f"sysfs.path={root}", "-vvvnn"],
                          capture_output=True, text=True, check=True, timeout=30)
    return done.stdout


def facts(device: Device) -> tuple:
    bars = tuple((b.index, b.kind, b.prefetchable, b.size, b.assigned) for b in device.bars)
    m = device.msix
    msix = m and (m.entries, m.table_bar, m.table_offset, m.pba_bar, m.pba_offset, m.enabled)
    return (device.vendor, device.device, device.subsystem_vendor, device.subsystem_device,
            device.class_code, bars, msix)


def round_trip(device: Device) -> tuple[Device, Device, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_sysfs(Path(tmp), device)
        text = run_lspci(Path(tmp))
        from_sysfs = sysfs.read_device(path)
    [from_lspci] = lspci.parse(text)
    return from_lspci, from_sysfs, text


@settings(max_examples=40, deadline=None)
@given(devices())
def test_lspci_and_sysfs_read_back_the_generated_device(device):
    from_lspci, from_sysfs, text = round_trip(device)
    assert from_lspci.slot == device.slot.removeprefix("0000:"), text  # lspci drops domain 0000
    assert from_sysfs.slot == device.slot
    assert facts(from_lspci) == facts(device), text
    assert facts(from_sysfs) == facts(device)
    assert from_lspci.revision == (device.revision or None), text  # lspci prints no "(rev 00)"
    assert from_sysfs.revision == device.revision
    # lspci -vvv prints no "(prog-if 00)" where pci.ids names none; the reader knows it is 00
    assert from_lspci.prog_if == from_sysfs.prog_if == (device.prog_if or 0), text
    assert not from_lspci.msix_unknown and not from_sysfs.msix_unknown


@pytest.mark.parametrize("class_code, prog_if, printed", [
    (0x0C03, 0x30, True),  # (prog-if 30 [XHCI])
    (0x0C03, 0x00, True),  # (prog-if 00 [UHCI]): 00, printed because pci.ids names it
    (0x0380, 0x00, False),  # 00 and unnamed: lspci prints nothing
    (0x0380, 0x07, True),  # (prog-if 07)
])
def test_prog_if_reads_back_from_lspci_and_sysfs(class_code, prog_if, printed):
    device = Device("0000:01:00.0", vendor=0x1234, device=0x5678, subsystem_vendor=0x1234,
                    subsystem_device=0x0001, class_code=class_code, prog_if=prog_if, revision=1,
                    bars=(Bar(0, BarKind.MEM64, 64 * KiB),), msix=Msix(8, 0, 0x2000, 0, 0x3000))
    from_lspci, from_sysfs, text = round_trip(device)
    header = text.splitlines()[0]
    assert (f"(prog-if {prog_if:02x}" in header) == printed, header
    assert from_lspci.prog_if == from_sysfs.prog_if == prog_if, text


SAS3008 = Device(
    "0000:03:00.0", vendor=0x1000, device=0x0097, subsystem_vendor=0x15D9, subsystem_device=0x0808,
    class_code=0x0107, revision=0x02,
    bars=(Bar(0, BarKind.IO, 256, assigned=False), Bar(1, BarKind.MEM64, 64 * KiB),
          Bar(3, BarKind.MEM64, 256 * KiB)),
    msix=Msix(96, 1, 0xE000, 1, 0xF000, enabled=True))


def test_sas3008_from_the_seed_thread_prints_and_parses_as_lspci_shows_it():
    from_lspci, from_sysfs, text = round_trip(SAS3008)
    for line in (r"\tRegion 1: Memory at [0-9a-f]+ \(64-bit, non-prefetchable\).*\[size=64K\]",
                 r"\tRegion 3: Memory at [0-9a-f]+ \(64-bit, non-prefetchable\).*\[size=256K\]",
                 r"\tRegion 0: I/O ports at <ignored>.*\[size=256\]",
                 r"\tCapabilities: \[50\] MSI-X: Enable\+ Count=96 Masked-",
                 r"\t\tVector table: BAR=1 offset=0000e000",
                 r"\t\tPBA: BAR=1 offset=0000f000"):
        assert re.search(f"^{line}$", text, re.MULTILINE), (line, text)
    assert from_lspci.slot == "03:00.0" and from_lspci.revision == 2
    assert facts(from_lspci) == facts(from_sysfs) == facts(SAS3008)


# L1's sysfs of the lab's megasas-gen2-noio after lab/l1.py left BAR0 unassigned (pci=nobar, root
# port removed and rescanned), as lab/l1.py copied it (python -m lab.run --devices
# megasas-gen2-noio, 2026-12-03): real.  BAR0's config dword reads 0x00000001 (I/O, no address) and
# its resource line is all zeros: the kernel emptied the resource (arch/x86/pci/common.c
# pcibios_fixup_device_resources), so VFIO reports region 0 with size 0.
L1_NOIO = Path(__file__).parent / "data" / "verify" / "l1-megasas-gen2-noio"
L1_NOIO_RESOURCE = (L1_NOIO / "resource").read_text()
MEGASAS = Device("0000:01:00.0", vendor=0x1000, device=0x0079, subsystem_vendor=0x1000,
                 subsystem_device=0x9261, class_code=0x0104, revision=0,
                 bars=(Bar(0, BarKind.IO, 256, assigned=False), Bar(1, BarKind.MEM64, 16 * KiB),
                       Bar(3, BarKind.MEM64, 256 * KiB)),
                 msix=Msix(15, 1, 0x2000, 1, 0x3800, enabled=True))


@pytest.mark.parametrize("register", [0x00000001, 0x00002001])  # as l1.py leaves it; a stale address
def test_an_emptied_resource_is_an_unassigned_bar_that_qemu_never_sees(register):
    """What a host shows for a BAR its kernel emptied: lspci 3.9 prints no Region line, sysfs a
    resource line of zeros under the register's type bits.  barsafe reads it as an unassigned
    I/O BAR of size 0, and QEMU's view has slot 0 empty even with I/O port space."""
    from engine.relocate import qemu_view
    from engine.model import Platform
    with tempfile.TemporaryDirectory() as tmp:
        path = write_sysfs(Path(tmp), MEGASAS)
        config = bytearray((path / "config").read_bytes())
        struct.pack_into("<I", config, 0x10, register)
        struct.pack_into("<IIII", config, 0x14, 0x80040004, 0, 0x80000004, 0)
        (path / "config").write_bytes(bytes(config))
        (path / "resource").write_text(L1_NOIO_RESOURCE)
        text = run_lspci(Path(tmp))
        from_sysfs = sysfs.read_device(path)
    assert "Region 0" not in text, text
    assert "\tRegion 1: Memory at 80040000 (64-bit, non-prefetchable) [size=16K]\n" in text, text
    [from_lspci] = lspci.parse(text)
    assert from_lspci.bar(0) is None
    assert from_sysfs.bar(0) == Bar(0, BarKind.IO, 0, assigned=False)
    assert [b.index for b in from_sysfs.bars] == [0, 1, 3] and from_sysfs.bar(1).assigned
    for device in (from_sysfs, from_lspci):
        slot = qemu_view(device, Platform(4 * KiB, io_space=True))[0]
        assert (slot.size, slot.ioport) == (0, False)


def test_l1s_real_sysfs_of_the_unassigned_bar_reads_as_the_lab_case_records_it():
    import yaml
    from engine.relocate import qemu_view
    from engine.model import Platform
    from engine.sources import record
    config = (L1_NOIO / "config").read_bytes()
    assert struct.unpack_from("<I", config, 0x10)[0] == 0x00000001
    assert L1_NOIO_RESOURCE.splitlines()[0] == "0x0000000000000000 0x0000000000000000 0x0000000000000000"
    device = sysfs.read_device(L1_NOIO)
    case = Path(__file__).resolve().parents[1] / "corpus" / "cases" / "lab-megasas-gen2-noio.yaml"
    node = next(v for k, v in yaml.compose(case.read_text(), Loader=yaml.SafeLoader).value if k.value == "device")
    recorded = record.device_from_node(node, str(case))
    assert device.bars == recorded.bars and device.bar(0) == Bar(0, BarKind.IO, 0, assigned=False)
    assert device.msix == Msix(15, 1, 0x2000, 1, 0x3800, enabled=True)  # L1's megaraid_sas had it then
    slot = qemu_view(device, Platform(4 * KiB, io_space=True))[0]
    assert (slot.size, slot.ioport) == (0, False)
