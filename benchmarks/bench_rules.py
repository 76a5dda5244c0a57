#!/usr/bin/env python3
"""Rule evaluation speed and rule-library load time.

1. Compiled rules against the same rules written by hand as plain Python
   functions (mpt3sas, tsi721, generic), over every candidate of every device
   record in corpus/devices at 4K/16K/64K with and without I/O space.
   The two run in turn, round by round, and the figure is the median of the
   per-round ratios (never a best case).  The target is compiled <= 1.3x
   hand-written.
2. Loading the shipped rules/ library: cold (parse + check every file) and
   from the content-hash cache.

    python benchmarks/bench_rules.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import strategies  # noqa: E402
from engine.model import PAGE_SIZES, Platform  # noqa: E402
from engine.rules import library  # noqa: E402
from engine.rules.compile import Candidate  # noqa: E402
from engine.score import native_layout  # noqa: E402
from engine.sources import load  # noqa: E402


def first(bars, keep):
    found = [b.index for b in sorted(bars, key=lambda b: b.index) if keep(b)]
    return found[0] if found else None


def by_hand(c: Candidate) -> list[str]:
    """mpt3sas + tsi721 + generic, written out in Python: what the rule files say."""
    out = []
    native = {b.index: b for b in c.native.bars}
    reloc = {b.index: b for b in c.relocated.bars}
    added = {i for i in reloc if i not in native}
    # mpt3sas
    before, after = first(c.native.bars, lambda b: not b.is_io), first(c.relocated.bars, lambda b: not b.is_io)
    if before != after or after in added:
        out.append("mpt3sas/registers-are-first-memory-bar")
    before, after = first(c.native.bars, lambda b: b.is_io), first(c.relocated.bars, lambda b: b.is_io)
    if before != after or after in added:
        out.append("mpt3sas/pio-is-first-io-bar")
    # tsi721
    for i, minimum, name in ((0, 512 << 10, "csr-bar0"), (1, 16 << 20, "doorbell-bar1")):
        b = reloc.get(i)
        if not (b is not None and not b.is_io and not b.is_64bit and b.size >= minimum):
            out.append(f"tsi721/{name}")
    for i in (2, 4):
        b, n = reloc.get(i), native.get(i)
        same = b is not None and n is not None and i not in added and b.size == n.size
        if not (same or not (b is not None and b.is_64bit and not b.prefetchable)):
            out.append(f"tsi721/outbound-window-bar{i}")
    # generic
    lastmem = max((b.index for b in c.native.bars if not b.is_io), default=None)
    if lastmem is not None and any(i < lastmem for i in added):
        out.append("generic/insert-before-memory-bar")
    if any(i in native and native[i].size != reloc[i].size for i in reloc):
        out.append("generic/extend-bar")
    if added:
        out.append("generic/add-bar")
    return out


def candidates() -> list[Candidate]:
    out = []
    for path in sorted((ROOT / "corpus" / "devices").rglob("*.yaml")):
        for device in load(str(path)):
            if device.msix is None:
                continue
            for page in PAGE_SIZES:
                for io in (True, False):
                    platform = Platform(page, io)
                    native = native_layout(device, platform)
                    for name in strategies.all_names():
                        o = strategies.run(name, device, platform)
                        if o.layout is not None:
                            out.append(Candidate(native, o.layout, platform, name))
    return out


def interleaved(a, b, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds of ``a`` and ``b`` per round, run in turn (A B A B ...) so drift hits both alike."""
    ta, tb = [], []
    for _ in range(rounds):
        for fn, out in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return ta, tb


def timed(fn, rounds: int) -> float:
    """Median seconds over ``rounds`` runs."""
    runs = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["BARSAFE_CACHE_DIR"] = cache
        lib = library.load()
        sets = [lib.rulesets[n] for n in ("mpt3sas", "tsi721", "generic")]
        cands = candidates()

        def compiled():
            for c in cands:
                [v.rule_id for rs in sets for v in rs.evaluate(c)]

        def hand():
            for c in cands:
                by_hand(c)

        mismatches = sum(sorted(v.rule_id for rs in sets for v in rs.evaluate(c)) != sorted(by_hand(c))
                         for c in cands)
        compiled()  # warm: every rule set compiled, every role cache path taken once
        hand()
        t_compiled, t_hand = interleaved(compiled, hand, args.rounds)
        ratios = sorted(x / y for x, y in zip(t_compiled, t_hand))
        print(f"candidates: {len(cands)}; disagreements between compiled and hand-written: {mismatches}")
        print(f"compiled rules:    {len(cands) / statistics.median(t_compiled):10.0f} candidates/s (median)")
        print(f"hand-written:      {len(cands) / statistics.median(t_hand):10.0f} candidates/s (median)")
        print(f"ratio compiled/hand-written, per round: median {statistics.median(ratios):.2f}x"
              f" (min {ratios[0]:.2f}, max {ratios[-1]:.2f}, {args.rounds} rounds; target <= 1.3x)")

        def cold():
            library.load(use_cache=False)

        def cached():
            library.load()
        library.load()  # fill the cache
        print(f"library load, cold:   {timed(cold, args.rounds) * 1e3:8.1f} ms"
              f" ({len(lib.files)} files)")
        print(f"library load, cached: {timed(cached, args.rounds) * 1e3:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
