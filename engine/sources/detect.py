"""Which reader an input needs, decided from its first meaningful line (cheap: no reader loaded)."""

from __future__ import annotations

import re

HEADER_RE = re.compile(
    r"^(?P<slot>(?:[0-9a-f]{4,5}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) (?P<rest>.*)$")
SPLICE_RE = re.compile(r"(?:pcilib|lspci): .*$")  # a pcilib/lspci warning printed into the output


def looks_like_lspci(text: str) -> bool:
    for line in text.splitlines():
        if line.strip() and not SPLICE_RE.match(line):
            return bool(HEADER_RE.match(line))
    return False


def looks_like_record(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.startswith(("barsafe:", "---", "- ", "slot:", "id:", "bars:"))
    return False
