"""What `barsafe verify` needs from the host, checked before anything is started.

Reads only: sysfs, /dev, the kernel image header, ELF headers.  Nothing here
binds, unbinds or writes to a device: verify works only on a device the user
has already bound to vfio-pci, and says how when it is not.
"""

from __future__ import annotations

import os
import platform as _platform
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

SYSFS_PCI = Path("/sys/bus/pci/devices")
# Drivers that may hold other members of an IOMMU group without making it unusable for VFIO
# (drivers/vfio/vfio_main.c / group.c: vfio_dev_driver_allowed: pci-stub, pcieport; and vfio-pci).
GROUP_OK_DRIVERS = ("vfio-pci", "pci-stub", "pcieport")


@dataclass
class Preflight:
    slot: str
    problems: list[str] = field(default_factory=list)  # each stops verify
    notes: list[str] = field(default_factory=list)  # what verify will do differently
    accel: str = "kvm"
    group: str | None = None
    kernel: Path | None = None
    kernel_release: str | None = None
    modules_dir: Path | None = None
    busybox: Path | None = None
    lspci: Path | None = None
    qemu: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def bind_help(slot: str) -> str:
    return ("bind it yourself, as root: modprobe vfio-pci;"
            f" echo vfio-pci > /sys/bus/pci/devices/{slot}/driver_override;"
            f" echo {slot} > /sys/bus/pci/devices/{slot}/driver/unbind;"
            f" echo {slot} > /sys/bus/pci/drivers_probe")


def link_name(path: Path) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def kernel_release(image: Path) -> str | None:
    """The release string of an x86 bzImage (boot protocol 2.00+: header field kernel_version)."""
    try:
        with image.open("rb") as f:
            head = f.read(0x4000 + 0x200)
            if head[0x202:0x206] != b"HdrS":
                return None
            pointer = struct.unpack_from("<H", head, 0x20E)[0] + 0x200
            f.seek(pointer)
            text = f.read(256).split(b"\0", 1)[0].decode("ascii", "replace")
    except OSError:
        return None
    return text.split()[0] if text.strip() else None


def is_static_elf(path: Path) -> bool:
    """True for an ELF64 executable with no PT_INTERP (needs no dynamic loader)."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def find_busybox() -> Path | None:
    for candidate in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox")):
        if candidate and Path(candidate).is_file() and is_static_elf(Path(candidate)):
            return Path(candidate)
    return None


def check(slot: str, kernel: Path | None = None, accel: str | None = None,
          need_modules: bool = True, sysfs: Path = SYSFS_PCI, dev: Path = Path("/dev")) -> Preflight:
    """Everything verify needs, each missing thing said once with what to do about it."""
    pf = Preflight(slot)
    if _platform.machine() not in ("x86_64", "amd64"):
        pf.problems.append(f"verify boots a q35 guest with qemu-system-x86_64; this host is"
                           f" {_platform.machine()} (not supported yet)")
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pf.problems.append("qemu-system-x86_64 not found (Debian: apt-get install qemu-system-x86)")
    else:
        pf.qemu = Path(qemu)

    devdir = sysfs / slot
    if not devdir.is_dir():
        pf.problems.append(f"no PCI device {slot} on this host ({devdir} does not exist)")
    else:
        driver = link_name(devdir / "driver")
        if driver != "vfio-pci":
            pf.problems.append(f"{slot} is bound to {driver or 'no driver'}, not vfio-pci; verify"
                               f" never touches a device it does not own: {bind_help(slot)}")
        pf.group = link_name(devdir / "iommu_group")
        if pf.group is None:
            pf.problems.append(f"{slot} has no IOMMU group: enable the IOMMU (intel_iommu=on or"
                               " amd_iommu=on on the kernel command line, VT-d/AMD-Vi in firmware)")
        else:
            if not (dev / "vfio" / pf.group).exists():
                pf.problems.append(f"/dev/vfio/{pf.group} does not exist: is vfio-pci loaded and the"
                                   " device bound to it?")
            members = sysfs.parents[2] / "kernel" / "iommu_groups" / pf.group / "devices"
            for member in sorted(members.iterdir()) if members.is_dir() else ():
                mdrv = link_name(member / "driver")
                if member.name != slot and mdrv not in (None, *GROUP_OK_DRIVERS):
                    pf.problems.append(f"IOMMU group {pf.group} also holds {member.name}, bound to"
                                       f" {mdrv}: QEMU refuses a group that is not viable;"
                                       f" {bind_help(member.name)}")

    kvm = dev / "kvm"
    if accel in (None, "kvm"):
        if os.access(kvm, os.R_OK | os.W_OK):
            pf.accel = "kvm"
        elif accel == "kvm":
            pf.problems.append(f"{kvm} is missing or not accessible (load kvm_intel/kvm_amd, or"
                               " use --accel tcg)")
        else:
            pf.accel = "tcg"
            pf.notes.append(f"{kvm} is missing or not accessible: the guest runs under TCG"
                            " (slower, same device model)")
    else:
        pf.accel = accel

    release = os.uname().release
    pf.kernel = Path(kernel) if kernel else Path(f"/boot/vmlinuz-{release}")
    if not pf.kernel.is_file() or not os.access(pf.kernel, os.R_OK):
        pf.problems.append(f"guest kernel {pf.kernel} not found or not readable: give --kernel"
                           " (Debian: apt-get install linux-image-amd64)")
    else:
        pf.kernel_release = kernel_release(pf.kernel) or (release if not kernel else None)
        if pf.kernel_release is None:
            pf.problems.append(f"{pf.kernel} is not an x86 bzImage (no kernel version in its header)")
    if pf.kernel_release:
        pf.modules_dir = Path("/lib/modules") / pf.kernel_release
        if not (pf.modules_dir / "modules.dep").is_file():
            pf.modules_dir = None
        if pf.modules_dir is None and need_modules:
            pf.problems.append(f"no modules for {pf.kernel_release} (/lib/modules/{pf.kernel_release}):"
                               " install that kernel's modules, or give --initrd with them")

    pf.busybox = find_busybox()
    if pf.busybox is None:
        pf.problems.append("no static busybox (Debian: apt-get install busybox-static)")
    lspci = shutil.which("lspci")
    if lspci is None:
        pf.problems.append("lspci not found (Debian: apt-get install pciutils)")
    else:
        pf.lspci = Path(lspci)
    return pf
