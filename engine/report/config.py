"""Configuration users paste: the QEMU -device option and libvirt's <qemu:override>.

libvirt passes -device to QEMU as JSON since QEMU 6.2, after which
`<qemu:commandline>` with `-set device.ALIAS.x-msix-relocation=...` no longer
finds the device (libvirt issue #287); `<qemu:override>` (libvirt >= 8.2)
sets the property on the device libvirt itself creates.  The override needs
a user alias (`ua-` prefix) on the <hostdev>.
"""

from __future__ import annotations

from ..errors import UsageError
from ..model import is_slot
from .safe import TEXT_LIMIT, printable, xml_comment

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"

# A PCI address as Linux names it (Linux 6.12 drivers/pci/probe.c:1966, pci_setup_device: "%04x:%02x:%02x.%d"),
# the domain optional as lspci prints it without -D.  A device number is 5 bits (0..1f) and a
# function 3 bits; QEMU's host= property takes nothing larger (qemu-system-x86_64 7.2 answers
# "Property 'vfio-pci.host' doesn't take value" for 0000:01:20.0 and for the five-digit domain
# 10000:e0:00.0 that Intel VMD creates), so neither may reach emitted configuration.
# As a pattern (re.ASCII | re.IGNORECASE), which host_address reads with model.is_slot and a
# domain of four digits (tests/test_injection.py holds the two equal):
SLOT_PATTERN = r"(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([01][0-9a-f])\.([0-7])"

# Proxmox VE: qemu-server src/PVE/QemuServer/PCI.pm `our $MAX_HOSTPCI_DEVICES = 16;` (commit
# 6223caf1), config keys hostpci0..hostpci15 (its pcie address map ends at hostpci15).
PROXMOX_HOSTPCI_MAX = 15


def host_address(slot: str | None) -> tuple[int, int, int, int]:
    """(domain, bus, device, function) of a slot, or a UsageError: never a guessed address."""
    if not writable(slot):
        shown = "no slot" if slot is None else f"slot '{printable(slot, 60)}'"
        raise UsageError(f"{shown}: not a PCI address (DDDD:BB:DD.F, device 00..1f, function 0..7),"
                         " so barsafe cannot write configuration for it")
    domain, bus, dev, fn = slot[:-8] or "0", slot[-7:-5], slot[-4:-2], slot[-1]
    return int(domain, 16), int(bus, 16), int(dev, 16), int(fn)


def writable(slot: str | None) -> bool:
    """Whether host_address takes ``slot``: whether configuration can name the device."""
    return isinstance(slot, str) and len(slot) in (7, 12) and is_slot(slot)


def canonical(slot: str | None) -> str:
    """The slot as Linux and QEMU's host= spell it, e.g. 0000:03:00.0."""
    domain, bus, dev, fn = host_address(slot)
    return f"{domain:04x}:{bus:02x}:{dev:02x}.{fn}"


def qemu_device(slot: str, option: str) -> str:
    return f"-device vfio-pci,host={canonical(slot)},x-msix-relocation={_option(option)}"


def _option(option: str) -> str:
    """x-msix-relocation's values (hw/vfio/pci.c, DEFINE_PROP_OFF_AUTO_PCIBAR): off, auto, bar0..bar5."""
    if option not in ("off", "auto", *(f"bar{i}" for i in range(6))):
        raise ValueError(f"not an x-msix-relocation value: {option!r}")
    return option


def libvirt_alias(slot: str) -> str:
    domain, bus, dev, fn = host_address(slot)
    return f"ua-barsafe-{domain:04x}-{bus:02x}-{dev:02x}-{fn}"


def libvirt_hostdev(slot: str) -> str:
    domain, bus, dev, fn = host_address(slot)
    return (f"<hostdev mode='subsystem' type='pci' managed='yes'>\n"
            f"  <source>\n"
            f"    <address domain='{domain:#06x}' bus='{bus:#04x}' slot='{dev:#04x}' function='{fn:#x}'/>\n"
            f"  </source>\n"
            f"  <alias name='{libvirt_alias(slot)}'/>\n"
            f"</hostdev>")


def libvirt_override(slots_options: list[tuple[str, str]]) -> str:
    devices = "".join(
        f"  <qemu:device alias='{libvirt_alias(slot)}'>\n"
        f"    <qemu:frontend>\n"
        f"      <qemu:property name='x-msix-relocation' type='string' value='{_option(option)}'/>\n"
        f"    </qemu:frontend>\n"
        f"  </qemu:device>\n" for slot, option in slots_options)
    return f"<qemu:override>\n{devices}</qemu:override>"


def proxmox_args(assignments: list[tuple[int, str]]) -> str:
    """The `args:` line for /etc/pve/qemu-server/VMID.conf; Proxmox names its devices hostpciN."""
    for n, _ in assignments:
        if not 0 <= n <= PROXMOX_HOSTPCI_MAX:
            raise UsageError(f"hostpci{n}: Proxmox VE names passed-through devices hostpci0 to"
                             f" hostpci{PROXMOX_HOSTPCI_MAX}")
    sets = " ".join(f"-set device.hostpci{n}.x-msix-relocation={_option(option)}" for n, option in assignments)
    return f"args: {sets}"


def libvirt_domain(slots_options: list[tuple[str, str]]) -> str:
    """A minimal domain holding the devices and the override: what `--emit libvirt` prints."""
    devices = "\n".join("    " + line for slot, _ in slots_options
                        for line in libvirt_hostdev(slot).splitlines())
    override = "\n".join("  " + line for line in libvirt_override(slots_options).splitlines())
    return (f"<domain type='kvm' xmlns:qemu='{QEMU_NS}'>\n"
            f"  <!-- merge into your domain: the <hostdev> elements into <devices>, the override"
            f" at the end of <domain> -->\n"
            f"  <devices>\n{devices}\n  </devices>\n{override}\n</domain>")


def emit(kind: str, answers: list, hostpci: int = 0) -> str:
    """`which --emit`: only the configuration for each device's recommendation, ready to paste.

    Every line is configuration or a comment: slots are checked against the PCI
    address grammar (an invalid one is a UsageError, not a wrong address), and
    the free text quoted in comments is escaped for the comment syntax.
    """
    relocated, notes = [], []
    for a in answers:
        slot = canonical(a.device.slot)
        rec = a.recommendation
        if rec is None:
            notes.append(f"{slot}: {'no target can help' if a.broken else 'no safe target'} ({a.why})")
        elif rec.strategy == "off":
            notes.append(f"{slot}: no relocation needed")
        else:
            relocated.append((slot, rec.option))
    if kind == "qemu":
        lines = [f"# {printable(n, TEXT_LIMIT)}" for n in notes]
        lines += [qemu_device(slot, opt) for slot, opt in relocated]
    elif kind == "libvirt":
        lines = [f"<!-- {xml_comment(n)} -->" for n in notes]
        if relocated:
            lines.append(libvirt_domain(relocated))
    elif kind == "proxmox":
        assignments = [(hostpci + i, opt) for i, (_, opt) in enumerate(relocated)]
        lines = [f"# {printable(n, TEXT_LIMIT)}" for n in notes]
        lines += [f"# hostpci{n} = {slot}" for (n, _), (slot, _) in zip(assignments, relocated)]
        if relocated:
            lines.append(proxmox_args(assignments))
    else:
        raise ValueError(f"unknown configuration kind {kind!r}")
    return "\n".join(lines)
