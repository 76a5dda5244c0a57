"""Errors the way compilers print them: `path:line:col: error: message`, the line, a caret."""

from __future__ import annotations

from typing import Callable

from ..errors import BarsafeError, RuleErrors


def render(exc: BarsafeError, source_line: Callable[[str, int], str | None]) -> str:
    errors = exc.errors if isinstance(exc, RuleErrors) else [exc]
    out = []
    for e in errors:
        loc = e.location
        out.append(f"{loc}: error: {e.message}" if loc else f"error: {e.message}")
        if loc is not None and loc.line:
            text = source_line(loc.path, loc.line)
            if text is not None:
                out.append(f"    {text.expandtabs(4)}")
                if loc.column:
                    prefix = text[:loc.column - 1].expandtabs(4)
                    out.append("    " + " " * len(prefix) + "^")
    if len(errors) > 1:
        out.append(f"{len(errors)} errors")
    return "\n".join(out)
