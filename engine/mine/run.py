"""Mining a tree: find the modules that define PCI drivers, mine each, in worker processes.

The unit of work is a module (Kbuild): its files are parsed once and every
`struct pci_driver` in it is mined together.  Modules are handed to a pool of
workers (2 by default: the benchmark's machine), the largest first.  Nothing here
prints; the CLI does.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .facts import Driver, Result
from .kbuild import module_of


@dataclass(frozen=True)
class Unit:
    module: str
    files: tuple[str, ...]
    size: int


def kernel_version(tree: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL from the tree's top Makefile ("unknown" without one)."""
    try:
        head = (tree / "Makefile").read_text(errors="replace")[:2000]
    except OSError:
        return "unknown"
    parts = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}\s*=\s*(\S*)\s*$", head, re.M)
        parts[key] = m.group(1) if m else ""
    if not parts["VERSION"]:
        return "unknown"
    return f"{parts['VERSION']}.{parts['PATCHLEVEL']}.{parts['SUBLEVEL']}{parts['EXTRAVERSION']}"


def driver_files(tree: Path, paths: list[str]) -> list[str]:
    """Tree-relative C files under ``paths`` that mention struct pci_driver."""
    out = []
    for p in paths:
        base = tree / p
        candidates = [base] if base.is_file() else sorted(base.rglob("*.c"))
        for f in candidates:
            try:
                data = f.read_bytes()
            except OSError:
                continue
            if b"struct pci_driver" in data:
                out.append(str(f.relative_to(tree)))
    return out


def units(tree: Path, paths: list[str]) -> list[Unit]:
    """One unit per module that holds a PCI driver, largest first."""
    by_module: dict[tuple[str, str], set[str]] = {}
    for path in driver_files(tree, paths):
        module = module_of(tree, path)
        files = set(module.objects) | {path}
        by_module.setdefault((module.name, module.makefile_dir), set()).update(files)
    out = []
    for (name, _), files in by_module.items():
        size = sum((tree / f).stat().st_size for f in files if (tree / f).is_file())
        out.append(Unit(name, tuple(sorted(files)), size))
    return sorted(out, key=lambda u: -u.size)


_WORKER: dict = {}


def _init(tree: str) -> None:
    from .index import SourceCache
    _WORKER["cache"] = SourceCache(Path(tree))


def _cache_for(tree: Path):
    from .index import SourceCache
    cache = _WORKER.get("cache")
    if cache is None or cache.tree_root != tree:
        cache = _WORKER["cache"] = SourceCache(tree)
    return cache


def mine_unit(tree: Path, unit: Unit) -> tuple[list[Driver], list[str]]:
    from .extract import Miner
    from .index import Index
    cache = _cache_for(tree)
    try:
        index = Index(cache, list(unit.files))
        drivers = Miner(index, unit.module).drivers()
    except RecursionError:
        return [], [f"{unit.module}: nested too deeply to mine"]
    if len(cache.sources) > 3000:  # keep a worker's memory bounded on the whole tree
        cache.sources.clear()
        cache.header_closure.clear()
        cache.functions_in_dir.clear()
    return drivers, []


def _job(args) -> tuple[list[Driver], list[str]]:
    tree, unit = args
    return mine_unit(Path(tree), unit)


def mine(tree: Path, paths: list[str] | None = None, workers: int = 2) -> Result:
    """Every PCI driver under ``paths`` (default drivers/) of the Linux tree ``tree``."""
    from .cfront import _ts
    _ts()  # fail early, in this process, when tree-sitter is missing
    started = time.perf_counter()
    tree = Path(tree)
    todo = units(tree, paths or ["drivers"])
    result = Result(kernel=kernel_version(tree), workers=workers)
    if workers > 1 and len(todo) > 1:
        ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
        with ctx.Pool(workers, initializer=_init, initargs=(str(tree),), maxtasksperchild=200) as pool:
            for drivers, errors in pool.imap_unordered(_job, [(str(tree), u) for u in todo]):
                result.drivers += drivers
                result.errors += errors
    else:
        for u in todo:
            drivers, errors = mine_unit(tree, u)
            result.drivers += drivers
            result.errors += errors
    result.drivers.sort(key=lambda d: (d.place.file, d.place.line))
    result.seconds = time.perf_counter() - started
    return result


def write(result: Result, directory: Path) -> list[Path]:
    """One rule file per driver in ``directory`` (each written whole or not at all).  Two
    drivers with the same name (one module registering PF and VF drivers under one name)
    get the variable's name appended.  A driver with nothing to cite (no probe, no ID table:
    emit.citations) drives no device and gets no file."""
    from ..files import write_text_atomic
    from .emit import citations, render, ruleset_name
    directory.mkdir(parents=True, exist_ok=True)
    drivers = [d for d in result.drivers if citations(d)]
    names: dict[str, int] = {}
    for d in drivers:
        names[ruleset_name(d)] = names.get(ruleset_name(d), 0) + 1
    written = []
    for d in drivers:
        if names[ruleset_name(d)] > 1:
            d.name = f"{d.name}-{d.variable}"
        path = directory / f"{ruleset_name(d)}.rules"
        write_text_atomic(path, render(d, result.kernel))
        written.append(path)
    return written


def summary(result: Result) -> dict:
    """The benchmark's numbers."""
    drivers = result.drivers
    return {
        "kernel": result.kernel,
        "seconds": round(result.seconds, 1),
        "workers": result.workers,
        "pci_drivers": len(drivers),
        "msix_drivers": sum(1 for d in drivers if d.uses_msix),
        "with_dependencies": sum(1 for d in drivers if d.dependencies),
        "msix_with_dependencies": sum(1 for d in drivers if d.uses_msix and d.dependencies),
        "with_unresolved": sum(1 for d in drivers if d.unresolved),
        "unresolved": sum(len(d.unresolved) for d in drivers),
        "unresolved_index": sum(1 for d in drivers for u in d.unresolved if u.what == "index"),
        "unresolved_size": sum(1 for d in drivers for u in d.unresolved if u.what == "size"),
        "unresolved_id": sum(1 for d in drivers for u in d.unresolved if u.what == "id"),
        "dependencies": sum(len(d.dependencies) for d in drivers),
        "ids": sum(len(d.ids) for d in drivers),
        "errors": len(result.errors),
    }
