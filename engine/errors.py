"""One exception type per stage; the CLI alone turns them into text and exit codes."""

from __future__ import annotations

from .frozen import Frozen, _set


class Location(Frozen):
    path: str
    line: int | None
    column: int | None

    def __init__(self, path: str, line: int | None = None, column: int | None = None):
        _set(self, "path", path)
        _set(self, "line", line)
        _set(self, "column", column)

    def __str__(self) -> str:
        parts = [self.path]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class BarsafeError(Exception):
    """Base class: every error a user can cause, with a place when there is one."""

    def __init__(self, message: str, location: Location | None = None):
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"


class InputError(BarsafeError):
    """A device description (lspci text, sysfs, YAML record) that cannot be read."""


class UsageError(BarsafeError):
    """A request that makes no sense for the input (no such slot, no MSI-X, ...)."""


class OutputError(BarsafeError):
    """A file barsafe was asked to write could not be written; the old one, if any, is intact."""


class RuleError(BarsafeError):
    """One problem in a rule file, at a place (line and column).

    A diagnostic as data (engine/report/diagnostics.py renders it as text, JSON or SARIF):
    ``end`` is (line, column) just past the span it is about, when known; ``hint`` says what
    to do (a did-you-mean); ``code`` names the kind of problem (stable: tools filter on it);
    ``severity`` is "error" or "warning" (a warning never stops a rule file from loading)."""

    def __init__(self, message: str, location: Location | None = None, *,
                 end: tuple[int, int] | None = None, hint: str | None = None,
                 code: str = "check", severity: str = "error"):
        super().__init__(message, location)
        self.end, self.hint, self.code, self.severity = end, hint, code, severity

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}; {self.hint}" if self.hint else text


class RuleErrors(BarsafeError):
    """Every problem found in one run: rule authors fix them all at once, not one per run."""

    def __init__(self, errors: list[RuleError]):
        self.errors = sorted(errors, key=lambda e: (e.location.path if e.location else "",
                                                    e.location.line or 0 if e.location else 0,
                                                    e.location.column or 0 if e.location else 0))
        super().__init__(f"{len(self.errors)} error(s) in rule files")
