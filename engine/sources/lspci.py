"""Reader for `lspci -v/-vv/-vvv` text, with or without -nn/-n/-k, one device or a machine.

Format as printed by pciutils lspci.c (show_bases, show_rom) and ls-caps.c
(cap_msix).  Real dumps carry damage this reader must survive: pcilib
warnings spliced into the middle of a line (the rest of the line follows on
the next), SR-IOV `Region` lines two tabs deep (VF BARs, not the device's),
`[virtual]` on either side of an address, tabs turned into spaces by a
terminal, `expand` or a forum (the depth is recovered from the indentation's
step, or the line that breaks it is named).

Everything else that lspci cannot have printed is an error at its line: a value out of its
printf field (``Region %d``, ``offset=%08x``, ``[size=%u%s]``), a size no BAR can have, a
detail line that is not indented, a fact printed twice, a driver name that is no driver
name.  Free text (device and class names) is kept as printed, control characters aside.

How it reads fast (fleets of dumps, dumps of 50 MB): a dump is cut into device blocks at the
lines that start with a slot (one regex scan); in a block only the lines a Device is built
from are picked out (one more scan: BARs, ROM, subsystem, driver, modules, the MSI-X
capability and its table lines, and a bare marker for every other capability line, since
one ends the MSI-X capability's table lines); those lines and the device line without its
slot are the block's key, and a block whose key was seen before is that device again at
another slot (a fleet's hosts hold the same devices; SR-IOV functions differ only in slot),
so it is parsed once.  Blocks with anything unusual (a pcilib warning, a prompt, a carriage
return, space indentation, stray whitespace) are first rewritten line by line into the
regular form, the way the whole dump used to be read.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator

from ..errors import InputError, Location
from ..model import (MAX_DEVICES, Bar, BarKind, Device, Msix, bar_size_problem, driver_problem,
                     module_problem, rom_size_problem, slot_problem, text_problem)
from ..units import parse_size, quote
from .detect import HEADER_RE, SPLICE_RE, is_prompt

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: it costs `which` start-up
if TYPE_CHECKING:
    from typing import BinaryIO

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

# --- cutting a dump into device blocks -----------------------------------------------------------

_SLOT = r"(?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[01][0-9a-f]\.[0-7]"  # detect.HEADER_RE's slot
# A block starts at a device line after a blank line, as lspci prints them, or, found when the
# block before is read, right after another line (dumps joined with `cat` often end in no blank
# line).
_DEVICE_LINE = re.compile("(" + _SLOT + ") ([^\n]*)")
_NEXT_DEVICE_LINE = re.compile(r"\n(?=" + _SLOT + " )")
_DEVICE_LINE_MAX = len("12345678:00:00.0 ")  # enough text to tell whether a line is one
# A block holding a warning (SPLICE_RE's two words, found by what they share) is read line by line.
_SPLICE_WORDS = ("pcilib: ", "lspci: ")
# The lines a Device is built from, each with the "\n" before it, one tab deep: those
# _parse_block acts on (BARs, subsystem, driver, modules, "Flags:"/"Control:", "<access
# denied>"), and the MSI-X capability with the lines under it (its table and PBA lines: up to the
# next line one tab deep; blank lines and lines deeper than two tabs do not end it), and the
# expansion ROM (lspci.c show_rom prints "\tExpansion ROM at", or "\t[virtual] ..."; a block
# holding the words elsewhere is read line by line, where _FACTS_ROM_RE, for a line holding
# them anywhere as _parse_block looks for them, is cheap enough).
# First, and shorter than any of those (at most 4 characters), the lines that make a block
# irregular, to be read line by line: one that is not blank and does not start with a tab (a
# prompt, the rest of a line a warning cut, spaces for tabs), and one or two tabs followed by
# other whitespace, or a tab alone (deeper lines are never read, and lspci prints some as
# "\t\t\t 10BitTagComp-").
_FACTS = (r"\n(?:[^\t\n]|\t(?:[^\S\t\n]|\t[^\S\t\n]|(?![^\n])"
          r"|(?:Region |Memory at|I/O ports at|\[virtual\] |Subsystem:|Kernel |Flags:|Control:"
          r"|Capabilities: <access denied>|Expansion ROM at)[^\n]*"
          r"|Capabilities: \[[0-9a-f]+\] MSI-X:[^\n]*(?:\n(?=\n)|\n\t\t(?:\t|(?=\n)|(?=\S))[^\n]*)*{rom}))")
_FACTS_RE = re.compile(_FACTS.replace("{rom}", ""))
_FACTS_ROM_RE = re.compile(_FACTS.replace("{rom}", r"|(?=[^\t\n])[^\n]*?Expansion ROM at[^\n]*"))
_IRREGULAR_LEN = 5  # a fact _FACTS gives shorter than this is an irregular line
_ROM_WORDS = "Expansion ROM at"

READ_BYTES = 64 * 1024  # read at a time from a file: memory holds this and one device block
# Devices parsed, by key (the device line less its slot, and the lines above); blocks read line
# by line, by their text: a fleet's dumps hold the same few hundred devices over and over.
# Bounded, so that fleets of unlike hosts keep memory flat.
CACHE_LIMIT = 4096
REWRITE_LIMIT = 256
_parsed: dict[str, tuple[Device, tuple]] = {}
_rewritten: dict[tuple, tuple] = {}
_FIELDS = tuple(name for name in Device.__slots__ if name not in ("slot", "origin"))
_SETTERS = tuple(getattr(Device, name).__set__ for name in _FIELDS)  # slot descriptors
_SET_SLOT, _SET_ORIGIN = Device.slot.__set__, Device.origin.__set__
# How many spaces stand for one tab in a dump whose tabs were turned into spaces: `expand`'s
# default and the widths terminals and forums use.
INDENT_STEPS = (8, 4, 2)


def _at(template: Device, values: tuple, slot: str, origin: str) -> Device:
    """The device ``template`` (read and checked from the same lines) at another slot and place.

    Device's checks are not run again: they passed for these very values, and a slot that
    _DEVICE_LINE matched is valid.  Device() would check every name and BAR again, which was
    most of the time of reading a fleet's repeated devices."""
    device = object.__new__(Device)
    _SET_SLOT(device, slot)
    _SET_ORIGIN(device, origin)
    for set_, value in zip(_SETTERS, values):
        set_(device, value)
    return device


