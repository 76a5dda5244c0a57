"""QEMU's MSI-X relocation arithmetic, modelled exactly, refusals included.

Source modelled: QEMU hw/vfio/pci.c (upstream, 2025), functions
``vfio_msix_early_setup`` (PBA sanity check and per-device PBA fixes),
``vfio_pci_fixup_msix_region`` (which host pages get trapped) and
``vfio_pci_relocate_msix`` (the relocation itself).  QEMU works on
``vdev->bars[i]``, filled by ``vfio_bar_prepare`` from the VFIO region
sizes: a BAR whose region has size 0 is never registered, so QEMU treats
its slot as empty.  On a host without I/O port space the kernel cannot size
or assign an I/O BAR, so the same happens to every I/O BAR there; and on any
host to a BAR whose resource the host emptied (unassigned, size 0: ``qemu_view``).

``diagnose_msix`` is the one place that decides an MSI-X capability is
broken in itself (a table the host cannot map): not a relocation question.
"""

from __future__ import annotations

from .frozen import Frozen, _set, replace
from .memo import same_arguments_as_last_call
from .model import BAR_SLOTS, MSIX_ENTRY_SIZE, Bar, BarKind, Device, Layout, Msix, Platform, SlotState
# Layout (a guest's BARs and MSI-X) is a model type; importing it from here keeps working.
from .units import GiB, align_down, align_up, format_size, is_pow2, pow2ceil

UINT32_MAX = 0xFFFFFFFF

# QEMU's own words (hw/vfio/pci.c), so users can search for what they saw.
MSG_AUTO = "No automatic MSI-X relocation available for device {id}"
MSG_IO = "Invalid MSI-X relocation BAR {bar}, I/O port BAR"
MSG_SHADOW = "Invalid MSI-X relocation BAR {bar}, consumed by 64-bit BAR {below}"
MSG_NO_SPACE = "Invalid MSI-X relocation BAR {bar}, no space to extend 32-bit BAR"
MSG_PBA_OUTSIDE = "hardware reports invalid configuration, MSIX PBA outside of specified BAR"
MSG_MSIX_INIT = "table & pba overlap, or they don't fit in BARs, or don't align"  # hw/pci/msix.c msix_init


class QemuBar(Frozen):
    """One entry of QEMU's ``vdev->bars[]``: what QEMU knows about a slot."""

    index: int
    size: int  # 0: not registered with QEMU (empty slot, upper half, or invisible)
    ioport: bool
    mem64: bool
    bar: Bar | None  # the device's BAR in this slot, visible or not

    def __init__(self, index: int, size: int, ioport: bool, mem64: bool, bar: Bar | None) -> None:
        _set(self, "index", index)
        _set(self, "size", size)
        _set(self, "ioport", ioport)
        _set(self, "mem64", mem64)
        _set(self, "bar", bar)


class Finding(Frozen):
    """Where a layout is unsafe in itself, whatever the driver: the simulator's own verdict."""

    rule: str  # e.g. "qemu/msix-offset-overflow"
    severity: str  # forbid | warn
    message: str

    def __init__(self, rule: str, severity: str, message: str) -> None:
        _set(self, "rule", rule)
        _set(self, "severity", severity)
        _set(self, "message", message)


class Outcome(Frozen):
    """One strategy applied to one device: a guest layout, or QEMU's refusal."""

    strategy: str
    target: int | None  # the BAR that holds MSI-X after relocation; None: not relocated
    layout: Layout | None
    refused: str | None
    notes: tuple[str, ...]  # how the strategy decided
    findings: tuple[Finding, ...]  # where the result is unsafe or odd in itself
    vmm: str  # whose arithmetic produced the layout

    def __init__(self, strategy: str, target: int | None, layout: Layout | None,
                 refused: str | None = None, notes: tuple[str, ...] = (),
                 findings: tuple[Finding, ...] = (), vmm: str = "qemu") -> None:
        _set(self, "strategy", strategy)
        _set(self, "target", target)
        _set(self, "layout", layout)
        _set(self, "refused", refused)
        _set(self, "notes", notes)
        _set(self, "findings", findings)
        _set(self, "vmm", vmm)

    @property
    def ok(self) -> bool:
        return self.refused is None

    @property
    def option(self) -> str | None:
        """The value of QEMU's x-msix-relocation property that yields this layout, if any."""
        if self.vmm != "qemu":
            return None
        return "off" if self.target is None else f"bar{self.target}"


