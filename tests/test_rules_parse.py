"""The rule language's parser and formatter: shipped files, generated files, fuzzed files, messages.

Generated files are built together with the AST they must parse to, so the
parser is checked against an independent expectation, not only against fmt.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.errors import RuleErrors
from engine.rules import ast
from engine.rules.check import RESERVED, check
from engine.rules.fmt import fmt
from engine.rules.parse import GRAMMAR, STATEMENT_KEYWORDS, parse
from engine.units import format_size, parse_size

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "rules").rglob("*.rules"))
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    """Nothing here may write to ~/.cache (module scope: hypothesis tests may not use function fixtures)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BARSAFE_CACHE_DIR", str(tmp_path_factory.mktemp("barsafe-cache")))
        mp.delenv("BARSAFE_CACHE", raising=False)
        yield


def errors_of(text: str, path: str = "t.rules") -> list:
    with pytest.raises(RuleErrors) as info:
        parse(text, path)
    return info.value.errors


def where(error) -> tuple:
    return (error.location.path, error.location.line, error.location.column)


# --- the shipped rule files ----------------------------------------------------------------

def test_there_are_shipped_rule_files():
    assert {p.name for p in SHIPPED} >= {"generic.rules", "mpt3sas.rules", "tsi721.rules"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_file_parses_and_round_trips_through_fmt(path):
    text = path.read_text()
    parsed = parse(text, str(path))
    assert parsed.name == path.stem
    assert parsed.rules and parsed.examples
    formatted = fmt(parsed)
    again = parse(formatted, str(path))
    assert again == parsed
    assert again.statements == parsed.statements
    assert fmt(again) == formatted
    for comment in parsed.comments:  # every comment survives
        assert comment.text in formatted


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.stem in ("generic", "mpt3sas", "tsi721")],
                         ids=lambda p: p.name)
def test_shipped_file_is_already_canonical(path):
    # `barsafe fmt --check` on the shipped rules must pass.
    assert fmt(parse(path.read_text(), str(path))) == path.read_text()


def test_spans_are_excluded_from_equality_but_kept():
    a = parse("ruleset x\nrole r = bar0\n", "a.rules")
    b = parse("\n\n  ruleset   x\n\n\nrole   r=bar0\n", "b.rules")
    assert a == b
    assert a.roles[0].span.line == 2 and b.roles[0].span.line == 6
    assert b.roles[0].span.path == "b.rules"


# --- generated valid files ------------------------------------------------------------------

GRAMMAR_WORDS = set(re.findall(r'"([A-Za-z0-9_-]+)"', GRAMMAR.read_text()))
STRATEGY_WORDS = {"off", "qemu-rfc", "reverse", "extend-only", "cloud-hypervisor", "qemu"}
KEYWORDS = GRAMMAR_WORDS | RESERVED | STRATEGY_WORDS | set(STATEMENT_KEYWORDS)
# A name that starts with a statement keyword and '-' or '.' (rule-x) is cut off at the start of
# a line by the statement splitter: a known engine bug, tested on its own below.
_KEYWORD_PREFIX = re.compile(r"(" + "|".join(STATEMENT_KEYWORDS) + r")\b")


def _usable(name: str) -> bool:
    return name not in KEYWORDS and not re.fullmatch(r"bar[0-9]+", name) \
        and not _KEYWORD_PREFIX.match(name)


names = st.from_regex(r"[A-Za-z_][a-z0-9_]{0,6}(-[a-z0-9_]{1,3})?", fullmatch=True).filter(_usable)
modnames = st.from_regex(r"[a-z0-9_][a-z0-9_.-]{0,8}", fullmatch=True).filter(_usable)
# Printable text for strings and comments: no line separators of any kind (see the \f bug below).
chars = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), max_codepoint=0x2FFF)
comment_bodies = st.text(chars, max_size=30)


class Doc:
    """A generated file: tokens (with where comments may go), the AST it must give, its comments."""

    def __init__(self):
        self.statements: list = []
        self.chunks: list[tuple[list[str], bool]] = []  # (tokens, comments allowed inside)


@st.composite
def strings(draw) -> tuple[str, str]:
    """(source text of one "string" token, its value): escapes for quote and backslash, and
    sometimes a needless escape of an ordinary character."""
    value = draw(st.text(chars, max_size=20))
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif draw(st.integers(0, 9)) == 0:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"', value


@st.composite
def texts(draw, max_pieces: int = 3) -> tuple[list[str], ast.Text]:
    pieces = draw(st.lists(strings(), min_size=1, max_size=max_pieces))
    return [p[0] for p in pieces], ast.Text("".join(p[1] for p in pieces))


@st.composite
def sizes(draw) -> tuple[str, int]:
    suffix = draw(st.sampled_from(["", "K", "M", "G", "T"]))
    # any number: fmt writes 1024G as "1T" and 1024T as "1024T", both words of the grammar
    number = draw(st.integers(0, 99999))
    zeros = "0" * draw(st.integers(0, 1))
    token = zeros + str(number) + suffix
    return token, parse_size(token)


@st.composite
def hexes(draw, digits: int = 5) -> tuple[str, int]:
    token = "0x" + draw(st.from_regex(rf"[0-9a-fA-F]{{1,{digits}}}", fullmatch=True))
    return token, int(token, 16)


@st.composite
def hex_digits(draw, digits: int) -> tuple[str, int]:
    token = "0x" + draw(st.from_regex(rf"[0-9a-fA-F]{{{digits}}}", fullmatch=True))
    return token, int(token, 16)


@st.composite
def hex_bytes(draw) -> tuple[str, int]:
    """A revision: one or two hex digits, either case (fmt writes two, lower case)."""
    token = "0x" + draw(st.from_regex(r"[0-9a-fA-F]{1,2}", fullmatch=True))
    return token, int(token, 16)


