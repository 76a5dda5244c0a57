"""Rule-file diagnostics as data, rendered last: text (as compilers print them), JSON, SARIF.

A RuleError (engine/errors.py) becomes a Diagnostic; the three renderers take the same
list.  Text is `path:line:col: error: message`, the line, a caret under the span (rustc,
ruff); JSON is a list of objects with the same fields; SARIF 2.1.0 is the OASIS interchange
format that code-scanning services (GitHub code scanning among them) read.

The message, the path and the quoted source line are all input (a rule file's text, its
name): in text each is escaped, so a control character in a rule file cannot drive the
terminal, and the caret is placed under the escaped text.  JSON and SARIF carry the
message escaped the same way (and JSON's own escaping does the rest).
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import BarsafeError, RuleErrors
from .safe import TEXT_LIMIT, long_text, message as escaped, printable

SOURCE_LIMIT = 400  # characters of the offending line shown; the caret is dropped past them

# Every diagnostic code, with what it means (SARIF carries these as its rules).
CODES = {
    "syntax": "the text does not follow the rule grammar (a misspelt keyword comes with a did-you-mean)",
    "check": "the rule file says something the language forbids or that cannot hold",
    "example-device": "an example names a device file that does not exist or may not be read",
    "unused-role": "a role no rule refers to",
}

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_VERSION = "2.1.0"


@dataclass(frozen=True)
class Diagnostic:
    path: str | None
    line: int | None
    column: int | None
    end_line: int | None
    end_column: int | None
    severity: str  # error | warning
    code: str
    message: str
    hint: str | None = None

    @classmethod
    def of(cls, error: BarsafeError) -> "Diagnostic":
        loc = error.location
        end = getattr(error, "end", None)
        return cls(loc.path if loc else None, loc.line if loc else None,
                   loc.column if loc else None, end[0] if end else None, end[1] if end else None,
                   getattr(error, "severity", "error"), getattr(error, "code", "check"),
                   error.message, getattr(error, "hint", None))

    @property
    def place(self) -> str:
        return ":".join(str(p) for p in (self.path, self.line, self.column) if p is not None)


def diagnostics_of(errors: Iterable[BarsafeError]) -> list[Diagnostic]:
    """Diagnostics in place order (path, line, column), errors before warnings at one place."""
    out = [Diagnostic.of(e) for e in errors]
    return sorted(out, key=lambda d: (d.path or "", d.line or 0, d.column or 0,
                                      d.severity != "error"))


def render(exc: BarsafeError, source_line: Callable[[str, int], str | None]) -> str:
    """An error raised by any command (RuleErrors or one error), as text."""
    errors = exc.errors if isinstance(exc, RuleErrors) else [exc]
    return render_text(diagnostics_of(errors), source_line)


# --- text ------------------------------------------------------------------------------------

def _headline(d: Diagnostic) -> str:
    said = d.message + (f"; {d.hint}" if d.hint else "")
    place = d.place
    return f"{long_text(place)}: {d.severity}: {long_text(said)}" if place else \
        f"{d.severity}: {long_text(said)}"


def _caret(d: Diagnostic, text: str) -> str | None:
    prefix = printable(text[:d.column - 1].expandtabs(4), TEXT_LIMIT)
    if len(prefix) >= SOURCE_LIMIT:
        return None
    width = 1
    if d.end_line == d.line and d.end_column is not None and d.end_column > d.column:
        upto = printable(text[:d.end_column - 1].expandtabs(4), TEXT_LIMIT)
        width = max(1, min(len(upto), SOURCE_LIMIT) - len(prefix))
    return "    " + " " * len(prefix) + "^" * width


def render_text(diagnostics: Sequence[Diagnostic],
                source_line: Callable[[str, int], str | None]) -> str:
    out = []
    for d in diagnostics:
        out.append(_headline(d))
        if d.path is not None and d.line:
            text = source_line(d.path, d.line)
            if text is not None:
                out.append(f"    {printable(text.expandtabs(4), SOURCE_LIMIT)}")
                if d.column:
                    caret = _caret(d, text)
                    if caret is not None:
                        out.append(caret)
    if len(diagnostics) > 1:
        out.append(summary(diagnostics))
    return "\n".join(out)


def summary(diagnostics: Sequence[Diagnostic]) -> str:
    """'2 errors', '1 error, 3 warnings', '1 warning'."""
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((errors, "error"),
                                                                 (warnings, "warning")) if n]
    return ", ".join(parts)


# --- JSON ------------------------------------------------------------------------------------

def as_json(d: Diagnostic) -> dict:
    return {
        "path": d.path,
        "line": d.line,
        "column": d.column,
        "end": {"line": d.end_line, "column": d.end_column} if d.end_line is not None else None,
        "severity": d.severity,
        "code": d.code,
        "message": escaped(d.message),
        "hint": escaped(d.hint) if d.hint else None,
    }


def render_json(diagnostics: Sequence[Diagnostic]) -> str:
    return json.dumps([as_json(d) for d in diagnostics], indent=2)


# --- SARIF 2.1.0 -----------------------------------------------------------------------------

def _artifact(path: str, base: Path) -> dict:
    """A file as SARIF names it: relative to ``base`` (%SRCROOT%) when inside it, which code
    scanning resolves against the checkout; else an absolute file: URI."""
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(base)
    except ValueError:
        return {"uri": absolute.as_uri()}
    return {"uri": urllib.parse.quote(relative.as_posix()), "uriBaseId": "%SRCROOT%"}


def as_sarif_result(d: Diagnostic, rule_index: dict[str, int], base: Path) -> dict:
    result: dict = {
        "ruleId": d.code,
        "ruleIndex": rule_index[d.code],
        "level": "warning" if d.severity == "warning" else "error",
        "message": {"text": escaped(d.message + (f"; {d.hint}" if d.hint else ""))},
    }
    if d.path is not None:
        physical: dict = {"artifactLocation": _artifact(d.path, base)}
        if d.line:
            region = {"startLine": d.line}
            if d.column:
                region["startColumn"] = d.column
            if d.end_line is not None and d.end_column:
                region["endLine"] = d.end_line
                region["endColumn"] = d.end_column
            physical["region"] = region
        result["locations"] = [{"physicalLocation": physical}]
    return result


def sarif(diagnostics: Sequence[Diagnostic], version: str, base: Path | None = None) -> dict:
    """One SARIF log with one run of barsafe check; ``base``: the directory relative paths
    start from (default: the current one)."""
    base = Path(os.path.abspath(base or os.getcwd()))
    codes = list(CODES) + sorted({d.code for d in diagnostics} - set(CODES))
    rule_index = {code: n for n, code in enumerate(codes)}
    rules = [{
        "id": code,
        "shortDescription": {"text": CODES.get(code, code)},
        "defaultConfiguration": {"level": "warning" if code == "unused-role" else "error"},
    } for code in codes]
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {"name": "barsafe", "version": version, "rules": rules}},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": base.as_uri() + "/"}},
            "columnKind": "unicodeCodePoints",
            "results": [as_sarif_result(d, rule_index, base) for d in diagnostics],
        }],
    }


def render_sarif(diagnostics: Sequence[Diagnostic], version: str, base: Path | None = None) -> str:
    return json.dumps(sarif(diagnostics, version, base), indent=2)