def qemu_view(device: Device, platform: Platform) -> tuple[QemuBar, ...]:
    """``vdev->bars[0..5]`` after ``vfio_bars_prepare`` (_qemu_view: of the platform, only
    whether the host has I/O port space matters, so one view serves every page size).

    A BAR the host left unassigned with no size (``assigned=False, size=0``: the kernel holds no
    resource for it) is an empty slot on every host, whatever its type: VFIO reports the region
    size as ``pci_resource_len``, 0 for an empty resource (Linux 6.12
    drivers/vfio/pci/vfio_pci_core.c:1064), and ``vfio_bar_prepare`` skips a region of size 0.
    The kernel empties a resource it cannot or will not assign (``reset_resource`` after a
    failed assignment, pci=nobar's ``pcibios_fixup_device_resources``); lspci >= 3.8 then prints
    no Region line, older lspci ``<unassigned>`` (``<ignored>`` when the register still holds
    an address) with no size, and sysfs the type bits in ``config`` over a ``resource`` line of
    zeros.  Observed in the lab (corpus/cases/lab-megasas-gen2-noio.yaml): no guest BAR0, and
    ``bar0`` accepted as a new memory BAR0.  Not the same as a size of 0 on an assigned BAR,
    which means the input did not give the size (``lspci -b``, dumps without sizes).

    An unassigned BAR that still has a size (lspci ``<unassigned> [size=256]``, a sysfs
    resource from 0 to size-1) is a resource the kernel holds unset: vfio-pci then cannot
    enable the device at all (drivers/pci/setup-res.c:454 pci_enable_resources, "not
    assigned; can't enable device"), so QEMU has no view of it; barsafe keeps such a BAR as
    the device describes it.
    """
    return _qemu_view(device, platform.io_space)


@same_arguments_as_last_call
def _qemu_view(device: Device, io_space: bool) -> tuple[QemuBar, ...]:
    view = []
    for index in range(BAR_SLOTS):
        bar = device.bar(index)
        if bar is None:
            view.append(QemuBar(index, 0, False, False, None))
        elif not bar.assigned and not bar.size:
            view.append(QemuBar(index, 0, False, False, bar))
        elif bar.is_io:
            # An I/O BAR is registered as an I/O port BAR only where the host has port space.
            visible = io_space
            view.append(QemuBar(index, bar.size if visible else 0, visible, False, bar))
        else:
            # A memory BAR of unknown size cannot be registered faithfully: leave it out.
            view.append(QemuBar(index, bar.size, False, bar.is_64bit and bar.size > 0, bar))
    return tuple(view)


def visible_bars(device: Device, platform: Platform) -> tuple[Bar, ...]:
    return _visible_bars(device, platform.io_space)


@same_arguments_as_last_call
def _visible_bars(device: Device, io_space: bool) -> tuple[Bar, ...]:
    return tuple(q.bar for q in _qemu_view(device, io_space)
                 if q.bar is not None and (q.size > 0 or q.ioport))


@same_arguments_as_last_call
def msix_size(msix: Msix, platform: Platform) -> int:
    """Bytes QEMU reserves for table + PBA: page-aligned, then a power of two."""
    raw = msix.entries * MSIX_ENTRY_SIZE + align_up(msix.entries, 64) // 8
    return pow2ceil(align_up(raw, platform.page_size))


def rfc_cost(slot: QemuBar, msix_sz: int) -> int:
    """The 2017 RFC's cost: the resulting BAR size ("least additional MMIO")."""
    return max(slot.size * 2, msix_sz * 2 if slot.size else msix_sz)


# --- a capability that is broken in itself ------------------------------------------------------
#
# What the host does with the Table BIR/offset (Linux 6.12.117, drivers/pci/msi/msi.c):
# msix_capability_init (:714) maps the table with msix_map_region (:565-584), which reads the BIR,
# returns NULL when pci_resource_flags(dev, bir) is 0 or IORESOURCE_UNSET (:576-578), and otherwise
# ioremaps pci_resource_start(dev, bir) + offset for entries * 16 bytes (:581-583), checking neither
# that the BIR is 0..5, nor that the resource is memory, nor that the table fits in the BAR.  A NULL
# map fails MSI-X with -ENOMEM (:734-737).  The host does this for the guest too: vfio-pci enables
# the vectors QEMU asks for with pci_alloc_irq_vectors (drivers/vfio/pci/vfio_pci_intrs.c:393,
# vfio_msi_enable), so relocating the guest's view of the table changes nothing on the host.
# The PBA is different: the host never reads it (no code under drivers/pci/msi/ or drivers/vfio/
# touches PCI_MSIX_PBA), and QEMU emulates its own (hw/pci/msix.c msix_init allocates msix_pba);
# only QEMU's layout checks look at where the device says it is.

