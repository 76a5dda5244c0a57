"""Text -> RuleFile.  Lark (LALR) with a Transformer whose methods mirror the grammar's rules.

A syntax error must not hide the errors after it, so the file is cut into
top-level statements (each starts with a keyword at the start of a line,
outside braces and strings) and each is parsed on its own, at its own line.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..errors import Location, RuleError, RuleErrors
from ..units import parse_size
from . import ast

from .parse_paths import GRAMMAR
STATEMENT_KEYWORDS = ("ruleset", "status", "describe", "source", "include", "match", "registers", "role",
                      "rule", "example")
# A string literal, as the grammar's STRING: unrolled and possessive, so a long string is one
# linear scan (the "(a|b)*" form made re keep state for every character).
_STRING_RE = re.compile(r'"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"')
_STATEMENT_START = re.compile(r"^\s*(" + "|".join(STATEMENT_KEYWORDS) + r")(?=\s|$)")

# What users should read instead of lark's terminal names.
_SHOWN = {
    "NAME": "a name", "MODNAME": "a driver or module name", "STRING": "a \"string\"",
    "PCI_ID": "an ID like 1000:0097", "HEX": "a hex number like 0x0107", "SIZE": "a size like 64K",
    "INT": "a number", "INDEX": "a BAR number 0-5", "BAR": "bar0..bar5", "CMP": "a comparison (== >= <= ...)",
    "SEVERITY": "forbid or warn", "STATUS": "mined or reviewed", "VERDICT": "safe, warn, forbid or refused", "ORDER": "first, second, third or last",
    "KIND": "memory, io, 64bit or prefetchable", "HEXBYTE": "a hex byte like 0x07", "ATTR": "memory, io, 64bit, 32bit, prefetchable or implemented",
    "STRATEGY": "a strategy (bar0..bar5, off, qemu-rfc, ...)", "BARKIND": "io, mem32 or mem64",
    "NATIVE": "native", "NOT": "not", "NOIO": "no-io-space", "PREFETCH": "prefetchable",
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "EQUAL": "'='", "COLON": "':'",
    "COMMA": "','",
}


# How deeply a condition may nest: each `not` and each pair of parentheses is a level.  The
# parser itself is iterative, but the transformer, check, compile, fmt, evaluation and the
# rule cache all walk conditions recursively; 64 levels keep every walk a few hundred frames
# deep, far inside Python's default limit of 1000, whatever the caller's stack.
MAX_NESTING = 64


@lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark(GRAMMAR.read_text(), parser="lalr", propagate_positions=True,
                lexer="contextual")


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


NUMBER_MAX = 1 << 64  # no size, offset or class on a 64-bit bus is larger


class _BadValue(ValueError):
    """A number the grammar accepts but no device has: an error at the number itself."""

    def __init__(self, message: str, token: Token):
        super().__init__(message)
        self.token = token


def _bounded(token: Token, digits: str, convert) -> int:
    """``convert(token)``, refused past NUMBER_MAX before a huge number is ever built (Python
    refuses decimal strings over 4300 digits anyway, with a message about its own limits)."""
    if len(digits.lstrip("0")) > 20 or (value := convert(str(token))) > NUMBER_MAX:
        raise _BadValue(f"number {ast.quoted(str(token))} is too large (at most 2^64)", token)
    return value


def _int(token: Token) -> int:
    """A hex number (0x...)."""
    return _bounded(token, str(token)[2:], lambda t: int(t, 16))


def _dec(token: Token) -> int:
    return _bounded(token, str(token), int)


def _size(token: Token) -> int:
    """64K, 1M, 256 ..."""
    return _bounded(token, re.match(r"[0-9]*", str(token)).group(), parse_size)


def _class(items) -> tuple[int, int | None, bool]:
    """(value, mask, with programming interface) of `CLASS [mask MASK]`: a class written with
    six hex digits (0x0c0330) is the kernel's 24-bit class, prog-if included."""
    mask = _int(items[1]) if len(items) > 1 else None
    return _int(items[0]), mask, len(str(items[0])) == len("0x0c0330")


def _id_part(text: str) -> int | None:
    return None if text == "*" else int(text, 16)


