"""Human-readable reports in lspci's own idiom, so they can be compared with `lspci -vv` by eye."""

from __future__ import annotations

from ..model import BAR_SLOTS, Bar, BarKind, Device, Msix, Platform, SlotState, PAGE_SIZES, is_slot
from . import config
from ..relocate import MsixDiagnosis, Outcome, RegisterSpan, analyse_pages, diagnose_msix, native_outcome
from ..units import format_size
from ..score import broken_capability_findings
from .safe import long_text, printable


def bar_line(b: Bar, address: str | None = None) -> str:
    where = address if address is not None else ("" if b.assigned else "<unassigned>")
    at = f" at {where}" if where else ""
    size = f" [size={format_size(b.size)}]" if b.size else ""
    if b.kind is BarKind.IO:
        return f"Region {b.index}: I/O ports{at}{size}"
    width = "64-bit" if b.is_64bit else "32-bit"
    pre = "" if b.prefetchable else "non-"
    return f"Region {b.index}: Memory{at} ({width}, {pre}prefetchable){size}"


def msix_lines(m: Msix) -> list[str]:
    enabled = "" if m.enabled is None else f"Enable{'+' if m.enabled else '-'} "
    return [f"MSI-X: {enabled}Count={m.entries}",
            f"\tVector table: BAR={m.table_bar} offset={m.table_offset:08x}",
            f"\tPBA: BAR={m.pba_bar} offset={m.pba_offset:08x}"]


def slot_text(d: Device) -> str:
    return printable(d.slot) if d.slot else "-"


def header(d: Device) -> str:
    cls = printable(d.class_name) if d.class_name else (
        f"[{d.class_code:04x}]" if d.class_code is not None else "")
    rev = f" (rev {d.revision:02x})" if d.revision is not None else ""
    name = f" {printable(d.name)}" if d.name else ""
    ids = d.id_text if d.vendor is not None and d.device is not None else "IDs unknown"
    return f"{slot_text(d)} {cls + ':' if cls else ''}{name} [{ids}]{rev}".replace("  ", " ")


def show(d: Device, registers: tuple[RegisterSpan, ...] = ()) -> str:
    """lspci-style, with the page analysis per page size; ``registers`` are those the matching
    driver rule sets place beside the MSI-X structures (score.stated_registers)."""
    lines = [header(d)]
    if d.subsystem_vendor is not None:
        lines.append(f"\tSubsystem: [{d.subsystem_vendor:04x}:{d.subsystem_device:04x}]")
    for index in range(BAR_SLOTS):
        b = d.bar(index)
        if b is not None:
            lines.append("\t" + bar_line(b))
        elif d.slot_state(index) is SlotState.UPPER_HALF:
            lines.append(f"\tRegion {index}: (upper half of 64-bit BAR{index - 1})")
    if d.rom_size:
        lines.append(f"\tExpansion ROM [size={format_size(d.rom_size)}]")
    if d.msix is not None:
        lines.extend("\t" + l for l in msix_lines(d.msix))
        diagnosis = diagnose_msix(d)
        lines.extend("\t" + l for l in diagnosis_lines(diagnosis))
        if diagnosis.broken:
            lines.append(f"\t{page_verdict(d, Platform())}")  # the same for every page size
        else:
            lines.extend(f"\t{format_size(page)} pages: {page_verdict(d, Platform(page), registers)}"
                         for page in PAGE_SIZES)
    elif not d.msix_unknown:
        lines.append("\tno MSI-X capability")
    if d.driver:
        lines.append(f"\tKernel driver in use: {printable(d.driver)}")
    if d.modules:
        lines.append(f"\tKernel modules: {modules_text(d)}")
    lines.extend(f"\tnote: {long_text(n)}" for n in d.notes)
    return "\n".join(lines)


def diagnosis_lines(diagnosis: MsixDiagnosis) -> list[str]:
    """The capability's own problems (relocate.diagnose_msix), blocking ones first."""
    lines = []
    for p in sorted(diagnosis.problems, key=lambda p: not p.blocking):
        head = "MSI-X capability broken" if p.blocking else f"MSI-X {p.structure} misplaced"
        lines.append(f"{head}: {long_text(p.detail)}")
    lines += [f"MSI-X not checked: {long_text(u)}" for u in diagnosis.unchecked]
    return lines


