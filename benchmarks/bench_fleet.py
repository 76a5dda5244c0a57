#!/usr/bin/env python3
"""`barsafe audit` over a synthetic fleet: the local engine against --engine dask.

The fleet is built from the shared dumps (../shared/corpus/lspci): each host is one to three
of them, drawn with a fixed seed, joined into one `lspci -vvv` file, with per-host variation
as a real fleet has it: every host's PCI buses are shifted by its own offset (so slots
differ), and per device its driver is kept, swapped for vfio-pci (the host passes it
through; the module stays) or left unbound (no driver line), which makes one shared-dump
device up to three distinct ones.  The files are written to a temporary directory (100
hosts to a folder) and removed after.

Each round runs, as whole processes and in alternation, the local engine and --engine dask
on a local cluster of --workers worker processes, both with `--format json --page-size
4K,16K,64K` over the whole fleet, and checks the two reports are byte-identical.  Printed:
median wall time, MSI-X devices/s and MB/s of input, peak memory: the local audit's own
(wait4 on that one process), and for Dask the driver's and the largest worker's (the VmHWM of
each process, read from /proc while it runs: wait4 would fold the workers into the driver),
and CPU seconds, the local audit's and Dask's driver and workers: on a machine other jobs
keep busy, wall times hide the parallel gain that the CPU split still shows.

    python benchmarks/bench_fleet.py [--hosts 5000] [--rounds 3] [--workers 2] [--seed 13]

Skips (exit 0, with the reason) when ../shared/corpus/lspci is absent, and runs the local
engine alone when dask is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"
_HEADER = re.compile(r"^((?:[0-9a-f]{4}:)?)([0-9a-f]{2})(:[0-9a-f]{2}\.[0-7] )", re.M)
_DRIVER = re.compile(r"^\tKernel driver in use: .*\n", re.M)


def blocks(text: str) -> list[str]:
    """One dump's device blocks, each ending in a newline."""
    return [b.strip("\n") + "\n" for b in text.split("\n\n") if b.strip()]


def host(rng: random.Random, dumps: list[list[str]]) -> str:
    """One synthetic host: one to three dumps, buses shifted, drivers varied per device."""
    out = []
    for n, chosen in enumerate(rng.sample(dumps, rng.randint(1, 3))):
        shift = rng.randrange(0x20) + n * 0x50  # distinct per dump, so slots never collide
        for block in chosen:
            block = _HEADER.sub(lambda m: f"{m[1]}{(int(m[2], 16) + shift) % 256:02x}{m[3]}", block, count=1)
            roll = rng.random()
            if roll < 0.15:
                block = _DRIVER.sub("\tKernel driver in use: vfio-pci\n", block)
            elif roll < 0.25:
                block = _DRIVER.sub("", block)
            out.append(block)
    return "\n".join(out)


def build(where: Path, hosts: int, seed: int) -> int:
    dumps = [blocks(p.read_text()) for p in sorted(SHARED.glob("*.txt"))]
    rng = random.Random(seed)
    size = 0
    for h in range(hosts):
        folder = where / f"rack{h // 100:04d}"
        if h % 100 == 0:
            folder.mkdir(parents=True)
        data = host(rng, dumps).encode()
        (folder / f"host{h:06d}.txt").write_bytes(data)
        size += len(data)
    return size


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float | None:
    """User + system seconds a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def _status_hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _children() -> dict[int, int]:
    """pid -> parent pid, for every process."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return parents


