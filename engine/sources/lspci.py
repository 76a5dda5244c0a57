"""Reader for `lspci -v/-vv/-vvv` text, with or without -nn/-n/-k, one device or a machine.

Format as printed by pciutils lspci.c (show_bases, show_rom) and ls-caps.c
(cap_msix).  Real dumps carry damage this reader must survive: pcilib
warnings spliced into the middle of a line (the rest of the line follows on
the next), SR-IOV `Region` lines two tabs deep (VF BARs, not the device's),
`[virtual]` on either side of an address.

Everything else that lspci cannot have printed is an error at its line: a value out of its
printf field (``Region %d``, ``offset=%08x``, ``[size=%u%s]``), a size no BAR can have, a
detail line that is not indented with tabs, a fact printed twice, a driver name that is no
driver name.  Free text (device and class names) is kept as printed, control characters aside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ..errors import InputError, Location
from ..model import (MAX_DEVICES, Bar, BarKind, Device, Msix, bar_size_problem, driver_problem,
                     module_problem, rom_size_problem, slot_problem, text_problem)
from ..units import parse_size, quote
from .detect import HEADER_RE, SPLICE_RE, lines

# lspci.c show_verbose ends the device line with " (rev %02x)" and " (prog-if %02x [name])".
_TRAILER_RE = re.compile(
    r"\s*\((?:rev (?P<rev>[0-9a-f]{2})|prog-if (?P<progif>[0-9a-f]{2})(?: \[[^\]]*\])?)\)\s*$")
# Lines only a verbose listing prints for every device (show_verbose: "Flags:" at -v, "Control:"
# at -vv); verbose lspci prints " (prog-if %02x)" whenever the byte is not 0 or pci.ids names it,
# so in a verbose listing a device line without it means programming interface 00.
_VERBOSE_LINES = ("Flags:", "Control:")
_TRAILER_WINDOW = 160  # longer than any trailer: the regex runs on the line's end only
_CLASS_RE = re.compile(r"^(?P<cls>.*?)(?: \[(?P<code>[0-9a-f]{4})\])?: (?P<name>.*)$")
_NUMERIC_CLASS_RE = re.compile(r"^[0-9a-f]{4}$")
_ID_TAIL_RE = re.compile(  # "Name [1000:005f]" (-nn) or "1000:005f" (-n)
    r"^(?:(?P<name>.*) \[(?P<v>[0-9a-f]{4}):(?P<d>[0-9a-f]{4})\]|(?P<v2>[0-9a-f]{4}):(?P<d2>[0-9a-f]{4}))$")
# [0-9], not \d: \d takes any script's digits, and int() would read them.
_REGION_RE = re.compile(r"^Region (?P<index>[0-9]+): (?P<body>.*)$")
_BAR_BODY_RE = re.compile(
    r"^(?P<space>I/O ports|Memory) at (?P<addr>[0-9a-f]+|<unassigned>|<ignored>|<broken-64-bit-slot>)"
    r"(?: \((?P<attrs>[^)]*)\))?$")
# Without a leading \s*: findall would rescan a run of spaces from every position (quadratic).
_FLAG_RE = re.compile(r"\[(virtual|disabled|enhanced|size=[^\]]*)\]")
_MSIX_RE = re.compile(r"^Capabilities: \[[0-9a-f]+\] MSI-X: Enable(?P<en>[+-]) Count=(?P<count>[0-9]+)")
_TABLE_RE = re.compile(r"^(?P<what>Vector table|PBA): BAR=(?P<bar>[0-9]+) offset=(?P<off>[0-9a-f]+)$")
_ADDRESS_LIKE_RE = re.compile(r"^[0-9a-fA-F]+:[0-9a-fA-F:]*\.[0-9a-fA-F]+$")
# Widest values lspci prints: PCIADDR_T_FMT "%08llx" (up to 16 digits), cap_msix "offset=%08x"
# (the 32-bit register with the BIR masked off), "Count=%d" (1..2048), "Region %d" (0..5).
_ADDRESS_DIGITS, _OFFSET_DIGITS, _SMALL_DIGITS = 16, 8, 4

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


def _logical_lines(text_lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Rejoin lines split by a pcilib/lspci warning printed into the middle of them."""
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text_lines, start=1):
        line = raw.removesuffix("\r")
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


