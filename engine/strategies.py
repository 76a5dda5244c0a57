"""Heuristics that choose a relocation target, each a named strategy.

Each strategy is a function (device, platform) -> Outcome.  The QEMU ones pick
a BAR and hand it to ``relocate.relocate``, so a bad pick is refused with
QEMU's own message.  ``cloud-hypervisor`` is different: it rewrites the
table's own BAR with its own arithmetic and never adds a BAR.
"""

from __future__ import annotations

from collections.abc import Callable

from .memo import same_arguments_as_last_call
from .model import BAR_SLOTS, MSIX_ENTRY_SIZE, Bar, BarKind, Device, Layout, Msix, Platform
from .relocate import (MSG_AUTO, Finding, Outcome, QemuBar, msix_size, native_outcome, native_parts,
                       power_of_two_problem, qemu_view, relocate, rfc_cost, visible_bars)
from .units import align_up, format_size

RFC_SIZE_LIMIT = 0xFFFFFFFF // 2  # UINT32_MAX / 2: "MSI-X MMIO must reside within first 32bit offset of BAR"

Strategy = Callable[[Device, Platform], Outcome]


def _scan(device: Device, platform: Platform, name: str, order: list[int],
          skip: Callable[[QemuBar, tuple[QemuBar, ...]], str | None] | None,
          step_over_upper_half: bool) -> Outcome:
    """The RFC's cost loop over ``order``; a slot is passed over for ``skip``'s reason, if it
    gives one, else for the RFC's own (_rfc_skip)."""
    assert device.msix is not None
    view = qemu_view(device, platform)
    slots = _costs(device, platform)
    best, target, notes = None, None, []
    i_pos = 0
    while i_pos < len(order):
        slot, skipped, cost, costed = slots[order[i_pos]]
        why = skip(slot, view) if skip is not None else None
        if why:
            notes.append(f"BAR{slot.index}: skipped, {why}")
        elif skipped:
            notes.append(skipped)
        else:
            notes.append(costed)
            if best is None or cost < best:
                best, target = cost, slot.index
            if step_over_upper_half and slot.mem64:
                i_pos += 1  # the RFC's `i++` after a 64-bit BAR
        i_pos += 1
    if target is None:
        return Outcome(name, None, None, refused=f"{name}: no BAR slot qualifies",
                       notes=tuple(notes))
    notes.append(f"picks BAR{target} (least resulting BAR size, {format_size(best)})")
    return relocate(device, platform, target, strategy=name, notes=tuple(notes))


@same_arguments_as_last_call
def _costs(device: Device, platform: Platform) -> tuple[tuple[QemuBar, str | None, int, str], ...]:
    """Per slot, what each RFC-style scan of one device and platform reads: the slot, the note
    that the RFC passes it over (None: it does not), its cost and the note giving it."""
    view = qemu_view(device, platform)
    msix_sz = msix_size(device.msix, platform)
    out = []
    for slot in view:
        why = _rfc_skip(slot, view)
        cost = rfc_cost(slot, msix_sz)
        out.append((slot, f"BAR{slot.index}: skipped, {why}" if why else None, cost,
                    f"BAR{slot.index}: cost {format_size(cost)}"))
    return tuple(out)


def _rfc_skip(slot: QemuBar, view: tuple[QemuBar, ...]) -> str | None:
    if slot.ioport:
        return "I/O port BAR"
    if slot.size > RFC_SIZE_LIMIT:
        return f"{format_size(slot.size)} is too large to double within a 32-bit offset"
    return None


def qemu_rfc(device: Device, platform: Platform) -> Outcome:
    """2017 RFC 'auto' (seed thread): BAR0..5, least resulting BAR size, first wins ties.

    Modelled literally: the size check `continue`s before the `i++` that steps
    over a 64-bit BAR's upper half, so after a skipped large 64-bit BAR the RFC
    looks at its upper half as if it were free; QEMU then refuses that pick.
    """
    return _scan(device, platform, "qemu-rfc", _FORWARD, None, step_over_upper_half=True)


