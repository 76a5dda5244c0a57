"""barsafe verify without a VM (the guest consoles and JSON in data/verify/ are real, from a lab run): grammar, initramfs, module resolution, guest report, comparison,
process cleanup, preflight on a fake sysfs, and the whole run against a fake QEMU."""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import UsageError
from engine.model import Bar, BarKind, Device, Msix, Platform
from engine.relocate import relocate
from engine.verify import compare, grammar, guest, host, initramfs, vm

DATA = Path(__file__).parent / "data" / "verify"

# QEMU's emulated NVMe (hw/nvme/ctrl.c) as L1's sysfs shows it: BAR0 64-bit 16K, 65 vectors.
QEMU_NVME = Device("0000:01:00.0", 0x1B36, 0x0010, class_code=0x0108,
                   bars=(Bar(0, BarKind.MEM64, 16 * 1024),),
                   msix=Msix(65, 0, 0x2000, 0, 0x3000), modules=("nvme",))


# --- grammar: nothing reaches QEMU's command line unless it parses -------------------------

@pytest.mark.parametrize("text,want", [("0000:01:00.0", "0000:01:00.0"), ("01:00.0", "0000:01:00.0"),
                                       ("0000:AF:1F.7", "0000:af:1f.7"), (" 0001:03:00.1 ", "0001:03:00.1")])
def test_slot_grammar_accepts(text, want):
    assert grammar.slot(text) == want


@pytest.mark.parametrize("text", ["0000:01:00.0,x-msix-relocation=bar1", "0000:01:00.8", "0000:01:20.0",
                                  "1:0.0", "0000:01:00.0\n1", "../../etc", "", "0000:01:00.0 -device x",
                                  "00000:01:00.0,"])
def test_slot_grammar_refuses(text):
    with pytest.raises(UsageError):
        grammar.slot(text)


def test_target_grammar():
    assert grammar.targets("off,bar2,BAR5,bar2") == ("off", "bar2", "bar5")
    for bad in ("bar6", "auto", "bar1,x=1", "bar1 ", "bar-1", "bar01"):
        if bad.strip().lower() in grammar.TARGETS:
            continue
        with pytest.raises(UsageError):
            grammar.target(bad)
    with pytest.raises(UsageError):
        grammar.targets(",,")


def test_module_grammar():
    assert grammar.modules("nvme,megaraid_sas,xhci-pci") == ("nvme", "megaraid_sas", "xhci-pci")
    with pytest.raises(UsageError):
        grammar.modules("nvme;reboot")


def test_device_option_is_built_from_parsed_fields():
    assert vm.device_option("01:00.0", "BAR5") == (
        "vfio-pci,host=0000:01:00.0,id=dut,bus=pcie.0,addr=0x10,x-msix-relocation=bar5")
    with pytest.raises(UsageError):
        vm.device_option("0000:01:00.0,rombar=0", "bar1")
    with pytest.raises(UsageError):
        vm.device_option("0000:01:00.0", "bar1,host=0000:02:00.0")


def test_qemu_argv_shape(tmp_path):
    argv = vm.qemu_argv(Path("/usr/bin/qemu-system-x86_64"), "kvm", Path("/k"), Path("/i"),
                        tmp_path / "c", "0000:01:00.0", "bar2")
    assert argv[argv.index("-accel") + 1] == "kvm" and argv[argv.index("-cpu") + 1] == "host"
    assert "-no-reboot" in argv and argv[argv.index("-serial") + 1] == f"file:{tmp_path / 'c'}"
    assert argv[-1].endswith("x-msix-relocation=bar2")
    with pytest.raises(ValueError):
        vm.qemu_argv(Path("q"), "hvf", Path("/k"), Path("/i"), tmp_path, "0000:01:00.0", "off")


# --- the initramfs ------------------------------------------------------------------------------

def test_cpio_newc_unpacks_with_cpio(tmp_path):
    if shutil.which("cpio") is None:
        pytest.skip("cpio not installed")
    c = initramfs.Cpio()
    c.file("init", b"#!/bin/sh\necho hi\n", 0o755)
    c.file("lib/modules/6.1/kernel/x.ko", b"\x7fELF" + b"\0" * 100)
    c.symlink("bin/sh", "busybox")
    archive = c.bytes()
    assert len(archive) % 512 == 0
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=archive, cwd=out, check=True, timeout=30)
    assert (out / "init").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "init").stat().st_mode & stat.S_IXUSR
    assert os.readlink(out / "bin" / "sh") == "busybox"
    assert (out / "lib/modules/6.1/kernel/x.ko").stat().st_size == 104