_LINUX_MAP = "Linux 6.12 drivers/pci/msi/msi.c msix_map_region"
_QEMU_PBA = ("the host never reads the PBA (drivers/pci/msi/ has no access to it) and QEMU emulates"
             " its own, so any x-msix-relocation target, which re-lays table and PBA, lets QEMU accept"
             " the device")


class MsixProblem(Frozen):
    """One way the MSI-X capability contradicts the device's own BARs."""

    structure: str  # "table" | "PBA"
    kind: str  # reserved-bir | no-bar | upper-half | io-bar | past-end
    blocking: bool  # no relocation target can help: the host cannot use the table, or QEMU is undefined
    summary: str  # one line, for tables and reasons
    detail: str  # what Linux and QEMU do with it, with sources

    def __init__(self, structure: str, kind: str, blocking: bool, summary: str,
                 detail: str) -> None:
        _set(self, "structure", structure)
        _set(self, "kind", kind)
        _set(self, "blocking", blocking)
        _set(self, "summary", summary)
        _set(self, "detail", detail)


class MsixDiagnosis(Frozen):
    """diagnose_msix's answer: the one place that decides a capability is broken."""

    problems: tuple[MsixProblem, ...]
    unchecked: tuple[str, ...]  # checks the input did not allow (a BAR of unknown size)

    def __init__(self, problems: tuple[MsixProblem, ...] = (),
                 unchecked: tuple[str, ...] = ()) -> None:
        _set(self, "problems", problems)
        _set(self, "unchecked", unchecked)

    @property
    def broken(self) -> bool:
        """MSI-X cannot work whatever QEMU shows the guest: the host cannot use the table, or a
        reserved BIR sends QEMU past its BAR array before any relocation."""
        return any(p.blocking for p in self.problems)

    @property
    def reason(self) -> str:
        return "; ".join(p.summary for p in self.problems if p.blocking or not self.broken)


@same_arguments_as_last_call
def diagnose_msix(device: Device) -> MsixDiagnosis:
    """Check the MSI-X table and PBA against the BARs the device implements.

    Independent of the host platform and of relocation: a BIR naming a slot the
    device does not implement, an upper half, a reserved value or an I/O BAR,
    or a structure running past the end of its BAR, is the device's fault.
    A table problem is blocking (the host's msix_map_region fails, or maps
    something that is not the table); a PBA problem is not (nobody reads the
    device's PBA, and QEMU accepts it with relocation).  A BAR whose size the
    input does not give is reported as unchecked, not guessed.
    """
    msix = device.msix
    if msix is None:
        return MsixDiagnosis()
    problems: list[MsixProblem] = []
    unchecked: list[str] = []
    for structure, bir, offset, length in (("table", msix.table_bar, msix.table_offset, msix.table_bytes),
                                           ("PBA", msix.pba_bar, msix.pba_offset, msix.pba_bytes)):
        bar = device.bar(bir) if bir < BAR_SLOTS else None
        if bar is not None and not bar.is_io and bar.size == 0:
            unchecked.append(f"BAR{bir}'s size is not in the input, so barsafe cannot tell whether the"
                             f" MSI-X {structure} ({length} bytes at {offset:#x}) fits in it")
            continue
        found = _locate_problem(device, structure, bir, offset, length)
        if found is not None:
            kind, summary, linux, qemu_off = found
            if structure == "table":
                detail = (f"{summary}. {_sentence(linux)}; the host cannot use the device's MSI-X table, and no"
                          f" relocation changes that: QEMU moves only the guest's view of the table, while"
                          f" the host's vfio-pci enables the vectors through the same code"
                          f" (drivers/vfio/pci/vfio_pci_intrs.c vfio_msi_enable)")
            elif kind == "reserved-bir":
                detail = (f"{summary}. {_sentence(qemu_off)}; it reads the BIR before it relocates"
                          f" anything, so no x-msix-relocation target avoids that")
            else:
                detail = f"{summary}. {_sentence(qemu_off)}; {_QEMU_PBA}" + _pba_quirk(device)
            problems.append(MsixProblem(structure, kind, structure == "table" or kind == "reserved-bir",
                                        summary, detail))
    return MsixDiagnosis(tuple(problems), tuple(unchecked))