@st.composite
def pci_ids(draw) -> tuple[str, int | None, int | None]:
    part = st.one_of(st.just("*"), st.from_regex(r"[0-9a-fA-F]{4}", fullmatch=True))
    v, d = draw(part), draw(part)
    return f"{v}:{d}", None if v == "*" else int(v, 16), None if d == "*" else int(d, 16)


@st.composite
def ranged_pci_ids(draw) -> tuple[str, int | None, int | None, int | None]:
    """An ID for `match id` / `device id`: sometimes a device range, 1af4:1000..107f."""
    token, v, d = draw(pci_ids())
    if d is None or not draw(st.booleans()):
        return token, v, d, None
    high = draw(st.from_regex(r"[0-9a-fA-F]{4}", fullmatch=True))
    return f"{token}..{high}", v, d, int(high, 16)


@st.composite
def refs(draw, roles: list[str]) -> tuple[list[str], ast.Ref]:
    native = draw(st.booleans())
    if roles and draw(st.booleans()):
        role = draw(st.sampled_from(roles))
        tokens, node = [role], ast.Ref(role=role, native=native)
    else:
        bar = draw(st.integers(0, 5))
        tokens, node = [f"bar{bar}"], ast.Ref(bar=bar, native=native)
    return (["native"] if native else []) + tokens, node


@st.composite
def new_atoms(draw, roles: list[str]) -> tuple[list[str], ast.Cond]:
    """`REF added`, `device id V:D [subsystem V:D]`, `revision OP 0xNN`."""
    kind = draw(st.sampled_from(["added", "device", "revision"]))
    if kind == "device":
        token, v, d, high = draw(ranged_pci_ids())
        if draw(st.booleans()):
            stoken, sv, sd = draw(pci_ids())
            return (["device", "id", token, "subsystem", stoken],
                    ast.DeviceId(v, d, sv, sd, True, device_high=high))
        return ["device", "id", token], ast.DeviceId(v, d, device_high=high)
    if kind == "revision":
        op = draw(st.sampled_from(["==", "!=", ">=", "<=", ">", "<"]))
        token, value = draw(hex_bytes())
        return ["revision", op, token], ast.RevisionCmp(op, value)
    rt, r = draw(refs(roles))  # `native bar0 added` parses; check() rejects it (tested below)
    return [*rt, "added"], ast.Added(r)


@st.composite
def atoms(draw, roles: list[str]) -> tuple[list[str], ast.Cond]:
    kind = draw(st.sampled_from(["stays", "is", "cmp", "in", "unchanged", "size-unchanged",
                                 "end-unchanged", "added", "extended", "count", "new", "new"]))
    if kind == "new":
        return draw(new_atoms(roles))
    if kind == "added":
        if draw(st.booleans()):
            rt, r = draw(refs(roles))
            return ["no", "bar", "added", "below", *rt], ast.NoBarAdded(r)
        return ["no", "bar", "added"], ast.NoBarAdded()
    if kind == "extended":
        return ["no", "bar", "extended"], ast.NoBarExtended()
    if kind == "count":
        return ["bar", "count", "unchanged"], ast.CountUnchanged()
    rt, r = draw(refs(roles))
    if kind == "stays":
        return [*rt, "stays"], ast.Stays(r)
    if kind == "is":
        attr = draw(st.sampled_from(["memory", "io", "64bit", "32bit", "prefetchable", "implemented"]))
        negated = draw(st.booleans())
        return [*rt, "is", *(["not"] if negated else []), attr], ast.IsAttr(r, attr, negated)
    if kind == "cmp":
        op = draw(st.sampled_from(["==", "!=", ">=", "<=", ">", "<"]))
        token, value = draw(sizes())
        return [*rt, "size", op, token], ast.SizeCmp(r, op, value)
    if kind == "in":
        chosen = draw(st.lists(sizes(), min_size=1, max_size=4))
        tokens = [*rt, "size", "in", "{"]
        for i, (token, _) in enumerate(chosen):
            tokens += ([","] if i else []) + [token]
        return tokens + ["}"], ast.SizeIn(r, tuple(v for _, v in chosen))
    if kind == "unchanged":
        return [*rt, "unchanged"], ast.Unchanged(r)
    if kind == "size-unchanged":
        return [*rt, "size", "unchanged"], ast.SizeUnchanged(r)
    return [*rt, "end", "unchanged"], ast.EndUnchanged(r)


def _needs_parens(child: ast.Cond, parent: type) -> bool:
    if parent is ast.Not:
        return isinstance(child, (ast.AnyOf, ast.AllOf))
    if parent is ast.AllOf:
        return isinstance(child, (ast.AnyOf, ast.AllOf))
    return isinstance(child, ast.AnyOf)  # under AnyOf: only another AnyOf would flatten


@st.composite
def conds(draw, roles: list[str], depth: int = 3) -> tuple[list[str], ast.Cond]:
    kind = draw(st.sampled_from(["atom"] * 3 + (["and", "or", "not"] if depth else [])))
    if kind == "atom":
        tokens, node = draw(atoms(roles))
    elif kind == "not":
        inner_t, inner = draw(conds(roles, depth - 1))
        if _needs_parens(inner, ast.Not) or draw(st.integers(0, 4)) == 0:
            inner_t = ["(", *inner_t, ")"]
        tokens, node = ["not", *inner_t], ast.Not(inner)
    else:
        cls, word = (ast.AllOf, "and") if kind == "and" else (ast.AnyOf, "or")
        parts = draw(st.lists(conds(roles, depth - 1), min_size=2, max_size=3))
        tokens = []
        for i, (pt, pn) in enumerate(parts):
            if _needs_parens(pn, cls) or draw(st.integers(0, 4)) == 0:
                pt = ["(", *pt, ")"]
            tokens += ([word] if i else []) + pt
        node = cls(tuple(pn for _, pn in parts))
    return tokens, node