def test_init_script_is_package_data_and_valid_shell():
    script = initramfs.init_script()
    assert script.startswith(b"#!/bin/busybox sh")
    assert b"@@barsafe begin" in script and b"poweroff -f" in script
    assert b'echo "@@barsafe tick"; sleep 2' in script  # the heartbeat vm.run's stall rule relies on
    assert b'echo "@@barsafe loading $m" >&3' in script and b'echo "@@barsafe loaded $m" >&3' in script
    sh = shutil.which("sh")
    if sh:
        subprocess.run([sh, "-n"], input=script, check=True, timeout=10)


def fake_moddir(tmp_path: Path) -> Path:
    d = tmp_path / "6.1.0-test"
    (d / "kernel").mkdir(parents=True)
    (d / "modules.dep").write_text(
        "kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko kernel/lib/crc64.ko\n"
        "kernel/drivers/nvme/host/nvme-core.ko: kernel/lib/crc64.ko\n"
        "kernel/lib/crc64.ko:\n"
        "kernel/drivers/scsi/megaraid/megaraid_sas.ko: kernel/drivers/scsi/scsi_mod.ko\n"
        "kernel/drivers/scsi/scsi_mod.ko:\n"
        "kernel/lib/crc32c.ko:\n")
    (d / "modules.alias").write_text(
        "alias pci:v*d*sv*sd*bc01sc08i02* nvme\n"
        "alias pci:v00001000d0000005Bsv*sd*bc*sc*i* megaraid_sas\n")
    (d / "modules.softdep").write_text("softdep nvme_core pre: crc32c\n")
    (d / "modules.builtin").write_text("kernel/drivers/pci/pcie/portdrv.ko\n")
    return d


def test_modules_from_modalias_dependencies_first(tmp_path):
    d = fake_moddir(tmp_path)
    mods = initramfs.resolve_modules(d, None, "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02")
    assert mods.wanted == ["nvme"]
    assert mods.paths == ["kernel/lib/crc64.ko", "kernel/lib/crc32c.ko",
                          "kernel/drivers/nvme/host/nvme-core.ko", "kernel/drivers/nvme/host/nvme.ko"]


def test_modules_named_and_unknown(tmp_path):
    d = fake_moddir(tmp_path)
    mods = initramfs.resolve_modules(d, ["megaraid_sas"], None)
    assert mods.paths == ["kernel/drivers/scsi/scsi_mod.ko", "kernel/drivers/scsi/megaraid/megaraid_sas.ko"]
    assert initramfs.resolve_modules(d, ["portdrv"], None).builtin == ["portdrv"]
    with pytest.raises(UsageError):
        initramfs.resolve_modules(d, ["nosuch"], None)
    none = initramfs.resolve_modules(d, None, "pci:v00008086d000010D3sv*")
    assert none.paths == [] and "give --modules" in none.notes[0]


def test_alias_lookup_skips_only_patterns_that_cannot_match(tmp_path):
    """The literal-prefix filter in front of fnmatch gives what fnmatch alone gives."""
    import fnmatch
    patterns = ["pci:v*d*sv*sd*bc01sc08i02*", "pci:v00008086d000010D[34]sv*sd*bc*sc*i*",
                "pci:v00008086d000010D?sv*sd*bc*sc*i*", "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00",
                "pci:v00008086d*sv*sd*bc02sc00i*", "usb:v*p*d*dc*dsc*dp*ic09isc*ip*in*", "virtio:d00000001v*",
                "pci:v00008086d000010D3", "*", "pci:v0000808[6]d000010d3*"]
    (tmp_path / "modules.alias").write_text("".join(f"alias {p} m{i}\n" for i, p in enumerate(patterns)))
    for modalias in ("pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00",
                     "pci:v00008086d000010D4sv00008086sd00000000bc01sc08i02", "virtio:d00000001v00001AF4",
                     "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02", "usb:v1D6Bp0002d0601dc09dsc00dp03ic09isc00ip00in00"):
        want = [f"m{i}" for i, p in enumerate(patterns) if fnmatch.fnmatchcase(modalias, p)]
        assert initramfs._aliases(tmp_path, modalias) == want, modalias


# --- the guest's report and the comparison -----------------------------------------------------

def test_guest_report_parsed():
    rep = guest.parse((DATA / "console-nvme-bar5.log").read_text(), "0000:00:10.0")
    assert rep.booted and rep.finished and rep.kernel == "6.1.0-57-amd64"
    assert rep.driver == "nvme" and rep.msix_enabled is True
    assert (rep.msix_vectors, rep.msix_interrupts, rep.msi_interrupts) == (2, 6, 0)
    assert rep.device is not None and [b.index for b in rep.device.bars] == [0, 5]
    assert rep.device.bars[1] == Bar(5, BarKind.MEM32, 4096, prefetchable=True)
    assert rep.device.msix == Msix(65, 5, 0, 5, 0x410, enabled=True)
    assert any("nvme" in m for m in rep.driver_messages)
    assert rep.insmod_failed == []


