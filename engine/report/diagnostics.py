"""Errors the way compilers print them: `path:line:col: error: message`, the line, a caret.

The message, the path and the quoted source line are all input (a rule file's
text, its name): each is escaped, so a control character in a rule file cannot
drive the terminal, and the caret is placed under the escaped text.
"""

from __future__ import annotations

from typing import Callable

from ..errors import BarsafeError, RuleErrors
from .safe import TEXT_LIMIT, long_text, printable

SOURCE_LIMIT = 400  # characters of the offending line shown; the caret is dropped past them


def render(exc: BarsafeError, source_line: Callable[[str, int], str | None]) -> str:
    errors = exc.errors if isinstance(exc, RuleErrors) else [exc]
    out = []
    for e in errors:
        loc = e.location
        out.append(f"{long_text(loc)}: error: {long_text(e.message)}" if loc
                   else f"error: {long_text(e.message)}")
        if loc is not None and loc.line:
            text = source_line(loc.path, loc.line)
            if text is not None:
                shown = printable(text.expandtabs(4), SOURCE_LIMIT)
                out.append(f"    {shown}")
                if loc.column:
                    prefix = printable(text[:loc.column - 1].expandtabs(4), TEXT_LIMIT)
                    if len(prefix) < SOURCE_LIMIT:
                        out.append("    " + " " * len(prefix) + "^")
    if len(errors) > 1:
        out.append(f"{len(errors)} errors")
    return "\n".join(out)