def _locate_problem(device: Device, structure: str, bir: int, offset: int,
                    length: int) -> tuple[str, str, str, str] | None:
    """(kind, summary, what the host's Linux does, what QEMU does with relocation off), or None."""
    where = f"MSI-X {structure} BIR {bir}"
    if bir >= BAR_SLOTS:
        resource = "the expansion ROM" if bir == 6 else "the first SR-IOV VF BAR (with CONFIG_PCI_IOV)"
        return ("reserved-bir", f"{where} is reserved: only 0..5 name a BAR",
                f"{_LINUX_MAP} does not check the range: it maps the table relative to resource {bir},"
                f" {resource} (include/linux/pci.h), or fails with -ENOMEM when that resource is empty",
                f"QEMU indexes vdev->bars[{bir}], past the six BARs it keeps (hw/vfio/pci.h"
                f" `VFIOBAR bars[PCI_NUM_REGIONS - 1]`): what it does is undefined")
    state = device.slot_state(bir)
    bar = device.bar(bir)
    if state is SlotState.UPPER_HALF:
        return ("upper-half", f"{where} names the upper half of 64-bit BAR{bir - 1}",
                f"Linux leaves that slot's resource empty (drivers/pci/probe.c pci_read_bases steps over"
                f" it), so {_LINUX_MAP} returns NULL and MSI-X setup fails with -ENOMEM",
                f"with relocation off QEMU refuses: \"{MSG_PBA_OUTSIDE}\" (hw/vfio/pci.c vfio_msix_early_setup)")
    if bar is None:
        return ("no-bar", f"{where} names BAR{bir}, which the device does not implement",
                f"the slot's resource has no flags, so {_LINUX_MAP} returns NULL and MSI-X setup fails"
                f" with -ENOMEM",
                f"with relocation off QEMU refuses: \"{MSG_PBA_OUTSIDE}\" (hw/vfio/pci.c vfio_msix_early_setup)")
    if bar.is_io:
        return ("io-bar", f"{where} names I/O BAR{bir}, but MSI-X structures live in memory space",
                f"{_LINUX_MAP} does not check the resource type: it ioremaps the I/O port number plus"
                f" the offset as if it were a memory address, so the vectors go to memory that is not"
                f" the device's",
                "QEMU lays the PBA into the I/O BAR where the host has I/O port space, and refuses it"
                f" (\"{MSG_PBA_OUTSIDE}\") where it has none")
    end = offset + length
    if end > bar.size:
        refusal = (f"\"{MSG_PBA_OUTSIDE}\" (hw/vfio/pci.c vfio_msix_early_setup)" if offset >= bar.size
                   else f"\"{MSG_MSIX_INIT}\" (hw/pci/msix.c msix_init)")
        return ("past-end", f"MSI-X {structure} at BAR{bir} {offset:#x}-{end - 1:#x} runs past the end of"
                            f" the {format_size(bar.size)} BAR",
                f"{_LINUX_MAP} ioremaps offset + {length} bytes without checking the BAR's length, so"
                f" the vectors past {bar.size:#x} are written to whatever lies beyond the BAR, not to"
                f" the device", f"with relocation off QEMU refuses: {refusal}")
    return None


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _pba_quirk(device: Device) -> str:
    for matches, _, why in PBA_QUIRKS:
        if device.vendor is not None and device.device is not None and matches(device.vendor, device.device):
            return f"; QEMU also corrects this device's PBA itself ({why})"
    return ""


# vfio_msix_early_setup: per-device corrections of a PBA offset that lies outside its BAR.
PBA_QUIRKS = (
    # (matches(vendor, device), corrected offset, QEMU's reason)
    (lambda v, d: v == 0x1425 and d & 0xFF00 == 0x5800, 0x1000,
     "Chelsio T5 VF reports PBA offset 0x8000 in an 8K BAR; QEMU uses 0x1000"),
    (lambda v, d: v == 0x1D22 and d == 0x3685, 0xB400,
     "Baidu Kunlun VF reports PBA offset 0x460000 in a 64K BAR; QEMU uses 0xb400"),
)


def early_setup(device: Device, platform: Platform, relocating: bool) -> tuple[Msix, tuple[str, ...], str | None]:
    """The PBA check of vfio_msix_early_setup: (msix as QEMU keeps it, notes, refusal)."""
    return _early_setup(device, platform.io_space, relocating)