def _ids(items, ranged: bool = False) -> tuple:
    """(vendor, device, subsystem vendor, subsystem device, has subsystem) of `V:D [subsystem V:D]`,
    and with ``ranged`` the device range's upper end (None: one ID) after them."""
    ids = [t for t in items if isinstance(t, Token) and t.type == "PCI_ID"]
    for token in ids[1:] if ranged else ids:
        if ".." in str(token):
            raise _BadValue(f"ID range {ast.quoted(str(token))}: a range names device IDs in"
                            f" 'match id' and 'device id', not " + ("a subsystem" if ranged else
                                                                     "an example's device"), token)
    vendor, _, device = str(ids[0]).partition(":")
    device, _, high = device.partition("..")
    v, d = _id_part(vendor), _id_part(device)
    out: tuple = (v, d, None, None, False)
    if len(ids) > 1:
        sv, sd = (_id_part(p) for p in str(ids[1]).split(":"))
        out = (v, d, sv, sd, True)
    return out + ((int(high, 16) if high else None),) if ranged else out


class _ToAst(Transformer):
    """One method per grammar rule; each returns an AST node with its span."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.offset = 0  # lines before the statement being transformed (it is parsed alone)

    def _span(self, meta) -> ast.Span:
        if getattr(meta, "empty", True):
            return ast.NO_SPAN
        return ast.Span(self.path, meta.line + self.offset, meta.column,
                        meta.end_line + self.offset, meta.end_column)

    def start(self, items):
        return list(items)

    @v_args(meta=True)
    def text(self, meta, tokens):
        pieces = tuple(_unquote(t) for t in tokens)
        return ast.Text("".join(pieces), pieces, self._span(meta))

    @v_args(meta=True)
    def ruleset(self, meta, items):
        return ast.Ruleset(str(items[0]), self._span(meta))

    @v_args(meta=True)
    def status(self, meta, items):
        return ast.Status(str(items[0]), self._span(meta))

    @v_args(meta=True)
    def describe(self, meta, items):
        return ast.Describe(items[0], self._span(meta))

    @v_args(meta=True)
    def source(self, meta, items):
        where, function, kernel = items[0], None, None
        for item in items[1:]:
            if isinstance(item, Token):
                function = str(item)
            else:
                kernel = item
        return ast.Source(where, function, kernel, self._span(meta))

    @v_args(meta=True)
    def include(self, meta, items):
        return ast.Include(items[0], self._span(meta))

    @v_args(meta=True)
    def match_driver(self, meta, items):
        return ast.MatchDriver(str(items[0]), self._span(meta))

    @v_args(meta=True)
    def match_module(self, meta, items):
        return ast.MatchModule(str(items[0]), self._span(meta))

    @v_args(meta=True)
    def match_id(self, meta, items):
        *ids, high = _ids(items, ranged=True)
        hexes = [t for t in items if isinstance(t, Token) and t.type == "HEX"]
        cls = {}
        if hexes:
            value, mask, with_prog_if = _class(hexes)
            cls = dict(class_value=value, class_mask=mask, class_with_prog_if=with_prog_if,
                       class_digits=len(str(hexes[0])) - 2)
        return ast.MatchId(*ids, span=self._span(meta), device_high=high, **cls)

    @v_args(meta=True)
    def match_class(self, meta, items):
        value, mask, with_prog_if = _class(items)
        return ast.MatchClass(value, mask, self._span(meta), with_prog_if, len(str(items[0])) - 2)

    @v_args(meta=True)
    def registers(self, meta, items):
        bar, start, end, what = int(str(items[0])[3:]), _int(items[1]), _int(items[2]), items[3]
        cite = items[4] if len(items) > 4 else None
        return ast.Registers(bar, start, end, what, cite, self._span(meta))

    @v_args(meta=True)
    def role(self, meta, items):
        return ast.Role(str(items[0]), items[1], self._span(meta))

    def select_fixed(self, items):
        return ast.Fixed(int(str(items[0])[3:]))

    def select_ordinal(self, items):
        fields = {}
        for item in items[2:]:
            fields.update(item)
        return ast.Ordinal(str(items[0]), str(items[1]), **fields)

    def within(self, items):
        low, high = (int(str(t)[3:]) for t in items)
        return {"low": low, "high": high}

    def with_size(self, items):
        return {"size_op": str(items[0]), "size": _size(items[1])}

    def select_largest(self, items):
        return ast.Largest()

    def select_msix(self, items):
        return ast.MsixBar()

    @v_args(meta=True)
    def rule(self, meta, items):
        name = str(items[0])
        guard = items[1] if len(items) == 5 else None
        cond, severity, message = items[-3], str(items[-2]), items[-1]
        return ast.Rule(name, guard, cond, severity, message, self._span(meta))

    def guard(self, items):
        return items[0]

    @v_args(meta=True)
    def any_of(self, meta, items):
        return items[0] if len(items) == 1 else ast.AnyOf(tuple(items), self._span(meta))

    @v_args(meta=True)
    def all_of(self, meta, items):
        return items[0] if len(items) == 1 else ast.AllOf(tuple(items), self._span(meta))

    @v_args(meta=True)
    def negate(self, meta, items):
        return ast.Not(items[-1], self._span(meta))

    @v_args(meta=True)
    def ref(self, meta, items):
        native = any(isinstance(t, Token) and t.type == "NATIVE" for t in items)
        name = str(items[-1])
        if items[-1].type == "BAR":
            return ast.Ref(bar=int(name[3:]), native=native, span=self._span(meta))
        return ast.Ref(role=name, native=native, span=self._span(meta))

    @v_args(meta=True)
    def stays(self, meta, items):
        return ast.Stays(items[0], self._span(meta))

    @v_args(meta=True)
    def is_attr(self, meta, items):
        negated = any(isinstance(t, Token) and t.type == "NOT" for t in items)
        return ast.IsAttr(items[0], str(items[-1]), negated, self._span(meta))

    @v_args(meta=True)
    def size_cmp(self, meta, items):
        return ast.SizeCmp(items[0], str(items[1]), _size(items[2]), self._span(meta))

    @v_args(meta=True)
    def size_in(self, meta, items):
        return ast.SizeIn(items[0], tuple(_size(t) for t in items[1:]), self._span(meta))

    @v_args(meta=True)
    def unchanged(self, meta, items):
        return ast.Unchanged(items[0], self._span(meta))

    @v_args(meta=True)
    def size_unchanged(self, meta, items):
        return ast.SizeUnchanged(items[0], self._span(meta))

    @v_args(meta=True)
    def end_unchanged(self, meta, items):
        return ast.EndUnchanged(items[0], self._span(meta))

    @v_args(meta=True)
    def no_bar_added(self, meta, items):
        return ast.NoBarAdded(items[0] if items else None, self._span(meta))

    @v_args(meta=True)
    def no_bar_extended(self, meta, items):
        return ast.NoBarExtended(self._span(meta))

    @v_args(meta=True)
    def count_unchanged(self, meta, items):
        return ast.CountUnchanged(self._span(meta))

    @v_args(meta=True)
    def added(self, meta, items):
        return ast.Added(items[0], self._span(meta))

    @v_args(meta=True)
    def device_id(self, meta, items):
        *ids, high = _ids(items, ranged=True)
        return ast.DeviceId(*ids, span=self._span(meta), device_high=high)

    @v_args(meta=True)
    def device_id_unknown(self, meta, items):
        return ast.DeviceIdUnknown(self._span(meta))

    @v_args(meta=True)
    def revision_unknown(self, meta, items):
        return ast.RevisionUnknown(self._span(meta))

    @v_args(meta=True)
    def ex_id(self, meta, items):
        v, d, sv, sd, _ = _ids(items)
        return ast.ExampleId(v, d, sv, sd, self._span(meta))

    @v_args(meta=True)
    def ex_revision(self, meta, items):
        return ast.ExampleRevision(int(str(items[0]), 16), self._span(meta))

    @v_args(meta=True)
    def revision_cmp(self, meta, items):
        return ast.RevisionCmp(str(items[0]), int(str(items[1]), 16), self._span(meta))

    @v_args(meta=True)
    def example(self, meta, items):
        return ast.Example(items[0], tuple(items[1:]), self._span(meta))

    @v_args(meta=True)
    def ex_device(self, meta, items):
        return ast.ExampleDevice(items[0], self._span(meta))

    @v_args(meta=True)
    def ex_bar(self, meta, items):
        index, kind = int(items[0]), str(items[1])
        size = next((_size(t) for t in items[2:] if t.type == "SIZE"), None)
        prefetch = any(t.type == "PREFETCH" for t in items[2:])
        return ast.ExampleBar(index, kind, size, prefetch, self._span(meta))

    @v_args(meta=True)
    def ex_msix(self, meta, items):
        entries, tbar, toff, pbar, poff = items
        return ast.ExampleMsix(_dec(entries), int(str(tbar)[3:]), _int(toff), int(str(pbar)[3:]),
                               _int(poff), self._span(meta))

    @v_args(meta=True)
    def ex_platform(self, meta, items):
        return ast.ExamplePlatform(_size(items[0]), len(items) == 1, self._span(meta))

    @v_args(meta=True)
    def ex_expect(self, meta, items):
        return ast.Expect(str(items[0]), str(items[1]), self._span(meta))


def _chunks(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each top-level statement."""
    chunks: list[tuple[int, list[str]]] = []
    depth = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if depth == 0 and _STATEMENT_START.match(line) or not chunks:
            chunks.append((number, []))
        chunks[-1][1].append(line)
        code = _STRING_RE.sub('""', line).split("#", 1)[0]
        depth = max(0, depth + code.count("{") - code.count("}"))
    return [(start, "\n".join(lines)) for start, lines in chunks]