def test_guest_report_of_a_guest_that_never_started():
    rep = guest.parse("qemu-system-x86_64: -device vfio-pci: error\n", "0000:00:10.0")
    assert not rep.booted and rep.device is None and rep.driver is None


def test_layout_equal_to_simulate():
    rep = guest.parse((DATA / "console-nvme-bar5.log").read_text(), "0000:00:10.0")
    predicted = relocate(QEMU_NVME, Platform(4096, True), 5)
    assert compare.layout_differences(predicted, rep.device) == []


def test_layout_differences_field_by_field():
    rep = guest.parse((DATA / "console-nvme-bar5.log").read_text(), "0000:00:10.0")
    predicted = relocate(QEMU_NVME, Platform(4096, True), 2)
    diffs = {d.field: d for d in compare.layout_differences(predicted, rep.device)}
    assert set(diffs) == {"BAR2", "BAR5", "MSI-X table BAR", "MSI-X PBA BAR"}
    assert diffs["BAR2"].observed == "no BAR" and "prefetchable" in diffs["BAR2"].predicted
    big = relocate(QEMU_NVME, Platform(64 * 1024, True), 5)
    diffs = {d.field for d in compare.layout_differences(big, rep.device)}
    assert diffs == {"BAR5 size"}


def test_agreement_table():
    assert compare.agreement("safe", "works")[0] is True
    assert compare.agreement("forbid", "fails")[0] is True
    assert compare.agreement("forbid", "works")[0] is False
    assert compare.agreement("warn", "fails")[0] is False
    assert compare.agreement("safe", "quiet")[0] is None
    assert compare.refusal_agrees("Invalid MSI-X relocation BAR 1, consumed by 64-bit BAR 0",
                                  "qemu-system-x86_64: -device vfio-pci,...: vfio 0000:01:00.0: "
                                  "Invalid MSI-X relocation BAR 1, consumed by 64-bit BAR 0")
    assert compare.observed_outcome(True, False, False) == "fails"
    assert compare.observed_outcome(False, False, False) == "refused"


# --- processes are ended, by their own pid --------------------------------------------------------

def test_timeout_kills_the_whole_process_group(tmp_path):
    argv = ["/bin/sh", "-c", f"sleep 120 & echo $! > {tmp_path}/child; sleep 120"]
    res = vm.run(argv, tmp_path / "console", tmp_path, timeout=1)
    assert res.returncode is None
    child = int((tmp_path / "child").read_text())
    assert not alive(child)


def fake_guest(tmp_path: Path, script: str) -> list[str]:
    """A stand-in for QEMU: a shell writing a guest console, with a child of its own."""
    return ["/bin/sh", "-c", f"console={tmp_path}/console; sleep 120 & echo $! > {tmp_path}/child; {script}"]


def test_a_guest_whose_heartbeat_stops_is_ended_early_and_says_where(tmp_path):
    argv = fake_guest(tmp_path, "printf '@@barsafe begin\\n@@barsafe tick\\n@@barsafe loading"
                                " /lib/modules/6.1.0-57-amd64/kernel/drivers/scsi/megaraid/megaraid_sas.ko\\n'"
                                " > $console; sleep 120")
    res = vm.run(argv, tmp_path / "console", tmp_path, timeout=100, stall=2)
    assert res.returncode is None and res.stalled is not None and 2 <= res.stalled < 10
    assert res.seconds < 30
    assert not alive(int((tmp_path / "child").read_text()))
    rep = guest.parse(res.console, "0000:00:10.0")
    assert rep.booted and rep.loading == "megaraid_sas.ko" and rep.driver is None
    msg = guest.stall_message(rep, res.stalled)
    assert msg.startswith("stopped: the guest printed nothing for ")
    assert msg.endswith("while insmod megaraid_sas.ko was running: the driver's probe did not return")


