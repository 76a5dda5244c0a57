"""Canonical formatting of rule files: one layout for every file, comments kept.

fmt(parse(x)) is idempotent and parses back to the same AST.  Comments on a
statement's last line stay at its end; other comments stay above the
statement (or example line) they precede.
"""

from __future__ import annotations

from . import ast
from ..units import format_size

WIDTH = 88
INDENT = "    "

_GROUP = {ast.Ruleset: "head", ast.Status: "head", ast.Describe: "head", ast.Source: "head", ast.Include: "include",
          ast.MatchDriver: "match", ast.MatchModule: "match", ast.MatchId: "match",
          ast.MatchClass: "match", ast.Registers: "registers", ast.Role: "role", ast.Rule: "rule", ast.Example: "example"}


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_lines(text: ast.Text) -> list[str]:
    pieces = text.pieces or (text.value,)
    return [quote(p) for p in pieces]


def ref(r: ast.Ref) -> str:
    return r.text


def cond(c: ast.Cond, parent: type | None = None) -> str:
    if isinstance(c, ast.AnyOf):
        s = " or ".join(cond(i, ast.AnyOf) for i in c.items)
        return f"({s})" if parent in (ast.AnyOf, ast.AllOf, ast.Not) else s
    if isinstance(c, ast.AllOf):
        s = " and ".join(cond(i, ast.AllOf) for i in c.items)
        return f"({s})" if parent in (ast.AllOf, ast.Not) else s
    if isinstance(c, ast.Not):
        return f"not {cond(c.item, ast.Not)}"
    if isinstance(c, ast.Stays):
        return f"{ref(c.ref)} stays"
    if isinstance(c, ast.IsAttr):
        return f"{ref(c.ref)} is {'not ' if c.negated else ''}{c.attr}"
    if isinstance(c, ast.SizeCmp):
        return f"{ref(c.ref)} size {c.op} {format_size(c.size)}"
    if isinstance(c, ast.SizeIn):
        return f"{ref(c.ref)} size in {{{', '.join(format_size(s) for s in c.sizes)}}}"
    if isinstance(c, ast.Unchanged):
        return f"{ref(c.ref)} unchanged"
    if isinstance(c, ast.SizeUnchanged):
        return f"{ref(c.ref)} size unchanged"
    if isinstance(c, ast.EndUnchanged):
        return f"{ref(c.ref)} end unchanged"
    if isinstance(c, ast.NoBarAdded):
        return "no bar added" + (f" below {ref(c.below)}" if c.below else "")
    if isinstance(c, ast.NoBarExtended):
        return "no bar extended"
    if isinstance(c, ast.CountUnchanged):
        return "bar count unchanged"
    if isinstance(c, ast.Added):
        return f"{ref(c.ref)} added"
    if isinstance(c, ast.DeviceId):
        sub = f" subsystem {_id(c.subsystem_vendor, c.subsystem_device)}" if c.has_subsystem else ""
        return f"device id {_id(c.vendor, c.device, c.device_high)}{sub}"
    if isinstance(c, ast.RevisionCmp):
        return f"revision {c.op} {c.value:#04x}"
    if isinstance(c, ast.DeviceIdUnknown):
        return "device id unknown"
    if isinstance(c, ast.RevisionUnknown):
        return "revision unknown"
    raise TypeError(c)


def _clause(keyword: str, c: ast.Cond) -> list[str]:
    """`require A and B`, broken before each and/or, nested parentheses too, when too long."""
    return _wrap(c, None, INDENT, f"{INDENT}{keyword} ")


def _wrap(c: ast.Cond, parent: type | None, indent: str, lead: str) -> list[str]:
    one = lead + cond(c, parent)
    if len(one) <= WIDTH or not isinstance(c, (ast.AllOf, ast.AnyOf)):
        return [one]
    joiner = "and" if isinstance(c, ast.AllOf) else "or"
    wrap_parent = (ast.AnyOf, ast.AllOf, ast.Not) if isinstance(c, ast.AnyOf) else (ast.AllOf, ast.Not)
    paren = parent in wrap_parent
    inner = indent + INDENT
    lines = _wrap(c.items[0], type(c), inner, lead + ("(" if paren else ""))
    for item in c.items[1:]:
        lines += _wrap(item, type(c), inner, f"{inner}{joiner} ")
    if paren:
        lines[-1] += ")"
    return lines


