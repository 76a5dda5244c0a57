"""The seed thread's SAS3008 table (64K pages, POWER8, no I/O port space) and QEMU's refusals."""

from pathlib import Path

import pytest
import yaml

from engine.model import Bar, BarKind, Device, Msix, Platform
from engine.relocate import (MSG_PBA_OUTSIDE, analyse_pages, msix_size, native_outcome,
                             qemu_view, relocate)
from engine.sources import load, record
from engine.strategies import run, run_all
from engine.units import GiB, KiB, MiB

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml"
POWER8 = Platform(64 * KiB, io_space=False)


@pytest.fixture(scope="module")
def sas3008() -> Device:
    (device,) = load(str(SEED))
    return device


def case_device(path: Path) -> Device:
    """The device record of an observed case (corpus/cases)."""
    root = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    return record.device_from_node(next(v for k, v in root.value if k.value == "device"), str(path))


def layout_of(outcome):
    assert outcome.refused is None, outcome.refused
    bars = {b.index: (b.kind, b.prefetchable, b.size) for b in outcome.layout.bars}
    m = outcome.layout.msix
    return bars, (m.table_bar, m.table_offset, m.pba_bar, m.pba_offset)


def test_seed_record_has_the_unassigned_io_bar0(sas3008):
    assert sas3008.bar(0).kind is BarKind.IO and not sas3008.bar(0).assigned
    assert sas3008.msix == Msix(96, 1, 0xE000, 1, 0xF000, enabled=True)


def test_io_bar_is_invisible_to_qemu_without_io_space(sas3008):
    assert qemu_view(sas3008, POWER8)[0].size == 0 and not qemu_view(sas3008, POWER8)[0].ioport


def test_an_unassigned_bar_is_an_empty_slot_on_every_host(sas3008):
    # The seed's BAR0 was left unassigned: VFIO reports its region with size 0 (the kernel holds
    # no resource for it), so QEMU skips the slot even where the host has I/O port space.
    for platform in (POWER8, Platform(4 * KiB, io_space=True)):
        slot = qemu_view(sas3008, platform)[0]
        assert (slot.size, slot.ioport, slot.mem64) == (0, False, False)
        assert slot.bar is sas3008.bar(0)
    assigned = Device("00:01.0", bars=(Bar(0, BarKind.IO, 256), Bar(1, BarKind.MEM64, 16 * KiB)),
                      msix=Msix(15, 1, 0x2000, 1, 0x3800))
    assert qemu_view(assigned, Platform(4 * KiB, io_space=True))[0].ioport
    assert not qemu_view(assigned, POWER8)[0].ioport
    # a memory BAR the host did not assign vanishes too, and with it its upper half
    mem = Device("00:01.0", bars=(Bar(0, BarKind.MEM64, 0, assigned=False), Bar(2, BarKind.MEM64, 16 * KiB)),
                 msix=Msix(15, 2, 0x2000, 2, 0x3800))
    assert [q.size for q in qemu_view(mem, Platform())][:2] == [0, 0]
    assert run("bar1", mem, Platform()).refused is None


def test_msix_size_for_96_vectors_is_one_64k_page(sas3008):
    assert msix_size(sas3008.msix, POWER8) == 64 * KiB
    assert msix_size(sas3008.msix, Platform(4 * KiB)) == 4 * KiB


def test_qemu_rfc_picks_bar0_as_in_the_thread(sas3008):
    bars, msix = layout_of(run("qemu-rfc", sas3008, POWER8))
    assert bars[0] == (BarKind.MEM32, True, 64 * KiB)
    assert msix == (0, 0x0, 0, 0x600)


def test_bar1_extends_to_128k_with_table_at_64k(sas3008):
    bars, msix = layout_of(run("bar1", sas3008, POWER8))
    assert bars[1] == (BarKind.MEM64, False, 128 * KiB)
    assert msix == (1, 0x10000, 1, 0x10600)


