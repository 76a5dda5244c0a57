"""`barsafe check` as data: every error and warning in the rule files under some paths.

Errors are what library.load refuses (syntax, semantics, includes, example device
files); warnings (check.warnings: a role no rule uses) never stop a file from loading,
so they are found here, beside the library, for the files that parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RuleError, RuleErrors
from . import ast


@dataclass
class Lint:
    diagnostics: list[RuleError] = field(default_factory=list)  # errors and warnings
    files: int = 0  # counts of a library that loaded (0 when it did not)
    rules: int = 0
    examples: int = 0

    @property
    def errors(self) -> list[RuleError]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[RuleError]:
        return [d for d in self.diagnostics if d.severity == "warning"]


def lint(paths: list[Path]) -> Lint:
    from . import library
    from .check import warnings
    out = Lint()
    try:
        lib = library.load(paths, use_cache=False)
    except RuleErrors as exc:
        out.diagnostics.extend(exc.errors)
        files = _parse_each(paths)
    else:
        files = list(lib.files.values())
        out.files = len(files)
        out.rules = sum(len(f.rules) for f in files)
        out.examples = sum(len(f.examples) for f in files)
    for f in files:
        out.diagnostics.extend(warnings(f))
    return out


def _parse_each(paths: list[Path]) -> list[ast.RuleFile]:
    """The files that parse, when the library as a whole did not load (their errors are
    reported already)."""
    from .library import rule_files
    from .parse import parse
    try:
        found = rule_files(paths)
    except RuleErrors:
        return []
    out = []
    for path in found:
        try:
            out.append(parse(path.read_bytes().decode("utf-8"), str(path)))
        except (OSError, UnicodeDecodeError, RuleErrors):
            continue
    return out
