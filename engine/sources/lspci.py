"""Reader for `lspci -v/-vv/-vvv` text, with or without -nn/-n/-k, one device or a machine.

Format as printed by pciutils lspci.c (show_bases, show_rom) and ls-caps.c
(cap_msix).  Real dumps carry damage this reader must survive: pcilib
warnings spliced into the middle of a line (the rest of the line follows on
the next), SR-IOV `Region` lines two tabs deep (VF BARs, not the device's),
`[virtual]` on either side of an address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ..errors import InputError, Location
from ..model import Bar, BarKind, Device, Msix
from ..units import parse_size
from .detect import HEADER_RE, SPLICE_RE

_TRAILER_RE = re.compile(r"\s*\((?:rev (?P<rev>[0-9a-f]{2})|prog-if [0-9a-f]{2}(?: \[[^\]]*\])?)\)\s*$")
_CLASS_RE = re.compile(r"^(?P<cls>.*?)(?: \[(?P<code>[0-9a-f]{4})\])?: (?P<name>.*)$")
_NUMERIC_CLASS_RE = re.compile(r"^[0-9a-f]{4}$")
_ID_TAIL_RE = re.compile(  # "Name [1000:005f]" (-nn) or "1000:005f" (-n)
    r"^(?:(?P<name>.*) \[(?P<v>[0-9a-f]{4}):(?P<d>[0-9a-f]{4})\]|(?P<v2>[0-9a-f]{4}):(?P<d2>[0-9a-f]{4}))$")
_REGION_RE = re.compile(r"^Region (?P<index>\d+): (?P<body>.*)$")
_BAR_BODY_RE = re.compile(
    r"^(?P<space>I/O ports|Memory) at (?P<addr>[0-9a-f]+|<unassigned>|<ignored>|<broken-64-bit-slot>)"
    r"(?: \((?P<attrs>[^)]*)\))?$")
_FLAG_RE = re.compile(r"\s*\[(virtual|disabled|enhanced|size=[^\]]*)\]")
_MSIX_RE = re.compile(r"^Capabilities: \[[0-9a-f]+\] MSI-X: Enable(?P<en>[+-]) Count=(?P<count>\d+)")
_TABLE_RE = re.compile(r"^(?P<what>Vector table|PBA): BAR=(?P<bar>\d+) offset=(?P<off>[0-9a-f]+)$")

NO_IDS_NOTE = ("vendor:device IDs not in the input (lspci was run without -nn):"
               " rules cannot match this device by ID")
ACCESS_DENIED_NOTE = ("capabilities not readable (lspci was run without root):"
                      " run `sudo lspci -vvvnn` to see MSI-X")
NO_MSIX_DETAIL_NOTE = ("MSI-X table location not printed (lspci -v shows only the Count):"
                       " run `lspci -vvvnn`")
INFERRED_INDEX_NOTE = ("BAR numbers inferred from order (lspci -v prints no 'Region N:');"
                       " a BAR after an unused slot would be misnumbered: prefer lspci -vv")


@dataclass
class _Block:
    """Lines of one device, accumulated while reading."""

    slot: str
    rest: str
    line: int
    body: list[tuple[int, str]] = field(default_factory=list)


def _logical_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Rejoin lines split by a pcilib/lspci warning printed into the middle of them."""
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n").rstrip("\r")
        if pending is not None:
            number, line = pending[0], pending[1] + line
            pending = None
        m = SPLICE_RE.search(line)
        if m:
            head = line[:m.start()]
            if head.strip():
                pending = (number, head)  # the rest of this line is on the next one
            continue
        yield number, line
    if pending is not None:
        yield pending


def _blocks(lines: Iterable[str], path: str) -> Iterator[_Block]:
    block: _Block | None = None
    for number, line in _logical_lines(lines):
        if not line.strip():
            continue
        m = HEADER_RE.match(line)
        if m:
            if block is not None:
                yield block
            block = _Block(m.group("slot"), m.group("rest"), number)
        elif block is None:
            raise InputError(
                "not lspci output: expected a device line such as"
                " '00:1f.2 SATA controller [0106]: ...'", Location(path, number))
        else:
            block.body.append((number, line))
    if block is not None:
        yield block


def parse(text: str, path: str = "<stdin>") -> list[Device]:
    """All devices in an lspci dump, in their order."""
    devices = [_device(block, path) for block in _blocks(text.splitlines(), path)]
    if not devices:
        raise InputError("no devices in input (empty lspci output?)", Location(path, 1))
    return devices


