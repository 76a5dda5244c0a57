#!/usr/bin/env python3
"""Audit judging rate on *distinct* devices: device-strategy evaluations per second per core.

Every MSI-X device of the shared dumps (../shared/corpus/lspci) is made into N distinct
variants: variant k has subsystem device ID k (so rule matching runs again, as for another
card model built on the same chip) and, by the bits of k, some of its BARs doubled in size
(another layout: different costs, picks and verdicts).  Each variant is a different device to
the audit, so none is answered from its memo.  A round judges all of them with a fresh audit
and a fresh rule library (loaded from the cache before the clock starts), at the page sizes
asked for, in this one process (one core: CPU time of this process).

An evaluation is one audited strategy's verdict for one device at one page size: what one
cell of `barsafe audit` counts (the default strategies and barsafe's own pick: 8 per device
and page size).  Two audits alternate, round by round: as `--format table/json/html` run it
(each distinct device's candidate tables kept for the report, for the first 1000) and as
`--format jsonl/parquet` run it (no per-device report).  Printed for each: the median over
rounds of evaluations/s, and the same as (device, page size) answers/s; the target is
>= 50,000 evaluations/s per core.

    python benchmarks/bench_audit_eval.py [--variants 16] [--rounds 5] [--page-size 4K,16K,64K]

Skips (exit 0, with the reason) when ../shared/corpus/lspci is absent.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"

from engine.audit import DEFAULT_STRATEGIES, Audit  # noqa: E402
from engine.frozen import replace  # noqa: E402
from engine.model import bar_size_problem  # noqa: E402
from engine.rules import library  # noqa: E402
from engine.sources import lspci  # noqa: E402
from engine.units import parse_size  # noqa: E402


def variants(devices: list, count: int) -> list:
    """``count`` distinct variants of each device: subsystem device k, BARs doubled by k's bits."""
    out = []
    for k in range(count):
        for d in devices:
            bars = tuple(replace(b, size=b.size * 2) if (k >> n) & 1 and b.size
                         and not bar_size_problem(b.kind, b.size * 2) else b
                         for n, b in enumerate(d.bars))
            out.append(replace(d, subsystem_device=k, bars=bars))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--page-size", default="4K,16K,64K")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent")
        return 0
    pages = [parse_size(p) for p in args.page_size.split(",")]
    devices = [d for f in sorted(SHARED.glob("*.txt")) for d in lspci.parse(f.read_text(), str(f))
               if d.msix is not None]
    devices = list({d: None for d in devices})  # distinct already: each once
    judged = variants(devices, args.variants)
    assert len(set(judged)) == len(judged), "variants are not distinct"
    library.load([library.DEFAULT_ROOT])  # fills the rule cache
    rates: dict[bool, list[float]] = {True: [], False: []}
    needing = 0
    for _ in range(args.rounds):
        for per_device in (True, False):
            rules = library.load([library.DEFAULT_ROOT])
            audit = Audit(rules, pages, list(DEFAULT_STRATEGIES), per_device=per_device)
            start = time.process_time()
            for device in judged:
                audit.add(device)
            seconds = time.process_time() - start
            rates[per_device].append(len(judged) * len(pages) * len(audit.strategies) / seconds)
            needing = sum(audit.cells[("barsafe", p)].needs_relocation for p in audit.page_sizes)
    per = len(pages) * (len(DEFAULT_STRATEGIES) + 1)
    print(f"devices: {len(judged)} distinct ({len(devices)} MSI-X devices of {SHARED.name} x"
          f" {args.variants} variants); page sizes {args.page_size}; {per} evaluations per device"
          f" ({len(DEFAULT_STRATEGIES) + 1} strategies x {len(pages)} page sizes);"
          f" {needing} of {len(judged) * len(pages)} (device, page size) need relocation")
    for per_device, label in ((True, "with the report's device tables"), (False, "jsonl/parquet")):
        got = rates[per_device]
        print(f"evaluations/s per core, {label}: median {statistics.median(got):,.0f}"
              f" (min {min(got):,.0f}, max {max(got):,.0f}, {args.rounds} rounds; target >= 50,000);"
              f" answers/s {statistics.median(got) / (len(DEFAULT_STRATEGIES) + 1):,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