def _shown(name: str) -> str:
    if name == "STRATEGY":  # all of them: the choices for a misspelt strategy
        named = [w for w in terminal_words(name) if not re.fullmatch(r"bar[0-5]", w)]
        return f"a strategy (bar0..bar5, {', '.join(named)})"
    if name in _SHOWN:
        return _SHOWN[name]
    try:
        pattern = parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"'{pattern.value}'" if pattern.type == "str" else name.lower()


def _expected(exc: UnexpectedInput) -> str:
    names = sorted({_shown(t) for t in getattr(exc, "expected", ()) if t != "$END"})
    return f"; expected {', '.join(names)}" if names and len(names) <= 8 else ""


# --- misspelt keywords: the whole word, the choices, a did-you-mean -------------------------
#
# The contextual lexer reads `forbidden` as the verdict `forbid` and fails on `den`, and a
# misspelt `revison` as a role name, failing on what follows.  An error is therefore looked
# at as words: the word around the failing token and, failing that, a name just before it;
# the parser is replayed to the word's start and asked which terminals it accepts there
# (lark's interactive parser), and the keywords those stand for are the choices.

_WORD = re.compile(r"[A-Za-z0-9_-]")
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_CHOICES_SHOWN = 16  # choices listed with a misspelt word (more say nothing)