@st.composite
def ordinals(draw) -> tuple[list[str], ast.Ordinal]:
    """`ORDER KIND bar [in barA..barB] [with size OP SIZE]`: the range may be the full one
    (bar0..bar5, which fmt leaves out) or backwards (parses; check() rejects it)."""
    order = draw(st.sampled_from(["first", "second", "third", "last"]))
    kind = draw(st.sampled_from(["memory", "io", "64bit", "prefetchable"]))
    tokens, fields = [order, kind, "bar"], {}
    if draw(st.booleans()):
        low, high = draw(st.integers(0, 5)), draw(st.integers(0, 5))
        if draw(st.integers(0, 4)):
            low, high = min(low, high), max(low, high)
        tokens += ["in", f"bar{low}", "..", f"bar{high}"]
        fields.update(low=low, high=high)
    if draw(st.booleans()):
        op = draw(st.sampled_from(["==", "!=", ">=", "<=", ">", "<"]))
        token, value = draw(sizes())
        tokens += ["with", "size", op, token]
        fields.update(size_op=op, size=value)
    return tokens, ast.Ordinal(order, kind, **fields)


@st.composite
def example_items(draw) -> tuple[list[str], ast.ExampleItem]:
    kind = draw(st.sampled_from(["device", "bar", "msix", "platform", "expect"]))
    if kind == "device":
        s, value = draw(strings())
        return ["device", s], ast.ExampleDevice(ast.Text(value))
    if kind == "bar":
        index = draw(st.integers(0, 5))
        barkind = draw(st.sampled_from(["io", "mem32", "mem64"]))
        size = draw(st.none() | sizes())
        prefetch = draw(st.booleans())
        tokens = ([f"bar{index}"] if draw(st.booleans()) else ["bar", str(index)]) + [barkind]
        tokens += [size[0]] if size else []
        tokens += ["prefetchable"] if prefetch else []
        return tokens, ast.ExampleBar(index, barkind, size[1] if size else None, prefetch)
    if kind == "msix":
        entries = draw(st.integers(0, 4096))
        tb, pb = draw(st.integers(0, 5)), draw(st.integers(0, 5))
        (to_t, to), (po_t, po) = draw(hexes(6)), draw(hexes(6))
        return (["msix", str(entries), "table", f"bar{tb}", to_t, "pba", f"bar{pb}", po_t],
                ast.ExampleMsix(entries, tb, to, pb, po))
    if kind == "platform":
        token, value = draw(sizes())
        noio = draw(st.booleans())
        return ["platform", token, *(["no-io-space"] if noio else [])], ast.ExamplePlatform(value, not noio)
    strategy = draw(st.sampled_from(sorted(STRATEGY_WORDS) + [f"bar{i}" for i in range(6)]))
    verdict = draw(st.sampled_from(["safe", "warn", "forbid", "refused"]))
    return ["expect", strategy, verdict], ast.Expect(strategy, verdict)


@st.composite
def statements(draw, roles: list[str]) -> tuple[list[str], ast.Statement, bool]:
    """(tokens, AST, whether comments may go between its tokens)."""
    kind = draw(st.sampled_from(["ruleset", "describe", "source", "include", "driver", "module",
                                 "id", "class", "registers", "role", "rule", "rule", "rule", "example",
                                 "example"]))
    if kind == "ruleset":
        name = draw(names)
        return ["ruleset", name], ast.Ruleset(name), False
    if kind == "describe":
        pieces, text = draw(texts())
        return ["describe", *pieces], ast.Describe(text), False
    if kind == "source":
        pieces, where_ = draw(texts())
        tokens = ["source", *pieces]
        function = draw(st.none() | names)
        if function:
            tokens += ["function", function]
        kernel = None
        if draw(st.booleans()):
            kpieces, kernel = draw(texts(2))
            tokens += ["kernel", *kpieces]
        return tokens, ast.Source(where_, function, kernel), False
    if kind == "include":
        s, value = draw(strings())
        return ["include", s], ast.Include(ast.Text(value)), False
    if kind in ("driver", "module"):
        name = draw(modnames)
        node = ast.MatchDriver(name) if kind == "driver" else ast.MatchModule(name)
        return ["match", kind, name], node, False
    if kind == "id":
        token, v, d, high = draw(ranged_pci_ids())
        tokens, fields = ["match", "id", token], {"device_high": high}
        if draw(st.booleans()):
            stoken, sv, sd = draw(pci_ids())
            tokens += ["subsystem", stoken]
            fields.update(subsystem_vendor=sv, subsystem_device=sd, has_subsystem=True)
        if draw(st.booleans()):  # `class 0x0300 [mask 0xff00]` or six digits
            six = draw(st.booleans())
            ctoken, value = draw(hex_digits(6)) if six else draw(hexes(4))
            tokens += ["class", ctoken]
            fields.update(class_value=value, class_with_prog_if=six)
            if draw(st.booleans()):
                mtoken, mask = draw(hexes(6 if six else 4))
                tokens += ["mask", mtoken]
                fields["class_mask"] = mask
        return tokens, ast.MatchId(v, d, **fields), False
    if kind == "class":
        six = draw(st.booleans())  # 0x0c0330: with the programming interface
        token, value = draw(hexes(4)) if not six else draw(hex_digits(6))
        if draw(st.booleans()):
            mtoken, mask = draw(hexes(6 if six else 4))
            return (["match", "class", token, "mask", mtoken],
                    ast.MatchClass(value, mask, with_prog_if=six), False)
        return ["match", "class", token], ast.MatchClass(value, with_prog_if=six), False
    if kind == "registers":
        bar = draw(st.integers(0, 5))
        (low_token, low), (high_token, high) = draw(hexes(6)), draw(hexes(6))
        pieces, what = draw(texts())
        tokens = ["registers", f"bar{bar}", low_token, "..", high_token, *pieces]
        cite = None
        if draw(st.booleans()):
            cite_pieces, cite = draw(texts(2))
            tokens += ["cite", *cite_pieces]
        return tokens, ast.Registers(bar, low, high, what, cite), False
    if kind == "role":
        name = draw(names)
        sel = draw(st.sampled_from(["fixed", "ordinal", "ordinal", "largest", "msix"]))
        if sel == "fixed":
            i = draw(st.integers(0, 5))
            return ["role", name, "=", f"bar{i}"], ast.Role(name, ast.Fixed(i)), False
        if sel == "ordinal":
            tokens, selector_ = draw(ordinals())
            return ["role", name, "=", *tokens], ast.Role(name, selector_), True
        if sel == "largest":
            return ["role", name, "=", "largest", "bar"], ast.Role(name, ast.Largest()), False
        return ["role", name, "=", "msix", "bar"], ast.Role(name, ast.MsixBar()), False
    if kind == "rule":
        name = draw(names)
        tokens = ["rule", name, ":"]
        guard = None
        if draw(st.booleans()):
            gt, guard = draw(conds(roles))
            tokens += ["when", *gt]
        ct, cond = draw(conds(roles))
        severity = draw(st.sampled_from(["forbid", "warn"]))
        pieces, message = draw(texts())
        tokens += ["require", *ct, "else", severity, *pieces]
        return tokens, ast.Rule(name, guard, cond, severity, message), True
    pieces, title = draw(texts(2))
    items = draw(st.lists(example_items(), max_size=6))
    tokens = ["example", *pieces, "{"]
    for it, _ in items:
        tokens += it
    tokens.append("}")
    return tokens, ast.Example(title, tuple(n for _, n in items)), True


