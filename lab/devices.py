"""The lab's devices: QEMU-emulated PCI functions with MSI-X whose Linux drivers are real.

Each sits alone behind its own pcie-root-port of the outer VM (L1), at a fixed
root-port address, so L1 finds it as that port's only child and it has an
IOMMU group of its own under L1's emulated VT-d.  Network devices get a
``user`` network with ``restrict=on``: the inner guest's pings are answered
inside QEMU and nothing leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Known:
    """A difference between barsafe and QEMU that is understood and reported, not yet fixed:
    the lab prints it as KNOWN instead of failing, and says when it is no longer seen."""

    fields: tuple[str, ...]  # layout fields it explains (compare.Difference.field)
    accepted_targets: tuple[str, ...]  # targets simulate refuses that QEMU accepts
    why: str


@dataclass(frozen=True)
class LabDevice:
    name: str
    qemu: str  # the -device value (bus= and the netdev are added by the lab)
    driver: str  # the Linux driver that should bind in the inner guest
    what: str
    netdev: bool = False
    unassign: tuple[int, ...] = ()  # BARs L1 leaves unassigned (see lab/l1.py unassign_bars)
    extra: str = ""  # further -device options placed after it (e.g. a USB device on the xhci)
    known: Known | None = None


DEVICES = {d.name: d for d in (
    LabDevice("nvme", "nvme,serial=barsafe-lab", "nvme",
              "QEMU NVMe controller 1b36:0010: 64-bit BAR0 16K, MSI-X table and PBA in BAR0"),
    LabDevice("e1000e", "e1000e,romfile=", "e1000e",
              "Intel 82574L 8086:10d3: BAR0 mem32 128K, BAR1 mem32 128K (flash), BAR2 I/O, BAR3 mem32 16K (MSI-X)",
              netdev=True),
    LabDevice("megasas-gen2", "megasas-gen2,romfile=", "megaraid_sas",
              "LSI MegaRAID SAS 2108 1000:0079: BAR0 I/O 256, BAR1 mem64 16K (registers, MSI-X), BAR3 mem64 256K"),
    LabDevice("megasas-gen2-noio", "megasas-gen2,romfile=", "megaraid_sas",
              "the same with its I/O BAR0 left unassigned by L1 (as on a host without I/O port space,"
              " the seed's POWER8): VFIO reports BAR0 with size 0, so QEMU sees slot 0 empty",
              unassign=(0,)),
    LabDevice("qemu-xhci", "qemu-xhci,id=labxhci", "xhci_hcd",
              "QEMU xHCI 1b36:000d: BAR0 mem64 16K with the MSI-X table at 0x3000", extra="usb-tablet,bus=labxhci.0"),
    # iommu_platform=on (VIRTIO_F_ACCESS_PLATFORM): without it a virtio device ignores the vIOMMU
    # and takes the inner guest's addresses for L1's, so its queues never complete (the control
    # queue's busy-wait in virtnet_send_command then held L2's CPU: soft lockups, RCU stalls).
    # Real hardware always goes through the IOMMU; this makes the emulated device do so too.
    LabDevice("virtio-net", "virtio-net-pci,disable-legacy=on,iommu_platform=on,romfile=", "virtio_net",
              "modern-only virtio-net 1af4:1041 (iommu_platform=on: it DMAs through the vIOMMU like real"
              " hardware): BAR0 empty, BAR1 mem32 4K (MSI-X), BAR4 mem64 prefetchable 16K",
              netdev=True),
    LabDevice("vmxnet3", "vmxnet3,romfile=", "vmxnet3",
              "VMware vmxnet3 15ad:07b0: BAR0 mem32 4K, BAR1 mem32 4K, BAR2 mem32 8K (MSI-X), BAR3 I/O",
              netdev=True),
)}

# CI's smoke set: each driver family's plain case, a refusal, and the unassigned-I/O-BAR megasas
# with a target its driver survives.  (megasas-gen2-noio bar0, the seed's failure, is in the full
# matrix: the driver's probe does not return, and verify ends that guest only once its heartbeat
# has been silent for 90 s.)
SMOKE = [("nvme", "off"), ("nvme", "bar1"), ("megasas-gen2-noio", "bar5"), ("e1000e", "bar4"),
         ("vmxnet3", "off")]
ALL_TARGETS = ("off", "bar0", "bar1", "bar2", "bar3", "bar4", "bar5")

ROOT_PORT_BASE = 0x10  # root port i sits at 0000:00:(0x10+i).0 in L1
# L1's kernel command line: the vIOMMU, and `pci=nobar` (arch/x86/pci/common.c
# pcibios_fixup_device_resources: a BAR the firmware left at address 0 is zeroed, so the
# kernel never assigns it), which lets lab/l1.py leave a chosen BAR unassigned.
L1_CMDLINE = "intel_iommu=on pci=nobar"


def qemu_options(names: list[str]) -> list[str]:
    """L1's extra QEMU options: the vIOMMU first, then one root port and device per name."""
    opts = ["-machine", "kernel-irqchip=split",
            "-device", "intel-iommu,intremap=on,caching-mode=on"]
    for i, name in enumerate(names):
        d = DEVICES[name]
        port = f"labrp{i}"
        rp = f"pcie-root-port,id={port},chassis={i + 1},bus=pcie.0,addr={ROOT_PORT_BASE + i:#x}"
        opts += ["-device", rp]
        dev = f"{d.qemu},bus={port}"
        if d.netdev:
            opts += ["-netdev", f"user,id=labnet{i},restrict=on"]
            dev += f",netdev=labnet{i}"
        opts += ["-device", dev]
        if d.extra:
            opts += ["-device", d.extra]
    return opts
