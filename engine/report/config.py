"""Configuration users paste: the QEMU -device option and libvirt's <qemu:override>.

libvirt passes -device to QEMU as JSON since QEMU 6.2, after which
`<qemu:commandline>` with `-set device.ALIAS.x-msix-relocation=...` no longer
finds the device (libvirt issue #287); `<qemu:override>` (libvirt >= 8.2)
sets the property on the device libvirt itself creates.  The override needs
a user alias (`ua-` prefix) on the <hostdev>.
"""

from __future__ import annotations

import re

from ..errors import UsageError

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
_SLOT_RE = re.compile(r"^(?:([0-9a-f]{4,5}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$")


def host_address(slot: str) -> tuple[int, int, int, int]:
    m = _SLOT_RE.match(slot.lower())
    if not m:
        raise UsageError(f"cannot turn slot {slot!r} into a PCI address")
    return int(m.group(1) or "0", 16), int(m.group(2), 16), int(m.group(3), 16), int(m.group(4))


def qemu_device(slot: str, option: str) -> str:
    domain, bus, dev, fn = host_address(slot)
    return f"-device vfio-pci,host={domain:04x}:{bus:02x}:{dev:02x}.{fn},x-msix-relocation={option}"


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
        f"      <qemu:property name='x-msix-relocation' type='string' value='{option}'/>\n"
        f"    </qemu:frontend>\n"
        f"  </qemu:device>\n" for slot, option in slots_options)
    return f"<qemu:override>\n{devices}</qemu:override>"


def proxmox_args(assignments: list[tuple[int, str]]) -> str:
    """The `args:` line for /etc/pve/qemu-server/VMID.conf; Proxmox names its devices hostpciN."""
    sets = " ".join(f"-set device.hostpci{n}.x-msix-relocation={option}" for n, option in assignments)
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