def test_the_stall_rule_waits_for_the_init_and_for_a_silent_heartbeat(tmp_path):
    # silent before its init began (a slow boot): only the timeout ends it
    res = vm.run(fake_guest(tmp_path, "sleep 120"), tmp_path / "console", tmp_path, timeout=4, stall=1)
    assert res.returncode is None and res.stalled is None and res.seconds >= 4
    # a guest that ticks is left alone; a module that was loaded is not "loading"
    (tmp_path / "console").unlink(missing_ok=True)
    ticks = ("printf '@@barsafe begin\\n@@barsafe loading /m/nvme.ko\\n@@barsafe loaded /m/nvme.ko\\n'"
             " > $console; for i in 1 2 3 4 5 6; do echo '@@barsafe tick' >> $console; sleep 0.5; done;"
             " echo '@@barsafe section lspci' >> $console; exit 0")
    res = vm.run(fake_guest(tmp_path, ticks), tmp_path / "console", tmp_path, timeout=60, stall=2)
    assert res.returncode == 0 and res.stalled is None
    assert guest.activity(res.console) == (None, "lspci")
    assert guest.sections(res.console)[2] == {"lspci": ""}  # marker lines are not report text


def alive(pid: int, within: float = 10.0) -> bool:
    """Still running some seconds after its SIGKILL (a zombie left for init to reap is not)."""
    import time
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state == "Z":
            return False
        time.sleep(0.1)
    return True


# --- preflight on a fake sysfs ------------------------------------------------------------------

def fake_sysfs(tmp_path: Path, driver: str, group: bool = True, neighbour: str | None = None) -> Path:
    root = tmp_path / "sys"
    devices = root / "bus" / "pci" / "devices"
    devices.mkdir(parents=True)
    drivers = root / "bus" / "pci" / "drivers"
    for d in {driver, neighbour or driver}:
        (drivers / d).mkdir(parents=True, exist_ok=True)
    groups = root / "kernel" / "iommu_groups" / "7" / "devices"
    groups.mkdir(parents=True)
    for slot, drv in (("0000:01:00.0", driver), ("0000:01:00.1", neighbour)):
        if drv is None:
            continue
        d = devices / slot
        d.mkdir()
        (d / "driver").symlink_to(drivers / drv)
        if group:
            (d / "iommu_group").symlink_to(root / "kernel" / "iommu_groups" / "7")
            (groups / slot).symlink_to(d)
    return devices


def test_preflight_refuses_a_device_not_bound_to_vfio(tmp_path):
    pf = host.check("0000:01:00.0", sysfs=fake_sysfs(tmp_path, "nvme"), dev=tmp_path)
    assert any("bound to nvme, not vfio-pci" in p and "never touches" in p for p in pf.problems)


def test_preflight_group_and_dev_nodes(tmp_path):
    sysfs = fake_sysfs(tmp_path, "vfio-pci", neighbour="e1000e")
    pf = host.check("0000:01:00.0", sysfs=sysfs, dev=tmp_path, accel="tcg")
    text = "\n".join(pf.problems)
    assert "/dev/vfio/7 does not exist" in text or f"{tmp_path}/vfio/7" in text or "vfio/7" in text
    assert "0000:01:00.1, bound to e1000e" in text
    assert pf.accel == "tcg" and pf.group == "7"
    (tmp_path / "vfio").mkdir()
    (tmp_path / "vfio" / "7").touch()
    pf = host.check("0000:01:00.0", sysfs=fake_sysfs(tmp_path / "b", "vfio-pci"), dev=tmp_path)
    assert not any("vfio" in p and "group" in p.lower() for p in pf.problems), pf.problems
    assert any("missing or not accessible" in n for n in pf.notes) or pf.accel == "kvm"


def test_preflight_no_group(tmp_path):
    pf = host.check("0000:01:00.0", sysfs=fake_sysfs(tmp_path, "vfio-pci", group=False), dev=tmp_path)
    assert any("no IOMMU group" in p for p in pf.problems)


def test_kernel_release_from_bzimage_header(tmp_path):
    image = bytearray(0x5000)
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x20E, 0x3000)
    image[0x3200:0x3200 + 40] = b"6.1.0-57-amd64 (debian-kernel@lists)\0\0\0\0"
    (tmp_path / "vmlinuz").write_bytes(bytes(image))
    assert host.kernel_release(tmp_path / "vmlinuz") == "6.1.0-57-amd64"
    (tmp_path / "not").write_bytes(b"\0" * 100)
    assert host.kernel_release(tmp_path / "not") is None


def test_static_elf_check():
    assert host.is_static_elf(Path(sys.executable).resolve()) is False
    assert host.is_static_elf(Path(__file__)) is False


# --- the CLI --------------------------------------------------------------------------------------

def test_cli_refuses_a_bad_slot(capsys):
    assert main(["verify", "0000:01:00.0,x-msix-relocation=bar1"]) == 2
    assert "not a PCI address" in capsys.readouterr().err