PUNCT = set("(){}:,=") | {".."}
SEPARATORS = [" ", "  ", "\t", "\n", "\n    ", "\n\n", " \t ", "\n\t"]


@st.composite
def rule_files(draw) -> tuple[str, tuple, list[str]]:
    """(text, the statements it must parse to, comment texts it holds)."""
    roles = draw(st.lists(names, max_size=4, unique=True))
    stmts = draw(st.lists(statements(roles), max_size=10))
    comments: list[str] = []

    def comment() -> str:
        text = ("#" + draw(comment_bodies)).rstrip()
        comments.append(text)
        return text

    out: list[str] = []
    for tokens, _, inside_ok in stmts:
        for _ in range(draw(st.integers(0, 2)) if draw(st.integers(0, 3)) == 0 else 0):
            out.append(draw(st.sampled_from(["", "  ", "\t"])) + comment() + "\n")
        out.append(draw(st.sampled_from(["", "", "  ", "\t"])))
        for i, token in enumerate(tokens):
            if i:
                gap = draw(st.sampled_from(SEPARATORS))
                if token in PUNCT or tokens[i - 1] in PUNCT:
                    gap = draw(st.sampled_from(["", gap]))
                if inside_ok and draw(st.integers(0, 7)) == 0:
                    if draw(st.booleans()):
                        gap = " " + comment() + "\n" + draw(st.sampled_from(["", "    "]))
                    else:
                        gap = "\n" + draw(st.sampled_from(["", "  "])) + comment() + "\n  "
                out.append(gap)
            out.append(token)
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(st.sampled_from([" ", "  ", "\t"])) + comment())
        out.append(draw(st.sampled_from(["\n", "\n\n", " \n"])))
    if draw(st.booleans()):
        out.append(comment() + "\n")
    return "".join(out), tuple(s for _, s, _ in stmts), comments


@SETTINGS
@given(rule_files())
def test_generated_files_parse_to_their_ast_and_fmt_round_trips(generated):
    text, expected, comments = generated
    parsed = parse(text, "gen.rules")
    assert parsed.statements == expected
    formatted = fmt(parsed)
    again = parse(formatted, "gen.rules")
    assert again.statements == parsed.statements
    assert fmt(again) == formatted
    for c in comments:
        assert c in formatted, (c, formatted)


FOCUSED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _canonical_ordinal(o: ast.Ordinal) -> str:
    """How fmt must print an ordinal selector, written out here from the docs' form."""
    text = f"{o.order} {o.kind} bar"
    if (o.low, o.high) != (0, 5):
        text += f" in bar{o.low}..bar{o.high}"
    if o.size_op is not None:
        text += f" with size {o.size_op} {format_size(o.size)}"
    return text


@FOCUSED
@given(ordinals(), st.sampled_from(SEPARATORS), st.booleans(), st.data())
def test_generated_ordinal_selectors_parse_and_print_canonically(generated, gap, tight, data):
    """Also with a comment between two of its tokens: fmt moves it above the role."""
    tokens, expected = generated
    comment_after = data.draw(st.none() | st.integers(0, len(tokens) - 2))
    text = tokens[0]
    for i, (prev, token) in enumerate(zip(tokens, tokens[1:])):
        sep = "" if tight and ".." in (prev, token) else gap
        if i == comment_after:
            sep = " # in the role\n    "
        text += sep + token
    f = parse(f"ruleset t\nrole r = {text}\n", "t.rules")
    assert f.roles[0].selector == expected
    out = fmt(f)
    above = "" if comment_after is None else "# in the role\n"
    assert out == f"ruleset t\n\n{above}role r = {_canonical_ordinal(expected)}\n"
    assert parse(out, "t.rules").statements == f.statements
    assert fmt(parse(out, "t.rules")) == out