@same_arguments_as_last_call
def _early_setup(device: Device, io_space: bool, relocating: bool) -> tuple[Msix, tuple[str, ...], str | None]:
    msix = device.msix
    assert msix is not None
    reserved = [p for p in diagnose_msix(device).problems if p.kind == "reserved-bir"]
    if reserved:
        # QEMU indexes vdev->bars[bir] without a range check: past its six BARs for BIR 6/7.
        # What it then does is undefined, so the model stops here.
        return msix, (), f"{reserved[0].summary} (QEMU's behaviour is undefined; barsafe does not model it)"
    region = _qemu_view(device, io_space)[msix.pba_bar].size
    if msix.pba_offset < region:
        return msix, (), None
    for matches, offset, why in PBA_QUIRKS:
        if device.vendor is not None and device.device is not None and matches(device.vendor, device.device):
            return replace(msix, pba_offset=offset), (f"QEMU PBA quirk: {why}",), None
    if relocating:
        return msix, ("PBA lies outside its BAR; relocation re-lays it, so QEMU accepts the device",), None
    return msix, (), MSG_PBA_OUTSIDE


def msix_init_check(bars: tuple[Bar, ...], msix: Msix) -> str | None:
    """hw/pci/msix.c msix_init's sanity test on the layout QEMU finally registers."""
    sizes = {b.index: b.size for b in bars}
    table, pba = (msix.table_offset, msix.table_bytes), (msix.pba_offset, msix.pba_bytes)
    overlap = msix.table_bar == msix.pba_bar and table[0] < pba[0] + pba[1] and pba[0] < table[0] + table[1]
    if (overlap or sum(table) > sizes.get(msix.table_bar, 0) or sum(pba) > sizes.get(msix.pba_bar, 0)
            or (msix.table_offset | msix.pba_offset) & 7):
        return MSG_MSIX_INIT
    return None


def native_outcome(device: Device, platform: Platform, strategy: str = "off",
                   notes: tuple[str, ...] = ()) -> Outcome:
    """x-msix-relocation=off: the device's own layout, less what QEMU cannot register."""
    layout, more, refusal = _native(device, platform.io_space)
    return Outcome(strategy, None, layout, refused=refusal, notes=notes + more)


def native_parts(device: Device, platform: Platform) -> tuple[Layout | None, tuple[str, ...], str | None]:
    """native_outcome's layout, notes and refusal, for a strategy that makes its own Outcome."""
    return _native(device, platform.io_space)


@same_arguments_as_last_call
def _native(device: Device, io_space: bool) -> tuple[Layout | None, tuple[str, ...], str | None]:
    """native_outcome's layout (one object for every strategy that leaves MSI-X in place, so
    their rule results are shared), notes and refusal."""
    if device.msix is None:
        return Layout(_visible_bars(device, io_space), None), (), None
    msix, more, refusal = _early_setup(device, io_space, False)
    bars = _visible_bars(device, io_space)
    refusal = refusal or msix_init_check(bars, msix)
    if refusal:
        return None, more, refusal
    return Layout(bars, msix), more, None


def relocate(device: Device, platform: Platform, target: int, strategy: str | None = None,
             notes: tuple[str, ...] = ()) -> Outcome:
    """x-msix-relocation=barN: vfio_pci_relocate_msix for one target BAR.

    Computed once for the device being judged (``_relocations``) per target and what the
    result depends on: the host's I/O port space and the MSI-X size the page size gives (only
    where that is more than the BAR extended).  `barN` and every heuristic that picks BAR N,
    and often the same target at another page size, get the same layout object."""
    if device.msix is None:
        raise ValueError("device has no MSI-X capability")
    if not 0 <= target < BAR_SLOTS:
        raise ValueError(f"target BAR {target} out of range 0..5")
    done, keys, more, refusal = _plan(device, platform)
    if keys is None:
        return Outcome(strategy or f"bar{target}", target, None, refused=refusal, notes=notes + more)
    key = keys[target]
    found = done.get(key)
    if found is None:
        found = done[key] = _relocate(device, platform, target)
    layout, more, refusal, findings = found
    if strategy is None and not notes:  # `barN` itself: one Outcome, as the result is one
        outcome = done.get((key, None))
        if outcome is None:
            outcome = done[(key, None)] = Outcome(f"bar{target}", target, layout, refused=refusal,
                                                  notes=more, findings=findings)
        return outcome
    return Outcome(strategy or f"bar{target}", target, layout, refused=refusal, notes=notes + more,
                   findings=findings)


@same_arguments_as_last_call
def _plan(device: Device, platform: Platform) -> tuple[dict, tuple | None, tuple[str, ...], str | None]:
    """For relocate: the device's results so far (_relocations), each target's key into them
    (the target, and the size that decides the result: the MSI-X size this page size gives, or
    the BAR's if that is more), or None with early setup's notes and refusal."""
    io_space = platform.io_space
    msix, more, refusal = _early_setup(device, io_space, True)
    done = _relocations(device, io_space)
    if refusal:
        return done, None, more, refusal
    msix_sz = msix_size(msix, platform)
    keys = tuple((slot.index, max(slot.size, msix_sz) if slot.size else msix_sz)
                 for slot in _qemu_view(device, io_space))
    return done, keys, more, None