def selector(s: ast.Selector) -> str:
    if isinstance(s, ast.Fixed):
        return f"bar{s.index}"
    if isinstance(s, ast.Ordinal):
        within = f" in bar{s.low}..bar{s.high}" if (s.low, s.high) != (0, 5) else ""
        size = f" with size {s.size_op} {format_size(s.size)}" if s.size_op else ""
        return f"{s.order} {s.kind} bar{within}{size}"
    if isinstance(s, ast.Largest):
        return "largest bar"
    return "msix bar"


_id = ast.pci_id_text


def class_text(value: int, mask: int | None, with_prog_if: bool) -> str:
    """`class 0x0108 mask 0xff00`, or with six digits (`class 0x0c0330`) for a class with its
    programming interface."""
    width = 8 if with_prog_if else 6  # digits and the 0x
    return f"class {value:#0{width}x}" + (f" mask {mask:#0{width}x}" if mask is not None else "")


def example_item(item: ast.ExampleItem) -> str:
    if isinstance(item, ast.ExampleDevice):
        return f"device {quote(item.path.value)}"
    if isinstance(item, ast.ExampleId):
        sub = (f" subsystem {_id(item.subsystem_vendor, item.subsystem_device)}"
               if item.subsystem_vendor is not None else "")
        return f"id {_id(item.vendor, item.device)}{sub}"
    if isinstance(item, ast.ExampleRevision):
        return f"revision {item.revision:#04x}"
    if isinstance(item, ast.ExampleBar):
        size = f" {format_size(item.size)}" if item.size is not None else ""
        return f"bar{item.index} {item.kind}{size}{' prefetchable' if item.prefetchable else ''}"
    if isinstance(item, ast.ExampleMsix):
        return (f"msix {item.entries} table bar{item.table_bar} {item.table_offset:#x}"
                f" pba bar{item.pba_bar} {item.pba_offset:#x}")
    if isinstance(item, ast.ExamplePlatform):
        return f"platform {format_size(item.page_size)}{'' if item.io_space else ' no-io-space'}"
    return f"expect {item.strategy} {item.verdict}"


def statement_lines(s: ast.Statement, comments: "_Comments") -> list[str]:
    if isinstance(s, ast.Ruleset):
        return [f"ruleset {s.name}"]
    if isinstance(s, ast.Status):
        return [f"status {s.value}"]
    if isinstance(s, ast.Describe):
        return _with_text("describe", s.text)
    if isinstance(s, ast.Source):
        line = f"source {quote(s.where.value)}"
        if s.function:
            line += f" function {s.function}"
        if s.kernel:
            line += f" kernel {quote(s.kernel.value)}"
        return [line]
    if isinstance(s, ast.Include):
        return [f"include {quote(s.path.value)}"]
    if isinstance(s, ast.MatchDriver):
        return [f"match driver {s.name}"]
    if isinstance(s, ast.MatchModule):
        return [f"match module {s.name}"]
    if isinstance(s, ast.MatchId):
        sub = f" subsystem {_id(s.subsystem_vendor, s.subsystem_device)}" if s.has_subsystem else ""
        cls = (f" {class_text(s.class_value, s.class_mask, s.class_with_prog_if)}"
               if s.class_value is not None else "")
        return [f"match id {_id(s.vendor, s.device, s.device_high)}{sub}{cls}"]
    if isinstance(s, ast.MatchClass):
        return [f"match {class_text(s.value, s.mask, s.with_prog_if)}"]
    if isinstance(s, ast.Registers):
        pieces = text_lines(s.what)
        lines = [f"registers bar{s.bar} {s.start:#x}..{s.end:#x} {pieces[0]}"]
        lines += [f"{INDENT}{p}" for p in pieces[1:]]
        if s.cite is not None:
            lines.append(f"{INDENT}cite {quote(s.cite.value)}")
        return lines
    if isinstance(s, ast.Role):
        return [f"role {s.name} = {selector(s.selector)}"]
    if isinstance(s, ast.Rule):
        lines = [f"rule {s.name}:"]
        if s.guard is not None:
            lines += _clause("when", s.guard)
        lines += _clause("require", s.cond)
        pieces = text_lines(s.message)
        lines.append(f"{INDENT}else {s.severity} {pieces[0]}")
        lines += [f"{INDENT * 2}{p}" for p in pieces[1:]]
        return lines
    if isinstance(s, ast.Example):
        lines = [f"example {quote(s.title.value)} {{" + comments.trailing(s.span.line)]
        for item in s.items:
            for c in comments.before(item.span.line):
                lines.append(f"{INDENT}{c}")
            lines.append(f"{INDENT}{example_item(item)}" + comments.trailing(item.span.end_line))
        for c in comments.before(s.span.end_line):
            lines.append(f"{INDENT}{c}")
        lines.append("}" + comments.trailing(s.span.end_line))
        return lines
    raise TypeError(s)


