"""The nested lab: barsafe verify run inside an outer VM on QEMU-emulated devices (README "The lab")."""
