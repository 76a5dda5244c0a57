"""Benchmark of `barsafe mine` over a Linux tree's drivers/, and its recall.

    .venv/bin/python benchmarks/bench_mine.py /path/to/linux-source-6.12 [--jobs 2] [--runs 1]
        [-o DIR] [--json FILE]

Prints the wall time and the CPU time of every run (this process and its workers:
on a shared machine the wall time also measures the neighbours), the counts of the
last run (PCI drivers, MSI-X users, drivers with mined dependencies, unresolved
places), and the recall against the hand-reviewed rule sets in rules/: which of
their forbid/warn rules the mined rule sets name on their own (engine/mine/recall.py
says how a rule is compared), with every rule missed and why.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.mine import run  # noqa: E402
from engine.mine.recall import recall  # noqa: E402
from engine.rules.parse import parse  # noqa: E402


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(tree: Path, jobs: int, runs: int, out: Path) -> tuple[run.Result, list[float], list[float]]:
    walls, cpus = [], []
    result = None
    for _ in range(runs):
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        result = run.mine(tree, ["drivers"], workers=jobs)
        run.write(result, out)
        walls.append(time.perf_counter() - wall0)
        cpus.append(cpu_seconds() - cpu0)
    return result, walls, cpus


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tree")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("-o", "--output", help="keep the mined rule files here")
    ap.add_argument("--json", help="write the numbers as JSON here")
    args = ap.parse_args()
    out = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="barsafe-mined-"))
    result, walls, cpus = measure(Path(args.tree), args.jobs, args.runs, out)
    numbers = run.summary(result)
    reviewed = [parse(p.read_text(), str(p)) for p in sorted((ROOT / "rules").glob("*.rules"))]
    mined = [parse(p.read_text(), str(p)) for p in sorted(out.glob("*.rules"))]
    r = recall(reviewed, mined)
    report = {
        "wall_seconds": [round(w, 1) for w in walls], "wall_median": round(statistics.median(walls), 1),
        "cpu_seconds": [round(c, 1) for c in cpus], "cpu_median": round(statistics.median(cpus), 1),
        "jobs": args.jobs, **numbers,
        "recall": {"found": len(r.found), "total": r.total, "ratio": round(r.ratio, 3),
                   "missed": [{"ruleset": a, "rule": b, "why": c} for a, b, c in r.missed]},
        "output": str(out),
    }
    print(f"barsafe mine over drivers/ of Linux {numbers['kernel']}, {args.jobs} workers, {args.runs} run(s):")
    print(f"  wall {report['wall_median']} s (median of {walls}), CPU {report['cpu_median']} s")
    print(f"  {numbers['pci_drivers']} PCI drivers, {numbers['msix_drivers']} use MSI-X,"
          f" {numbers['with_dependencies']} have mined BAR dependencies"
          f" ({numbers['msix_with_dependencies']} of the MSI-X ones),"
          f" {numbers['with_unresolved']} have unresolved places ({numbers['unresolved_index']} indices,"
          f" {numbers['unresolved_size']} sizes, {numbers['unresolved_id']} ID entries)")
    print(f"  recall against rules/: {len(r.found)} of {r.total} forbid/warn rules ({r.ratio:.1%})")
    for a, b, c in r.missed:
        print(f"    missed {a}/{b}: {c}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