def test_bar5_adds_a_32bit_prefetchable_64k_bar(sas3008):
    bars, msix = layout_of(run("bar5", sas3008, POWER8))
    assert bars == {1: (BarKind.MEM64, False, 64 * KiB), 3: (BarKind.MEM64, False, 256 * KiB),
                    5: (BarKind.MEM32, True, 64 * KiB)}
    assert msix == (5, 0, 5, 0x600)


def test_reverse_picks_bar5_and_extend_only_picks_bar1(sas3008):
    assert run("reverse", sas3008, POWER8).target == 5
    assert run("extend-only", sas3008, POWER8).target == 1


@pytest.mark.parametrize("target, below", [(2, 1), (4, 3)])
def test_upper_halves_are_refused_in_qemus_words(sas3008, target, below):
    outcome = run(f"bar{target}", sas3008, POWER8)
    assert outcome.refused == f"Invalid MSI-X relocation BAR {target}, consumed by 64-bit BAR {below}"


def test_io_bar0_is_refused_where_the_host_has_io_space(sas3008):
    # QEMU's emulated megasas-gen2 in the lab, its I/O BAR0 assigned (L1 has port space):
    # QEMU refused bar0 with this message (corpus/cases/lab-megasas-gen2.yaml).
    megasas = case_device(ROOT / "corpus/cases/lab-megasas-gen2.yaml")
    assert megasas.bar(0).kind is BarKind.IO and megasas.bar(0).assigned
    outcome = run("bar0", megasas, Platform(4 * KiB, io_space=True))
    assert outcome.refused == "Invalid MSI-X relocation BAR 0, I/O port BAR"
    # the seed's unassigned BAR0 is an empty slot: QEMU adds a memory BAR0 there, as the thread saw
    bars, msix = layout_of(run("bar0", sas3008, Platform(64 * KiB, io_space=True)))
    assert bars[0] == (BarKind.MEM32, True, 64 * KiB) and msix == (0, 0, 0, 0x600)


def test_upstream_auto_refuses_every_device(sas3008):
    assert run("qemu", sas3008, POWER8).refused == (
        "No automatic MSI-X relocation available for device 1000:0097")


def test_32bit_bar_over_1g_cannot_be_extended():
    dev = Device("00:01.0", bars=(Bar(0, BarKind.MEM32, 2 * GiB), Bar(1, BarKind.MEM32, 64 * KiB)),
                 msix=Msix(4, 1, 0, 1, 0x800))
    assert run("bar0", dev, POWER8).refused == (
        "Invalid MSI-X relocation BAR 0, no space to extend 32-bit BAR")


def test_new_bar_is_64bit_when_the_next_slot_is_free():
    dev = Device("00:01.0", bars=(Bar(0, BarKind.MEM32, 16 * KiB),), msix=Msix(4, 0, 0x2000, 0, 0x3000))
    assert run("bar2", dev, Platform()).layout.bar(2).kind is BarKind.MEM64
    assert run("bar5", dev, Platform()).layout.bar(5).kind is BarKind.MEM32


def test_extending_a_huge_64bit_bar_is_flagged_not_hidden():
    dev = Device("00:01.0", bars=(Bar(0, BarKind.MEM64, 8 * GiB),), msix=Msix(4, 0, 0x2000, 0, 0x3000))
    outcome = run("bar0", dev, Platform())
    assert outcome.ok and outcome.layout.msix.table_offset == 8 * GiB
    assert any("32-bit offset field" in f.message for f in outcome.findings)


def test_rfc_considers_the_upper_half_after_skipping_a_huge_64bit_bar():
    """The RFC `continue`s before its `i++`, so BAR1 (upper half of BAR0) looks free; QEMU refuses it."""
    dev = Device("00:01.0", bars=(Bar(0, BarKind.MEM64, 4 * GiB), Bar(2, BarKind.MEM64, 1 * MiB)),
                 msix=Msix(4, 2, 0x2000, 2, 0x3000))
    outcome = run("qemu-rfc", dev, Platform())
    assert outcome.refused == "Invalid MSI-X relocation BAR 1, consumed by 64-bit BAR 0"