def _canonical_atom(c: ast.Cond, tokens: list[str]) -> str:
    if isinstance(c, ast.Added):
        return f"{c.ref.text} added"
    if isinstance(c, ast.DeviceId):  # IDs: four lower-case digits or *, as written
        return " ".join(t.lower() for t in tokens)
    assert isinstance(c, ast.RevisionCmp)
    return f"revision {c.op} 0x{c.value:02x}"


@FOCUSED
@given(new_atoms(["regs", "ctl-2"]), st.sampled_from(SEPARATORS))
def test_generated_new_atoms_parse_and_print_canonically(generated, gap):
    tokens, expected = generated
    text = f"ruleset t\nrole regs = bar1\nrole ctl-2 = bar2\nrule a: require {gap.join(tokens)} else warn \"m\"\n"
    f = parse(text, "t.rules")
    assert f.rules[0].cond == expected
    out = fmt(f)
    assert f"\n    require {_canonical_atom(expected, tokens)}\n    else warn \"m\"\n" in out
    assert parse(out, "t.rules").statements == f.statements
    assert fmt(parse(out, "t.rules")) == out


NEW_RESERVED = ["second", "third", "with", "added", "device", "id", "revision"]


def test_generated_names_avoid_the_new_reserved_words():
    assert set(NEW_RESERVED) <= RESERVED
    assert RESERVED <= KEYWORDS
    assert not [w for w in sorted(RESERVED | GRAMMAR_WORDS) if _usable(w)]
    assert _usable("second_x") and _usable("withal") and _usable("device-2")


# --- the new constructs, one at a time ------------------------------------------------------

def role_of(selector_text: str) -> ast.Role:
    (role,) = parse(f"ruleset t\nrole r = {selector_text}\n", "t.rules").roles
    return role


def fmt_role(selector_text: str) -> str:
    return fmt(parse(f"ruleset t\nrole r = {selector_text}\n", "t.rules")).splitlines()[-1]


@pytest.mark.parametrize("text, node, canonical", [
    ("second memory bar", ast.Ordinal("second", "memory"), "second memory bar"),
    ("third io bar", ast.Ordinal("third", "io"), "third io bar"),
    ("first memory bar in bar0..bar3 with size >= 4K",
     ast.Ordinal("first", "memory", 0, 3, ">=", 4096), "first memory bar in bar0..bar3 with size >= 4K"),
    ("first  memory bar in bar0 .. bar3\n   with size>=4096",
     ast.Ordinal("first", "memory", 0, 3, ">=", 4096), "first memory bar in bar0..bar3 with size >= 4K"),
    ("second 64bit bar in bar2..bar5", ast.Ordinal("second", "64bit", low=2), "second 64bit bar in bar2..bar5"),
    ("last prefetchable bar in bar3..bar3", ast.Ordinal("last", "prefetchable", 3, 3),
     "last prefetchable bar in bar3..bar3"),
    ("third memory bar with size < 1T", ast.Ordinal("third", "memory", size_op="<", size=1 << 40),
     "third memory bar with size < 1T"),
    ("last memory bar with size != 0", ast.Ordinal("last", "memory", size_op="!=", size=0),
     "last memory bar with size != 0"),
    ("first memory bar with size == 1024G", ast.Ordinal("first", "memory", size_op="==", size=1 << 40),
     "first memory bar with size == 1T"),
    # the whole range is the default: same node, and fmt leaves it out
    ("first io bar in bar0..bar5", ast.Ordinal("first", "io"), "first io bar"),
    # backwards: parses (check() rejects it, below) and prints as written
    ("first memory bar in bar4..bar1", ast.Ordinal("first", "memory", 4, 1), "first memory bar in bar4..bar1"),
])
def test_ordinal_selector_parses_and_prints_canonically(text, node, canonical):
    role = role_of(text)
    assert role.selector == node
    assert (role.selector.low, role.selector.high, role.selector.size_op, role.selector.size) == \
        (node.low, node.high, node.size_op, node.size)
    assert fmt_role(text) == f"role r = {canonical}"
    assert role_of(canonical) == role


def test_ordinal_defaults():
    o = ast.Ordinal("first", "memory")
    assert (o.low, o.high, o.size_op, o.size) == (0, 5, None, None)
    assert o != ast.Ordinal("first", "memory", 0, 4)
    assert o != ast.Ordinal("first", "memory", size_op=">=", size=0)


def rule_cond(cond_text: str) -> ast.Cond:
    f = parse(f'ruleset t\nrole regs = bar1\nrule a: require {cond_text} else warn "m"\n', "t.rules")
    return f.rules[0].cond


def fmt_cond(cond_text: str) -> str:
    out = fmt(parse(f'ruleset t\nrole regs = bar1\nrule a: require {cond_text} else warn "m"\n', "t.rules"))
    (line,) = [l for l in out.splitlines() if l.startswith("    require ")]
    return line[len("    require "):]


