"""Which reader an input needs, decided from its first meaningful line (cheap: no reader loaded)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

# The patterns of lspci text (HEADER_RE, SPLICE_RE, PROMPT_RE) are compiled when first used:
# a record never needs them, and compiling them cost a `which` on one more than reading it.
_LAZY = {
    # The slot as lspci.c show_slot_name prints it (engine.model.SLOT_RE has the reasons):
    # lowercase hex, a domain of 4 to 8 digits when shown, device 00-1f, function 0-7.
    "HEADER_RE": r"^(?P<slot>(?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[01][0-9a-f]\.[0-7]) (?P<rest>.*)$",
    "SPLICE_RE": r"(?:pcilib|lspci): .*$",  # a pcilib/lspci warning printed into the output
    # A shell prompt and command pasted with the dump ("$ sudo lspci -vvvnn", "root@pve:~# lspci
    # -vvv", a bare "sudo lspci -vvv"), or a prompt left at the end: never device text, which
    # starts with a slot.
    "PROMPT_RE": r"(?:[^\t ]*[$#%>] ?|(?=sudo |lspci))(?:sudo (?:-\S+ )*)?(?:\S*/)?(?:lspci(?: .*)?)?\s*$",
}


@cache
def pattern(name: str) -> re.Pattern:
    return re.compile(_LAZY[name])


def __getattr__(name: str):  # `from .detect import HEADER_RE` (engine.sources.lspci)
    if name in _LAZY:
        return pattern(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Top-level keys of a barsafe record (engine.sources.record reads them): a file whose first line
# is one of them is a record, so its mistakes get the record reader's precise errors.
RECORD_KEYS = ("barsafe", "slot", "id", "subsystem", "class", "prog_if", "revision", "name", "class_name",
               "driver", "modules", "bars", "rom", "msix", "msix_unknown", "notes", "provenance")
# What starts a record, as a pattern (tests/test_startup.py holds starts_record to it; compiling
# it cost a warm `which` more than reading its record).
RECORD_START_PATTERN = r"(?:---|-|%YAML)(?:\s|$)|(?:" + "|".join(RECORD_KEYS) + r")\s*:"


def starts_record(line: str) -> bool:
    """re.match(RECORD_START_PATTERN, line): a document marker, a list item or a directive
    followed by white space or the end, or a record key followed by white space and ':'."""
    for lead in ("---", "-", "%YAML"):
        if line.startswith(lead) and (len(line) == len(lead) or line[len(lead)].isspace()):
            return True
    key, colon, _ = line.partition(":")
    return bool(colon) and key.rstrip() in RECORD_KEYS


def is_prompt(line: str) -> bool:
    return (bool(line) and line[0] not in "\t " and not pattern("HEADER_RE").match(line)
            and bool(pattern("PROMPT_RE").fullmatch(line)))


def without_prompts(text: str) -> str:
    """``text`` with pasted prompt lines blanked (not removed, so line numbers stay true)."""
    if "lspci" not in text and "$" not in text and "#" not in text:
        return text
    out, changed = [], False
    for line in lines(text):
        if is_prompt(line):
            out.append("")
            changed = True
        else:
            out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "") if changed else text


def lines(text: str) -> Iterator[str]:
    """Lines split at "\\n" only, lazily.  str.splitlines also splits at \\v, \\f, \\x1c-\\x1e,
    \\x85, U+2028 and U+2029, which would make line numbers disagree with every editor."""
    start = 0
    while start <= len(text):
        end = text.find("\n", start)
        if end < 0:
            if start < len(text):
                yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def looks_like_lspci(text: str, prompts: bool = False) -> bool:
    """Whether the first meaningful line is an lspci device line (with ``prompts``, pasted
    shell prompts are passed over as ``without_prompts`` would blank them)."""
    for line in lines(text):
        if line.strip() and not pattern("SPLICE_RE").match(line) and not (prompts and is_prompt(line)):
            return bool(pattern("HEADER_RE").match(line))
    return False


def looks_like_record(text: str) -> bool:
    for line in lines(text):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return starts_record(stripped)
    return False
