"""Properties of QEMU's (and Cloud Hypervisor's) MSI-X relocation over random valid devices."""

from __future__ import annotations

import copy

from hypothesis import example, given, settings, strategies as st

from engine import strategies
from engine.model import BAR_SLOTS, MSIX_ENTRY_SIZE, Bar, BarKind, Device, Msix, Platform
from engine.relocate import (MSG_AUTO, MSG_IO, MSG_NO_SPACE, MSG_PBA_OUTSIDE, MSG_SHADOW,
                             analyse_pages, qemu_view)
from engine.units import GiB, KiB, align_up, is_pow2
from strategies_devices import devices, platforms

TARGETS = [f"bar{i}" for i in range(BAR_SLOTS)]
QEMU_STRATEGIES = TARGETS + ["qemu-rfc", "reverse", "extend-only"]
SETTINGS = settings(max_examples=300, deadline=None)


def qemu_results(device, platform):
    """(name, outcome) for every QEMU strategy that relocated (was not refused)."""
    for name in QEMU_STRATEGIES:
        outcome = strategies.run(name, device, platform)
        if outcome.ok:
            assert outcome.layout is not None and outcome.target is not None, name
            yield name, outcome


@SETTINGS
@given(devices(), platforms)
def test_changed_or_added_bars_are_powers_of_two(device, platform):
    for name, outcome in qemu_results(device, platform):
        for bar in outcome.layout.bars:
            if bar != device.bar(bar.index):
                assert is_pow2(bar.size), (name, bar)


# 511 vectors at 0x10 of an 8K 64-bit BAR: table + PBA is 8240 bytes, so CH makes it 2 * 12K = 24K.
CH_ODD = Device("0000:01:00.0", bars=(Bar(0, BarKind.MEM64, 8 * KiB), Bar(2, BarKind.MEM32, 4 * KiB)),
                msix=Msix(511, 0, 0x10, 2, 0))


@SETTINGS
@given(devices(), platforms)
@example(CH_ODD, Platform())
def test_cloud_hypervisor_flags_exactly_the_non_power_of_two_sizes(device, platform):
    outcome = strategies.run("cloud-hypervisor", device, platform)
    assert outcome.ok and outcome.layout is not None
    flagged = any("power of two" in f.message for f in outcome.findings)
    odd = [b for b in outcome.layout.bars if not is_pow2(b.size)]
    assert flagged == bool(odd), (outcome.findings, odd)
    assert all(b.index == outcome.target for b in odd)  # only the BAR it rewrote can be odd


@SETTINGS
@given(devices(), platforms)
def test_relocated_table_shares_no_host_page_with_device_registers(device, platform):
    view = qemu_view(device, platform)
    for name, outcome in qemu_results(device, platform):
        layout = outcome.layout
        pages = analyse_pages(layout.bars, layout.msix, platform, layout.device_backed)
        assert pages.shared_bytes == 0, (name, pages)
        original = view[outcome.target].size
        assert layout.device_backed == original
        if original:  # extended: the table starts past the BAR's own (page-rounded) space
            assert layout.msix.table_offset >= align_up(original, platform.page_size), name
        else:  # a new BAR: nothing of the device's is in it
            assert layout.msix.table_offset == 0, name


@SETTINGS
@given(devices(), platforms)
def test_pba_follows_the_table_inside_the_target_bar(device, platform):
    for name, outcome in qemu_results(device, platform):
        msix, target = outcome.layout.msix, outcome.target
        assert msix.table_bar == msix.pba_bar == target, name
        assert msix.pba_offset == msix.table_offset + msix.entries * MSIX_ENTRY_SIZE, name
        bar = outcome.layout.bar(target)
        assert msix.pba_offset + align_up(msix.entries, 64) // 8 <= bar.size, (name, bar)


@SETTINGS
@given(devices(mem32_max=2 * GiB), platforms)
def test_32bit_bars_stay_within_2gib(device, platform):
    for name, outcome in qemu_results(device, platform):
        for bar in outcome.layout.bars:
            if bar.kind is not BarKind.MEM64:
                assert bar.size <= 2 * GiB, (name, bar)


@SETTINGS
@given(devices(mem32_max=2 * GiB), platforms)
def test_refusals_use_qemus_exact_messages(device, platform):
    view = qemu_view(device, platform)
    for target in range(BAR_SLOTS):
        slot, bar = view[target], device.bar(target)
        if bar is not None and bar.is_io and platform.io_space:
            expected = MSG_IO.format(bar=target)
        elif not slot.size and target > 0 and view[target - 1].mem64:
            expected = MSG_SHADOW.format(bar=target, below=target - 1)
        elif bar is not None and bar.kind is BarKind.MEM32 and bar.size > 1 * GiB:
            expected = MSG_NO_SPACE.format(bar=target)
        else:
            expected = None
        assert strategies.run(f"bar{target}", device, platform).refused == expected, target
    templates = [t.split("{")[0] for t in (MSG_AUTO, MSG_IO, MSG_SHADOW, MSG_NO_SPACE)]
    templates += [MSG_PBA_OUTSIDE]
    for name in ("qemu-rfc", "reverse", "extend-only", "qemu"):
        refused = strategies.run(name, device, platform).refused
        assert (refused is None or refused == f"{name}: no BAR slot qualifies"
                or any(refused.startswith(t) for t in templates)), (name, refused)


@settings(max_examples=100, deadline=None)
@given(devices(), st.integers(0, BAR_SLOTS - 1))
def test_io_target_is_a_new_bar_on_a_host_without_io_space(device, target):
    bar = device.bar(target)
    outcome = strategies.run(f"bar{target}", device, Platform(io_space=False))
    if bar is not None and bar.is_io:
        assert outcome.ok and outcome.layout.msix.table_offset == 0
        assert outcome.layout.bar(target).kind is not BarKind.IO


@SETTINGS
@given(devices(mem32_max=2 * GiB), platforms)
def test_strategies_never_mutate_the_device(device, platform):
    before, text = copy.deepcopy(device), repr(device)
    for name in strategies.all_names():
        strategies.run(name, device, platform)
    assert device == before and repr(device) == text


@SETTINGS
@given(devices(), platforms)
def test_new_bar_is_64bit_exactly_when_it_and_the_next_slot_are_free(device, platform):
    view = qemu_view(device, platform)
    for name, outcome in qemu_results(device, platform):
        target = outcome.target
        new = outcome.layout.bar(target)
        if view[target].size:  # extended: keeps its own type and prefetchability
            old = device.bar(target)
            assert (new.kind, new.prefetchable) == (old.kind, old.prefetchable), name
        else:
            free_above = target < BAR_SLOTS - 1 and not view[target + 1].size
            assert new.is_64bit == free_above and new.prefetchable, (name, new)
            if new.is_64bit:  # its upper half takes the next slot
                assert outcome.layout.bar(target + 1) is None, name