def test_pba_outside_its_bar_is_refused_only_without_relocation():
    dev = Device("00:01.0", vendor=0x8086, device=0x1234, bars=(Bar(0, BarKind.MEM64, 16 * KiB),),
                 msix=Msix(4, 0, 0x2000, 0, 0x8000))
    assert native_outcome(dev, Platform()).refused == MSG_PBA_OUTSIDE
    assert relocate(dev, Platform(), 2).ok


def test_chelsio_t5_vf_pba_is_corrected_like_qemu_does():
    dev = Device("00:01.0", vendor=0x1425, device=0x5803, bars=(Bar(0, BarKind.MEM64, 8 * KiB),),
                 msix=Msix(4, 0, 0x0, 0, 0x8000))
    outcome = native_outcome(dev, Platform())
    assert outcome.ok and outcome.layout.msix.pba_offset == 0x1000
    assert any("Chelsio" in n for n in outcome.notes)


def test_page_analysis_of_the_seed_device(sas3008):
    analysis = analyse_pages(sas3008.bars, sas3008.msix, POWER8)
    assert (analysis.trap_start, analysis.trap_end) == (0, 64 * KiB)
    assert analysis.needs_relocation
    assert analysis.shared_bytes == 56 * KiB  # all but the table and PBA 4K ranges
    small = analyse_pages(sas3008.bars, sas3008.msix, Platform(4 * KiB))
    assert (small.trap_start, small.trap_end, small.needs_relocation) == (0xE000, 0xF000, False)


def test_cloud_hypervisor_extends_the_table_bar_without_pow2_rounding():
    # 300 vectors: 4800-byte table + (300/64 + 1) * 8 = 40-byte PBA -> two 4K pages -> 16K BAR
    dev = Device("00:01.0", bars=(Bar(0, BarKind.MEM64, 4 * KiB),), msix=Msix(300, 0, 0x800, 0, 0x3000))
    small = Platform(4 * KiB)
    assert run("cloud-hypervisor", dev, small).layout.bar(0).size == 16 * KiB
    dev3 = Device("00:01.0", bars=(Bar(0, BarKind.MEM64, 1 * KiB),), msix=Msix(400, 0, 0x8, 0, 0x1940))
    outcome = run("cloud-hypervisor", dev3, small)
    assert outcome.layout.bar(0).size == 2 * 8 * KiB  # 6400 + 56 bytes -> 8K -> 16K
    dev4 = Device("00:01.0", bars=(Bar(0, BarKind.MEM64, 4 * KiB),), msix=Msix(600, 0, 0x8, 0, 0x2588))
    odd = run("cloud-hypervisor", dev4, small)  # 9600 + 80 -> 12K -> 24K: not a power of two
    assert odd.layout.bar(0).size == 24 * KiB
    assert any("not a power of two" in f.message for f in odd.findings)


def test_cloud_hypervisor_leaves_aligned_tables_and_32bit_bars_alone(sas3008):
    assert run("cloud-hypervisor", sas3008, Platform(4 * KiB)).target is None
    dev = Device("00:01.0", bars=(Bar(0, BarKind.MEM32, 16 * KiB),), msix=Msix(4, 0, 0x2800, 0, 0x3000))
    assert run("cloud-hypervisor", dev, POWER8).target is None


def test_cloud_hypervisor_pba_below_table_lands_in_register_space():
    """Samsung NVMe layout from the shared dumps: table 0x3000, PBA 0x2000, 16K BAR0."""
    dev = Device("00:01.0", bars=(Bar(0, BarKind.MEM64, 16 * KiB),), msix=Msix(33, 0, 0x3000, 0, 0x2000))
    outcome = run("cloud-hypervisor", dev, POWER8)
    assert outcome.layout.msix.table_offset == 64 * KiB
    assert outcome.layout.msix.pba_offset == 64 * KiB - 0x1000
    assert any("below the table" in f.message for f in outcome.findings)


def test_all_runs_in_documented_order(sas3008):
    names = [o.strategy for o in run_all(sas3008, POWER8)]
    assert names == ["off", "bar0", "bar1", "bar2", "bar3", "bar4", "bar5",
                     "qemu-rfc", "reverse", "extend-only", "cloud-hypervisor", "pve-tools", "qemu"]
