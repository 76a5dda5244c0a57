"""Text from input made safe to print: one escaper, and the few target grammars built on it.

Device descriptions, rule files and file names are input: a slot, a driver
name or a rule's evidence can carry a newline, an ANSI escape sequence or a
bidi override.  Everything from input that barsafe renders passes through
``printable`` (or one of the wrappers below, which call it first), so no
input can start a new line in a configuration file, move the cursor of the
terminal that shows it, or close the comment it is quoted in.  Readers may
validate fields too; this is the defence that holds even when they do not.
"""

from __future__ import annotations

from ..units import char_category

FIELD_LIMIT = 256  # one field (slot, name, driver): lspci's longest device names are ~120
TEXT_LIMIT = 4096  # composed text (reasons, evidence lists) that may legitimately be long

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
# Cc: C0/C1 controls (newline, ESC, NEL); Cf: format characters (bidi overrides, zero-width
# joiners: text that displays differently from what it is); Zl/Zp: Unicode line and paragraph
# separators; Cs: lone surrogates (from undecodable bytes), which cannot be encoded on output;
# Co/Cn: private-use and unassigned code points, noncharacters such as U+FFFE among them
# (not allowed in XML).
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if char_category(ch) not in _ESCAPED_CATEGORIES:
        return ch
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: object, limit: int | None = FIELD_LIMIT) -> str:
    """``text`` on one line: control and invisible characters as \\n, \\xNN, \\uNNNN escapes.

    A backslash is doubled, so an escape in the output always means the input
    held that character, never the four characters themselves.  Past ``limit``
    output characters the rest is cut and replaced by "...".
    """
    text = str(text)
    if text.isascii() and text.isprintable() and "\\" not in text and (limit is None or len(text) <= limit):
        return text  # nothing to escape: most text, which per character cost `which` 1 % of its time
    out: list[str] = []
    length = 0
    for ch in text:
        piece = _escape_char(ch)
        if limit is not None and length + len(piece) > limit:
            out.append("...")
            break
        out.append(piece)
        length += len(piece)
    return "".join(out)


def message(text: object, limit: int = TEXT_LIMIT) -> str:
    """An error message, whose quoted values their author already escaped: control and
    invisible characters are escaped (a path or an unquoted value may still hold one), but a
    backslash is kept as it is, so an escape already in the message is not escaped twice."""
    text = str(text)
    if text.isascii() and text.isprintable():
        out = text
    else:
        out = "".join(ch if ch == "\\" else _escape_char(ch) for ch in text)
    return out if len(out) <= limit else out[:limit] + "..."


def long_text(text: object) -> str:
    """``printable`` for composed text (reasons, evidence) with a generous cap."""
    return printable(text, TEXT_LIMIT)


def xml_comment(text: object, limit: int | None = TEXT_LIMIT) -> str:
    """Text for inside ``<!-- ... -->``: XML 1.0 forbids "--" in a comment and a "-" right
    before the closing "-->" (XML 1.0 section 2.5, production [15] Comment)."""
    out = printable(text, limit)
    while "--" in out:
        out = out.replace("--", "- -")
    return out + " " if out.endswith("-") else out


def c_comment(text: object, limit: int | None = TEXT_LIMIT) -> str:
    """Text for inside ``/* ... */``: "*/" would end the comment early (C11 6.4.9), and a
    "/*" inside one draws gcc's -Wcomment; both get a space between their characters."""
    out = printable(text, limit)
    return out.replace("*/", "* /").replace("/*", "/ *")


_MARKDOWN_SPECIAL = frozenset("\\`*_[]|~")
_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def markdown(text: object, limit: int | None = TEXT_LIMIT) -> str:
    """Text inside a Markdown table cell or list item (never at a line start, so block markers
    such as "#" or "-" cannot act): the inline syntax characters (emphasis, code, links,
    strikethrough) and "|", which ends a GFM table cell, are backslash-escaped (CommonMark 0.31
    section 2.4); "<", ">" and "&" become entities, since Markdown passes raw HTML through."""
    return "".join(_HTML.get(ch) or ("\\" + ch if ch in _MARKDOWN_SPECIAL else ch)
                   for ch in printable(text, limit))
