#!/usr/bin/env python3
"""Rule files grow linearly in cost: parse, check and fmt per line at 1x, 4x and 16x.

Generated files of several shapes (the ones that once hid quadratic work):

- match:    one `match id` line per device ID (a 5 MB file is ~263,000 of them); each
            statement used to be parsed behind start-1 newlines, which Lark re-lexed
- rules:    three-line rules; check compared every rule with every earlier one
- comments: a comment line above every statement; fmt rebuilt its comment queue per statement
- trailing: a comment at the end of every line; fmt scanned all of them per statement

For each shape and size it prints the median over --rounds of the whole parse + check
and of fmt, in microseconds per line.  Linear work shows as a flat per-line figure from
1x to 16x; quadratic work as one that grows about 4x with each step.

    python benchmarks/bench_rule_scaling.py [--base LINES] [--rounds N] [--shapes match,rules]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.rules.check import check  # noqa: E402
from engine.rules.fmt import fmt  # noqa: E402
from engine.rules.parse import parse, parser  # noqa: E402

HEAD = ('ruleset t\nsource "drivers/x/x.c:10" function x_probe kernel "6.12"\n'
        "role regs = first memory bar\n")


def _id(i: int) -> str:
    return f"{i >> 16 & 0xffff:04x}:{i & 0xffff:04x}"


SHAPES = {  # name: (lines per item, text of n items)
    "match": (1, lambda n: "".join(f"match id {_id(i)}\n" for i in range(n))),
    "rules": (3, lambda n: "".join(f"rule r{i}:\n    require bar{i % 6} size >= {i + 1}\n"
                                   f'    else warn "m{i}"\n' for i in range(n))),
    "comments": (2, lambda n: "".join(f"# c{i}\nmatch id {_id(i)}\n" for i in range(n))),
    "trailing": (1, lambda n: "".join(f"match id {_id(i)}  # t{i}\n" for i in range(n))),
}


def _median(rounds: int, work) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=4000, help="lines at 1x (default 4000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per size; the median is shown")
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    args = ap.parse_args()
    parser()  # build Lark's tables once, outside the timings
    print(f"median of {args.rounds} rounds; microseconds per line (parse+check | fmt)")
    for shape in args.shapes.split(","):
        per_item, make = SHAPES[shape]
        cells = []
        for factor in (1, 4, 16):
            items = args.base * factor // per_item
            text = HEAD + make(items)
            lines = text.count("\n")
            parsed = parse(text, "t.rules")
            assert check(parsed, "t") == []
            load = _median(args.rounds, lambda: check(parse(text, "t.rules"), "t"))
            layout = _median(args.rounds, lambda: fmt(parsed))
            cells.append(f"{factor:>2}x {lines:>7} lines {load / lines * 1e6:6.1f} | {layout / lines * 1e6:5.1f}")
        print(f"{shape:9} " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main()