_FORWARD = list(range(BAR_SLOTS))
_BACKWARD = list(range(BAR_SLOTS - 1, -1, -1))


def _upper_half(slot: QemuBar, view: tuple[QemuBar, ...]) -> bool:
    return not slot.size and slot.index > 0 and view[slot.index - 1].mem64


def _upper_half_skip(slot: QemuBar, view: tuple[QemuBar, ...]) -> str | None:
    return f"upper half of 64-bit BAR{slot.index - 1}" if _upper_half(slot, view) else None


def reverse(device: Device, platform: Platform) -> Outcome:
    """The RFC's cost, scanning BAR5 down to BAR0 (Kardashevskiy's suggestion in the seed)."""
    return _scan(device, platform, "reverse", _BACKWARD, _upper_half_skip, step_over_upper_half=False)


def _unimplemented_skip(slot: QemuBar, view: tuple[QemuBar, ...]) -> str | None:
    return "not implemented" if not slot.size and not slot.ioport else None


def extend_only(device: Device, platform: Platform) -> Outcome:
    """The RFC loop with `|| !vdev->bars[i].size` added (Williamson in the seed): never add a BAR."""
    return _scan(device, platform, "extend-only", _FORWARD, _unimplemented_skip, step_over_upper_half=True)


def qemu_upstream(device: Device, platform: Platform) -> Outcome:
    """Upstream 'auto': the lookup table is an empty TODO, so every device is refused."""
    # QEMU prints the real IDs; without them in the input (lspci without -nn) say so, never 0000:0000
    ident = device.id_text if device.vendor is not None and device.device is not None else "[IDs unknown]"
    return Outcome("qemu", None, None, refused=MSG_AUTO.format(id=ident),
                   notes=("upstream QEMU's auto has no lookup entries",))


