"""barsafe verify: boot the real guest driver against QEMU's relocated layout, per candidate.

grammar    what may reach a QEMU command line (slot, target, module names)
host       preflight: vfio-pci binding, IOMMU group, /dev/kvm, kernel, busybox, lspci
initramfs  the guest's initramfs from the host's busybox, modules and lspci (data/init runs in it)
vm         one QEMU per candidate, with a timeout, ended by its own pid
guest      the guest's report, read back from its console
compare    the guest's layout against `simulate`, the driver against `which`
run        the whole: prediction, one guest per target, results
"""
