"""The lab runner (host side): boot L1 with virtme-ng and run `barsafe verify` inside it.

    python -m lab.run [--smoke | --devices nvme,e1000e,... --targets off,bar0,...] [--out DIR]
                      [--write-cases] [--accel kvm|tcg]

L1 is Debian's kernel under TCG with `-cpu max` (it emulates SVM, so L1 has a
/dev/kvm of its own), an emulated VT-d with interrupt remapping, and the lab
devices; virtme-ng boots it on a read-only snapshot of this machine's root, so
L1 runs this checkout's barsafe, QEMU and kernel modules without an image.
Prints "lab: SKIP: <reason>" and exits 0 where the machine cannot run it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.verify.vm import end_process_group

from .devices import ALL_TARGETS, DEVICES, L1_CMDLINE, ROOT_PORT_BASE, SMOKE, qemu_options

REPO = Path(__file__).resolve().parents[1]


def find_vng() -> str | None:
    beside = Path(sys.executable).parent / "vng"
    return str(beside) if beside.exists() else shutil.which("vng")


def debian_kernel() -> str | None:
    found = sorted(glob.glob("/boot/vmlinuz-*-amd64"))
    return found[-1] if found else None


def skip_reason(kernel: str | None) -> str | None:
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return "the lab needs an x86_64 Linux machine"
    if os.geteuid() != 0:
        return "the lab runs as root (L1 shares this root read-only and binds devices inside it)"
    if find_vng() is None:
        return "virtme-ng is not installed (pip install virtme-ng)"
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
    if kernel is None:
        return "no Debian kernel in /boot (apt-get install linux-image-amd64)"
    release = Path(kernel).name.removeprefix("vmlinuz-")
    if not Path(f"/lib/modules/{release}/modules.dep").is_file():
        return f"no modules for {release} in /lib/modules"
    if not any(Path(p).is_file() for p in ("/bin/busybox", "/usr/bin/busybox")):
        return "busybox is missing (apt-get install busybox-static)"
    return None


def plan_for(pairs: list[tuple[str, str]]) -> list[dict]:
    order: dict[str, list[str]] = {}
    for name, target in pairs:
        order.setdefault(name, [])
        if target not in order[name]:
            order[name].append(target)
    return [{"name": n, "index": i, "targets": t, "unassign": list(DEVICES[n].unassign)}
            for i, (n, t) in enumerate(order.items())]


def boot_l1(vng: str, kernel: str, devices: list[dict], out: Path, timeout: float,
            cpus: int, memory: str) -> tuple[int | None, float, str]:
    """One L1 boot; ended by its own process group at the timeout.  (exit, seconds, console)."""
    opts = qemu_options([d["name"] for d in devices])
    cmd = [vng, "--run", kernel, "--disable-kvm", "--disable-microvm", "--force-9p",
           "--cpus", str(cpus), "--memory", memory, "--rwdir", str(out),
           "--append", L1_CMDLINE, "--qemu-opts=" + " ".join(opts),
           "--exec", f"{sys.executable} {REPO / 'lab' / 'l1.py'} {out}"]
    (out / "l1-command.txt").write_text(shlex.join(cmd) + "\n")
    env = dict(os.environ, PATH=f"{Path(vng).parent}:{os.environ.get('PATH', '')}")
    start = time.monotonic()
    with (out / "l1-console.txt").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=env, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            end_process_group(proc)
    return code, time.monotonic() - start, (out / "l1-console.txt").read_text(errors="replace")


def _terminated(signum, frame):
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help=f"the CI set: {SMOKE}")
    ap.add_argument("--devices", default=",".join(DEVICES), help="lab devices (default: all)")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS), help="targets for each device")
    ap.add_argument("--text", default="", help="devices whose verify output is kept as text")
    ap.add_argument("--out", help="keep results here (default: a temporary folder, removed)")
    ap.add_argument("--accel", choices=("kvm", "tcg"), help="L2's accelerator (default: verify's choice)")
    ap.add_argument("--case-timeout", type=float, default=420.0, help="seconds per L2 guest")
    ap.add_argument("--timeout", type=float, default=0, help="seconds for the L1 boot (default: from the plan)")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory", default="3G")
    ap.add_argument("--write-cases", action="store_true", help="write corpus/cases/lab-*.yaml")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)  # so `finally` ends L1's process group

    kernel = debian_kernel()
    reason = skip_reason(kernel)
    if reason:
        print(f"lab: SKIP: {reason}")
        return 0
    assert kernel is not None
    if args.smoke:
        pairs = list(SMOKE)
    else:
        names = [n.strip() for n in args.devices.split(",") if n.strip()]
        unknown = [n for n in names if n not in DEVICES]
        if unknown:
            ap.error(f"unknown lab devices {unknown}; known: {', '.join(DEVICES)}")
        pairs = [(n, t.strip()) for n in names for t in args.targets.split(",") if t.strip()]
    devices = plan_for(pairs)
    for d in devices:
        d["text"] = d["name"] in args.text.split(",")
    cases = sum(len(d["targets"]) for d in devices)
    timeout = args.timeout or 180 + cases * args.case_timeout
    keep = args.out is not None
    out = Path(args.out).resolve() if keep else Path(tempfile.mkdtemp(prefix="barsafe-lab-"))
    out.mkdir(parents=True, exist_ok=True)
    plan = {"devices": devices, "root_port_base": ROOT_PORT_BASE, "timeout": args.case_timeout,
            "barsafe": str(Path(sys.executable).parent / "barsafe"), "accel": args.accel,
            "lab_command": shlex.join(["python", "-m", "lab.run", *(argv if argv is not None else sys.argv[1:])])}
    (out / "plan.json").write_text(json.dumps(plan, indent=2))
    print(f"lab: {len(devices)} device(s), {cases} case(s), L1 kernel {kernel}; results in {out}", flush=True)
    try:
        code, seconds, console = boot_l1(find_vng(), kernel, devices, out, timeout, args.cpus, args.memory)
        from . import results
        summary = results.collect(out, devices, seconds, kernel)
        print(results.table(summary))
        print(f"lab: L1 exit {code}, wall {seconds:.0f}s", flush=True)
        if args.write_cases:
            for path in results.write_cases(summary, REPO / "corpus" / "cases"):
                print(f"lab: wrote {path.relative_to(REPO)}")
        if code is None:
            print("lab: FAIL: L1 did not finish before its timeout (killed)")
            return 1
        for line in results.known(summary):
            print(f"lab: {line}")
        bad = results.problems(summary)
        for p in bad:
            print(f"lab: FAIL: {p}")
        return 1 if bad else 0
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
