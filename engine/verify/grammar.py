"""The grammar of every string barsafe verify puts on a QEMU command line.

QEMU parses ``-device vfio-pci,host=...,x-msix-relocation=...`` as a comma
separated option list: a slot or target carrying ``,`` or ``=`` would smuggle
in other properties.  So nothing reaches the command line before it matches
its grammar here, and what matches is rebuilt from the parsed fields.
"""

from __future__ import annotations

import re

from ..errors import UsageError

# PCI address DDDD:BB:DD.F (domain, bus, device 0..1f, function 0..7); the domain may be omitted.
SLOT_RE = re.compile(r"^(?:(?P<domain>[0-9a-fA-F]{4}):)?(?P<bus>[0-9a-fA-F]{2}):"
                     r"(?P<dev>[0-1][0-9a-fA-F])\.(?P<fn>[0-7])$")
TARGET_RE = re.compile(r"^(?:off|bar[0-5])$")
MODULE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TARGETS = ("off", "bar0", "bar1", "bar2", "bar3", "bar4", "bar5")


def slot(text: str) -> str:
    """A host PCI address in canonical form ``dddd:bb:dd.f``, or a UsageError."""
    m = SLOT_RE.match(text.strip())
    if not m:
        raise UsageError(f"{text[:60]!r} is not a PCI address DDDD:BB:DD.F (e.g. 0000:03:00.0)")
    domain = (m["domain"] or "0000").lower()
    return f"{domain}:{m['bus'].lower()}:{m['dev'].lower()}.{m['fn']}"


def target(text: str) -> str:
    """An x-msix-relocation value: off or bar0..bar5."""
    value = text.strip().lower()
    if not TARGET_RE.match(value):
        raise UsageError(f"{text[:60]!r} is not a relocation target (off, bar0..bar5)")
    return value


def targets(text: str) -> tuple[str, ...]:
    """A comma separated list of targets, duplicates dropped, order kept."""
    out: list[str] = []
    for part in text.split(","):
        if part.strip():
            value = target(part)
            if value not in out:
                out.append(value)
    if not out:
        raise UsageError("--targets needs at least one of off, bar0..bar5")
    return tuple(out)


def module(text: str) -> str:
    """A kernel module name (letters, digits, '_' and '-')."""
    if not MODULE_RE.match(text):
        raise UsageError(f"{text[:60]!r} is not a kernel module name")
    return text


def modules(text: str) -> tuple[str, ...]:
    return tuple(module(m.strip()) for m in text.split(",") if m.strip())
