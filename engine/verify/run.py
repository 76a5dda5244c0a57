"""The whole of `barsafe verify`: predict, boot one guest per target, compare."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from ..model import Device, Platform
from ..relocate import Outcome
from . import compare, grammar, guest, host, initramfs, vm


@dataclass
class CaseResult:
    target: str
    predicted: Outcome  # simulate's layout or refusal
    verdict: str  # which's verdict for this candidate
    reasons: list[str]
    run: vm.Run | None = None
    accepted: bool = False
    qemu_message: str | None = None
    report: guest.GuestReport | None = None
    differences: list[compare.Difference] = field(default_factory=list)
    observed: str = "refused"
    agrees: bool | None = None
    summary: str = ""

    @property
    def layout_equal(self) -> bool | None:
        if not self.accepted or self.report is None or self.report.device is None:
            return None
        if self.predicted.layout is None:  # simulate predicted a refusal, QEMU built a layout
            return False
        return not self.differences


@dataclass
class Setup:
    preflight: host.Preflight
    device: Device
    platform: Platform
    answer: object
    modules: initramfs.Modules
    qemu_version: str
    initrd_bytes: int = 0


def qemu_version(qemu: Path) -> str:
    try:
        out = subprocess.run([str(qemu), "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0].replace("QEMU emulator version ", "") if out.stdout else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def qemu_message(stderr: str) -> str | None:
    lines = [l.strip() for l in stderr.splitlines() if l.strip()]
    errors = [l for l in lines if "error" in l.lower() or "invalid" in l.lower() or "vfio" in l.lower()]
    return (errors or lines or [None])[-1]


def host_names(pf: host.Preflight, slot: str) -> dict:
    """The device's name and class name as the host's lspci prints them (sysfs has only IDs)."""
    from ..sources import lspci
    try:
        out = subprocess.run([str(pf.lspci), "-nn", "-s", slot], capture_output=True, text=True, timeout=30)
        found = lspci.parse(out.stdout, "lspci") if out.stdout.strip() else []
    except (OSError, subprocess.SubprocessError, UsageError, ValueError, Exception):
        return {}
    if not found:
        return {}
    return {"name": found[0].name, "class_name": found[0].class_name}


def prepare(slot: str, kernel: str | None = None, accel: str | None = None,
            modules: tuple[str, ...] = (), extra_initrd: str | None = None,
            sysfs: Path = host.SYSFS_PCI) -> Setup:
    from ..rules import library
    from ..score import answer
    from ..sources import sysfs as sysfs_reader
    slot = grammar.slot(slot)
    pf = host.check(slot, Path(kernel) if kernel else None, accel,
                    need_modules=extra_initrd is None, sysfs=sysfs)
    if not pf.ok:
        return Setup(pf, Device(slot), Platform(), None, initramfs.Modules(), "?")
    device = sysfs_reader.read_device(sysfs / slot)
    device = replace(device, **host_names(pf, slot))
    if device.msix is None:
        raise UsageError(f"{slot} has no MSI-X capability (or its config space was unreadable:"
                         " run as root)")
    mods = initramfs.Modules()
    if pf.modules_dir is not None:
        alias = (sysfs / slot / "modalias").read_text().strip() if (sysfs / slot / "modalias").is_file() else None
        mods = initramfs.resolve_modules(pf.modules_dir, list(modules) or None, alias)
    elif modules:  # --initrd brings the modules: the guest modprobes them by name
        mods.wanted = list(modules)
    # The host driver is vfio-pci; the guest's driver is what the rules are about.
    if mods.wanted:
        device = replace(device, modules=tuple(mods.wanted))
    platform = Platform(os.sysconf("SC_PAGESIZE"), io_space=True)
    ans = answer(device, platform, library.load())
    return Setup(pf, device, platform, ans, mods, qemu_version(pf.qemu) if pf.qemu else "?")


def default_targets(setup: Setup) -> tuple[str, ...]:
    """--candidates: every target `which` does not expect QEMU to refuse."""
    rows = {r.strategy: r for r in setup.answer.candidates}
    return tuple(t for t in grammar.TARGETS if rows[t].verdict != "refused")


def build_initrd(setup: Setup, workdir: Path, extra_initrd: str | None) -> Path:
    pf = setup.preflight
    assert pf.busybox and pf.lspci and pf.kernel_release
    extra = Path(extra_initrd).read_bytes() if extra_initrd else b""
    data = initramfs.build(pf.busybox, pf.lspci, pf.kernel_release, pf.modules_dir, setup.modules,
                           {"SLOT": initramfs.GUEST_SLOT, "SETTLE": "60",
                            "WANT": " ".join(setup.modules.wanted)}, extra)
    path = workdir / "initrd.cpio"
    path.write_bytes(data)
    setup.initrd_bytes = len(data)
    return path


def verify(setup: Setup, targets: tuple[str, ...], timeout: float = 300.0,
           extra_initrd: str | None = None,
           progress: Callable[[CaseResult], None] | None = None,
           keep_logs: Path | None = None) -> list[CaseResult]:
    """One guest per target; every QEMU ended and every file removed before returning."""
    from ..strategies import run as run_strategy
    pf = setup.preflight
    rows = {r.strategy: r for r in setup.answer.candidates}
    results = []
    workdir = Path(tempfile.mkdtemp(prefix="barsafe-verify-"))
    try:
        initrd = build_initrd(setup, workdir, extra_initrd)
        for target in targets:
            target = grammar.target(target)
            row = rows[target]
            res = CaseResult(target, run_strategy(target, setup.device, setup.platform), row.verdict,
                             [f"{v.rule_id}: {v.message}" for v in row.judgement.violations])
            console = workdir / f"console-{target}.log"
            argv = vm.qemu_argv(pf.qemu, pf.accel, pf.kernel, initrd, console, pf.slot, target)
            res.run = vm.run(argv, console, workdir, timeout)
            if keep_logs is not None:
                keep_logs.mkdir(parents=True, exist_ok=True)
                (keep_logs / f"console-{target}.log").write_text(res.run.console)
                (keep_logs / f"qemu-{target}.stderr").write_text(res.run.stderr)
            rep = guest.parse(res.run.console, initramfs.GUEST_SLOT)
            if res.run.stalled is not None and rep.booted:
                rep.driver_messages.append(guest.stall_message(rep, res.run.stalled))
            if res.run.lingered is not None:
                rep.driver_messages.append(
                    f"ended: the report was complete but the guest had not powered off {res.run.lingered:.0f} s"
                    f" later (its shutdown waits for a probe still running): verify ended it")
            res.report = rep
            res.accepted = rep.booted
            if not rep.booted:
                res.qemu_message = qemu_message(res.run.stderr) or (
                    "timed out before the guest's init started" if res.run.returncode is None
                    else f"QEMU exited with status {res.run.returncode} before the guest started")
            if res.accepted and rep.device is not None and res.predicted.layout is not None:
                res.differences = compare.layout_differences(res.predicted, rep.device)
            res.observed = compare.observed_outcome(res.accepted, rep.driver is not None,
                                                    rep.msix_interrupts > 0)
            if not res.accepted and res.run.returncode is None:
                res.observed = "timeout"
                res.agrees, res.summary = None, "the guest did not start before the timeout"
            elif res.predicted.refused and not res.accepted:
                ok = compare.refusal_agrees(res.predicted.refused, res.qemu_message or "")
                res.agrees = ok
                res.summary = ("agrees: QEMU refuses, with the message barsafe predicted" if ok else
                               f"DIFFERS: barsafe predicted the refusal {res.predicted.refused!r},"
                               f" QEMU said {res.qemu_message!r}")
            else:
                res.agrees, res.summary = compare.agreement(res.verdict, res.observed)
            if res.accepted and res.differences:
                res.agrees = False
                res.summary += f"; the layout DIFFERS from simulate in {len(res.differences)} field(s)"
            results.append(res)
            if progress:
                progress(res)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results
