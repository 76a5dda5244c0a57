"""Readers, one per input format; ``load`` recognises which one an input needs.

Formats: lspci text (engine.sources.lspci), barsafe YAML records
(engine.sources.record), sysfs device directories (engine.sources.sysfs).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ..errors import InputError, Location
from ..model import Device
from .detect import looks_like_lspci, looks_like_record

FORMATS = "lspci -vvv text, a barsafe YAML record, or a sysfs PCI device directory"


def parse_text(text: str, path: str) -> list[Device]:
    """Pick the reader by content, not by file name: users paste whatever they have."""
    if looks_like_lspci(text):
        from . import lspci
        return lspci.parse(text, path)
    if looks_like_record(text):
        from . import record
        return record.parse(text, path)
    line = next((n for n, l in enumerate(text.splitlines(), 1) if l.strip()), None)
    if line is None:
        raise InputError("input is empty", Location(path))
    raise InputError(f"unknown input format: expected {FORMATS}", Location(path, line))


def load(spec: str, stdin: TextIO | None = None) -> list[Device]:
    """A file name, '-' for standard input, or a sysfs directory."""
    if spec == "-":
        return parse_text((stdin or sys.stdin).read(), "<stdin>")
    path = Path(spec)
    if path.is_dir():
        from . import sysfs
        if sysfs.is_device_dir(path):
            return [sysfs.read_device(path)]
        return sysfs.read_tree(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", Location(spec)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", Location(spec)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError("not a text file (invalid UTF-8)", Location(spec, line)) from None
    return parse_text(text, spec)


def load_sysfs() -> list[Device]:
    from . import sysfs
    return sysfs.read_tree(sysfs.SYSFS_DEVICES)
