"""Rule files carry their own examples; this runs them (`barsafe test`).

An example names a device (a corpus record or an inline layout), a platform
and, per strategy, the verdict the rule set must give.  Every expectation is
run, failures do not stop the run, and each failure says what the rule set
answered and why.  Running an example takes the scorer, so this lives beside
score.py: the rule language (engine/rules/) never imports scoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import BarsafeError
from .model import Device, Platform
from .rules import ast
from .rules.check import DevicePathError, corpus_root, locate_device, page_size_ok
from .rules.compile import inline_device
from .rules.library import Library, Ruleset
from .score import judge
from .sources import load as load_device

CORPUS = corpus_root() / "devices"


@dataclass(frozen=True)
class ExampleResult:
    ruleset: str
    title: str
    strategy: str
    expected: str
    actual: str
    reasons: tuple[str, ...]
    where: str  # path:line of the expect line

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


def example_device(rule_path: str, example: ast.Example, roots: list[Path] | None = None) -> Device:
    """A device file is looked up next to the rule file, then in the shipped corpus/devices;
    only files inside the corpus and the rule roots are read (check.locate_device)."""
    item = next((i for i in example.items if isinstance(i, ast.ExampleDevice)), None)
    if item is None:
        try:
            return inline_device(example)
        except ValueError as exc:  # check() reports these; rules from a cache skip it
            raise BarsafeError(f"impossible device: {exc}", example.span.location) from None
    try:
        found = locate_device(rule_path, item.path.value, roots)
    except DevicePathError as exc:
        raise BarsafeError(str(exc), item.span.location) from None
    if found is None:
        raise BarsafeError(f"example device {ast.quoted(item.path.value)} not found next to the"
                           f" rule file or in {CORPUS}", item.span.location)
    devices = load_device(str(found))
    with_msix = [d for d in devices if d.msix is not None]
    if len(with_msix) != 1:
        raise BarsafeError(f"{found}: an example device file must hold one MSI-X device",
                           item.span.location)
    return with_msix[0]


def example_platform(example: ast.Example) -> Platform:
    p = next((i for i in example.items if isinstance(i, ast.ExamplePlatform)), None)
    if p is None:
        return Platform()
    if not page_size_ok(p.page_size):  # check() reports it; rules from a cache skip it
        raise BarsafeError(f"platform page size {p.page_size} is not a power of two >= 4K",
                           p.span.location)
    return Platform(p.page_size, p.io_space)


def run_ruleset(rs: Ruleset, roots: list[Path] | None = None) -> list[ExampleResult]:
    """Every expectation of every example; ``roots``: the rule directories examples may read
    device files from, besides the corpus (default: the rule file's own directory)."""
    results = []
    for example in rs.file.examples:
        try:
            platform = example_platform(example)
            device = example_device(rs.path, example, roots)
        except BarsafeError as exc:
            where = str(exc.location or example.span.location)
            results.append(ExampleResult(rs.name, example.title.value, "-", "a device", "error",
                                         (exc.message,), where))
            continue
        for expect in (i for i in example.items if isinstance(i, ast.Expect)):
            j = judge(device, platform, expect.strategy, [rs])
            reasons = tuple(f"{v.rule_id} ({v.severity}): {v.evidence}" for v in j.violations)
            if j.outcome.refused:
                reasons = (f"QEMU: {j.outcome.refused}",)
            results.append(ExampleResult(rs.name, example.title.value, expect.strategy,
                                         expect.verdict, j.verdict, reasons,
                                         f"{expect.span.path}:{expect.span.line}"))
    return results


def run_library(library: Library, only: set[str] | None = None) -> list[ExampleResult]:
    results: list[ExampleResult] = []
    roots = getattr(library, "roots", None)  # the directories it was loaded from, when it says
    for path, rs in sorted(((rs.path, rs) for rs in library.rulesets.values()), key=lambda t: t[0]):
        if only is None or path in only:
            results.extend(run_ruleset(rs, roots))
    return results