_MSIX_SETTERS = tuple(getattr(Msix, name).__set__ for name in Msix.__slots__)


def _simulated_msix(*values: int) -> Msix:
    """Msix(entries, table_bar, table_offset, pba_bar, pba_offset, enabled=None) for the values
    _relocate computes, which Msix's checks hold for by construction (entries from a checked
    capability, a target BAR of 0..5, offsets 0, half a power of two of at least 8K, and that
    plus the table's size): its __init__ checking them again cost more than building it."""
    msix = object.__new__(Msix)
    for set_, value in zip(_MSIX_SETTERS, (*values, None)):
        set_(msix, value)
    return msix


@same_arguments_as_last_call
def _relocations(device: Device, io_space: bool) -> dict:
    """relocate's results for one device, by target BAR and the size that decides the result."""
    return {}


def _relocate(device: Device, platform: Platform,
              target: int) -> tuple[Layout | None, tuple[str, ...], str | None, tuple[Finding, ...]]:
    """(layout, notes, refusal, findings) of relocating MSI-X to BAR ``target``."""
    msix, notes, refusal = early_setup(device, platform, True)
    if refusal:
        return None, notes, refusal, ()

    view = qemu_view(device, platform)
    slot = view[target]
    if slot.ioport:
        return None, notes, MSG_IO.format(bar=target), ()
    if not slot.size and target > 0 and view[target - 1].mem64:
        return None, notes, MSG_SHADOW.format(bar=target, below=target - 1), ()
    if slot.size > 1 * GiB and not slot.mem64:
        return None, notes, MSG_NO_SPACE.format(bar=target), ()

    msix_sz = msix_size(msix, platform)
    if not slot.size:
        mem64 = target < BAR_SLOTS - 1 and not view[target + 1].size
        new_bar = Bar(target, BarKind.MEM64 if mem64 else BarKind.MEM32, msix_sz,
                      prefetchable=True, assigned=True)
        table_offset = 0
        notes += (f"adds BAR{target}: {'mem64' if mem64 else 'mem32'}, prefetchable,"
                  f" {format_size(msix_sz)}",)
    else:
        assert slot.bar is not None
        size = max(slot.size * 2, msix_sz * 2)
        old = slot.bar
        new_bar = Bar(old.index, old.kind, size, old.prefetchable, old.assigned)  # replace() costs 4x
        table_offset = size // 2
        notes += (f"extends BAR{target} from {format_size(slot.size)} to {format_size(size)};"
                  f" MSI-X at its upper half",)

    # The device's visible BARs are in index order: the new one goes in its place, and a 64-bit
    # one takes the slot above as its upper half.
    taken = (target, target + 1) if new_bar.kind is BarKind.MEM64 else (target,)
    bars = [b for b in visible_bars(device, platform) if b.index not in taken]
    at = 0
    while at < len(bars) and bars[at].index < target:
        at += 1
    bars.insert(at, new_bar)
    pba_offset = table_offset + msix.entries * MSIX_ENTRY_SIZE
    new_msix = _simulated_msix(msix.entries, target, table_offset, target, pba_offset)
    findings = bar_quirks(device, target)
    if pba_offset > UINT32_MAX:  # the PBA follows the table: it overflows first
        findings += tuple(
            Finding("qemu/msix-offset-overflow", "forbid",
                    f"extending BAR{target} to {format_size(new_bar.size)} puts the MSI-X {what} at"
                    f" {offset:#x}, beyond the capability's 32-bit offset field: the guest reads"
                    f" {offset & UINT32_MAX & ~7:#x}, inside the device's own registers (QEMU accepts"
                    f" this; hw/vfio/pci.c vfio_pci_relocate_msix checks no upper bound for 64-bit BARs)")
            for what, offset in (("table", new_msix.table_offset), ("PBA", new_msix.pba_offset))
            if offset > UINT32_MAX)
    return Layout(tuple(bars), new_msix, device_backed=slot.size), notes, None, findings


# PCIe Base Spec, MSI-X Table/PBA placement: registers "must not share any naturally
# aligned 4-KB address range" with an MSI-X structure.  So within those 4K ranges a
# compliant device has nothing but MSI-X; anything else in a trapped page may be registers.
MSIX_EXCLUSIVE_UNIT = 4 * 1024


