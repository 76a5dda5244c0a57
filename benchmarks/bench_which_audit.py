#!/usr/bin/env python3
"""`barsafe which` start-up against `python -c "import yaml"`, and audit throughput.

1. which, cold process, one device (the seed SAS3008), alternated with the
   baseline process pair by pair; prints the median wall times and the median
   of the per-pair ratios (target: <= 1.3x).  The rule cache is warm, as it
   is for a user's second run, and a warm run never imports lark, so the floor
   is the one library it cannot avoid; the first run's cost is printed separately.
   Both run with bytecode caching on, as in any installed Python (a
   PYTHONDONTWRITEBYTECODE=1 environment would recompile barsafe on every run).
   With --callgrind (valgrind installed), also each command's instruction count under
   `valgrind --tool=callgrind`: deterministic, so a change's effect shows on a busy machine
   where wall times wander.
2. audit over the shared dumps (../shared/corpus/lspci) and the corpus
   records at 4K/16K/64K: devices/s, MB/s, and the audit process's own peak RSS
   (wait4 on that one process, not the maximum over every child this script ran).

    python benchmarks/bench_which_audit.py [--pairs N] [--callgrind]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus" / "devices" / "seed" / "lsi-sas3008-1000-0097.yaml"
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"
_SCRIPT = Path(sys.executable).with_name("barsafe")
_BARSAFE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "engine.cli"]
WHICH = [*_BARSAFE, "which", str(SEED), "--page-size", "64K", "--no-io-space"]
BASELINE = [sys.executable, "-c", "import yaml"]


def wall(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def instructions(cmd: list[str], env: dict, scratch: str) -> int:
    """Instructions the process executed (callgrind's "I refs"), its children not counted; with
    a fixed hash seed, so the same program counts the same to within a few thousand."""
    out = os.path.join(scratch, "callgrind.out")
    run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=dict(env, PYTHONHASHSEED="0"), cwd=ROOT)
    found = re.search(r"refs:\s+([0-9,]+)", run.stderr)
    if run.returncode != 0 or not found:
        raise SystemExit(f"valgrind failed on {' '.join(cmd)}: {run.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def editable_install() -> bool:
    """Whether this Python has barsafe installed editable (pip install -e): its import hook is
    loaded by every process, `import yaml` too, and brings pathlib and importlib with it, which
    raises the floor and flatters the ratio.  Measure in a venv with `pip install .`."""
    import site
    return any(any(Path(d).glob("__editable__*barsafe*")) for d in site.getsitepackages() if Path(d).is_dir())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=15)
    ap.add_argument("--callgrind", action="store_true",
                    help="also count instructions with valgrind --tool=callgrind (deterministic)")
    args = ap.parse_args()
    if args.callgrind and not shutil.which("valgrind"):
        raise SystemExit("--callgrind needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, BARSAFE_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("PYTHONUNBUFFERED", None)  # neither is set in a user's shell
        cold = wall(WHICH, env)  # fills the rule cache
        wall(BASELINE, env)
        a, b = [], []
        for _ in range(args.pairs):
            a.append(wall(WHICH, env))
            b.append(wall(BASELINE, env))
        ratios = [x / y for x, y in zip(a, b)]
        print(f"command: {' '.join(WHICH[:2])} ...")
        if editable_install():
            print("warning: barsafe is installed editable here (pip install -e): its import hook runs in"
                  " every process and flatters the ratio; measure in a venv with `pip install .`")
        print(f"which, first run (rule cache empty): {cold * 1e3:7.1f} ms")
        print(f"which, cached rules: median {statistics.median(a) * 1e3:7.1f} ms;"
              f" import yaml: median {statistics.median(b) * 1e3:7.1f} ms")
        print(f"ratio which / import yaml: median {statistics.median(ratios):.2f}x"
              f" (min {min(ratios):.2f}, max {max(ratios):.2f}; target <= 1.3x)")
        if args.callgrind:
            a_ins, b_ins = instructions(WHICH, env, scratch), instructions(BASELINE, env, scratch)
            print(f"instructions (callgrind): which {a_ins / 1e6:.1f}M, import yaml {b_ins / 1e6:.1f}M:"
                  f" {a_ins / b_ins:.2f}x")

        inputs = [str(p) for p in sorted(SHARED.glob("*.txt"))] if SHARED.is_dir() else []
        inputs.append(str(ROOT / "corpus" / "devices"))
        size = sum(Path(p).stat().st_size for p in inputs if Path(p).is_file())
        size += sum(p.stat().st_size for p in (ROOT / "corpus" / "devices").rglob("*.yaml"))
        cmd = [sys.executable, "-m", "engine.cli", "audit", *inputs, "--format", "json"]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"audit exited {os.waitstatus_to_exitcode(status)}")
        peak = usage.ru_maxrss
        import json
        data = json.loads(out)
        devices = data["strategies"]["barsafe"]["4K"]["devices"]
        print(f"audit: {len(inputs)} inputs, {devices} MSI-X devices x 3 page sizes in {seconds:.2f} s:"
              f" {devices / seconds:.0f} devices/s, {size / seconds / 1e6:.2f} MB/s,"
              f" peak RSS {peak / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
