"""Rule files carry their own examples; this runs them (`barsafe test`).

An example names a device (a corpus record or an inline layout), a platform
and, per strategy, the verdict the rule set must give.  Every expectation is
run, failures do not stop the run, and each failure says what the rule set
answered and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import BarsafeError
from ..model import Device, Platform
from ..score import judge
from ..sources import load as load_device
from . import ast
from .compile import inline_device
from .library import DEFAULT_ROOT, Library, Ruleset

CORPUS = DEFAULT_ROOT.parent / "corpus" / "devices"


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


def example_device(rule_path: str, example: ast.Example) -> Device:
    """A device file is looked up next to the rule file, then in the shipped corpus/devices."""
    item = next((i for i in example.items if isinstance(i, ast.ExampleDevice)), None)
    if item is None:
        return inline_device(example)
    for base in (Path(rule_path).parent, Path(rule_path).parent.parent / "corpus" / "devices", CORPUS):
        candidate = base / item.path.value
        if candidate.is_file():
            devices = load_device(str(candidate))
            with_msix = [d for d in devices if d.msix is not None]
            if len(with_msix) != 1:
                raise BarsafeError(f"{candidate}: an example device file must hold one MSI-X device",
                                   item.span.location)
            return with_msix[0]
    raise BarsafeError(f"example device {item.path.value!r} not found next to the rule file"
                       f" or in {CORPUS}", item.span.location)


def example_platform(example: ast.Example) -> Platform:
    p = next((i for i in example.items if isinstance(i, ast.ExamplePlatform)), None)
    return Platform() if p is None else Platform(p.page_size, p.io_space)


def run_ruleset(rs: Ruleset) -> list[ExampleResult]:
    results = []
    for example in rs.file.examples:
        platform = example_platform(example)
        try:
            device = example_device(rs.path, example)
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
    for path, rs in sorted(((rs.path, rs) for rs in library.rulesets.values()), key=lambda t: t[0]):
        if only is None or path in only:
            results.extend(run_ruleset(rs))
    return results
