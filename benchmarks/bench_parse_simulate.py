#!/usr/bin/env python3
"""Throughput of the reader and the simulator over the real dumps in ../shared/corpus/lspci.

Parses every dump, then runs every strategy (off, bar0..bar5, each heuristic) on
every MSI-X device at 4K, 16K and 64K pages, with and without I/O space.
Prints devices/s and MB/s for parsing, and simulations/s.  The reader keeps the
devices it parsed, by their text (a fleet's dumps repeat the same devices), so
each parsing round starts with that cache emptied; parsing the same text again,
from the cache, is printed apart.  Run:

    python benchmarks/bench_parse_simulate.py [--rounds N] [--dumps DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import strategies  # noqa: E402
from engine.model import PAGE_SIZES, Platform  # noqa: E402
from engine.sources import lspci  # noqa: E402

DEFAULT_DUMPS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "lspci"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--dumps", type=Path, default=DEFAULT_DUMPS)
    args = ap.parse_args()
    files = sorted(args.dumps.glob("*.txt"))
    if not files:
        print(f"no dumps under {args.dumps}: nothing to measure (the shared corpus is absent)")
        return 0
    texts = [(str(f), f.read_text()) for f in files]
    size = sum(len(t.encode()) for _, t in texts)

    parse_s = 0.0
    for _ in range(args.rounds):
        lspci._parsed.clear()  # each round parses, not looks up what the last one parsed
        lspci._rewritten.clear()
        start = time.perf_counter()
        devices = [d for path, text in texts for d in lspci.parse(text, path)]
        parse_s += time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.rounds):
        again = [d for path, text in texts for d in lspci.parse(text, path)]
    cached_s = time.perf_counter() - start
    assert again == devices
    msix = [d for d in devices if d.msix is not None]

    platforms = [Platform(p, io) for p in PAGE_SIZES for io in (True, False)]
    names = strategies.all_names()
    start = time.perf_counter()
    for _ in range(args.rounds):
        for device in msix:
            for platform in platforms:
                for name in names:
                    strategies.run(name, device, platform)
    sim_s = time.perf_counter() - start
    sims = args.rounds * len(msix) * len(platforms) * len(names)

    print(f"input: {len(files)} dumps, {size / 1e3:.1f} kB, {len(devices)} devices, {len(msix)} with MSI-X;"
          f" {args.rounds} rounds")
    print(f"parse:    {args.rounds * len(devices) / parse_s:10.0f} devices/s"
          f"  {args.rounds * size / parse_s / 1e6:8.2f} MB/s")
    print(f"the same text again (the reader's cache of parsed devices): {args.rounds * len(devices) / cached_s:.0f}"
          f" devices/s, {args.rounds * size / cached_s / 1e6:.2f} MB/s")
    print(f"simulate: {sims / sim_s:10.0f} simulations/s"
          f"  ({len(names)} strategies x {len(platforms)} platforms per device:"
          f" {args.rounds * len(msix) / sim_s:.0f} devices/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