@lru_cache(maxsize=None)
def terminal_words(name: str) -> tuple[str, ...]:
    """The keywords a terminal stands for: 'require' for REQUIRE, the four verdicts for
    VERDICT, the named strategies for STRATEGY; none for NAME, SIZE, BAR and the like."""
    try:
        pattern = parser().get_terminal(name).pattern
    except KeyError:
        return ()
    if pattern.type == "str":
        return (pattern.value,) if _PLAIN.fullmatch(pattern.value) else ()
    group = re.fullmatch(r"\((?:\?:)?([^()]*)\)(?:\(\?![^()]*\))?", pattern.value)
    if group is None:
        return ()
    return tuple(alt for alt in group.group(1).split("|") if _PLAIN.fullmatch(alt))


def _accepted_at(chunk: str, pos: int) -> tuple[set[str], Token | None]:
    """The terminals the parser accepts at ``pos`` of a statement (a token start), and the
    token just before ``pos``."""
    interactive = parser().parse_interactive(chunk)
    previous = None
    try:
        for token in interactive.iter_parse():  # yields each token before feeding it
            if token.start_pos >= pos:
                break
            previous = token
    except UnexpectedInput as exc:  # the lexer fails on the word itself: the state is before it
        if getattr(exc, "pos_in_stream", -1) < pos:
            raise
    return interactive.accepts() - {"$END"}, previous