class Peaks(threading.Thread):
    """The peak RSS (VmHWM, KiB) and CPU seconds of a process and each of its descendants, polled."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peaks: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            parents = _children()
            tree, grew = {self.pid}, True
            while grew:
                more = {p for p, pp in parents.items() if pp in tree} - tree
                tree |= more
                grew = bool(more)
            for p in tree:
                hwm, cpu = _status_hwm(p), _cpu(p)
                if hwm is not None:
                    self.peaks[p] = max(self.peaks.get(p, 0), hwm)
                if cpu is not None:
                    self.cpu[p] = max(self.cpu.get(p, 0.0), cpu)


def run(cmd: list[str], env: dict, watch: bool) -> tuple[float, int, int, int, bytes, float, float]:
    """Wall seconds, the process's own peak RSS by wait4 (KiB; with children, the largest of it
    and them), when watched its own and its largest descendant's VmHWM (KiB), stdout, and CPU
    seconds: the process's own (wait4; when watched, polled) and its descendants' (polled)."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        peaks = Peaks(proc.pid) if watch else None
        if peaks:
            peaks.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if peaks:
            peaks.done.set()
            peaks.join()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(cmd[:6])} ... exited {os.waitstatus_to_exitcode(status)}")
        out.seek(0)
        seen = peaks.peaks if peaks else {}
        cpu = peaks.cpu if peaks else {proc.pid: usage.ru_utime + usage.ru_stime}
        return (seconds, usage.ru_maxrss, seen.get(proc.pid, 0),
                max((v for k, v in seen.items() if k != proc.pid), default=0), out.read(),
                cpu.get(proc.pid, 0.0), sum(v for k, v in cpu.items() if k != proc.pid))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=5000, help="hosts in the fleet (default 5000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of local then Dask (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    ap.add_argument("--seed", type=int, default=13, help="the fleet's random seed")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent")
        return 0
    dask = importlib.util.find_spec("distributed") is not None
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Path(tmp) / "fleet"
        start = time.perf_counter()
        size = build(fleet, args.hosts, args.seed)
        print(f"fleet: {args.hosts} hosts from {len(list(SHARED.glob('*.txt')))} shared dumps,"
              f" {size / 1e6:.1f} MB, written in {time.perf_counter() - start:.1f} s;"
              f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
        env = dict(os.environ, BARSAFE_CACHE_DIR=str(Path(tmp) / "cache"), PYTHONPATH=str(ROOT))
        audit = [sys.executable, "-m", "engine", "audit", str(fleet), "--format", "json",
                 "--page-size", "4K,16K,64K"]
        on_dask = [*audit, "--engine", "dask", "--workers", str(args.workers)]
        report = run(audit, env, False)[4]  # warms the rule cache and the page cache
        devices = json.loads(report)["strategies"]["barsafe"]["4K"]["devices"]
        local, distributed, same = [], [], True
        for _ in range(args.rounds):
            local.append(run(audit, env, False))
            if dask:
                distributed.append(run(on_dask, env, True))
                same = same and distributed[-1][4] == local[-1][4] == report
        print(f"audited: {devices} MSI-X devices, 3 page sizes, 7 strategies and barsafe's pick;"
              f" medians of {args.rounds} rounds")
        t = statistics.median(r[0] for r in local)
        print(f"local:           {t:7.2f} s  {devices / t:9.0f} devices/s  {size / t / 1e6:6.2f} MB/s"
              f"  peak RSS {statistics.median(r[1] for r in local) / 1024:.0f} MiB (the audit process)"
              f"  CPU {statistics.median(r[5] for r in local):.1f} s")
        if not dask:
            print("dask: not installed (pip install 'barsafe[fleet]'), skipped")
            return 0
        one = sorted(fleet.rglob("*.txt"))[0]
        start_up = statistics.median(run([*on_dask[:4], str(one), *on_dask[5:]], env, False)[0]
                                     - run([*audit[:4], str(one), *audit[5:]], env, False)[0]
                                     for _ in range(args.rounds))
        t = statistics.median(r[0] for r in distributed)
        driver = statistics.median(r[2] for r in distributed)
        worker = statistics.median(r[3] for r in distributed)
        print(f"dask, {args.workers} workers: {t:7.2f} s  {devices / t:9.0f} devices/s  {size / t / 1e6:6.2f} MB/s"
              f"  peak RSS driver {driver / 1024:.0f} MiB, largest worker {worker / 1024:.0f} MiB"
              f"  CPU driver {statistics.median(r[5] for r in distributed):.1f} s,"
              f" workers {statistics.median(r[6] for r in distributed):.1f} s in all")
        print(f"dask's fixed cost (one host, Dask minus local): {start_up:.2f} s: starting the cluster")
        print(f"speed-up: {statistics.median(r[0] for r in local) / t:.2f}x;"
              f" reports byte-identical: {'yes' if same else 'NO'}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
