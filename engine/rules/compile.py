"""AST -> predicates: plain Python closures over the layouts, no eval of user text.

A predicate takes a Candidate (the native guest layout, the relocated one,
which BARs relocation added) and returns (holds, evidence): the evidence is
the sentence a user reads when the rule fails, e.g. "regs (first memory BAR)
was BAR1, becomes BAR0, added by relocation".
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Callable

from ..model import Bar, BarKind, Device, Platform
from ..relocate import Layout
from ..units import format_size
from . import ast

Evidence = tuple[bool, str]
Predicate = Callable[["Candidate"], Evidence]

_OPS = {"==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le,
        ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class Candidate:
    """What a rule is checked against: the guest's view before and after relocation."""

    native: Layout
    relocated: Layout
    platform: Platform
    strategy: str = "off"

    @property
    def added(self) -> frozenset[int]:
        before = {b.index for b in self.native.bars}
        return frozenset(b.index for b in self.relocated.bars if b.index not in before)

    @property
    def extended(self) -> tuple[int, ...]:
        before = {b.index: b for b in self.native.bars}
        return tuple(b.index for b in self.relocated.bars
                     if b.index in before and before[b.index].size != b.size)


def describe_bar(bar: Bar | None, index: int | None = None) -> str:
    if bar is None:
        return f"BAR{index} is not implemented" if index is not None else "no such BAR"
    if bar.kind is BarKind.IO:
        return f"BAR{bar.index} is I/O" + (f", {format_size(bar.size)}" if bar.size else "")
    width = "64-bit" if bar.is_64bit else "32-bit"
    pre = "prefetchable" if bar.prefetchable else "non-prefetchable"
    return f"BAR{bar.index} is {width} {pre} memory, {format_size(bar.size)}"


def selector_text(selector: ast.Selector) -> str:
    if isinstance(selector, ast.Fixed):
        return f"BAR{selector.index}"
    if isinstance(selector, ast.Ordinal):
        kind = {"memory": "memory", "io": "I/O", "64bit": "64-bit", "prefetchable": "prefetchable"}
        return f"{selector.order} {kind[selector.kind]} BAR"
    if isinstance(selector, ast.Largest):
        return "largest BAR"
    return "BAR holding the MSI-X table"


def resolve(selector: ast.Selector, layout: Layout) -> int | None:
    """The BAR a driver's lookup lands on in this layout (None: it finds none)."""
    if isinstance(selector, ast.Fixed):
        return selector.index
    if isinstance(selector, ast.MsixBar):
        return layout.msix.table_bar if layout.msix else None
    bars = sorted(layout.bars, key=lambda b: b.index)
    if isinstance(selector, ast.Largest):
        return max(bars, key=lambda b: (b.size, -b.index)).index if bars else None
    keep = {"memory": lambda b: not b.is_io, "io": lambda b: b.is_io,
            "64bit": lambda b: b.is_64bit, "prefetchable": lambda b: b.prefetchable}[selector.kind]
    found = [b.index for b in bars if keep(b)]
    if not found:
        return None
    return found[0] if selector.order == "first" else found[-1]


@dataclass(frozen=True)
class CompiledRule:
    name: str
    severity: str
    message: str
    guard: Predicate | None
    check: Predicate
    node: ast.Rule = field(repr=False)


@dataclass(frozen=True)
class Violation:
    ruleset: str
    rule: str
    severity: str
    message: str
    evidence: str
    where: str  # path:line of the rule

    @property
    def rule_id(self) -> str:
        return f"{self.ruleset}/{self.rule}"


@dataclass(frozen=True)
class CompiledFile:
    """One rule file's roles and rules, compiled in the file's own scope."""

    name: str
    path: str
    roles: dict[str, ast.Selector]
    rules: tuple[CompiledRule, ...]

    def evaluate(self, candidate: Candidate, trace: list[str] | None = None) -> list[Violation]:
        out = []
        if trace is not None:
            for role, selector in self.roles.items():
                before = resolve(selector, candidate.native)
                after = resolve(selector, candidate.relocated)
                trace.append(f"  role {role} = {selector_text(selector)}: native"
                             f" {_bar_name(before)}, relocated {_bar_name(after)}")
        for rule in self.rules:
            where = f"{rule.node.span.path}:{rule.node.span.line}"
            if rule.guard is not None:
                applies, why = rule.guard(candidate)
                if not applies:
                    if trace is not None:
                        trace.append(f"  rule {rule.name}: does not apply ({why})")
                    continue
            holds, evidence = rule.check(candidate)
            if trace is not None:
                state = "holds" if holds else f"VIOLATED -> {rule.severity}"
                trace.append(f"  rule {rule.name} ({where}): {state}: {evidence}")
            if not holds:
                out.append(Violation(self.name, rule.name, rule.severity, rule.message, evidence, where))
        return out