def _word_at(chunk: str, pos: int) -> tuple[int, int]:
    start, end = pos, pos
    while start > 0 and _WORD.match(chunk[start - 1]):
        start -= 1
    while end < len(chunk) and _WORD.match(chunk[end]):
        end += 1
    return start, end


def _choices(accepted: set[str]) -> tuple[list[str], list[str]]:
    """(keywords for a did-you-mean, the choices as an error lists them)."""
    words = sorted({w for t in accepted for w in terminal_words(t)})
    # bar0..bar5 are numbered, not spelt: 'bar6' is no misspelling of 'bar0'
    words = [w for w in words if not re.fullmatch(r"bar[0-5]", w)]
    return words, sorted({_shown(t) for t in accepted})


def _is_word(text: str) -> bool:
    return bool(text) and re.fullmatch(r"[A-Za-z0-9_-]+", text) is not None \
        and re.search(r"[A-Za-z]", text) is not None


def _distance(a: str, b: str) -> int:
    """Edits from a to b, a swap of neighbours counting one (optimal string alignment)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _closest(word: str, keywords: list[str]) -> str | None:
    """difflib's close matches, the fewest edits first (`nto` is `not`, not `no`)."""
    if not keywords:
        return None
    close = difflib.get_close_matches(word, keywords, n=len(keywords), cutoff=0.6)
    if not close:
        return None
    return min(close, key=lambda k: (_distance(word, k), abs(len(k) - len(word)), close.index(k)))


def _misspelt(chunk: str, pos: int) -> tuple[int, int, str, list[str], str | None] | None:
    """(start, end, word, choices, suggestion) when the error at ``pos`` is a misspelt
    keyword or verdict, else None."""
    try:
        start, end = _word_at(chunk, pos)
        word, here = chunk[start:end], None
        if _is_word(word):
            accepted, previous = _accepted_at(chunk, start)
            keywords, shown = _choices(accepted)
            if keywords and word not in keywords:
                here = (start, end, word, shown, _closest(word, keywords))
                if here[4] is not None:
                    return here
        else:
            start = pos
            _, previous = _accepted_at(chunk, pos)
        # the word before: a misspelt keyword read as a name (`revison >= 0x07` fails at
        # '>='), or cut by the lexer into a keyword and a name (`orr` is `or` and `r`)
        if previous is not None:
            first, last = _word_at(chunk, previous.start_pos)
            before = chunk[first:last]
            if _is_word(before) and last <= start and (
                    previous.type in ("NAME", "MODNAME") or before != str(previous)):
                keywords, shown = _choices(_accepted_at(chunk, first)[0])
                close = _closest(before, keywords) if before not in keywords else None
                if close is not None:
                    return first, last, before, shown, close
        return here
    except (UnexpectedInput, RecursionError):  # the replay failed: keep lark's own report
        return None


def _line_col(chunk: str, pos: int, offset: int) -> tuple[int, int]:
    return chunk.count("\n", 0, pos) + 1 + offset, pos - chunk.rfind("\n", 0, pos)


def _syntax_error(exc: UnexpectedInput, path: str, offset: int, chunk: str = "") -> RuleError:
    where = Location(path, exc.line + offset, exc.column)
    if isinstance(exc, UnexpectedEOF):
        return RuleError("unexpected end of file", Location(path), code="syntax")
    pos = getattr(exc, "pos_in_stream", None)
    found = _misspelt(chunk, pos) if chunk and pos is not None else None
    if found is not None:
        start, end, word, shown, suggestion = found
        line, column = _line_col(chunk, start, offset)
        choices = f"; expected {', '.join(shown)}" if len(shown) <= _CHOICES_SHOWN else ""
        return RuleError(f"unexpected {ast.quoted(word)}{choices}", Location(path, line, column),
                         end=(line, column + end - start), code="syntax",
                         hint=f"did you mean {suggestion!r}?" if suggestion else None)
    if isinstance(exc, UnexpectedCharacters):
        char = exc.char if exc.char not in "\n\t" else repr(exc.char)
        return RuleError(f"unexpected character {char!r}", where,
                         end=(where.line, where.column + 1), code="syntax")
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    end = None
    if getattr(token, "end_line", None) == token.line and token.end_column is not None:
        end = (token.end_line + offset, token.end_column)
    return RuleError(f"unexpected {ast.quoted(str(token))}{_expected(exc)}", where, end=end,
                     code="syntax")