def parse(text: str, path: str = "<stdin>") -> list[Device]:
    """All devices in an lspci dump, in their order."""
    reader = _Reader(path)
    devices = list(reader.feed(text, final=True))
    reader.finish()
    return devices


def decoder() -> codecs.IncrementalDecoder:
    """UTF-8 with bad bytes replaced (``sources.decode`` says why lspci output may hold them),
    a character cut between two reads decoded whole."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def read(binary: BinaryIO, path: str, head: bytes = b"", decoding: codecs.IncrementalDecoder | None = None,
         text: str = "") -> Iterator[Device]:
    """The devices of an lspci dump in a binary file, each as soon as its block ends: memory
    holds one read and one block however large the file.  ``head``: its first bytes, already
    read; or ``text``, those bytes as ``decoding`` (a ``decoder()``) decoded them.  A
    byte-order mark is dropped."""
    reader = _Reader(path)
    if decoding is None:
        decoding = decoder()
        text = decoding.decode(head)
    first = True
    while True:
        data = binary.read(READ_BYTES)
        if not data:
            text += decoding.decode(b"", final=True)
        if first and text:
            text, first = text.removeprefix("\ufeff"), False
        yield from reader.feed(text, final=not data)
        if not data:
            break
        text = decoding.decode(data)
    reader.finish()


def _odd(buffer: str, start: int, end: int) -> bool:
    """Whether buffer[start:end] holds a warning (one of _SPLICE_WORDS, found by the "pci" both
    hold: lspci output has few others, such as "pcieport"), or "Expansion ROM at" elsewhere
    than at the start of a line one tab deep or after its "[virtual] " (where lspci prints it)."""
    at = buffer.find("pci", start, end)
    while at >= 0:
        if buffer.startswith("pcilib: ", at, end) or buffer.startswith("lspci: ", at - 2, end):
            return True
        at = buffer.find("pci", at + 3, end)
    at = buffer.find(_ROM_WORDS, start, end)
    while at >= 0:
        if not (buffer.startswith("\n\t", at - 2, at) or buffer.startswith("\n\t[virtual] ", at - 12, at)):
            return True
        at = buffer.find(_ROM_WORDS, at + len(_ROM_WORDS), end)
    return False


class _Reader:
    """One dump, fed as text in pieces cut anywhere; its devices come out in order."""

    def __init__(self, path: str):
        self.path = path
        self.buffer = ""  # text not read yet: from the start of a block that may go on
        self.starts = [0]  # where blocks start in the buffer: at 0 (a device line, or what
        # precedes the first), then at each device line after a blank line
        self.scan = 0  # where in the buffer to look for more
        self.line = 1  # line number of the buffer's first character
        self.cr = False  # the last piece ended in "\r", kept back in case "\n" follows
        self.devices = 0
        self.step: tuple[int, int] | None = None  # spaces per tab in a space-indented dump, and where seen

    def finish(self) -> None:
        if not self.devices:
            raise InputError("no devices in input (empty lspci output?)", Location(self.path, 1))

    def feed(self, text: str, final: bool) -> Iterator[Device]:
        """The devices whose blocks end in what has been fed; all that are left when ``final``."""
        if self.cr:
            text, self.cr = "\r" + text, False
        if not final and text.endswith("\r"):
            text, self.cr = text[:-1], True
        if "\r" in text:  # a line's "\r" before its "\n" is no part of it (CRLF files)
            text = text.replace("\r\n", "\n")
            if final and text.endswith("\r"):
                text = text[:-1]
        buffer = self.buffer + text if self.buffer else text
        size = len(buffer)
        starts = self.starts
        at = buffer.find("\n\n", self.scan)
        while at >= 0:
            start = at + 2
            while start < size and buffer[start] == "\n":
                start += 1
            if not final and size - start < _DEVICE_LINE_MAX and buffer.find("\n", start) < 0:
                break  # whether a device line starts here, what follows will tell
            if _DEVICE_LINE.match(buffer, start):
                starts.append(start)
            at = buffer.find("\n\n", start)
        scan = at if at >= 0 else max(size - 1, 0)
        # Each block that ends in the buffer is read; the last only when it is final.
        count = len(starts)
        complete = count if final else count - 1
        starts.append(size)
        path, parsed, facts_re, line = self.path, _parsed, _FACTS_RE, self.line
        k = 0
        while k < complete:
            start, end = starts[k], starts[k + 1]
            m = _DEVICE_LINE.match(buffer, start)  # else what precedes the first device line
            if m is not None and not _odd(buffer, start, end):
                facts = facts_re.findall(buffer, m.end(), end)
                if facts and min(map(len, facts)) < _IRREGULAR_LEN and (
                        found := _NEXT_DEVICE_LINE.search(buffer, m.end(), end)):
                    starts.insert(k + 1, found.end())  # the block ends there: read it again
                    count += 1
                    complete += 1
                    continue
                if not facts or min(map(len, facts)) >= _IRREGULAR_LEN:
                    self._count(line)
                    key = m.group(2) + "".join(facts)
                    hit = parsed.get(key)
                    if hit is not None:
                        yield _at(hit[0], hit[1], m.group(1), f"{path}:{line}")
                    else:
                        yield self._device(m.group(1), m.group(2), line, key, facts_re, buffer, m.end(), end,
                                           lambda pos, line=line, start=start:
                                           line + buffer.count("\n", start, pos) + 1)
                    line += buffer.count("\n", start, end)
                    k += 1
                    continue
            # Line by line, from here to the end of a block whose last line no warning cut
            # (the rest of a cut line is on the next line: it is joined back, as printed).
            j = k + 1
            while j < count and _ends_cut(buffer, start, starts[j]):
                j += 1
            if j > complete:
                break  # the cut line may go on past what has been read: wait for more
            end = starts[j]
            yield from self._irregular(buffer[start:end], line)
            line += buffer.count("\n", start, end)
            k = j
        cut = starts[k]
        self.buffer = buffer[cut:]
        self.starts = [s - cut for s in starts[k:count]] or [0]
        self.scan = max(scan - cut, 0)
        self.line = line

    def _count(self, line: int) -> None:
        self.devices += 1
        if self.devices > MAX_DEVICES:
            raise InputError(f"more than {MAX_DEVICES} devices: more functions than a PCI"
                             f" domain has", Location(self.path, line))

    def _device(self, slot: str, rest: str, line: int, key: str, facts: re.Pattern, text: str, start: int,
                end: int, line_at: Callable[[int], int]) -> Device:
        """A device not seen before: parsed from its key's lines in text[start:end] (``facts``
        finds them), and kept."""
        items = [(m.group(), m.start()) for m in facts.finditer(text, start, end)]
        device = _parse_block(slot, rest, items, self.path, line, line_at)
        if len(_parsed) >= CACHE_LIMIT:
            _parsed.clear()
        _parsed[key] = (device, tuple([getattr(device, name) for name in _FIELDS]))
        return device

    def _irregular(self, text: str, first: int) -> Iterator[Device]:
        """The devices of ``text`` (whole blocks, or what precedes the first), read line by line:
        prompts dropped, warnings cut out and the lines they cut rejoined, stray whitespace
        removed, spaces turned back into tabs; then parsed as regular blocks.  What the lines
        give is kept by the text, for the next copy of the same blocks."""
        step = self.step
        known = _rewritten.get((text, step))
        if known is not None:
            blocks, self.step = known
            for block in blocks:
                self._count(first + block[2])
                yield self._regular(block, first)
            return
        blocks = []
        for block in self._rewrite(text, first):
            blocks.append(block)
            yield self._regular(block, first)
        if len(_rewritten) >= REWRITE_LIMIT:
            _rewritten.clear()
        _rewritten[(text, step)] = (tuple(blocks), self.step)

    def _rewrite(self, text: str, first: int) -> Iterator[tuple]:
        """The blocks of ``text`` rewritten as a regular block reads: (slot, rest of the device
        line, its line number, the detail lines each after a "\\n", their line numbers); line
        numbers relative to ``first``."""
        block: tuple[str, str, int, list[str], list[int]] | None = None
        for number, line in _logical_lines(text, first):
            if not line.strip():
                continue
            m = HEADER_RE.match(line)
            if m:
                if block is not None:
                    yield block[:3] + ("".join(block[3]), tuple(block[4]))
                self._count(number)
                block = (m.group("slot"), m.group("rest"), number - first, [], [])
            elif line[0] in "\t ":
                if block is None:
                    raise InputError(
                        "not lspci output: expected a device line such as"
                        " '00:1f.2 SATA controller [0106]: ...'", Location(self.path, number))
                depth = len(line) - len(line.lstrip("\t"))
                if not depth:
                    depth = self._depth(line, number, block[3])
                block[3].append("\n" + "\t" * depth + line.strip())
                block[4].append(number - first)
            else:
                raise InputError(_unindented(line), Location(self.path, number))
        if block is not None:
            yield block[:3] + ("".join(block[3]), tuple(block[4]))

    def _regular(self, block: tuple, first: int) -> Device:
        slot, rest, line, text, numbers = block
        line += first
        facts = _FACTS_ROM_RE if _ROM_WORDS in text else _FACTS_RE
        key = rest + "".join(facts.findall(text))
        hit = _parsed.get(key)
        if hit is not None:
            return _at(hit[0], hit[1], slot, f"{self.path}:{line}")
        return self._device(slot, rest, line, key, facts, text, 0, len(text),
                            lambda pos: first + numbers[text.count("\n", 0, pos)])

    def _depth(self, line: str, number: int, body: list) -> int:
        """How deep a space-indented line is, by the dump's step (8 spaces for a tab after
        `expand`, 4 or 2 from a forum), learnt from its first such line; an error naming the
        indentation when the step cannot tell."""
        spaces = len(line) - len(line.lstrip(" "))
        where = Location(self.path, number)
        if line[spaces] == "\t":
            raise InputError(f"line indented with {spaces} spaces and then a tab: how deep it is"
                             f" (which device or capability it belongs to) cannot be told", where)
        if self.step is None:
            if body:
                raise InputError(f"line indented with {spaces} spaces among lines indented with"
                                 f" tabs: how deep it is (which capability it belongs to) cannot"
                                 f" be told; restore the tabs", where)
            if spaces not in INDENT_STEPS:
                raise InputError(f"line indented with {spaces} spaces: a device's first detail"
                                 f" line is one level deep, and a tab turned into spaces is 8, 4"
                                 f" or 2 of them, so the indentation cannot be read", where)
            self.step = (spaces, number)
        step, seen = self.step
        depth = spaces // step
        # Spaces left over: lspci prints them after the tabs of some lines three or more deep
        # ("\t\t\t 10BitTagComp-"), which are never read; on the lines read they mean that
        # this is not the step.
        if spaces % step and depth < 3:
            raise InputError(f"line indented with {spaces} spaces, not a multiple of the {step}"
                             f" that stand for a tab in this dump (line {seen}): how deep it is"
                             f" (which capability it belongs to) cannot be told", where)
        return depth


def _logical_lines(text: str, first: int) -> Iterator[tuple[int, str]]:
    """The lines of ``text`` (numbered from ``first``) with prompts blanked, and a line cut by a
    pcilib/lspci warning printed into its middle rejoined with its rest (on the next line)."""
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.split("\n"), first):
        if line and line[0] not in "\t " and is_prompt(line):
            line = ""
        if pending is not None:
            number, line = pending[0], pending[1] + line
            pending = None
        if "lib: " in line or "pci: " in line:
            m = SPLICE_RE.search(line)
            if m:
                head = line[:m.start()]
                if head.strip():
                    pending = (number, head)  # the rest of this line is on the next one
                continue
        yield number, line
    if pending is not None:
        yield pending


def _ends_cut(buffer: str, start: int, end: int) -> bool:
    """Whether the last line of buffer[start:end] (which ends in "\\n") holds a warning that may
    have cut it, so that its rest is the next line."""
    line_start = buffer.rfind("\n", start, end - 1) + 1 or start
    return any(buffer.find(word, line_start, end) >= 0 for word in _SPLICE_WORDS)


def _unindented(line: str) -> str:
    """Why a line at the left margin is not a device line (lspci indents all else)."""
    first = line.split(" ", 1)[0]
    if _ADDRESS_LIKE_RE.match(first) and (problem := slot_problem(first)):
        return f"bad device line: {problem}"
    return (f"expected a device line such as '00:1f.2 SATA controller [0106]: ...' or a"
            f" tab-indented detail line, got {quote(line)}")


def _number(text: str, base: int, digits: int, what: str, where: Location) -> int:
    """A number as lspci printed it; more digits than its printf field holds is damage, and
    refusing it before int() also keeps Python's 4300-digit limit from ever being reached."""
    if len(text.lstrip("0")) > digits:
        raise InputError(f"{what} {quote(text)} has more digits than lspci prints", where)
    return int(text, base)


