#!/usr/bin/env python3
"""`barsafe audit` throughput against the floor of merely reading the same lspci text.

The floor is a 20-line regex scan that finds every device header, Region line
and MSI-X capability in the same files: nothing barsafe does can be faster
than reading its input.  Both run as whole processes over the shared dumps
copied N times (a fleet of identical hosts), in alternation, round by round;
the figure to quote is the median of the per-round ratios audit MB/s / floor
MB/s (target >= 0.5).  Also printed: each side's median MB/s, devices/s, and
the audit process's own peak RSS (measured with /usr/bin/time-style wait4
accounting of that one child, not of every child the benchmark ran).

Then memory: the audit of one dump of about --dump-mb MB (the shared dumps
joined with `cat`, again and again) against the audit of the shared dumps once,
alternately, round by round: the median of the per-round ratios of their peak
RSS (target <= 1.5: the dump is streamed, so memory stays flat).

    python benchmarks/bench_audit_floor.py [--copies 100] [--rounds 7] [--dump-mb 50]

Skips (exit 0, with the reason) when ../shared/corpus/lspci is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"

FLOOR = r'''
import re, sys, pathlib
head = re.compile(rb"^([0-9a-f]{2,}:[0-9a-f]{2}[:.][0-9a-f.]+) ", re.M)
region = re.compile(rb"^\s+Region (\d): (Memory|I/O ports) at \S+.*?\[size=(\w+)\]", re.M)
msix = re.compile(rb"MSI-X: Enable[+-] Count=(\d+).*?\n\s+Vector table: BAR=(\d) offset=([0-9a-f]+)"
                  rb"\n\s+PBA: BAR=(\d) offset=([0-9a-f]+)", re.S)
devices = regions = caps = 0
for arg in sys.argv[1:]:
    for path in sorted(pathlib.Path(arg).rglob("*.txt")):
        data = path.read_bytes()
        devices += len(head.findall(data))
        regions += len(region.findall(data))
        caps += len(msix.findall(data))
print(devices, regions, caps)
'''


def run(cmd: list[str], env: dict) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in KiB of this one process, stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... exited {os.waitstatus_to_exitcode(status)}")
    return seconds, usage.ru_maxrss, out.decode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dump-mb", type=float, default=50, help="size of the one dump for memory (0: skip)")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Path(tmp) / "fleet"
        for i in range(args.copies):
            shutil.copytree(SHARED, fleet / f"host{i:05d}", ignore=shutil.ignore_patterns("*.tsv", "*.md"))
        size = sum(p.stat().st_size for p in fleet.rglob("*.txt"))
        env = dict(os.environ, BARSAFE_CACHE_DIR=str(Path(tmp) / "cache"), PYTHONPATH=str(ROOT))
        # Bytecode cached, as in any installed Python (PYTHONDONTWRITEBYTECODE=1 would compile
        # barsafe's modules again in every audit run): the first run below writes it.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        audit = [sys.executable, "-m", "engine", "audit", str(fleet), "--format", "json",
                 "--page-size", "4K,16K,64K"]
        floor = [sys.executable, "-c", FLOOR, str(fleet)]
        report = json.loads(run(audit, env)[2])  # warms the rule cache and the page cache
        audited = report["strategies"]["barsafe"]["4K"]["devices"]
        run(floor, env)
        a, b, ratios, rss = [], [], [], []
        for _ in range(args.rounds):
            ta, peak, _ = run(audit, env)
            tb, _, counted = run(floor, env)
            a.append(ta)
            b.append(tb)
            rss.append(peak)
            ratios.append((size / ta) / (size / tb))
        devices, regions, caps = (int(x) for x in counted.split())
        print(f"fleet: {args.copies} copies of {SHARED.name}: {size / 1e6:.1f} MB, {devices} devices,"
              f" {caps} MSI-X capabilities by regex; audit judged {audited} MSI-X devices")
        print(f"audit (3 page sizes): median {statistics.median(a):.2f} s,"
              f" {size / statistics.median(a) / 1e6:.2f} MB/s, {caps / statistics.median(a):.0f} MSI-X devices/s,"
              f" peak RSS {statistics.median(rss) / 1024:.1f} MiB")
        print(f"floor (regex scan):   median {statistics.median(b):.2f} s, {size / statistics.median(b) / 1e6:.2f} MB/s")
        print(f"audit / floor in MB/s: median {statistics.median(ratios):.3f}"
              f" (min {min(ratios):.3f}, max {max(ratios):.3f}, {args.rounds} rounds; target >= 0.5)")
        if args.dump_mb > 0:
            one = b"".join(p.read_bytes() for p in sorted(SHARED.glob("*.txt")))
            dump = Path(tmp) / "dump.txt"
            with open(dump, "wb") as out:  # a piece at a time: a child's peak RSS counts the
                for _ in range(max(1, round(args.dump_mb * 1e6 / len(one)))):  # parent's at fork
                    out.write(one)
            command = [sys.executable, "-m", "engine", "audit", "--format", "json", "--page-size", "4K,16K,64K"]
            run([*command, str(dump)], env)
            small, big, rss_ratios = [], [], []
            for _ in range(args.rounds):
                small.append(run([*command, str(SHARED)], env)[1])
                big.append(run([*command, str(dump)], env)[1])
                rss_ratios.append(big[-1] / small[-1])
            print(f"memory: one {dump.stat().st_size / 1e6:.1f} MB dump peak RSS median"
                  f" {statistics.median(big) / 1024:.1f} MiB, the shared dumps once"
                  f" {statistics.median(small) / 1024:.1f} MiB: ratio median {statistics.median(rss_ratios):.2f}"
                  f" (min {min(rss_ratios):.2f}, max {max(rss_ratios):.2f}; target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