def page_verdict(d: Device, platform: Platform, registers: tuple[RegisterSpan, ...] = ()) -> str:
    """Whether relocation is needed: none for a broken capability, then QEMU's refusal of the
    device as it is, then the trapped pages."""
    assert d.msix is not None
    diagnosis = diagnose_msix(d)
    if diagnosis.broken:
        return (f"no relocation verdict: the MSI-X capability is broken ({long_text(diagnosis.reason)}),"
                f" so no x-msix-relocation target helps")
    native = native_outcome(d, platform)
    pages = analyse_pages(d.bars, d.msix, platform, registers=registers)
    if not native.ok:
        return f"relocation needed: with relocation off QEMU refuses: {long_text(native.refused)}"
    verdict = "relocation needed" if pages.needs_relocation else "no relocation needed"
    return f"{verdict}: {pages.reason}"


def platform_text(p: Platform) -> str:
    io = "with I/O port space" if p.io_space else "no I/O port space"
    return f"host pages {format_size(p.page_size)}, {io}"


def modules_text(d: Device) -> str:
    return ", ".join(printable(m) for m in d.modules)


def qemu_option(d: Device, o: Outcome) -> str:
    if o.option is None:
        return f"(none: {o.vmm} lays out MSI-X itself; QEMU has no option for this layout)"
    if d.slot is None:
        return f"-device vfio-pci,host=SLOT,x-msix-relocation={o.option}"
    return _qemu_line(d.slot, o.option)


def _behind_vmd(slot: str) -> bool:
    """A PCI address (model.is_slot) that QEMU's host= cannot take: a domain of five or more
    digits, which Intel VMD makes.  Anything else that is not an address is refused outright
    (config.host_address): the model never admits one, so only a reader's bug could."""
    return is_slot(slot) and not config.writable(slot)


def _qemu_line(slot: str, option: str) -> str:
    """The -device option, or for a device behind VMD why there is none: that ends one
    device's configuration, not the whole answer."""
    if _behind_vmd(slot):
        return (f"none: slot {printable(slot)} is not an address QEMU's vfio-pci host= takes"
                " (DDDD:BB:DD.F; a five-digit domain is one Intel VMD made)")
    return config.qemu_device(slot, option)


def outcome(d: Device, o: Outcome, platform: Platform) -> str:
    moved = f"BAR{o.target}" if o.target is not None else "not relocated"
    title = o.strategy if o.strategy == o.option else f"{o.strategy} -> {moved}"
    lines = [f"== {title}"]
    if o.refused is not None:
        lines.append(f"\trefused: {long_text(o.refused)}")
    else:
        assert o.layout is not None
        native = {b.index: b for b in d.bars}
        for b in o.layout.bars:
            old = native.get(b.index)
            change = ""
            if old is None or old.is_io != b.is_io:
                change = "   <- new"
            elif old.size != b.size:
                change = f"   <- was {format_size(old.size)}"
            lines.append("\t" + bar_line(b, address="<guest>") + change)
        if o.layout.msix is not None:
            lines.extend("\t" + l for l in msix_lines(o.layout.msix))
            if o.target is not None:
                a = analyse_pages(o.layout.bars, o.layout.msix, platform, o.layout.device_backed)
                lines.append(f"\tpages: {a.reason}")
        lines.append(f"\tQEMU: {qemu_option(d, o)}")
    lines.extend(f"\tnote: {long_text(n)}" for n in o.notes)
    findings = (broken_capability_findings(d) if o.ok else ()) + o.findings
    lines.extend(f"\tFINDING ({f.severity}, {printable(f.rule)}): {long_text(f.message)}" for f in findings)
    return "\n".join(lines)


def cost_text(cost: int | None) -> str:
    if cost is None:
        return "-"
    return "+0" if cost == 0 else f"+{format_size(cost)}"