@pytest.mark.parametrize("text, node, canonical", [
    ("bar4 added", ast.Added(ast.Ref(bar=4)), "bar4 added"),
    ("regs added", ast.Added(ast.Ref(role="regs")), "regs added"),
    ("native bar0 added", ast.Added(ast.Ref(bar=0, native=True)), "native bar0 added"),
    ("not bar5 added", ast.Not(ast.Added(ast.Ref(bar=5))), "not bar5 added"),
    ("device id 1000:*", ast.DeviceId(0x1000, None), "device id 1000:*"),
    ("device id 1DA3:0001", ast.DeviceId(0x1DA3, 0x0001), "device id 1da3:0001"),
    ("device id *:*", ast.DeviceId(None, None), "device id *:*"),
    ("device   id 1000:0097\n  subsystem 1028:1F4A",
     ast.DeviceId(0x1000, 0x0097, 0x1028, 0x1F4A, True), "device id 1000:0097 subsystem 1028:1f4a"),
    ("device id 1000:0097 subsystem *:*", ast.DeviceId(0x1000, 0x0097, None, None, True),
     "device id 1000:0097 subsystem *:*"),
    ("revision >= 0x07", ast.RevisionCmp(">=", 7), "revision >= 0x07"),
    ("revision>=0x7", ast.RevisionCmp(">=", 7), "revision >= 0x07"),
    ("revision == 0xFF", ast.RevisionCmp("==", 0xFF), "revision == 0xff"),
    ("revision < 0x0", ast.RevisionCmp("<", 0), "revision < 0x00"),
    ("revision != 0xa", ast.RevisionCmp("!=", 10), "revision != 0x0a"),
    ("bar0 size >= 1T", ast.SizeCmp(ast.Ref(bar=0), ">=", 1 << 40), "bar0 size >= 1T"),
    ("bar0 size in {1T, 2048G, 0T}", ast.SizeIn(ast.Ref(bar=0), (1 << 40, 2 << 40, 0)),
     "bar0 size in {1T, 2T, 0}"),
    ("device id 1000:0097 and (revision < 0x02 or bar4 added)",
     ast.AllOf((ast.DeviceId(0x1000, 0x97), ast.AnyOf((ast.RevisionCmp("<", 2), ast.Added(ast.Ref(bar=4)))))),
     "device id 1000:0097 and (revision < 0x02 or bar4 added)"),
])
def test_new_condition_parses_and_prints_canonically(text, node, canonical):
    assert rule_cond(text) == node
    assert fmt_cond(text) == canonical
    assert rule_cond(canonical) == node


def test_device_id_without_subsystem_differs_from_one_with_any_subsystem():
    assert rule_cond("device id 1000:0097") != rule_cond("device id 1000:0097 subsystem *:*")
    assert not rule_cond("device id 1000:0097").has_subsystem


def test_new_conditions_work_in_a_guard_and_keep_their_spans():
    text = 'ruleset t\n\nrule a:\n    when device id 1000:0097 and revision >= 0x03\n    require bar4 added\n    else warn "m"\n'
    (rule,) = parse(text, "t.rules").rules
    assert rule.guard == ast.AllOf((ast.DeviceId(0x1000, 0x0097), ast.RevisionCmp(">=", 3)))
    assert rule.cond == ast.Added(ast.Ref(bar=4))
    assert (rule.guard.items[0].span.line, rule.guard.items[0].span.column) == (4, 10)
    assert (rule.guard.items[1].span.line, rule.guard.items[1].span.column) == (4, 34)
    assert (rule.cond.span.line, rule.cond.span.column) == (5, 13)
    assert fmt(parse(text, "t.rules")) == text


@pytest.mark.parametrize("text, column, expected", [
    ("revision >= 0x007", 29, "a hex byte like 0x07"),
    ("revision >= 7", 29, "a hex byte like 0x07"),
    ("revision >= 0x", 29, "a hex byte like 0x07"),
    ("revision 0x07", 26, "a comparison"),
    ("device id 1000", 27, "an ID like 1000:0097"),
    ("device id 10000:0097", 27, "an ID like 1000:0097"),
    ("device 1000:0097", 24, "'id'"),
    ("bar0 size >= 1P", 30, "a size like 64K"),
    ("bar0 size >= 1t", 30, "a size like 64K"),
])
def test_malformed_new_condition_is_a_syntax_error_at_the_token(text, column, expected):
    (e,) = errors_of(f'ruleset t\nrule a: require {text} else warn "m"\n')
    assert where(e) == ("t.rules", 2, column), str(e)
    assert expected in e.message, e.message


@pytest.mark.parametrize("text, column, expected", [
    ("fourth memory bar", 10, "first, second, third or last"),
    ("second largest bar", 17, "memory, io, 64bit or prefetchable"),
    ("first memory bar in bar0..bar6", 36, "bar0..bar5"),
    ("first memory bar in bar0", None, "'..'"),
    ("first memory bar with size 4K", 37, "a comparison"),
    ("first memory bar with size >= 4K in bar0..bar3", 43, "unexpected 'in'"),  # range comes first
    ("bar0 in bar0..bar3", 15, "unexpected 'in'"),  # only ordinal selectors take a range
    ("largest bar with size >= 4K", 22, "unexpected 'with'"),
])
def test_malformed_ordinal_selector_is_a_syntax_error(text, column, expected):
    (e,) = errors_of(f"ruleset t\nrole r = {text}\n")
    assert where(e)[:2] == ("t.rules", 2), str(e)
    if column is not None:
        assert where(e)[2] == column, str(e)
    assert expected in e.message, e.message


# --- check() on the new constructs ------------------------------------------------------------

def check_messages(text: str) -> list[tuple[int, str]]:
    return [(e.location.line, e.message) for e in check(parse(text, "t.rules"), "t")]


def test_check_rejects_a_role_range_written_high_to_low():
    assert check_messages("ruleset t\nrole r = first memory bar in bar3..bar1\n") == [
        (2, "empty range bar3..bar1: write the lower BAR first")]
    assert check_messages("ruleset t\n\nrole r = second io bar in bar5..bar4 with size >= 4K\n") == [
        (3, "empty range bar5..bar4: write the lower BAR first")]


@pytest.mark.parametrize("selector", ["first memory bar in bar1..bar3", "last io bar in bar2..bar2",
                                      "third 64bit bar in bar0..bar5 with size > 1T",
                                      "second prefetchable bar with size == 0"])
def test_check_accepts_ordered_ranges_and_size_filters(selector):
    assert check_messages(f"ruleset t\nrole r = {selector}\n") == []