def _with_text(keyword: str, text: ast.Text) -> list[str]:
    pieces = text_lines(text)
    return [f"{keyword} {pieces[0]}"] + [f"{INDENT}{p}" for p in pieces[1:]]


class _Comments:
    """Comments not yet placed, taken in line order."""

    def __init__(self, comments: tuple[ast.Comment, ...]):
        self.trailing_on = {c.line: c for c in comments if not c.own_line}
        self.pending = sorted((c for c in comments if c.own_line), key=lambda c: c.line)
        self.next = 0  # pending[:next] are placed: taking them moves this, never copies the list

    def before(self, line: int) -> list[str]:
        """Comments above ``line``; a blank line between two of them is kept (paragraphs)."""
        first = self.next
        while self.next < len(self.pending) and self.pending[self.next].line < line:
            self.next += 1
        taken = self.pending[first:self.next]
        out: list[str] = []
        for prev, c in zip([None, *taken], taken):
            if prev is not None and c.line - prev.line > 1:
                out.append("")
            out.append(c.text)
        return out

    def trailing(self, line: int) -> str:
        c = self.trailing_on.pop(line, None)
        return f"  {c.text}" if c else ""

    def inside(self, first: int, last: int) -> list[str]:
        """Trailing comments on lines of a statement other than its last: moved above it."""
        if last - first > len(self.trailing_on):  # a long statement: fewer comments than lines
            lines = sorted(l for l in self.trailing_on if first <= l < last)
        else:  # each line once over the whole file, not every comment once per statement
            lines = [l for l in range(first, last) if l in self.trailing_on]
        return [self.trailing_on.pop(l).text for l in lines]


def fmt(rule_file: ast.RuleFile) -> str:
    comments = _Comments(rule_file.comments)
    out: list[str] = []
    previous = None
    for s in sorted(rule_file.statements, key=lambda s: s.span.line):
        group = _GROUP[type(s)]
        leading = comments.before(s.span.line)
        if not isinstance(s, ast.Example):  # comments inside a statement go above it
            leading += comments.before(s.span.end_line + 1)
            leading += comments.inside(s.span.line, s.span.end_line)
        if out and (group != previous or group in ("rule", "example") or leading):
            out.append("")
        out.extend(leading)
        lines = statement_lines(s, comments)
        if not isinstance(s, ast.Example):
            lines[-1] += comments.trailing(s.span.end_line)
        out.extend(lines)
        previous = group
    rest = comments.before(1 << 30) + [c.text for _, c in sorted(comments.trailing_on.items())]
    if rest:
        out.append("")
        out.extend(rest)
    return "\n".join(out).strip("\n") + "\n"