def parse(text: str, path: str) -> ast.RuleFile:
    """All statements and comments; raises RuleErrors with every syntax error in the file."""
    statements: list = []
    errors: list[RuleError] = []
    transformer = _ToAst(path)
    for start, chunk in _chunks(text):
        if all(not l.strip() or l.lstrip().startswith("#") for l in chunk.split("\n")):
            continue
        # Each statement is parsed on its own and its lines shifted after: prefixing it with
        # start-1 newlines instead made the lexer rescan them, quadratic in the file's lines.
        transformer.offset = start - 1
        try:
            tree = parser().parse(chunk)
            too_deep = _too_deep(tree, path, start - 1)
            if too_deep is not None:
                errors.append(too_deep)
                continue
            statements.extend(transformer.transform(tree))
        except UnexpectedInput as exc:
            if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
                line, column = _last_code(start, chunk)
                errors.append(RuleError("statement ends too early" + _expected(exc),
                                        Location(path, line, column)))
            else:
                errors.append(_syntax_error(exc, path, start - 1, chunk))
        except RecursionError:
            errors.append(RuleError("condition nested too deeply", Location(path, start)))
        except VisitError as exc:  # a value the grammar accepts but is out of range (e.g. size 5Q)
            orig = exc.orig_exc
            if isinstance(orig, _BadValue):
                errors.append(RuleError(str(orig), Location(path, orig.token.line + start - 1,
                                                            orig.token.column)))
            else:
                message = ("condition nested too deeply" if isinstance(orig, RecursionError)
                           else str(orig))
                errors.append(RuleError(message, Location(path, start)))
    if errors:
        raise RuleErrors(errors)
    return ast.RuleFile(path, tuple(statements), tuple(_comments(text)))


def _too_deep(tree: Tree, path: str, offset: int) -> RuleError | None:
    """The first condition nested deeper than MAX_NESTING, found without recursion.

    Below a rule's `require`/`when`, an any_of node only comes from parentheses (the
    top-level one is the condition itself) and a negate node from `not`."""
    stack: list[tuple[Tree, int, bool]] = [(tree, 0, False)]
    while stack:
        node, level, in_cond = stack.pop()
        if node.data == "negate" or (node.data == "any_of" and in_cond):
            level += 1
            if level > MAX_NESTING:
                meta = node.meta
                return RuleError(f"condition nested deeper than {MAX_NESTING} levels (each 'not'"
                                 " and each pair of parentheses is a level)",
                                 Location(path, getattr(meta, "line", 0) + offset or None,
                                          getattr(meta, "column", None)))
        in_cond = in_cond or node.data in ("any_of", "all_of", "negate")
        stack.extend((child, level, in_cond) for child in node.children if isinstance(child, Tree))
    return None


def _last_code(start: int, chunk: str) -> tuple[int, int]:
    """Line and column just after the last code (not blank, not comment) of a statement."""
    lines = chunk.split("\n")
    for offset in range(len(lines) - 1, -1, -1):
        masked = _STRING_RE.sub(lambda m: "x" * len(m.group(0)), lines[offset])
        code = masked.split("#", 1)[0].rstrip()
        if code.strip():
            return start + offset, len(code) + 1
    return start, 1


def _comments(text: str) -> list[ast.Comment]:
    """Comments with their places, for fmt (the parser itself ignores them)."""
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        masked = _STRING_RE.sub(lambda m: " " * len(m.group(0)), line)
        col = masked.find("#")
        if col >= 0:
            out.append(ast.Comment(number, col + 1, line[col:].rstrip(), not line[:col].strip()))
    return out
