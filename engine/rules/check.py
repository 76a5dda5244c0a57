"""Semantic checks on a parsed rule file: everything the grammar cannot say.

All problems in a file are collected and reported together.  Include-graph
checks (cycles, files outside the rule roots) live in library.py, which sees
all files at once.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import Location, RuleError
from ..model import BAR_SLOTS
from ..strategies import all_names
from ..units import format_size
from . import ast
from .ast import quoted
from ..units import QUOTE_LIMIT

_SOURCE_RE = re.compile(r"^[\w./+-]+\.(c|h):\d+$")
_EXCLUSIVE = [("io", "memory"), ("io", "64bit"), ("io", "32bit"), ("io", "prefetchable"),
              ("64bit", "32bit")]
RESERVED = {"status", "device", "id", "revision", "second", "third", "with", "unknown", "ruleset", "describe", "source", "include", "match", "role", "rule", "example",
            "require", "when", "else", "forbid", "warn", "native", "not", "and", "or", "bar", "size", "in", "is", "stays", "unchanged", "end",
            "no", "added", "below", "extended", "count", "first", "last", "largest", "msix",
            "memory", "io", "64bit", "32bit", "prefetchable", "implemented", "registers", "cite"}


_LISTED = 12  # role names listed in an "unknown role" error

# Lengths past which a value is an error: names appear in every report line that names a
# rule, and texts in every report of a device the rule set covers.
NAME_MAX = 64  # rule set, role and rule names, `match driver/module` names, source functions
TEXT_MAX = {"describe": 2000, "message": 2000, "example title": 200, "source": 500,
            "kernel": 64, "registers": 200, "cite": 500}


def _cut(name: str) -> str:
    """A name as an error message shows it: whole up to ~60 characters, cut after."""
    return name if len(name) <= QUOTE_LIMIT else name[:QUOTE_LIMIT] + "..."


def check(rule_file: ast.RuleFile, stem: str | None = None,
          roots: Sequence[Path] | None = None) -> list[RuleError]:
    """Problems in one file (empty list: none).

    ``roots`` are the rule directories being loaded: example device files must lie in
    them or in the corpus (without ``roots``: in the rule file's own directory)."""
    errors: list[RuleError] = []

    def err(node, message: str, **extra) -> None:
        span = getattr(node, "span", ast.NO_SPAN)
        where = span.location if span is not ast.NO_SPAN else Location(rule_file.path)
        end = (span.end_line, span.end_column) if span is not ast.NO_SPAN else None
        errors.append(RuleError(message, where, end=end, **extra))

    _check_lengths(rule_file, err)
    _check_header(rule_file, stem, err)
    _check_registers(rule_file, err)
    roles = _check_roles(rule_file, err)
    _check_rules(rule_file, roles, err)
    _check_examples(rule_file, err, roots)
    return errors


def _check_lengths(f: ast.RuleFile, err) -> None:
    """Names and texts of a sane length: a 10 MB describe is a mistake, and would be repeated
    in every report."""
    for s in f.statements:
        names = []
        texts = []
        if isinstance(s, (ast.Ruleset, ast.Role, ast.Rule, ast.MatchDriver, ast.MatchModule)):
            names.append((s, s.name))
        if isinstance(s, ast.Describe):
            texts.append(("describe", s.text))
        elif isinstance(s, ast.Rule):
            texts.append(("message", s.message))
        elif isinstance(s, ast.Example):
            texts.append(("example title", s.title))
        elif isinstance(s, ast.Registers):
            texts += [("registers", s.what)] + ([("cite", s.cite)] if s.cite else [])
        elif isinstance(s, ast.Source):
            texts += [("source", s.where)] + ([("kernel", s.kernel)] if s.kernel else [])
            if s.function is not None:
                names.append((s, s.function))
        for node, name in names:
            if len(name) > NAME_MAX:
                err(node, f"name '{_cut(name)}' is {len(name)} characters long; at most {NAME_MAX}")
        for what, text in texts:
            limit = TEXT_MAX[what]
            if len(text.value) > limit:
                err(text if text.span is not ast.NO_SPAN else s,
                    f"{what} text is {len(text.value)} characters long; at most {limit}")


def _check_header(f: ast.RuleFile, stem: str | None, err) -> None:
    rulesets = f.of(ast.Ruleset)
    if not rulesets:
        err(None, "missing 'ruleset NAME' (the name of the rule set, the file name without .rules)")
    for extra in rulesets[1:]:
        err(extra, "a file holds one rule set: second 'ruleset'")
    if rulesets and stem is not None and rulesets[0].name != stem:
        err(rulesets[0], f"rule set '{_cut(rulesets[0].name)}' is in file '{_cut(stem)}.rules': name them alike")
    for extra in f.of(ast.Describe)[1:]:
        err(extra, "second 'describe': join the text into one")
    for extra in f.of(ast.Status)[1:]:
        err(extra, "second 'status': a rule set is mined or reviewed")
    if f.status == "mined":  # drafted from C by barsafe mine, not yet read by a person
        for rule in f.rules:
            if rule.severity == "forbid":
                err(rule, f"rule '{_cut(rule.name)}' says forbid in a mined rule set: a mined rule gives"
                          " at most warn (review it, then say 'status reviewed')")
    if f.matches:  # a driver's rule file must say which code it encodes
        sources = f.of(ast.Source)
        if not sources:
            err(f.matches[0], "a rule file that matches devices must cite its driver source:"
                              " source \"path/file.c:LINE\" function NAME kernel \"6.12\"")
        for s in sources:
            if not _SOURCE_RE.match(s.where.value):
                err(s, f"source {quoted(s.where.value)} must be 'path/file.c:LINE'")
            if s.function is None:
                err(s, "source needs 'function NAME': the C function holding the check")
            if s.kernel is None:
                err(s, "source needs 'kernel \"VERSION\"': the kernel tree the line number is valid for")
    for m in f.of(ast.MatchId):
        if m.vendor is None and m.device is not None:
            err(m, "'match id *:DDDD' matches a device ID of any vendor: name the vendor")
        if m.class_value is not None:
            _check_class(m, m.class_value, m.class_mask, m.class_with_prog_if, m.class_digits, err)
        _check_id_range(m, err)
    for m in f.of(ast.MatchClass):
        _check_class(m, m.value, m.mask, m.with_prog_if, m.digits, err)


def _check_id_range(node, err) -> None:
    """`1af4:1000..107f`: the lower device ID first."""
    if node.device_high is not None and node.device is not None and node.device_high < node.device:
        text = ast.pci_id_text(node.vendor, node.device, node.device_high)
        err(node, f"empty ID range {text}: write the lower device ID first")


def _check_class(node, value: int, mask: int | None, with_prog_if: bool, digits: int, err) -> None:
    """A class in a match line: 4 hex digits (base class, subclass) or 6 (and prog-if)."""
    if digits > 4 and digits != 6 or not with_prog_if and value > 0xFFFF:
        err(node, f"class {value:#x} has {digits or 'more than 4'} hex digits: write 4, base class and"
                  " subclass (e.g. 0x0107), or 6 with the programming interface (e.g. 0x0c0330)")
    elif with_prog_if and mask is not None and mask > 0xFFFFFF:
        err(node, "a 6-digit class (with the programming interface) takes a mask of at most"
                  " 24 bits (e.g. 0xffff00)")
    elif not with_prog_if and mask is not None and mask > 0xFFFF:
        err(node, "a 4-digit class (base class and subclass) takes a mask of at most 16 bits"
                  " (e.g. 0xff00); a 6-digit class compares the programming interface too")


def _check_registers(f: ast.RuleFile, err) -> None:
    """`registers bar0 0x2800..0x28ff "what" cite "FILE:LINE"`: a range, a description, a citation."""
    seen: dict[tuple[int, int, int], ast.Registers] = {}
    for r in f.registers:
        if r.start > r.end:
            err(r, f"empty range {r.start:#x}..{r.end:#x}: write the lower offset first")
        if not r.what.value.strip():
            err(r, "registers need a description: say what they are (\"interrupt-cause registers\")")
        if r.cite is None:
            err(r, "registers need 'cite \"FILE:LINE\"': where the driver defines them (e.g. the"
                   " header's #define)")
        elif not _SOURCE_RE.match(r.cite.value):
            err(r.cite if r.cite.span is not ast.NO_SPAN else r,
                f"cite {quoted(r.cite.value)} must be 'path/file.h:LINE'")
        key = (r.bar, r.start, r.end)
        if key in seen:
            err(r, f"registers bar{r.bar} {r.start:#x}..{r.end:#x} already stated at line"
                   f" {seen[key].span.line}")
        seen.setdefault(key, r)


def _check_roles(f: ast.RuleFile, err) -> dict[str, ast.Role]:
    roles: dict[str, ast.Role] = {}
    for role in f.roles:
        sel = role.selector
        if isinstance(sel, ast.Ordinal) and sel.low > sel.high:
            err(role, f"empty range bar{sel.low}..bar{sel.high}: write the lower BAR first")
        if role.name in roles:
            err(role, f"role '{_cut(role.name)}' already defined at line {roles[role.name].span.line}")
        elif re.fullmatch(r"bar[0-9]+", role.name) or role.name in RESERVED:
            err(role, f"'{_cut(role.name)}' is a reserved word; choose another role name")
        else:
            roles[role.name] = role
    return roles


def _refs(cond: ast.Cond | None) -> Iterator[ast.Ref]:
    for atom in ast.atoms(cond):
        for name in ("ref", "below"):
            ref = getattr(atom, name, None)
            if ref is not None:
                yield ref


def _check_rules(f: ast.RuleFile, roles: dict[str, ast.Role], err) -> None:
    seen: dict[str, ast.Rule] = {}
    bodies: dict[tuple, ast.Rule] = {}
    for rule in f.rules:
        if rule.name in seen:
            err(rule, f"rule '{_cut(rule.name)}' already defined at line {seen[rule.name].span.line}")
        seen.setdefault(rule.name, rule)
        for ref in [*_refs(rule.guard), *_refs(rule.cond)]:
            if ref.role is not None and ref.role not in roles:
                known = ", ".join(_cut(r) for r in sorted(roles)[:_LISTED]) or "none defined"
                known += ", ..." if len(roles) > _LISTED else ""
                # a did-you-mean among a file's few roles (hundreds would make it slow)
                near = difflib.get_close_matches(ref.role, list(roles), n=1) if len(roles) <= 200 else []
                err(ref, f"unknown role '{_cut(ref.role)}' (roles: {known}; or use bar0..bar5)",
                    hint=f"did you mean '{_cut(near[0])}'?" if near else None)
        for atom in [*ast.atoms(rule.cond), *ast.atoms(rule.guard)]:
            if isinstance(atom, ast.DeviceId):
                _check_id_range(atom, err)
            if isinstance(atom, ast.Stays) and atom.ref.bar is not None:
                err(atom, f"'bar{atom.ref.bar} stays' always holds: 'stays' compares where a role"
                          f" resolves; for a fixed BAR use 'unchanged' or an attribute")
            if isinstance(atom, (ast.Stays, ast.Unchanged, ast.SizeUnchanged, ast.EndUnchanged,
                                 ast.Added)) and atom.ref.native:
                err(atom, "'native' compares nothing here: this predicate already compares the"
                          " native and relocated layouts")
        if not rule.message.value.strip():
            err(rule, "empty message: say what breaks in the driver")
        _check_contradiction(rule.cond, err)
        if rule.guard is not None:
            _check_contradiction(rule.guard, err)
        key = (rule.guard, rule.cond)
        if key in bodies:
            other = bodies[key]
            err(rule, f"rule '{_cut(rule.name)}' repeats the condition of rule '{_cut(other.name)}'"
                      f" (line {other.span.line})")
        # Rules contradict when, under the same guard, one requires `not` of the other's
        # condition: two look-ups, not a scan of every earlier rule (quadratic in rules).
        opposites = [(rule.guard, ast.Not(rule.cond))]
        if isinstance(rule.cond, ast.Not):
            opposites.append((rule.guard, rule.cond.item))
        for opposite in opposites:
            other = bodies.get(opposite)
            if other is not None:
                err(rule, f"rule '{_cut(rule.name)}' contradicts rule '{_cut(other.name)}' (line"
                          f" {other.span.line}): no layout satisfies both")
        bodies.setdefault(key, rule)


def _check_contradiction(cond: ast.Cond, err) -> None:
    """`bar0 is io and bar0 is memory` and the like can never hold: say so."""
    if isinstance(cond, ast.Not):
        return  # a contradiction under `not` always holds: odd, but not an error
    if isinstance(cond, ast.AnyOf):
        for item in cond.items:
            _check_contradiction(item, err)
        return
    if not isinstance(cond, ast.AllOf):
        return
    facts: dict[ast.Ref, list[tuple[str, bool]]] = {}
    sizes: dict[ast.Ref, list[ast.SizeCmp]] = {}
    for item in cond.items:
        if isinstance(item, ast.IsAttr):
            facts.setdefault(_bare(item.ref), []).append((item.attr, not item.negated))
        elif isinstance(item, ast.SizeCmp):
            sizes.setdefault(_bare(item.ref), []).append(item)
        else:
            _check_contradiction(item, err)
    for ref, attrs in facts.items():
        held = {a for a, v in attrs if v}
        denied = {a for a, v in attrs if not v}
        clash = held & denied or {f"{a}/{b}" for a, b in _EXCLUSIVE if a in held and b in held}
        if clash:
            err(cond, f"condition can never hold: {_cut(ref.text)} is {' and '.join(sorted(clash))}")
    for ref, cmps in sizes.items():
        low = max((c.size + (c.op == ">") for c in cmps if c.op in (">=", ">", "==")), default=0)
        high = min((c.size - (c.op == "<") for c in cmps if c.op in ("<=", "<", "==")), default=1 << 64)
        if low > high:
            err(cond, f"condition can never hold: no size of {_cut(ref.text)} satisfies all its size tests")


def _bare(ref: ast.Ref) -> ast.Ref:
    return ast.Ref(ref.bar, ref.role, ref.native)


def _check_examples(f: ast.RuleFile, err, roots: Sequence[Path] | None) -> None:
    strategies = set(all_names())
    for ex in f.examples:
        kinds = {type(i) for i in ex.items}
        if ast.Expect not in kinds:
            err(ex, f"example {quoted(ex.title.value)} expects nothing: add 'expect TARGET VERDICT' lines")
        has_device = ast.ExampleDevice in kinds
        if has_device and kinds & {ast.ExampleBar, ast.ExampleMsix, ast.ExampleId, ast.ExampleRevision}:
            err(ex, "an example takes either 'device \"FILE\"' or inline 'id'/'revision'/'bar'/'msix'"
                    " lines, not both")
        if not has_device and ast.ExampleMsix not in kinds:
            err(ex, "an inline example needs an 'msix ENTRIES table barN OFFSET pba barN OFFSET' line")
        seen: dict[str, ast.Expect] = {}
        for item in ex.items:
            if isinstance(item, ast.Expect):
                if item.strategy not in strategies:
                    err(item, f"unknown strategy {quoted(item.strategy)}")
                if item.strategy in seen:
                    err(item, f"second expectation for {item.strategy}")
                seen[item.strategy] = item
            elif isinstance(item, ast.ExampleBar) and item.index >= BAR_SLOTS:
                err(item, "BAR index out of range 0..5")
            elif isinstance(item, ast.ExamplePlatform) and not page_size_ok(item.page_size):
                err(item, f"platform {format_size(item.page_size)}: a host page size is a power"
                          " of two of at least 4K (4K, 16K, 64K)")
            elif isinstance(item, ast.ExampleDevice):
                where = item.path if item.path.span is not ast.NO_SPAN else item
                try:
                    found = locate_device(f.path, item.path.value, roots)
                except DevicePathError as exc:
                    err(where, str(exc), code="example-device")
                else:
                    if found is None:
                        near = _near_device(f.path, item.path.value)
                        err(where, f"example device {quoted(item.path.value)}: no such file next to"
                                   " the rule file or in corpus/devices", code="example-device",
                            hint=f"did you mean {quoted(near)}?" if near else None)
        for kind, word in ((ast.ExamplePlatform, "platform"), (ast.ExampleId, "id"),
                           (ast.ExampleRevision, "revision")):
            extra = [i for i in ex.items if isinstance(i, kind)][1:]
            for item in extra:
                err(item, f"one '{word}' line per example")
        for item in ex.items:
            if isinstance(item, ast.ExampleId) and None in (item.vendor, item.device) + (
                    (item.subsystem_vendor, item.subsystem_device) if item.subsystem_vendor is not None
                    or item.subsystem_device is not None else ()):
                err(item, "an example's id names one device: no '*' (wildcards belong in match lines)")
        if not has_device and ast.ExampleMsix in kinds:
            _check_inline_device(ex, err)



def _check_inline_device(example: ast.Example, err) -> None:
    """The inline layout must be one a device can have (the model's own validation)."""
    from .compile import inline_device
    try:
        inline_device(example)
    except ValueError as exc:
        items = [i for i in example.items if isinstance(i, (ast.ExampleBar, ast.ExampleMsix))]
        culprit = next((i for i in items if _item_invalid(i)), example)
        err(culprit, f"impossible device in example {quoted(example.title.value)}: {exc}")


def _item_invalid(item) -> bool:
    from ..model import Bar, BarKind, Msix
    try:
        if isinstance(item, ast.ExampleBar):
            Bar(item.index, BarKind(item.kind), item.size or 0, prefetchable=item.prefetchable)
        else:
            Msix(item.entries, item.table_bar, item.table_offset, item.pba_bar, item.pba_offset)
    except ValueError:
        return True
    return False


def _near_device(rule_path: str, name: str) -> str | None:
    """The device file name closest to a missing one (a did-you-mean), among the files beside
    the rule file and in corpus/devices, by their names as an example would write them."""
    names: list[str] = []
    for base in device_dirs(rule_path):
        try:
            for n, found in enumerate(base.rglob("*.yaml")):
                if n >= 5000:  # a huge directory: no suggestion is better than a slow check
                    break
                names.append(found.relative_to(base).as_posix())
        except (OSError, ValueError):
            continue
    close = difflib.get_close_matches(name, names, n=1)
    return close[0] if close else None


def warnings(rule_file: ast.RuleFile) -> list[RuleError]:
    """What loads but is probably a mistake (severity warning): a role no rule refers to."""
    used = set()
    for statement in rule_file.statements:
        if not isinstance(statement, ast.Role):
            used.update(_role_names(statement))
    out = []
    for role in rule_file.roles:
        if role.name not in used:
            span = role.span
            out.append(RuleError(f"role '{_cut(role.name)}' is never used: no rule refers to it",
                                 span.location if span is not ast.NO_SPAN else Location(rule_file.path),
                                 end=(span.end_line, span.end_column) if span is not ast.NO_SPAN else None,
                                 hint="use it in a rule, or remove it", code="unused-role",
                                 severity="warning"))
    return out


def _role_names(node) -> Iterator[str]:
    """Every role a statement refers to, found without recursion (a condition may be deep)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Ref):
            if item.role is not None:
                yield item.role
        elif isinstance(item, ast.Node):
            stack.extend(item.__dict__[name] for name in item._fields if name != "span")
        elif isinstance(item, (tuple, list)):
            stack.extend(item)


def page_size_ok(size: int) -> bool:
    """What the model's Platform accepts and the CLI's --page-size asks: a power of two >= 4K."""
    return size >= 4096 and size & (size - 1) == 0


# --- example device files ----------------------------------------------------------------
#
# `device "FILE"` in an example names a file that `barsafe test` reads.  Rule files may come
# from anyone, and barsafe runs as root, so the name may only lead into the corpus or the
# rule directories: no absolute paths, no `..` out of them, no symlink whose target lies
# outside.  check() reports such a name; testing.py looks files up through locate_device()
# too, so a file outside is never read, whether or not check ran (cached rules skip it).

DEVICE_PATH_MAX = 1024


class DevicePathError(ValueError):
    """An example's device file name that may not be used: the message says why."""


def corpus_root() -> Path:
    """The shipped corpus: beside the shipped rules/ (in a checkout and in the package alike)."""
    from .library import DEFAULT_ROOT
    return DEFAULT_ROOT.parent / "corpus"


def device_dirs(rule_path: str) -> list[Path]:
    """Where an example's device file is looked up, in order: beside the rule file, then
    corpus/devices."""
    return [Path(rule_path).parent, corpus_root() / "devices"]


def device_roots(rule_path: str, roots: Sequence[Path] | None = None) -> list[Path]:
    """The directories an example may read from, symlinks resolved: the corpus and the rule
    roots (without roots: the rule file's own directory)."""
    given = list(roots) if roots else [Path(rule_path).parent]
    return [Path(os.path.realpath(p)) for p in (corpus_root(), *given)]


def locate_device(rule_path: str, name: str, roots: Sequence[Path] | None = None) -> Path | None:
    """The file (symlinks resolved) an example's `device "NAME"` reads; None when none of the
    places holds it.  DevicePathError when the name may not be used at all."""
    if not name.strip():
        raise DevicePathError("example device: empty file name")
    if len(name) > DEVICE_PATH_MAX:
        raise DevicePathError(f"example device: file name longer than {DEVICE_PATH_MAX} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DevicePathError(f"example device {quoted(name)}: control character in the file name")
    if os.path.isabs(name):
        raise DevicePathError(f"example device {quoted(name)}: an absolute path; name a file"
                              " relative to the rule file or to corpus/devices")
    allowed = device_roots(rule_path, roots)
    inside = False
    for base in device_dirs(rule_path):
        candidate = base / name
        try:
            target = Path(os.path.realpath(candidate))
            present = os.path.lexists(candidate)
        except (OSError, ValueError) as exc:
            raise DevicePathError(f"example device {quoted(name)}: cannot be looked up ({exc})") from None
        if not any(target.is_relative_to(root) for root in allowed):
            if present:  # a file or a link (dangling too: its target may appear later)
                raise DevicePathError(f"example device {quoted(name)} leads outside the corpus and"
                                      f" the rule directories (to {quoted(str(target))})")
            continue
        inside = True
        if target.is_file():
            return target
    if not inside:
        raise DevicePathError(f"example device {quoted(name)} leads outside the corpus and the"
                              f" rule directories ({', '.join(map(str, allowed))})")
    return None