def _blocks(text_lines: Iterable[str], path: str) -> Iterator[_Block]:
    block: _Block | None = None
    count = 0
    for number, line in _logical_lines(text_lines):
        if not line.strip():
            continue
        m = HEADER_RE.match(line)
        if m:
            if block is not None:
                yield block
            count += 1
            if count > MAX_DEVICES:
                raise InputError(f"more than {MAX_DEVICES} devices: more functions than a PCI"
                                 f" domain has", Location(path, number))
            block = _Block(m.group("slot"), m.group("rest"), number)
        elif line.startswith("\t"):
            if block is None:
                raise InputError(
                    "not lspci output: expected a device line such as"
                    " '00:1f.2 SATA controller [0106]: ...'", Location(path, number))
            block.body.append((number, line))
        else:
            raise InputError(_unindented(line), Location(path, number))
    if block is not None:
        yield block


def _unindented(line: str) -> str:
    """Why a line at the left margin is not a device line (lspci indents all else with tabs)."""
    if line.startswith(" "):
        return ("line indented with spaces: lspci indents with tabs, so this text was reformatted"
                " (pasted through a web page or editor?) and which lines belong to a capability"
                " cannot be told; run lspci again or restore the tabs")
    first = line.split(" ", 1)[0]
    if _ADDRESS_LIKE_RE.match(first) and (problem := slot_problem(first)):
        return f"bad device line: {problem}"
    return (f"expected a device line such as '00:1f.2 SATA controller [0106]: ...' or a"
            f" tab-indented detail line, got {quote(line)}")


def parse(text: str, path: str = "<stdin>") -> list[Device]:
    """All devices in an lspci dump, in their order."""
    return list(stream(lines(text), path))


def stream(text_lines: Iterable[str], path: str = "<stdin>") -> Iterator[Device]:
    """The devices of an lspci dump given line by line, each as soon as its block ends."""
    found = False
    for block in _blocks(text_lines, path):
        found = True
        yield _device(block, path)
    if not found:
        raise InputError("no devices in input (empty lspci output?)", Location(path, 1))


def _number(text: str, base: int, digits: int, what: str, where: Location) -> int:
    """A number as lspci printed it; more digits than its printf field holds is damage, and
    refusing it before int() also keeps Python's 4300-digit limit from ever being reached."""
    if len(text.lstrip("0")) > digits:
        raise InputError(f"{what} {quote(text)} has more digits than lspci prints", where)
    return int(text, base)


def _device(block: _Block, path: str) -> Device:
    fields: dict = {"slot": block.slot, "origin": f"{path}:{block.line}"}
    notes: list[str] = []
    _parse_header(block.rest, fields, notes, Location(path, block.line))
    bars: list[Bar] = []
    next_index = 0  # for lspci -v, which prints BARs without their numbers
    msix_head: tuple[re.Match, Location] | None = None
    in_msix = False  # the last capability line was MSI-X: its table lines follow, two tabs deep
    table = pba = None
    seen: dict[str, int] = {}  # facts lspci prints once per device -> line

    def once(fact: str, number: int) -> None:
        if fact in seen:
            raise InputError(f"{fact} printed twice for device {block.slot} (first at line"
                             f" {seen[fact]}): two dumps run together?", Location(path, number))
        seen[fact] = number

    for number, line in block.body:
        where = Location(path, number)
        depth = len(line) - len(line.lstrip("\t"))
        text = line.strip()
        if depth == 1:
            in_msix = False
            if text.startswith(_VERBOSE_LINES) and "class_code" in fields:
                fields.setdefault("prog_if", 0)
            if text.startswith(("Region ", "Memory at", "I/O ports at", "[virtual] Memory at",
                                "[virtual] I/O ports at")):
                bar = _parse_bar(text, next_index, where)
                if not text.startswith("Region ") and INFERRED_INDEX_NOTE not in notes:
                    notes.append(INFERRED_INDEX_NOTE)
                once(f"BAR{bar.index}", number)
                next_index = bar.index + (2 if bar.is_64bit else 1)
                bars.append(bar)
            elif "Expansion ROM at" in text:
                once("Expansion ROM", number)
                size = re.search(r"\[size=([^\]]+)\]", text)
                fields["rom_size"] = _size(size.group(1), where) if size else 0
                if (problem := rom_size_problem(fields["rom_size"])):
                    raise InputError(problem, where)
            elif text.startswith("Subsystem:"):
                once("Subsystem", number)
                _parse_subsystem(text[len("Subsystem:"):].strip(), fields)
            elif text.startswith("Kernel driver in use:"):
                once("Kernel driver in use", number)
                fields["driver"] = text.split(":", 1)[1].strip()
                if (problem := driver_problem(fields["driver"])):
                    raise InputError(problem, where)
            elif text.startswith("Kernel modules:"):
                once("Kernel modules", number)
                fields["modules"] = tuple(
                    m.strip() for m in text.split(":", 1)[1].split(",") if m.strip())
                for module in fields["modules"]:
                    if (problem := module_problem(module)):
                        raise InputError(problem, where)
            elif text == "Capabilities: <access denied>":
                fields["msix_unknown"] = True
                if ACCESS_DENIED_NOTE not in notes:
                    notes.append(ACCESS_DENIED_NOTE)
            elif (m := _MSIX_RE.match(text)):
                once("MSI-X capability", number)
                msix_head, in_msix = (m, where), True
        elif depth == 2 and in_msix and (m := _TABLE_RE.match(text)):
            once(f"MSI-X {m.group('what')}", number)
            value = (_number(m.group("bar"), 10, _SMALL_DIGITS, "BAR number", where),
                     _number(m.group("off"), 16, _OFFSET_DIGITS,
                             f"MSI-X {m.group('what')} offset (32 bits)", where), where)
            if m.group("what") == "PBA":
                pba = value
            else:
                table = value
    if msix_head is not None:
        if table is None or pba is None:
            fields["msix_unknown"] = True
            notes.append(NO_MSIX_DETAIL_NOTE)
        else:
            head, head_where = msix_head
            count = _number(head.group("count"), 10, _SMALL_DIGITS, "MSI-X Count", head_where)
            try:
                fields["msix"] = Msix(count, table[0], table[1], pba[0], pba[1],
                                      enabled=head.group("en") == "+")
            except ValueError as exc:
                raise InputError(f"bad MSI-X capability: {exc}", table[2]) from None
    bars.sort(key=lambda b: b.index)
    try:
        return Device(bars=tuple(bars), notes=tuple(notes), **fields)
    except ValueError as exc:
        raise InputError(f"device {block.slot}: {exc}", Location(path, block.line)) from None