def test_cli_says_what_is_missing(capsys):
    assert main(["verify", "0000:ff:1f.7", "--targets", "off"]) == 2
    err = capsys.readouterr().err
    assert "cannot run here" in err and "no PCI device 0000:ff:1f.7" in err


def test_cli_refuses_a_bad_target_before_anything(capsys):
    assert main(["verify", "0000:ff:1f.7", "--targets", "bar1,host=x"]) == 2


def test_refusal_message_read_from_qemu():
    from engine.verify.run import qemu_message
    msg = qemu_message((DATA / "qemu-megasas-bar0.stderr").read_text())
    assert msg.endswith("vfio 0000:02:00.0: Invalid MSI-X relocation BAR 0, I/O port BAR")
    assert compare.refusal_agrees("Invalid MSI-X relocation BAR 0, I/O port BAR", msg)


def test_a_probe_that_never_returns_is_reported():
    console = ("@@barsafe begin\n@@barsafe loading /lib/modules/x/megaraid_sas.ko\n@@barsafe section insmod\n"
               "ok /lib/modules/x/scsi_mod.ko\n"
               "pending: insmod megaraid_sas.ko had not returned after 60s: its probe was still running\n"
               "@@barsafe section driver\n@@barsafe section dmesg\n"
               "[ 9.1] megaraid_sas 0000:00:10.0: BAR:0x0  BAR's base_addr(phys):0x00000000febff000\n"
               "[ 9.2] megaraid_sas 0000:00:10.0: Waiting for FW to come to ready state\n"
               "@@barsafe end\n")
    rep = guest.parse(console, "0000:00:10.0")
    assert rep.finished and rep.driver is None and rep.loading == "megaraid_sas.ko"
    assert rep.driver_messages[-1].startswith("pending: insmod megaraid_sas.ko had not returned after 60s")
    assert "BAR:0x0" in rep.driver_messages[0]
    assert compare.observed_outcome(rep.booted, rep.driver is not None, False) == "fails"
    from lab.cases import observation
    obs = observation({"target": "bar0", "accepted": True, "observed": "fails", "seconds": 97.0,
                       "guest_messages": rep.driver_messages + ["ended: the report was complete ..."]})
    assert obs == {"strategy": "bar0", "outcome": "fails", "evidence": (
        "QEMU accepted; the guest driver did not bind (pending: insmod megaraid_sas.ko had not returned"
        " after 60s: its probe was still running; megaraid_sas 0000:00:10.0: Waiting for FW to come to"
        " ready state)")}


def test_a_guest_that_does_not_power_off_after_its_report_is_ended(tmp_path):
    script = ("printf '@@barsafe begin\\n@@barsafe section driver\\n@@barsafe end\\n' > $console; sleep 120")
    res = vm.run(fake_guest(tmp_path, script), tmp_path / "console", tmp_path, timeout=100, stall=60, linger=2)
    assert res.returncode is None and res.lingered is not None and res.stalled is None
    assert res.seconds < 30 and not alive(int((tmp_path / "child").read_text()))
    assert guest.parse(res.console, "0000:00:10.0").finished


def test_virtio_pci_brings_the_virtio_device_driver(tmp_path):
    d = fake_moddir(tmp_path)
    with (d / "modules.dep").open("a") as f:
        f.write("kernel/drivers/virtio/virtio_pci.ko:\nkernel/drivers/net/virtio_net.ko:\n")
    with (d / "modules.alias").open("a") as f:
        f.write("alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias virtio:d00000001v* virtio_net\n")
    assert initramfs.virtio_modalias("pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00") == \
        "virtio:d00000001v00001AF4"
    assert initramfs.virtio_modalias("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00") == \
        "virtio:d00000001v00001AF4"
    assert initramfs.virtio_modalias("pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02") is None
    mods = initramfs.resolve_modules(d, None, "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00")
    assert mods.wanted == ["virtio_pci", "virtio_net"]
    assert mods.paths[-1] == "kernel/drivers/net/virtio_net.ko"


def test_layout_is_not_equal_when_simulate_refused_but_qemu_built_one():
    from engine.verify.run import CaseResult
    from engine.strategies import run as run_strategy
    rep = guest.parse((DATA / "console-nvme-bar5.log").read_text(), "0000:00:10.0")
    refused = run_strategy("bar1", QEMU_NVME, Platform(4096, True))
    assert refused.refused
    res = CaseResult("bar1", refused, "refused", [], accepted=True, report=rep)
    assert res.layout_equal is False
    ok = CaseResult("bar5", relocate(QEMU_NVME, Platform(4096, True), 5), "safe", [], accepted=True, report=rep)
    assert ok.layout_equal is True