def _parse_block(slot: str, rest: str, items: list[tuple[str, int]], path: str, line: int,
                 line_at: Callable[[int], int]) -> Device:
    """A Device from its device line (``rest``: after the slot) and its key's lines (``items``:
    each with the "\\n" before it and where that is, which ``line_at`` turns into the number of
    the line that follows)."""
    fields: dict = {"slot": slot, "origin": f"{path}:{line}"}
    notes: list[str] = []
    _parse_header(rest, fields, notes, Location(path, line))
    bars: list[Bar] = []
    next_index = 0  # for lspci -v, which prints BARs without their numbers
    msix_head: tuple[re.Match, Location] | None = None
    table = pba = None
    seen: dict[str, int] = {}  # facts lspci prints once per device -> line

    def once(fact: str, number: int) -> None:
        if fact in seen:
            raise InputError(f"{fact} printed twice for device {slot} (first at line"
                             f" {seen[fact]}): two dumps run together?", Location(path, number))
        seen[fact] = number

    for item, pos in items:
        under = item.find("\n", 2)  # the MSI-X capability: its table lines follow, two tabs deep
        text = (item[2:under] if under > 0 else item[2:]).strip()
        number = line_at(pos)
        where = Location(path, number)
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
            msix_head = (m, where)
            while under > 0:
                after = item.find("\n", under + 1)
                detail = item[under + 1:after if after > 0 else len(item)]
                if detail[2:3] not in ("\t", "") and (t := _TABLE_RE.match(detail.strip())):
                    number = line_at(pos + under)
                    where = Location(path, number)
                    once(f"MSI-X {t.group('what')}", number)
                    value = (_number(t.group("bar"), 10, _SMALL_DIGITS, "BAR number", where),
                             _number(t.group("off"), 16, _OFFSET_DIGITS,
                                     f"MSI-X {t.group('what')} offset (32 bits)", where), where)
                    if t.group("what") == "PBA":
                        pba = value
                    else:
                        table = value
                under = after
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
        raise InputError(f"device {slot}: {exc}", Location(path, line)) from None


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