def _parse_header(rest: str, fields: dict, notes: list[str], where: Location) -> None:
    if (problem := text_problem(rest)):
        raise InputError(f"device line: {problem}", where)
    rest = rest.rstrip()
    for _ in range(2):  # at most "(rev ..)" and "(prog-if ..)"
        tail_start = max(0, len(rest) - _TRAILER_WINDOW)
        m = _TRAILER_RE.search(rest, tail_start)
        if not m:
            break
        if m.group("rev"):
            fields["revision"] = int(m.group("rev"), 16)
        elif m.group("progif"):
            fields["prog_if"] = int(m.group("progif"), 16)
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
    if m:
        index = _number(m.group("index"), 10, _SMALL_DIGITS, "Region number", where)
        body = m.group("body")
    else:
        index, body = next_index, text
    flags = _FLAG_RE.findall(body)
    body = " ".join(_FLAG_RE.sub(" ", body).split())
    sizes = [f[5:] for f in flags if f.startswith("size=")]
    if len(sizes) > 1:
        raise InputError("BAR line has two [size=] flags", where)
    size = _size(sizes[0], where) if sizes else 0
    b = _BAR_BODY_RE.match(body)
    if not b:
        raise InputError(f"cannot read BAR line: {quote(text)}", where)
    addr = b.group("addr")
    # [virtual]: the kernel reports the resource though the register reads 0 (VFs,
    # arm64 port 0), so an address of 0 is still an assignment there.
    assigned = not addr.startswith("<") and (
        _number(addr, 16, _ADDRESS_DIGITS, "BAR address (64 bits)", where) != 0 or "virtual" in flags)
    if b.group("space") == "I/O ports":
        kind, prefetchable = BarKind.IO, False
    else:
        attrs = [a.strip() for a in (b.group("attrs") or "").split(",")]
        kind = BarKind.MEM64 if "64-bit" in attrs else BarKind.MEM32
        prefetchable = "prefetchable" in attrs
    if (problem := bar_size_problem(kind, size)):
        if "enhanced" in flags:  # PCI Enhanced Allocation sizes are any multiple of 4 bytes
            problem += ("; this is an Enhanced Allocation region (sized in dwords, not by"
                        " address bits), which barsafe cannot model")
        raise InputError(problem, where)
    try:
        return Bar(index, kind, size, prefetchable=prefetchable, assigned=assigned)
    except ValueError as exc:
        raise InputError(f"bad BAR: {exc}", where) from None