def test_check_rejects_native_added():
    text = 'ruleset t\nrole regs = bar1\nrule a:\n    require bar0 unchanged\n        and native bar0 added\n    else warn "m"\n'
    assert check_messages(text) == [
        (5, "'native' compares nothing here: this predicate already compares the native and relocated layouts")]
    guard = 'ruleset t\nrole regs = bar1\nrule a: when not native regs added require bar0 unchanged else warn "m"\n'
    assert [m for _, m in check_messages(guard)] == [
        "'native' compares nothing here: this predicate already compares the native and relocated layouts"]


def test_check_accepts_added_device_id_and_revision():
    text = ('ruleset t\nrole regs = first memory bar in bar0..bar3\n'
            'rule a:\n    when device id 1000:* subsystem *:* and revision >= 0x02\n'
            '    require not (bar0 added or regs added)\n    else forbid "m"\n')
    assert check_messages(text) == []


def test_check_reports_an_unknown_role_in_added():
    assert check_messages('ruleset t\nrule a: require ctl added else warn "m"\n') == [
        (2, "unknown role 'ctl' (roles: none defined; or use bar0..bar5)")]


@pytest.mark.parametrize("word", NEW_RESERVED)
def test_check_rejects_a_new_reserved_word_as_a_role_name(word):
    messages = [m for _, m in check_messages(f"ruleset t\nrole {word} = bar0\n")]
    assert messages == [f"'{word}' is a reserved word; choose another role name"]


# --- fuzzing: only RuleErrors, and every error has a place in the file ----------------------

FUZZ_TOKENS = ["rule", "role", "example", "match", "source", "ruleset", "{", "}", '"', "#", "\n", "\r\n",
               "\t", " ", "bar0", "bar9", "(", ")", "not", "and", "or", ":", "=", ",", "native", "0x",
               "5Q", "1T", "99999999999999999999999G", "require", "else", "forbid", "when", "size", "in",
               "id", "*", "include", "expect", "platform", "msix", "table", "pba", "no-io-space",
               "largest", "first", "memory", "bar", "\\", "é", "\x00", "@", "$",
               "second", "third", "last", "..", "bar0..bar3", "with", "added", "device", "revision",
               "0x07", "0x123", "1000:*", "*:*", "subsystem", ">=", "4T"]
SHIPPED_TEXTS = [p.read_text() for p in SHIPPED]


@st.composite
def mutated(draw) -> str:
    text = draw(st.sampled_from(SHIPPED_TEXTS))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "char"]))
        if op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 40)):]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(FUZZ_TOKENS)) + text[i:]
        elif op == "replace":
            text = text[:i] + draw(st.sampled_from(FUZZ_TOKENS)) + text[i + draw(st.integers(1, 8)):]
        else:
            text = text[:i] + draw(st.characters(blacklist_categories=("Cs",))) + text[i + 1:]
    return text


def _assert_only_rule_errors_with_places(text: str) -> None:
    try:
        parse(text, "fuzz.rules")
    except RuleErrors as exc:
        assert exc.errors
        # The parser counts lines as str.splitlines() does (and so does the CLI's source display).
        count = max(1, len(text.splitlines()))
        for e in exc.errors:
            assert e.message
            assert e.location is not None and e.location.path == "fuzz.rules", e
            assert e.location.line is not None and 1 <= e.location.line <= count, (str(e), count)
            if e.location.column is not None:
                assert e.location.column >= 1, str(e)


@SETTINGS
@given(mutated())
def test_mutated_shipped_files_give_only_rule_errors_with_places(text):
    _assert_only_rule_errors_with_places(text)


@SETTINGS
@given(st.one_of(st.text(max_size=200),
                 st.lists(st.sampled_from(FUZZ_TOKENS), max_size=40).map(" ".join),
                 st.lists(st.sampled_from(FUZZ_TOKENS), max_size=60).map("".join)))
def test_random_text_gives_only_rule_errors_with_places(text):
    _assert_only_rule_errors_with_places(text)


# --- specific messages ----------------------------------------------------------------------

def test_missing_colon_after_rule_name_is_reported_at_the_next_token():
    text = 'ruleset t\n\nrule regs-stay\n    require bar0 unchanged\n    else warn "m"\n'
    (e,) = errors_of(text)
    assert "expected ':'" in e.message
    assert "unexpected 'require'" in e.message
    assert where(e) == ("t.rules", 4, 5)


def test_missing_colon_on_one_line():
    (e,) = errors_of('ruleset t\nrule a require bar0 unchanged else warn "m"\n')
    assert "expected ':'" in e.message and where(e) == ("t.rules", 2, 8)


def test_two_syntax_errors_in_one_file_are_both_reported():
    text = ('ruleset t\n'
            'rule a\n'                          # 2: missing ':'
            '    require bar0 unchanged\n'
            '    else warn "m"\n'
            'role r = bar9\n'                   # 5: no such BAR
            'rule b:\n'
            '    require bar0 size >= 4K\n'
            '    else forbid "fine"\n'
            'example "e" {\n'
            '    expect bar7 safe\n'           # 10: no such strategy
            '}\n')
    errors = errors_of(text)
    assert [where(e)[1:] for e in errors] == [(3, 5), (5, 10), (10, 12)]
    assert "expected ':'" in errors[0].message
    assert "unexpected 'bar9'" in errors[1].message and "bar0..bar5" in errors[1].message
    assert "unexpected 'bar7'" in errors[2].message and "a strategy" in errors[2].message


def test_errors_are_sorted_by_place():
    errors = errors_of('ruleset t\nrole a = @\nrole b = $\n')
    assert [where(e) for e in errors] == [("t.rules", 2, 10), ("t.rules", 3, 10)]