def cloud_hypervisor(device: Device, platform: Platform) -> Outcome:
    """Cloud Hypervisor pci/src/vfio.rs fixup_msix_region, applied in allocate_bars.

    Only for the 64-bit memory BAR that holds the table, and only when the table
    offset is not host-page aligned.  PBA size is (n/64 + 1) * 8 (pci/src/msix.rs
    pba_range), the new size max(2*size, 2*page_align(table + PBA)) with no
    power-of-two rounding, the table at size/2, and the PBA keeps its distance
    from the table (it assumes the PBA shares the table's BAR).
    """
    name = "cloud-hypervisor"
    msix = device.msix
    assert msix is not None
    page = platform.page_size
    bar = device.bar(msix.table_bar)
    if bar is None or bar.kind is not BarKind.MEM64:
        why = f"leaves MSI-X in place: the table's BAR{msix.table_bar} is not a 64-bit memory BAR"
    elif msix.table_offset % page == 0:
        why = (f"leaves MSI-X in place: table offset {msix.table_offset:#x} is {format_size(page)}"
               f" aligned")
    else:
        why = None
    if why is not None:  # the native outcome, as Cloud Hypervisor's
        layout, notes, refused = native_parts(device, platform)
        return Outcome(name, None, layout, refused=refused, notes=notes + (why,), vmm=name)
    table_bytes = msix.entries * MSIX_ENTRY_SIZE
    pba_bytes = (msix.entries // 64 + 1) * 8
    size = max(bar.size * 2, align_up(table_bytes + pba_bytes, page) * 2)
    table_offset = size // 2
    pba_offset = (size // 2 + msix.pba_offset - msix.table_offset) % (1 << 64)
    new_bar = Bar(bar.index, bar.kind, size, bar.prefetchable, bar.assigned)  # replace() costs more
    bars = tuple(new_bar if b.index == bar.index else b for b in visible_bars(device, platform))
    new_msix = Msix(msix.entries, msix.table_bar, table_offset % (1 << 32), msix.pba_bar,
                    pba_offset % (1 << 32), enabled=None)
    findings = []
    if (problem := power_of_two_problem(new_bar)):
        findings.append(Finding("cloud-hypervisor/bar-not-power-of-two", "warn",
                                f"Cloud Hypervisor: {problem}"))
    if msix.pba_bar != msix.table_bar:
        findings.append(Finding("cloud-hypervisor/pba-in-other-bar", "warn",
                                f"Cloud Hypervisor moves the PBA offset within BAR{msix.pba_bar} as if it"
                                f" shared the table's BAR{msix.table_bar} ('Suppose table_bir equals to"
                                f" pba_bir here. Am I right?')"))
    elif msix.pba_offset < msix.table_offset:
        findings.append(Finding("cloud-hypervisor/pba-below-table", "warn",
                                f"Cloud Hypervisor keeps the PBA {msix.table_offset - msix.pba_offset:#x}"
                                f" below the table: it lands at {new_msix.pba_offset:#x}, in the BAR's"
                                f" original half, sharing pages with device registers"))
    if pba_offset >= 1 << 32 or table_offset >= 1 << 32:
        findings.append(Finding("cloud-hypervisor/offset-truncated", "forbid",
                                "Cloud Hypervisor truncates an MSI-X offset to 32 bits (`as u32`)"))
    notes = (f"extends BAR{bar.index} from {format_size(bar.size)} to {format_size(size)}"
             f" (table {format_size(table_bytes)} + PBA {pba_bytes} bytes, page-aligned, doubled)",)
    return Outcome(name, bar.index, Layout(bars, new_msix, device_backed=bar.size), notes=notes,
                   findings=tuple(findings), vmm=name)


def pve_tools(device: Device, platform: Platform) -> Outcome:
    """PVE-Tools (PVE-Tools/PVE-Tools-9 @660fbc9e, src/modules/04-gpu-passthrough/controller.sh
    nvme_should_enable_msix_relocation, lines 133-142): `bar2` whenever `lspci -vv` shows MSI-X
    and a memory Region 2; otherwise it leaves relocation off.  It never looks at where the
    table is, and skips the common NVMe case with no BAR2, where QEMU would add a BAR."""
    name = "pve-tools"
    bar2 = device.bar(2)
    if bar2 is None or not bar2.kind.is_memory:
        layout, _, refused = native_parts(device, platform)
        return Outcome(name, None, layout, refused=refused,
                       notes=("no memory Region 2: PVE-Tools leaves relocation off",))
    return relocate(device, platform, 2, strategy=name,
                    notes=("memory Region 2 present: PVE-Tools offers bar2",))


HEURISTICS: dict[str, Strategy] = {
    "qemu-rfc": qemu_rfc,
    "reverse": reverse,
    "extend-only": extend_only,
    "cloud-hypervisor": cloud_hypervisor,
    "pve-tools": pve_tools,
    "qemu": qemu_upstream,
    "off": lambda device, platform: native_outcome(device, platform),
}

TARGETS = tuple(f"bar{i}" for i in range(BAR_SLOTS))
_TARGET_INDEX = {name: index for index, name in enumerate(TARGETS)}


def run(name: str, device: Device, platform: Platform) -> Outcome:
    """One strategy by name: 'off', 'bar0'..'bar5', or a heuristic."""
    target = _TARGET_INDEX.get(name)
    if target is not None:
        return relocate(device, platform, target)
    try:
        return HEURISTICS[name](device, platform)
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: off, bar0..bar5, "
                       + ", ".join(h for h in HEURISTICS if h != "off")) from None


def all_names() -> list[str]:
    """`--all` order: off, bar0..bar5, then each heuristic by name."""
    return ["off", *TARGETS, *(h for h in HEURISTICS if h != "off")]


def run_all(device: Device, platform: Platform) -> list[Outcome]:
    return [run(name, device, platform) for name in all_names()]
