"""One throwaway guest: QEMU with the device passed through, bounded in time, always ended.

Every QEMU is started in a session of its own; on timeout or any error it is
sent SIGTERM, then SIGKILL, by its own process id (its process group is the
one it leads).  Nothing else is signalled.

A guest whose init has begun prints a heartbeat every 2 s (data/init); when the
console stays silent for ``stall`` seconds the guest's userspace has stopped
(a driver's probe holding its only CPU, or the guest hung), so it is ended
then rather than at the timeout, and the run says so.  A guest whose report is
complete gets ``linger`` seconds to power off: its poweroff waits for any probe
still running (device_shutdown takes each device's lock, which a probe holds),
and there is nothing more to learn from it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import grammar
from .initramfs import GUEST_SLOT


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    returncode: int | None  # None: killed at the timeout
    seconds: float
    console: str  # the guest's serial console
    stderr: str  # QEMU's own messages
    stalled: float | None = None  # ended after this many seconds without console output (heartbeat stopped)
    lingered: float | None = None  # ended this many seconds after its complete report (it did not power off)


def device_option(host_slot: str, target: str) -> str:
    """The -device value; slot and target are re-validated against their grammar here."""
    slot = grammar.slot(host_slot)
    tgt = grammar.target(target)
    bus, addr = GUEST_SLOT.split(":")[1], GUEST_SLOT.split(":")[2].split(".")[0]
    assert bus == "00"
    return f"vfio-pci,host={slot},id=dut,bus=pcie.0,addr=0x{addr},x-msix-relocation={tgt}"


def qemu_argv(qemu: Path, accel: str, kernel: Path, initrd: Path, console: Path, host_slot: str,
              target: str, memory_mib: int = 384) -> list[str]:
    if accel not in ("kvm", "tcg"):
        raise ValueError(f"accel {accel!r}")
    cpu = "host" if accel == "kvm" else "max"
    return [str(qemu), "-accel", accel, "-machine", "q35", "-cpu", cpu, "-m", str(memory_mib),
            "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
            "-serial", f"file:{console}", "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "console=ttyS0 panic=-1 loglevel=4 rdinit=/init",
            "-device", device_option(host_slot, target)]


def end_process_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """End a child started with start_new_session=True and everything in its process group.

    SIGTERM to the group, a grace period, then SIGKILL to the group.  The leader is not reaped
    until the end (waitid WNOWAIT), so the group id stays ours: no other process can be hit.
    """
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            break
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers; the leader is alive or a zombie
    except ProcessLookupError:
        pass
    proc.wait()


BEGIN, END = b"@@barsafe begin", b"@@barsafe end"
STALL = 90.0  # seconds without console output, once the init has begun (it ticks every 2 s)
LINGER = 15.0  # seconds a guest has to power off once its report is complete


def run(argv: list[str], console: Path, workdir: Path, timeout: float,
        stall: float | None = STALL, linger: float = LINGER) -> Run:
    """Run QEMU until it exits, ``timeout`` seconds pass, (``stall``) the guest's console stays
    silent that long after its init began, or (``linger``) it has not powered off that long
    after its report ended; the guest's console and QEMU's stderr."""
    err_path = workdir / "qemu.stderr"
    start = time.monotonic()
    stalled = lingered = None
    with err_path.open("wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                start_new_session=True, close_fds=True)
        try:
            code: int | None = None
            size, changed, begun, ended = -1, start, False, None
            while True:
                now = time.monotonic()
                if now - start >= timeout:
                    break
                try:
                    code = proc.wait(timeout=min(1.0, timeout - (now - start)))
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                new = console.stat().st_size if console.exists() else 0
                if new != size:
                    size, changed = new, now
                    text = console.read_bytes() if new else b""
                    begun = begun or BEGIN in text
                    if ended is None and END in text:
                        ended = now
                if ended is not None and now - ended >= linger:
                    lingered = round(now - ended, 1)
                    break
                if stall is not None and begun and ended is None and now - changed >= stall:
                    stalled = round(now - changed, 1)
                    break
        finally:
            end_process_group(proc)
    seconds = time.monotonic() - start
    text = console.read_text(errors="replace") if console.exists() else ""
    return Run(tuple(argv), code, seconds, text, err_path.read_text(errors="replace"), stalled, lingered)