# hw/vfio/pci-quirks.c vfio_bar_quirk_setup: BARs QEMU overlays with device quirks.
# (vendor, device or None, BAR, class required or None, quirk function, what it does)
BAR_QUIRKS = (
    (0x10EC, 0x8168, 2, None, "vfio_probe_rtl8168_bar2_quirk",
     "an address/data window at 0x70/0x74 that the RTL8168 uses to reach its MSI-X table;"
     " QEMU redirects it to the emulated table"),
    (0x10DE, None, 0, 0x0300, "vfio_probe_nvidia_bar0_quirk",
     "mirrors of PCI config space at 0x88000 (and 0x1800 with x-vga)"),
    (0x1002, None, 2, 0x0300, "vfio_probe_ati_bar2_quirk",
     "a config-space mirror at 0x4000 (with x-vga=on and a 64-bit BAR2)"),
    (0x8086, None, 0, 0x0300, "vfio_probe_igd_bar0_quirk",
     "mirrors of the GGC and BDSM config registers at 0x108040/0x1080c0 (IGD gen 6+)"),
)


_QUIRKED = frozenset((vendor, bar) for vendor, _, bar, _, _, _ in BAR_QUIRKS)


def bar_quirks(device: Device, target: int) -> tuple[Finding, ...]:
    """A target BAR that QEMU also overlays with a quirk: a combination nobody has tested."""
    if (device.vendor, target) not in _QUIRKED:
        return ()
    out = []
    for vendor, dev_id, bar, cls, function, what in BAR_QUIRKS:
        if target == bar and device.vendor == vendor and dev_id in (None, device.device) and (
                cls is None or device.class_code == cls):
            out.append(Finding("qemu/bar-quirk", "warn",
                               f"QEMU overlays BAR{bar} of this device with a quirk ({function},"
                               f" hw/vfio/pci-quirks.c): {what}; relocating MSI-X into the same BAR"
                               f" stacks two emulations on it"))
    return tuple(out)


class RegisterSpan(Frozen):
    """Device registers at BAR ``bar`` offsets [start, end) that a driver uses, as its rule set
    states them (`registers` statements, engine/rules): plain data, so this module needs no
    rules.  Inside the 4K range of an MSI-X structure they break the PCIe rule the page
    analysis otherwise relies on."""

    bar: int
    start: int
    end: int  # exclusive
    what: str  # "interrupt-cause registers"
    owner: str  # who states it: the rule set, "iwlwifi"
    cite: str  # where the driver defines them: "drivers/.../iwl-csr.h:587"

    def __init__(self, bar: int, start: int, end: int, what: str = "registers", owner: str = "",
                 cite: str = "") -> None:
        _set(self, "bar", bar)
        _set(self, "start", start)
        _set(self, "end", end)
        _set(self, "what", what)
        _set(self, "owner", owner)
        _set(self, "cite", cite)

    def text(self, structure: str) -> str:
        """'iwlwifi keeps interrupt-cause registers at BAR0 0x2800-0x28ff, in the 4K range of
        the MSI-X table (iwl-csr.h:587)'."""
        who = f"{self.owner} keeps" if self.owner else "the device keeps"
        cite = f" ({self.cite.rsplit('/', 1)[-1]})" if self.cite else ""
        return (f"{who} {self.what} at BAR{self.bar} {self.start:#x}-{self.end - 1:#x}, in the 4K"
                f" range of the MSI-X {structure}{cite}")


