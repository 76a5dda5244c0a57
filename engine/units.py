"""Sizes the way lspci prints them (64K, 1M, 256) and the power-of-two arithmetic QEMU uses."""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_SUFFIX = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": 1024 * GiB, "k": KiB, "m": MiB, "g": GiB, "t": 1024 * GiB}
# A size is SIZE_PATTERN (with re.ASCII | re.IGNORECASE), read by _size_parts without compiling
# it.  ASCII only: \d would also take other scripts' digits ("٣", "３"), which int() accepts, and
# a Unicode IGNORECASE takes the Kelvin sign U+212A for K and "İ" or "ı" for i.
SIZE_PATTERN = r"[ \t]*([0-9]+)[ \t]*([KMGT]?)(?:i?B)?[ \t]*"
_DIGITS = frozenset("0123456789")
# 2**64 has 20 digits; a longer number is no size of anything on a 64-bit bus, and refusing it
# before int() avoids Python's 4300-digit conversion limit (and the quadratic work below it).
MAX_SIZE_DIGITS = 20
MAX_SIZE = 1 << 64  # the whole 64-bit address space

def char_category(ch: str) -> str:
    """unicodedata.category(ch), the module (a shared library: loading it cost a warm `which`
    1 % of its time) imported when a character first needs it; plain ASCII text never does."""
    from unicodedata import category
    return category(ch)


HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def is_hex(text: str, most: int, least: int = 1) -> bool:
    """re.fullmatch("[0-9a-fA-F]{least,most}", text), without compiling patterns at start-up
    (each cost `which` more than reading the record)."""
    return least <= len(text) <= most and HEX_DIGITS.issuperset(text)


QUOTE_LIMIT = 60
# Control, format (bidi, zero-width), separator, surrogate, private-use and unassigned characters:
# the categories engine/report/safe.py escapes.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def quote(text: object, limit: int = QUOTE_LIMIT) -> str:
    """A value from input as an error message quotes it: cut to ``limit`` characters ("..."
    marks the cut), in single quotes, each control or invisible character shown as <U+XXXX>.

    Messages are printed both escaped (engine/report/safe.py printable) and as they are; this
    form is one line either way, and holds no backslash for the escaper to double."""
    if isinstance(text, int) and text.bit_length() > 128:  # str() of a huge int is slow or refused
        return f"<a {text.bit_length()}-bit number>"
    text = str(text)
    shown = text[:limit]
    if not (shown.isascii() and shown.isprintable()):
        shown = "".join(f"<U+{ord(ch):04X}>" if char_category(ch) in _INVISIBLE else ch for ch in shown)
    return "'" + shown + ("..." if len(text) > limit else "") + "'"


def _size_parts(text: str) -> tuple[str, str] | None:
    """(digits, suffix letter or "") if ``text`` fully matches SIZE_PATTERN, else None."""
    text = text.strip(" \t")
    end = 0
    while end < len(text) and text[end] in _DIGITS:
        end += 1
    rest = text[end:].lstrip(" \t")
    suffix = rest[:1] if rest[:1] in _SUFFIX else ""
    tail = rest[len(suffix):]
    if not end or tail not in ("", "B", "b", "iB", "ib", "IB", "Ib"):
        return None
    return text[:end], suffix


def parse_size(text: str) -> int:
    """'64K' -> 65536. Raises ValueError on anything else, and on sizes beyond 2**64."""
    parts = _size_parts(text)
    if parts is None:
        raise ValueError(f"not a size: {quote(text)} (expected e.g. 256, 64K, 1M, 2G)")
    digits = parts[0].lstrip("0") or "0"
    if len(digits) > MAX_SIZE_DIGITS:
        raise ValueError(f"size {quote(text)} has {len(digits)} digits: too large for any"
                         f" address space (at most 2^64 bytes)")
    value = int(digits) * _SUFFIX[parts[1]]
    if value > MAX_SIZE:
        raise ValueError(f"size {quote(text)} is larger than the 64-bit address space")
    return value


def format_size(value: int) -> str:
    """pciutils lspci.c show_size: divide by 1024 while it divides evenly."""
    text = _SIZE_TEXTS.get(value)
    if text is None:
        text = _format_size(value)
        if len(_SIZE_TEXTS) < 4096:  # judging asks for the same few sizes again and again
            _SIZE_TEXTS[value] = text
    return text


_SIZE_TEXTS: dict[int, str] = {}


def _format_size(value: int) -> str:
    suffixes = ["", "K", "M", "G", "T"]
    i = 0
    while i < len(suffixes) - 1 and value and value % 1024 == 0:
        value //= 1024
        i += 1
    return f"{value}{suffixes[i]}"


def align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment


def pow2ceil(value: int) -> int:
    """QEMU util/host-utils.h pow2ceil: the smallest power of two >= value (1 for 0)."""
    if value <= 1:
        return 1
    return 1 << (value - 1).bit_length()


def is_pow2(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0