def _device(block: _Block, path: str) -> Device:
    fields: dict = {"slot": block.slot, "origin": f"{path}:{block.line}"}
    notes: list[str] = []
    _parse_header(block.rest, fields, notes)
    bars: list[Bar] = []
    next_index = 0  # for lspci -v, which prints BARs without their numbers
    msix_head: re.Match | None = None
    table = pba = None
    for number, line in block.body:
        where = Location(path, number)
        depth = len(line) - len(line.lstrip("\t"))
        text = line.strip()
        if depth == 1:
            if text.startswith(("Region ", "Memory at", "I/O ports at", "[virtual] Memory at",
                                "[virtual] I/O ports at")):
                bar = _parse_bar(text, next_index, where)
                if not text.startswith("Region ") and INFERRED_INDEX_NOTE not in notes:
                    notes.append(INFERRED_INDEX_NOTE)
                next_index = bar.index + (2 if bar.is_64bit else 1)
                bars.append(bar)
            elif "Expansion ROM at" in text:
                size = re.search(r"\[size=([^\]]+)\]", text)
                fields["rom_size"] = _size(size.group(1), where) if size else 0
            elif text.startswith("Subsystem:"):
                _parse_subsystem(text[len("Subsystem:"):].strip(), fields)
            elif text.startswith("Kernel driver in use:"):
                fields["driver"] = text.split(":", 1)[1].strip()
            elif text.startswith("Kernel modules:"):
                fields["modules"] = tuple(
                    m.strip() for m in text.split(":", 1)[1].split(",") if m.strip())
            elif text == "Capabilities: <access denied>":
                fields["msix_unknown"] = True
                notes.append(ACCESS_DENIED_NOTE)
            elif (m := _MSIX_RE.match(text)):
                msix_head = m
        elif depth == 2 and msix_head is not None and (m := _TABLE_RE.match(text)):
            value = (int(m.group("bar")), int(m.group("off"), 16), where)
            if m.group("what") == "PBA":
                pba = value
            else:
                table = value
        elif depth == 2 and text.startswith("Capabilities:"):
            pass
    if msix_head is not None:
        if table is None or pba is None:
            fields["msix_unknown"] = True
            notes.append(NO_MSIX_DETAIL_NOTE)
        else:
            try:
                fields["msix"] = Msix(int(msix_head.group("count")), table[0], table[1],
                                      pba[0], pba[1], enabled=msix_head.group("en") == "+")
            except ValueError as exc:
                raise InputError(f"bad MSI-X capability: {exc}", table[2]) from None
    bars.sort(key=lambda b: b.index)
    try:
        return Device(bars=tuple(bars), notes=tuple(notes), **fields)
    except ValueError as exc:
        raise InputError(f"device {block.slot}: {exc}", Location(path, block.line)) from None


def _parse_header(rest: str, fields: dict, notes: list[str]) -> None:
    while (m := _TRAILER_RE.search(rest)):
        if m.group("rev"):
            fields["revision"] = int(m.group("rev"), 16)
        rest = rest[:m.start()]
    m = _CLASS_RE.match(rest)
    if not m:
        fields["name"] = rest or None
        notes.append(NO_IDS_NOTE)
        return
    cls, code, name = m.group("cls"), m.group("code"), m.group("name")
    if code:
        fields["class_code"] = int(code, 16)
        fields["class_name"] = cls
    elif _NUMERIC_CLASS_RE.match(cls):
        fields["class_code"] = int(cls, 16)
    else:
        fields["class_name"] = cls
    ids = _ids(name)
    if ids:
        fields["vendor"], fields["device"], fields["name"] = ids
    else:
        fields["name"] = name
        notes.append(NO_IDS_NOTE)


def _ids(text: str) -> tuple[int, int, str | None] | None:
    m = _ID_TAIL_RE.match(text)
    if not m:
        return None
    if m.group("v"):
        return int(m.group("v"), 16), int(m.group("d"), 16), m.group("name")
    return int(m.group("v2"), 16), int(m.group("d2"), 16), None


def _parse_subsystem(text: str, fields: dict) -> None:
    ids = _ids(text)
    if ids:
        fields["subsystem_vendor"], fields["subsystem_device"] = ids[0], ids[1]


def _size(text: str, where: Location) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise InputError(str(exc), where) from None


def _parse_bar(text: str, next_index: int, where: Location) -> Bar:
    m = _REGION_RE.match(text)
    index, body = (int(m.group("index")), m.group("body")) if m else (next_index, text)
    flags = _FLAG_RE.findall(body)
    body = _FLAG_RE.sub("", body).strip()
    size = next((_size(f[5:], where) for f in flags if f.startswith("size=")), 0)
    b = _BAR_BODY_RE.match(body)
    if not b:
        raise InputError(f"cannot read BAR line: {text!r}", where)
    addr = b.group("addr")
    # [virtual]: the kernel reports the resource though the register reads 0 (VFs,
    # arm64 port 0), so an address of 0 is still an assignment there.
    assigned = not addr.startswith("<") and (int(addr, 16) != 0 or "virtual" in flags)
    try:
        if b.group("space") == "I/O ports":
            return Bar(index, BarKind.IO, size, prefetchable=False, assigned=assigned)
        attrs = [a.strip() for a in (b.group("attrs") or "").split(",")]
        kind = BarKind.MEM64 if "64-bit" in attrs else BarKind.MEM32
        return Bar(index, kind, size, prefetchable="prefetchable" in attrs, assigned=assigned)
    except ValueError as exc:
        raise InputError(f"bad BAR: {exc}", where) from None