def _bar_name(index: int | None) -> str:
    return "none" if index is None else f"BAR{index}"


class _Compiler:
    def __init__(self, roles: dict[str, ast.Selector]):
        self.roles = roles

    def ref_index(self, ref: ast.Ref, layout: Layout) -> int | None:
        if ref.bar is not None:
            return ref.bar
        return resolve(self.roles[ref.role], layout)

    def ref_name(self, ref: ast.Ref) -> str:
        if ref.bar is not None:
            return ref.text
        return f"{ref.text} ({selector_text(self.roles[ref.role])})"

    def layout(self, ref: ast.Ref, c: Candidate) -> Layout:
        return c.native if ref.native else c.relocated

    def cond(self, node: ast.Cond) -> Predicate:
        return getattr(self, "c_" + type(node).__name__)(node)

    def c_AnyOf(self, node: ast.AnyOf) -> Predicate:
        parts = [self.cond(i) for i in node.items]

        def any_of(c: Candidate) -> Evidence:
            results = [p(c) for p in parts]
            good = [e for ok, e in results if ok]
            return (True, good[0]) if good else (False, "; ".join(e for _, e in results))
        return any_of

    def c_AllOf(self, node: ast.AllOf) -> Predicate:
        parts = [self.cond(i) for i in node.items]

        def all_of(c: Candidate) -> Evidence:
            results = [p(c) for p in parts]
            bad = [e for ok, e in results if not ok]
            return (False, "; ".join(bad)) if bad else (True, "; ".join(e for _, e in results))
        return all_of

    def c_Not(self, node: ast.Not) -> Predicate:
        inner = self.cond(node.item)

        def negate(c: Candidate) -> Evidence:
            ok, evidence = inner(c)
            return (not ok, evidence)
        return negate

    def c_Stays(self, node: ast.Stays) -> Predicate:
        ref, name = node.ref, self.ref_name(node.ref)

        def stays(c: Candidate) -> Evidence:
            before, after = self.ref_index(ref, c.native), self.ref_index(ref, c.relocated)
            if after is not None and after in c.added:
                return False, f"{name} was {_bar_name(before)}, becomes BAR{after}, added by relocation"
            if before != after:
                return False, f"{name} was {_bar_name(before)}, becomes {_bar_name(after)}"
            return True, f"{name} is {_bar_name(before)} before and after"
        return stays

    def c_IsAttr(self, node: ast.IsAttr) -> Predicate:
        ref, attr, negated = node.ref, node.attr, node.negated
        test = {"memory": lambda b: b is not None and not b.is_io,
                "io": lambda b: b is not None and b.is_io,
                "64bit": lambda b: b is not None and b.is_64bit,
                "32bit": lambda b: b is not None and b.kind is BarKind.MEM32,
                "prefetchable": lambda b: b is not None and b.prefetchable,
                "implemented": lambda b: b is not None}[attr]
        wanted = f"{'not ' if negated else ''}{attr}"

        def is_attr(c: Candidate) -> Evidence:
            layout = self.layout(ref, c)
            index = self.ref_index(ref, layout)
            bar = layout.bar(index) if index is not None else None
            ok = test(bar) != negated
            where = "natively " if ref.native else ""
            return ok, f"{self.ref_name(ref)}: {where}{describe_bar(bar, index)} (needs {wanted})"
        return is_attr

    def _size_pred(self, ref: ast.Ref, ok: Callable[[int], bool], wanted: str) -> Predicate:
        def size(c: Candidate) -> Evidence:
            layout = self.layout(ref, c)
            index = self.ref_index(ref, layout)
            bar = layout.bar(index) if index is not None else None
            if bar is None:
                return False, f"{self.ref_name(ref)}: {describe_bar(bar, index)} (needs size {wanted})"
            return ok(bar.size), f"{self.ref_name(ref)}: BAR{bar.index} size {format_size(bar.size)}" \
                                 f" (needs {wanted})"
        return size

    def c_SizeCmp(self, node: ast.SizeCmp) -> Predicate:
        op = _OPS[node.op]
        return self._size_pred(node.ref, lambda s: op(s, node.size), f"{node.op} {format_size(node.size)}")

    def c_SizeIn(self, node: ast.SizeIn) -> Predicate:
        allowed = set(node.sizes)
        text = "one of " + ", ".join(format_size(s) for s in node.sizes)
        return self._size_pred(node.ref, lambda s: s in allowed, text)

    def _compare(self, ref: ast.Ref, same: Callable[[Bar, Bar], bool], what: str,
                 moved: str = "") -> Predicate:
        name = self.ref_name(ref)

        def compare(c: Candidate) -> Evidence:
            before_i, after_i = self.ref_index(ref, c.native), self.ref_index(ref, c.relocated)
            if before_i != after_i or (after_i is not None and after_i in c.added):
                return False, f"{name} was {_bar_name(before_i)}, becomes {_bar_name(after_i)}"
            before = c.native.bar(before_i) if before_i is not None else None
            after = c.relocated.bar(after_i) if after_i is not None else None
            if before is None or after is None:
                ok = before is None and after is None
                return ok, f"{name}: {describe_bar(before, before_i)} natively," \
                           f" {'still' if ok else 'now'} {describe_bar(after, after_i)}"
            if same(before, after):
                return True, f"{name}: {what} unchanged ({describe_bar(after)})"
            detail = moved.format(old=before.size, new=after.size) if moved else ""
            return False, f"{name}: was {describe_bar(before)[len(f'BAR{before.index} is '):]}," \
                          f" becomes {describe_bar(after)[len(f'BAR{after.index} is '):]}{detail}"
        return compare

    def c_Unchanged(self, node: ast.Unchanged) -> Predicate:
        return self._compare(node.ref, lambda a, b: a == b, "BAR")

    def c_SizeUnchanged(self, node: ast.SizeUnchanged) -> Predicate:
        return self._compare(node.ref, lambda a, b: a.size == b.size, "size")

    def c_EndUnchanged(self, node: ast.EndUnchanged) -> Predicate:
        return self._compare(node.ref, lambda a, b: a.size == b.size, "end",
                             moved="; registers addressed from its end move from {old:#x} to {new:#x},"
                                   " into the half QEMU fills with MSI-X")

    def c_NoBarAdded(self, node: ast.NoBarAdded) -> Predicate:
        below = node.below

        def no_bar_added(c: Candidate) -> Evidence:
            added = sorted(c.added)
            if below is not None:
                limit = self.ref_index(below, self.layout(below, c))
                if limit is None:
                    return True, f"{self.ref_name(below)} resolves to no BAR"
                added = [i for i in added if i < limit]
                scope = f" below {self.ref_name(below)} (BAR{limit})"
            else:
                scope = ""
            if added:
                return False, f"relocation adds BAR{added[0]}{scope}"
            return True, f"no BAR added{scope}"
        return no_bar_added

    def c_NoBarExtended(self, node: ast.NoBarExtended) -> Predicate:
        def no_bar_extended(c: Candidate) -> Evidence:
            before = {b.index: b for b in c.native.bars}
            grown = [(i, before[i].size, c.relocated.bar(i).size) for i in c.extended]
            if grown:
                i, old, new = grown[0]
                return False, f"relocation extends BAR{i} from {format_size(old)} to {format_size(new)}"
            return True, "no BAR extended"
        return no_bar_extended

    def c_CountUnchanged(self, node: ast.CountUnchanged) -> Predicate:
        def count_unchanged(c: Candidate) -> Evidence:
            before, after = len(c.native.bars), len(c.relocated.bars)
            return before == after, f"{before} BARs natively, {after} after relocation"
        return count_unchanged


def compile_file(rule_file: ast.RuleFile) -> CompiledFile:
    """Assumes check() passed: every role a rule names exists."""
    roles = {r.name: r.selector for r in rule_file.roles}
    compiler = _Compiler(roles)
    rules = tuple(CompiledRule(r.name, r.severity, r.message.value,
                               compiler.cond(r.guard) if r.guard is not None else None,
                               compiler.cond(r.cond), r)
                  for r in rule_file.rules)
    return CompiledFile(rule_file.name or "?", rule_file.path, roles, rules)


def inline_device(example: ast.Example) -> Device:
    """The device an inline example describes (check() made sure it has an msix line)."""
    from ..model import Msix
    bars = tuple(Bar(b.index, BarKind(b.kind), b.size or 0, prefetchable=b.prefetchable)
                 for b in example.items if isinstance(b, ast.ExampleBar))
    m = next(i for i in example.items if isinstance(i, ast.ExampleMsix))
    return Device(None, bars=tuple(sorted(bars, key=lambda b: b.index)),
                  msix=Msix(m.entries, m.table_bar, m.table_offset, m.pba_bar, m.pba_offset))
