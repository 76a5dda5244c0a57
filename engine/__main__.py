"""The barsafe program: `barsafe ...` (pyproject's script) and `python -m engine`.

Start-up policy, then engine.cli.  Starting builds some hundred thousand objects that live
as long as the process (modules, classes, functions, the rule index).  At Python's default
threshold (a collection every 700 new objects, every tenth of them over a generation more)
the collector ran about 150 times while a warm `which` started, some of them over every
object, and found nothing: 3.7 % of its instructions.  So the program collects every 10,000
new objects instead, and cli.main sets aside (gc.freeze) what start-up made.  A long run
still collects: what a cycle leaves behind waits at most 10,000 allocations.  Code that
imports engine as a library keeps its own collector settings.
"""

import gc
import sys


def main() -> int:
    gc.set_threshold(10_000)
    from .cli import main as cli_main
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
