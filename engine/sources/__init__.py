"""Readers, one per input format; ``load`` recognises which one an input needs.

Formats: lspci text (engine.sources.lspci), barsafe YAML records
(engine.sources.record), sysfs device directories (engine.sources.sysfs).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from ..errors import InputError, Location
from ..model import Device
from ..paths import is_dir, pure
from ..units import MiB, format_size
from .detect import lines, looks_like_lspci, looks_like_record, without_prompts

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: it costs `which` start-up
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO

FORMATS = "lspci -vvv text, a barsafe YAML record, or a sysfs PCI device directory"
# `lspci -vvv` of a large machine is a few MiB (about 3K per function); the cap keeps a mistaken
# /dev/zero or disk image from filling memory before anything is said.
MAX_INPUT_BYTES = 64 * MiB


def parse_text(text: str, path: str) -> list[Device]:
    """Pick the reader by content, not by file name: users paste whatever they have."""
    record_like = looks_like_record(text)
    if not record_like and looks_like_lspci(text, prompts=True):
        from . import lspci
        return lspci.parse(text, path)  # it drops the prompts itself, keeping line numbers
    if not record_like:
        text = without_prompts(text)
    if looks_like_record(text):
        from . import record
        return record.parse(text, path)
    line = next((n for n, l in enumerate(lines(text), 1) if l.strip()), None)
    if line is None:
        raise InputError("input is empty", Location(path))
    raise InputError(f"unknown input format: expected {FORMATS}", Location(path, line))


def decode(data: bytes, path: str) -> str:
    """Input bytes as text: UTF-8 (a byte-order mark dropped), or an InputError at the bad byte.

    lspci output is the one exception: lspci prints bytes it reads from the device as they are
    (pciutils ls-vpd.c print_vpd_string escapes only bytes below 0x20, 0x7f and '\\', so VPD
    strings reach the output in whatever encoding the card's firmware used), and the SMBIOS
    label after "DeviceName:" likewise.  Those bytes become U+FFFD; nothing barsafe reads lies
    in such lines, and a damaged byte in a line it does read fails that line's own check.
    YAML must be Unicode (YAML 1.1 section 5.1), so a record with a bad byte is refused.
    UTF-16 with a byte-order mark (what Windows PowerShell's `>` writes) is decoded as such.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError("not UTF-16 text, though it starts with a UTF-16 byte-order mark",
                             Location(path, 1)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8-sig", errors="replace")
        if looks_like_lspci(text):
            return text
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        where = Location(path, data.count(b"\n", 0, exc.start) + 1, exc.start - line_start + 1)
        raise InputError(f"not UTF-8 text (byte {data[exc.start]:#04x})", where) from None


def _read_limited(stream: BinaryIO, path: str) -> bytes:
    data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"input is larger than {format_size(MAX_INPUT_BYTES)}: not an lspci"
                         f" dump or device record", Location(path))
    return data


def _read_stdin(stdin: TextIO | None) -> str:
    """Standard input as bytes, decoded as files are: the locale's encoding (latin-1 would
    take any byte, ASCII none) must not decide what a dump means."""
    stream = stdin if stdin is not None else sys.stdin
    where = Location("<stdin>")
    if stream is None:  # the process was started with file descriptor 0 closed
        raise InputError("no standard input", where)
    try:
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            return decode(_read_limited(buffer, "<stdin>"), "<stdin>")
        text = stream.read(MAX_INPUT_BYTES + 1)  # an in-memory text stream (tests, embedding)
    except OSError as exc:
        raise InputError(f"cannot read standard input: {exc.strerror or exc}", where) from None
    if len(text) > MAX_INPUT_BYTES:
        raise InputError(f"input is larger than {format_size(MAX_INPUT_BYTES)}", where)
    return text


def load(spec: str, stdin: TextIO | None = None) -> list[Device]:
    """A file name, '-' for standard input, or a sysfs directory."""
    if spec == "-":
        return parse_text(_read_stdin(stdin), "<stdin>")
    try:
        directory = is_dir(spec)
    except OSError:  # a name the system refuses (too long): opening it below says why
        directory = False
    if directory:
        from pathlib import Path

        from . import sysfs
        path = Path(spec)
        if sysfs.is_device_dir(path):
            return [sysfs.read_device(path)]
        return sysfs.read_tree(path)
    try:
        with open(pure(spec), "rb") as stream:  # the file Path(spec) names ('x.yaml/' too)
            data = _read_limited(stream, spec)
    except FileNotFoundError:
        raise InputError("no such file", Location(spec)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", Location(spec)) from None
    except ValueError:  # open() refuses a name with a NUL byte
        raise InputError("not a usable file name (it contains a NUL byte)", Location(spec)) from None
    return parse_text(decode(data, spec), spec)


HEAD_BYTES = 64 * 1024  # enough to see what an input is: its first meaningful line


def stream(spec: str) -> Iterator[Device]:
    """The devices of one input, one at a time, for audits of many or large dumps.

    An lspci dump is read a piece at a time and each device handed on when its block ends, so
    memory holds one piece and one device however large the file (and no size cap applies);
    records, sysfs trees and standard input are small and go through ``load``.  Every error is
    ``load``'s, at the same line."""
    if spec == "-":
        yield from load(spec)
        return
    try:
        stream_ = open(spec, "rb")
    except (OSError, ValueError):  # a sysfs directory, or load says why in its words
        yield from load(spec)
        return
    with stream_:
        try:
            head = stream_.read(HEAD_BYTES)
        except OSError:
            head = b""  # load says why
        from . import lspci
        decoding = lspci.decoder()
        text = decoding.decode(head)  # a character cut at the end waits for the rest
        probe = text.rsplit("\n", 1)[0] if len(head) == HEAD_BYTES else text  # the last line may go on
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or looks_like_record(probe) or not looks_like_lspci(
                probe, prompts=True):
            yield from load(spec)
            return
        yield from lspci.read(stream_, spec, decoding=decoding, text=text)


def load_sysfs() -> list[Device]:
    from . import sysfs
    return sysfs.read_tree(sysfs.SYSFS_DEVICES)