def which(a) -> str:
    """One device's answer: candidates table, recommendation, configuration to paste."""
    d = a.device
    driver = ", ".join(x for x in (f"driver {printable(d.driver)}" if d.driver else "",
                                   f"modules {modules_text(d)}" if d.modules else "") if x)
    lines = [header(d) + (f" ({driver})" if driver else "")]
    if d.origin:
        lines.append(f"  input: {printable(d.origin)}")
    if d.vendor is None or d.device is None:
        lines.append("  note: the input has no vendor:device IDs (run lspci with -nn): rule sets match by"
                     " class, driver or module only, and rules for particular chips cannot apply")
    lines.append(f"  {platform_text(a.platform)}")
    lines += [f"  rules: {long_text(r)}" for r in a.match_reasons]
    lines += [f"  {l}" for l in diagnosis_lines(a.msix)]
    if a.broken:
        lines.append(f"  recommendation: none: {long_text(a.why)}")
        return "\n".join(lines)
    if a.needs_relocation and a.pages is not None and not a.pages.needs_relocation:
        detail = a.why  # no page is shared, but QEMU refuses the device's own layout
    else:
        detail = a.pages.reason if a.pages else a.why
    lines.append(f"  {'relocation needed' if a.needs_relocation else 'no relocation needed'}:"
                 f" {long_text(detail)}")
    rows = [("candidate", "target", "verdict", "cost", "reasons")]
    for r in a.candidates:
        reasons = "; ".join(f"{v.rule_id}: {v.evidence}" for v in r.judgement.violations)
        if r.judgement.outcome.refused:
            reasons = f"QEMU: {r.judgement.outcome.refused}"
        elif r.strategy == "off" and a.pages is not None and a.pages.needs_relocation:
            reasons = "MSI-X stays in a page shared with device registers: those accesses trap"
        elif r.option is None and r.judgement.outcome.vmm != "qemu":
            own = (r.judgement.outcome.notes[-1] if r.target is None and r.judgement.outcome.notes
                   else f"{r.judgement.outcome.vmm}'s own layout, not a QEMU option")
            reasons = (reasons + "; " if reasons else "") + own
        target = "-" if r.target is None else f"BAR{r.target}"
        rows.append((r.strategy, target, r.verdict, cost_text(r.mmio_cost), long_text(reasons)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        lines.append("    " + "  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4])
    off = a.candidates[0].judgement.outcome
    lines += [f"  note: {long_text(n)}" for n in off.notes if n.startswith("QEMU PBA quirk")]
    rec = a.recommendation
    if rec is None:
        lines.append(f"  recommendation: none: {long_text(a.why)}")
    elif rec.strategy == "off":
        lines.append(f"  recommendation: off ({long_text(a.why)})")
        fb = a.fallback
        if fb is not None:
            lines.append(f"  fallback: {fb.option} ({fb.verdict}, {cost_text(fb.mmio_cost)} MMIO), if the"
                         " device keeps registers in those 4K ranges after all (PCIe forbids it, lspci"
                         " cannot show it; some FPGAs and the Coral Edge TPU do)")
            if d.slot:
                lines.append(f"    QEMU:    {_qemu_line(d.slot, fb.option)}")
    else:
        lines.append(f"  recommendation: {rec.option} ({rec.verdict}, {cost_text(rec.mmio_cost)} MMIO)")
        if rec.verdict == "warn":
            lines += [f"    warning: {long_text(v.rule_id)}: {long_text(v.message)}"
                      for v in rec.judgement.violations]
        if d.slot and _behind_vmd(d.slot):
            lines.append(f"  QEMU:    {_qemu_line(d.slot, rec.option)}")
        elif d.slot:
            lines.append(f"  QEMU:    {config.qemu_device(d.slot, rec.option)}")
            lines.append("  libvirt: in <devices>, and <qemu:override> at the end of <domain>"
                         f" (xmlns:qemu='{config.QEMU_NS}'):")
            lines += ["    " + l for l in config.libvirt_hostdev(d.slot).splitlines()]
            lines += ["    " + l for l in config.libvirt_override([(d.slot, rec.option)]).splitlines()]
    return "\n".join(lines)