def test_unknown_character():
    (e,) = errors_of('ruleset t\nrule a:\n    require bar0 unchanged & bar1 unchanged\n    else warn "m"\n')
    assert e.message == "unexpected character '&'"
    assert where(e) == ("t.rules", 3, 28)


def test_unknown_character_in_an_example_body():
    (e,) = errors_of('ruleset t\nexample "x" {\n    bar0 mem32 4K\n    ? \n}\n')
    assert e.message == "unexpected character '?'" and where(e) == ("t.rules", 4, 5)


@pytest.mark.parametrize("size", ["5Q", "5P", "64k", "4KB"])
def test_bad_size_is_a_syntax_error_at_the_size(size):
    (e,) = errors_of(f'ruleset t\nrule a:\n    require bar0 size >= {size}\n    else warn "m"\n')
    assert f"unexpected {size!r}" in e.message and "a size like 64K" in e.message
    assert where(e) == ("t.rules", 3, 26)


def test_bad_size_in_an_example():
    (e,) = errors_of('ruleset t\nexample "x" {\n    bar1 mem64 5Q\n}\n')
    assert "unexpected '5Q'" in e.message and where(e) == ("t.rules", 3, 16)


def test_unterminated_statement_reports_what_was_expected():
    (e,) = errors_of('ruleset t\nrole r =\n')
    assert e.message.startswith("statement ends too early")
    assert "first, second, third or last" in e.message and where(e)[:2] == ("t.rules", 2)


def test_unterminated_string():
    errors = errors_of('ruleset t\ndescribe "no end\n')
    assert where(errors[0])[:2] == ("t.rules", 2)


def test_error_in_the_first_chunk_before_any_keyword():
    (e,) = errors_of('  garbage here\nruleset t\n')
    assert where(e) == ("t.rules", 1, 3)


def test_comments_are_recorded_with_their_places():
    f = parse('# head\nruleset t  # trailing "q"\ndescribe "a # not a comment"\n', "t.rules")
    assert [(c.line, c.column, c.text, c.own_line) for c in f.comments] == [
        (1, 1, "# head", True), (2, 12, '# trailing "q"', False)]
    assert f.of(ast.Describe)[0].text.value == "a # not a comment"


def test_escapes_in_strings():
    f = parse(r'ruleset t' '\n' r'describe "a \"q\" b\\c \d"' '\n', "t.rules")
    assert f.of(ast.Describe)[0].text.value == 'a "q" b\\c d'
    assert parse(fmt(f), "t.rules") == f


def test_adjacent_strings_are_joined_and_fmt_keeps_the_split():
    f = parse('ruleset t\ndescribe "one"\n  " two"\n', "t.rules")
    assert f.of(ast.Describe)[0].text.value == "one two"
    assert fmt(f) == 'ruleset t\ndescribe "one"\n    " two"\n'


def test_fmt_breaks_long_conditions_before_each_and():
    cond = " and ".join(f"bar{i} size unchanged" for i in range(6))
    f = parse(f'ruleset t\nrule a:\n    require {cond}\n    else warn "m"\n', "t.rules")
    out = fmt(f)
    assert "        and bar5 size unchanged\n" in out
    assert all(len(line) <= 88 for line in out.splitlines())
    assert parse(out, "t.rules") == f


def test_fmt_keeps_needed_parentheses_only():
    f = parse('ruleset t\nrule a: require ((no bar extended or bar1 unchanged)) and not (bar2 is io)'
              ' else warn "m"\n', "t.rules")
    assert "require (no bar extended or bar1 unchanged) and not bar2 is io\n" in fmt(f)


# --- engine bugs (see the report) -----------------------------------------------------------

def test_fmt_of_a_terabyte_size_parses_back():
    f = parse('ruleset t\nrule a:\n    require bar0 size >= 1024G\n    else warn "m"\n', "t.rules")
    assert parse(fmt(f), "t.rules") == f


@pytest.mark.parametrize("text", [
    'ruleset t\ndescribe "a"  # c\n    "b"\n',
    'ruleset t\nmatch module m\nmatch id\n# c\n1000:0097\n',
])
def test_fmt_is_idempotent_with_a_comment_inside_a_multi_line_statement(text):
    once = fmt(parse(text, "t.rules"))
    assert fmt(parse(once, "t.rules")) == once


def test_a_name_starting_with_a_statement_keyword_may_start_a_line():
    text = ('ruleset t\nrole rule-regs = first memory bar\n'
            'rule a:\n    require bar1 unchanged and\n    rule-regs stays\n    else warn "m"\n')
    one_line = text.replace("and\n    rule-regs", "and rule-regs")
    assert parse(text, "t.rules") == parse(one_line, "t.rules")


def test_form_feed_inside_a_string_is_kept():
    f = parse('ruleset t\ndescribe "a\x0cb"\n', "t.rules")
    assert f.of(ast.Describe)[0].text.value == "a\x0cb"


def test_form_feed_in_a_comment_does_not_shift_error_lines():
    errors = errors_of('ruleset t\n# page\x0cbreak\nrule a: require bar0 @ else warn "m"\n')
    # actual: ("t.rules", 3, 1) "unexpected 'b'" (the comment's tail) and ("t.rules", 4, 22)
    assert [where(e) for e in errors] == [("t.rules", 3, 22)]


def test_statement_ends_too_early_points_at_the_statement():
    (e,) = errors_of('ruleset t\nrole r =\n\n# next\nrule a: require bar0 unchanged else warn "m"\n')
    assert where(e) == ("t.rules", 2, 9)


def test_deeply_nested_condition_gives_a_rule_error_or_parses():
    cond = "(" * 250 + "bar0 unchanged" + ")" * 250
    try:
        parse(f'ruleset t\nrule a: require {cond} else warn "m"\n', "t.rules")
    except RuleErrors:
        pass
