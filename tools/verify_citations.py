#!/usr/bin/env python3
"""Check every rule file's `source "FILE:LINE" function NAME` (and `registers ... cite
"FILE:LINE"`) against a Linux tree.

    python tools/verify_citations.py /path/to/linux [rules/]

For each citation: the file exists, the line exists, and NAME is defined at
column 0 (a function or table definition) at or above the line, with no
other top-level definition's closing brace between them.  Rule files are
claims about real driver code; this keeps the line numbers honest.  Debian's
linux-source-6.12 package provides the tree the rules cite:
    tar -xaf /usr/src/linux-source-6.12.tar.xz -C /tmp --wildcards '*/drivers/*'
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.rules import ast  # noqa: E402
from engine.rules.library import rule_files  # noqa: E402
from engine.rules.parse import parse  # noqa: E402


def _cited_lines(tree: Path, where: str) -> tuple[list[str], int] | str:
    """The cited file's lines and the cited line number, or what is wrong with the citation."""
    path, _, line_text = where.rpartition(":")
    file = tree / path
    if not file.is_file():
        return f"{path}: no such file in the tree"
    lines = file.read_text(errors="replace").split("\n")
    line = int(line_text)
    if not 0 < line <= len(lines):
        return f"{where}: the file has {len(lines)} lines"
    return lines, line


def check_citation(tree: Path, where: str, function: str) -> str | None:
    found = _cited_lines(tree, where)
    if isinstance(found, str):
        return found
    lines, line = found
    definition = re.compile(rf"^(?=[A-Za-z_]).*\b{re.escape(function)}\b")
    for number in range(line, 0, -1):
        text = lines[number - 1]
        if definition.match(text):
            return None
        if number < line and text.startswith("}"):
            break  # left the enclosing top-level definition without finding NAME
    return f"{where}: not inside {function} (no top-level definition of it above the line)"


def check_cite(tree: Path, where: str) -> str | None:
    """A `registers ... cite "FILE:LINE"`: the line exists and defines something (not blank,
    not a comment alone), e.g. the header's #define of the first register."""
    found = _cited_lines(tree, where)
    if isinstance(found, str):
        return found
    lines, line = found
    text = lines[line - 1].strip()
    if not text or text.startswith(("/*", "*", "//")):
        return f"{where}: a blank or comment line, not a definition"
    return None


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    tree = Path(sys.argv[1])
    roots = [Path(p) for p in sys.argv[2:]] or [Path(__file__).resolve().parents[1] / "rules"]
    problems = checked = 0
    for rule_path in rule_files(roots):
        f = parse(rule_path.read_text(), str(rule_path))
        for source in f.of(ast.Source):
            checked += 1
            problem = check_citation(tree, source.where.value, source.function or "")
            if problem:
                problems += 1
                print(f"{rule_path}:{source.span.line}: {problem}")
        for registers in f.of(ast.Registers):
            if registers.cite is None:
                continue
            checked += 1
            problem = check_cite(tree, registers.cite.value)
            if problem:
                problems += 1
                print(f"{rule_path}:{registers.span.line}: {problem}")
    print(f"{checked} citations checked, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