class PageAnalysis(Frozen):
    """Which host pages QEMU traps for the MSI-X table, and what else lives in them."""

    page_size: int
    table_bar: int
    bar_size: int
    trap_start: int
    trap_end: int  # exclusive, as vfio_pci_fixup_msix_region computes it
    shared_bytes: int  # device bytes in the trapped pages outside the MSI-X 4K ranges
    # registers stated to lie inside those 4K ranges (PCIe forbids it), in the trapped pages:
    # each with the structure whose range it shares ("table", "PBA", "table and PBA")
    registers: tuple[tuple[RegisterSpan, str], ...]
    register_bytes: int  # their bytes in the trapped pages

    def __init__(self, page_size: int, table_bar: int, bar_size: int, trap_start: int,
                 trap_end: int, shared_bytes: int,
                 registers: tuple[tuple[RegisterSpan, str], ...] = (),
                 register_bytes: int = 0) -> None:
        _set(self, "page_size", page_size)
        _set(self, "table_bar", table_bar)
        _set(self, "bar_size", bar_size)
        _set(self, "trap_start", trap_start)
        _set(self, "trap_end", trap_end)
        _set(self, "shared_bytes", shared_bytes)
        _set(self, "registers", registers)
        _set(self, "register_bytes", register_bytes)

    @property
    def needs_relocation(self) -> bool:
        return self.shared_bytes > 0 or self.register_bytes > 0

    @property
    def reason(self) -> str:
        span = f"{self.trap_start:#x}-{self.trap_end - 1:#x}"
        page = format_size(self.page_size)
        stated = "; ".join(r.text(structure) for r, structure in self.registers)
        if self.shared_bytes > 0:
            shared = (f"with {page} pages QEMU traps BAR{self.table_bar} {span} for the MSI-X table;"
                      f" {format_size(self.shared_bytes)} of it lies outside the 4K ranges of the"
                      f" MSI-X structures (where device registers may live), so accesses there trap")
            return f"{shared}; and {stated}, accesses to them trap as well" if stated else shared
        if stated:
            return (f"with {page} pages QEMU traps BAR{self.table_bar} {span} for the MSI-X table;"
                    f" {stated}, where PCIe allows only MSI-X structures, so accesses to them trap")
        return (f"with {page} pages the trapped range BAR{self.table_bar} {span} holds only the"
                f" 4K ranges of the MSI-X structures")


def analyse_pages(bars: tuple[Bar, ...], msix: Msix, platform: Platform,
                  device_backed: int | None = None,
                  registers: tuple[RegisterSpan, ...] = ()) -> PageAnalysis:
    """vfio_pci_fixup_msix_region's arithmetic: [table & page_mask, page_align(table end)).

    ``device_backed`` is how much of the table's BAR is the device's own space:
    all of it natively; after relocation only the BAR's original size, since
    QEMU backs the added part with MSI-X emulation alone.

    ``registers`` are registers a driver's rules place inside the 4K ranges of the MSI-X
    structures: a device that breaks the PCIe rule.  Those in the trapped pages count as
    shared with the table like any byte outside the 4K ranges.
    """
    page = platform.page_size
    start = align_down(msix.table_offset, page)
    end = align_up(msix.table_offset + msix.table_bytes, page)
    bar = next((b for b in bars if b.index == msix.table_bar), None)
    bar_size = bar.size if bar is not None else 0
    backed = bar_size if device_backed is None else device_backed
    limit = min(end, backed) if (bar_size or device_backed is not None) else end
    table_unit = _unit_span(msix.table_offset, msix.table_bytes)
    spans = [table_unit]
    pba_unit = None
    if msix.pba_bar == msix.table_bar:
        pba_unit = _unit_span(msix.pba_offset, msix.pba_bytes)
        spans.append(pba_unit)
    covered = max(0, limit - start)
    reserved = _union_overlap(start, limit, spans)
    stated: list[tuple[RegisterSpan, str]] = []
    inside: list[tuple[int, int]] = []  # parts of stated registers in trapped MSI-X ranges
    for r in registers:
        if r.bar != msix.table_bar:
            continue
        lo, hi = max(r.start, start), min(r.end, limit)
        shares = [name for name, unit in (("table", table_unit), ("PBA", pba_unit))
                  if unit is not None and max(lo, unit[0]) < min(hi, unit[1])]
        if not shares:
            continue
        stated.append((r, " and ".join(shares)))
        inside += [(max(lo, a), min(hi, b)) for a, b in spans if max(lo, a) < min(hi, b)]
    register_bytes = _union_overlap(start, limit, inside) if inside else 0
    return PageAnalysis(page, msix.table_bar, bar_size, start, end, covered - reserved,
                        tuple(stated), register_bytes)


def _unit_span(offset: int, length: int) -> tuple[int, int]:
    return (align_down(offset, MSIX_EXCLUSIVE_UNIT),
            align_up(offset + length, MSIX_EXCLUSIVE_UNIT))


def _union_overlap(lo: int, hi: int, spans: list[tuple[int, int]]) -> int:
    """Bytes of [lo, hi) covered by the union of spans."""
    total, cursor = 0, lo
    for a, b in sorted(spans):
        a, b = max(a, cursor), min(b, hi)
        if b > a:
            total += b - a
            cursor = b
    return total


def power_of_two_problem(bar: Bar) -> str | None:
    if bar.size and not is_pow2(bar.size):
        return (f"BAR{bar.index} size {bar.size:#x} ({format_size(bar.size)}) is not a power of two:"
                f" PCI BAR sizing cannot express it")
    return None
