"""AST -> predicates: plain Python closures over the layouts, no eval of user text.

A condition compiles to a pair: a boolean test over a Candidate (the native
guest layout, the relocated one, which BARs relocation added), and the
evidence, the sentence a user reads when the rule fails, e.g. "regs (first
memory BAR) was BAR1, becomes BAR0, added by relocation".  Evidence is only
built for failing rules and traces, so checking stays cheap.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from ..frozen import Frozen, _set
from ..model import Bar, BarKind, Device, Layout, Platform
from ..relocate import RegisterSpan
from ..units import format_size
from . import ast

Test = Callable[["Candidate"], bool]
Explain = Callable[["Candidate"], str]

_OPS = {"==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le,
        ">": operator.gt, "<": operator.lt}


class Candidate:
    """What a rule is checked against: the guest's view before and after relocation.

    Built once per candidate with the lookups every rule needs (BAR by index,
    added and extended BARs, role resolutions), so rules only read them.
    """

    __slots__ = ("native", "relocated", "platform", "strategy", "device", "nat", "rel", "added",
                 "extended", "_roles_nat", "_roles_rel")

    def __init__(self, native: Layout, relocated: Layout, platform: Platform, strategy: str = "off",
                 device: Device | None = None):
        self.native, self.relocated, self.platform, self.strategy = native, relocated, platform, strategy
        self.device = device  # for `device id` and `revision` conditions
        self.nat = {b.index: b for b in native.bars}
        self.rel = {b.index: b for b in relocated.bars}
        self.added = frozenset(i for i in self.rel if i not in self.nat)
        self.extended = tuple(i for i, b in self.rel.items() if i in self.nat and self.nat[i].size != b.size)
        self._roles_nat: dict[str, int | None] = {}
        self._roles_rel: dict[str, int | None] = {}

    def bars(self, native: bool) -> dict[int, Bar]:
        return self.nat if native else self.rel

    def role(self, name: str, resolver: Callable[[Layout], int | None], native: bool) -> int | None:
        """Where role ``name`` lands (``resolver``: compile_selector of its selector); roles
        are named per file, so callers pass a unique name."""
        cache = self._roles_nat if native else self._roles_rel
        try:
            return cache[name]
        except KeyError:
            found = cache[name] = resolver(self.native if native else self.relocated)
            return found


def describe_bar(bar: Bar | None, index: int | None = None) -> str:
    if bar is None:
        return f"BAR{index} is not implemented" if index is not None else "no such BAR"
    if bar.kind is BarKind.IO:
        return f"BAR{bar.index} is I/O" + (f", {format_size(bar.size)}" if bar.size else "")
    width = "64-bit" if bar.is_64bit else "32-bit"
    pre = "prefetchable" if bar.prefetchable else "non-prefetchable"
    return f"BAR{bar.index} is {width} {pre} memory, {format_size(bar.size)}"


_KIND_WORDS = {"memory": "memory", "io": "I/O", "64bit": "64-bit", "prefetchable": "prefetchable"}
_KIND_TESTS = {"memory": lambda b: not b.is_io, "io": lambda b: b.is_io,
               "64bit": lambda b: b.is_64bit, "prefetchable": lambda b: b.prefetchable}
_NTH = {"first": 0, "second": 1, "third": 2}


def selector_text(selector: ast.Selector) -> str:
    if isinstance(selector, ast.Fixed):
        return f"BAR{selector.index}"
    if isinstance(selector, ast.Ordinal):
        text = f"{selector.order} {_KIND_WORDS[selector.kind]} BAR"
        if (selector.low, selector.high) != (0, 5):
            text += f" among BAR{selector.low}-BAR{selector.high}"
        if selector.size_op:
            text += f" of size {selector.size_op} {format_size(selector.size)}"
        return text
    if isinstance(selector, ast.Largest):
        return "largest BAR"
    return "BAR holding the MSI-X table"


def compile_selector(selector: ast.Selector) -> Callable[[Layout], int | None]:
    """``resolve`` for one selector, specialised once: roles are resolved for every candidate.

    Layout BARs are in index order (the model and the simulator build them so)."""
    if isinstance(selector, ast.Fixed):
        index = selector.index
        return lambda layout: index
    if not isinstance(selector, ast.Ordinal):
        return lambda layout: resolve(selector, layout)
    keep, low, high = _KIND_TESTS[selector.kind], selector.low, selector.high
    op, limit = (_OPS[selector.size_op], selector.size) if selector.size_op else (None, None)
    last, n = selector.order == "last", _NTH.get(selector.order, 0)

    def resolver(layout: Layout) -> int | None:
        seen, found = 0, None
        for b in layout.bars:
            if low <= b.index <= high and keep(b) and (op is None or op(b.size, limit)):
                if last:
                    found = b.index
                elif seen == n:
                    return b.index
                else:
                    seen += 1
        return found
    return resolver


def resolve(selector: ast.Selector, layout: Layout) -> int | None:
    """The BAR a driver's lookup lands on in this layout (None: it finds none)."""
    if isinstance(selector, ast.Fixed):
        return selector.index
    if isinstance(selector, ast.MsixBar):
        return layout.msix.table_bar if layout.msix else None
    bars = sorted(layout.bars, key=lambda b: b.index)
    if isinstance(selector, ast.Largest):
        return max(bars, key=lambda b: (b.size, -b.index)).index if bars else None
    keep = _KIND_TESTS[selector.kind]
    size_ok = (lambda b: True) if not selector.size_op else (
        lambda b, op=_OPS[selector.size_op], n=selector.size: op(b.size, n))
    found = [b.index for b in bars if selector.low <= b.index <= selector.high and keep(b) and size_ok(b)]
    if selector.order == "last":
        return found[-1] if found else None
    n = _NTH[selector.order]
    return found[n] if len(found) > n else None


class CompiledRule(Frozen, unshown=("node",)):
    name: str
    severity: str
    message: str
    guard: tuple[Test, Explain] | None
    check: tuple[Test, Explain]
    node: ast.Rule
    where: str  # path:line of the rule, for reports

    def __init__(self, name: str, severity: str, message: str, guard: tuple[Test, Explain] | None,
                 check: tuple[Test, Explain], node: ast.Rule, where: str = "") -> None:
        _set(self, "name", name)
        _set(self, "severity", severity)
        _set(self, "message", message)
        _set(self, "guard", guard)
        _set(self, "check", check)
        _set(self, "node", node)
        _set(self, "where", where)


class Violation:
    """A broken rule; its evidence sentence is built when first read."""

    __slots__ = ("ruleset", "rule", "severity", "message", "where", "_explain", "_candidate", "_evidence")

    def __init__(self, ruleset: str, rule: str, severity: str, message: str, where: str,
                 explain: Explain, candidate: "Candidate"):
        self.ruleset, self.rule, self.severity, self.message, self.where = ruleset, rule, severity, message, where
        self._explain, self._candidate, self._evidence = explain, candidate, None

    @property
    def evidence(self) -> str:
        if self._evidence is None:
            self._evidence = self._explain(self._candidate)
        return self._evidence

    @property
    def rule_id(self) -> str:
        return f"{self.ruleset}/{self.rule}"

    def __repr__(self) -> str:
        return f"Violation({self.rule_id}, {self.severity})"


class CompiledFile(Frozen):
    """One rule file's roles and rules, compiled in the file's own scope."""

    name: str
    path: str
    roles: dict[str, ast.Selector]
    rules: tuple[CompiledRule, ...]
    registers: tuple[RegisterSpan, ...]  # `registers` statements, for the page analysis

    def __init__(self, name: str, path: str, roles: dict[str, ast.Selector],
                 rules: tuple[CompiledRule, ...],
                 registers: tuple[RegisterSpan, ...] = ()) -> None:
        _set(self, "name", name)
        _set(self, "path", path)
        _set(self, "roles", roles)
        _set(self, "rules", rules)
        _set(self, "registers", registers)

    def evaluate(self, candidate: Candidate, trace: list[str] | None = None) -> list[Violation]:
        out = []
        if trace is not None:
            for role, selector in self.roles.items():
                before = resolve(selector, candidate.native)
                after = resolve(selector, candidate.relocated)
                trace.append(f"  role {role} = {selector_text(selector)}: native"
                             f" {_bar_name(before)}, relocated {_bar_name(after)}")
        for rule in self.rules:
            if rule.guard is not None and not rule.guard[0](candidate):
                if trace is not None:
                    trace.append(f"  rule {rule.name}: does not apply ({rule.guard[1](candidate)})")
                continue
            holds = rule.check[0](candidate)
            if trace is not None:
                state = "holds" if holds else f"VIOLATED -> {rule.severity}"
                trace.append(f"  rule {rule.name} ({rule.where}): {state}: {rule.check[1](candidate)}")
            if not holds:
                out.append(Violation(self.name, rule.name, rule.severity, rule.message, rule.where,
                                     rule.check[1], candidate))
        return out


def _bar_name(index: int | None) -> str:
    return "none" if index is None else f"BAR{index}"


def ids_match(node, device: Device | None) -> bool:
    """A `match id` line or a `device id` condition against a device (None parts match all)."""
    if device is None or device.vendor is None:
        return False
    if node.vendor not in (None, device.vendor):
        return False
    high = node.device_high
    if node.device is not None and high is not None:  # a range, `1af4:1000..107f`
        if device.device is None or not node.device <= device.device <= high:
            return False
    elif node.device not in (None, device.device):
        return False
    if node.has_subsystem:
        return (node.subsystem_vendor in (None, device.subsystem_vendor)
                and node.subsystem_device in (None, device.subsystem_device))
    return True


def class_match(value: int, mask: int | None, with_prog_if: bool, device: Device) -> str | None:
    """The device's class as compared ('0c03', '0c0330') when a `class` test holds, else None.

    A 4-digit class compares base class and subclass; a 6-digit one the programming interface
    too, and never holds for a device whose prog-if the input did not give, unless its mask
    leaves the prog-if out (0xffff00)."""
    if device.class_code is None:
        return None
    if not with_prog_if:
        mask = 0xFFFF if mask is None else mask
        return f"{device.class_code:04x}" if device.class_code & mask == value & mask else None
    mask = 0xFFFFFF if mask is None else mask
    if device.prog_if is None:
        if mask & 0xFF:
            return None
        code, shown = device.class_code << 8, f"{device.class_code:04x}"
    else:
        code = device.class_code << 8 | device.prog_if
        shown = f"{code:06x}"
    return shown if code & mask == value & mask else None


class _Compiler:
    """Each condition becomes (holds, evidence): a fast boolean test, and the sentence
    that explains the result, computed only when a rule fails or a trace is asked for."""

    def __init__(self, roles: dict[str, ast.Selector], scope: str):
        self.roles = roles
        self.scope = scope  # role names are per file: cache them under "file/role"
        self._role_lookup = {name: (scope + name, compile_selector(sel)) for name, sel in roles.items()}

    def index(self, ref: ast.Ref, c: Candidate, native: bool | None = None) -> int | None:
        native = ref.native if native is None else native
        if ref.bar is not None:
            return ref.bar
        key, resolver = self._role_lookup[ref.role]
        return c.role(key, resolver, native)

    def bar(self, ref: ast.Ref, c: Candidate) -> tuple[int | None, Bar | None]:
        i = self.index(ref, c)
        return i, (c.bars(ref.native).get(i) if i is not None else None)

    def name(self, ref: ast.Ref) -> str:
        if ref.bar is not None:
            return ref.text
        return f"{ref.text} ({selector_text(self.roles[ref.role])})"

    def cond(self, node: ast.Cond, negated: bool = False) -> tuple[Test, Explain]:
        """``negated``: the condition sits under an odd number of `not`s, so the evidence
        must say what the rule wants the other way round ("needs not 64bit")."""
        method = getattr(self, "c_" + type(node).__name__)
        if type(node).__name__ in ("AnyOf", "AllOf", "Not", "IsAttr", "SizeCmp", "SizeIn"):
            return method(node, negated)
        return method(node)

    def c_AnyOf(self, node: ast.AnyOf, negated: bool = False):
        parts = [self.cond(i, negated) for i in node.items]
        tests = [t for t, _ in parts]

        def explain(c: Candidate) -> str:
            results = [(t(c), e(c)) for t, e in parts]
            good = [e for ok, e in results if ok]
            return good[0] if good else "; ".join(e for _, e in results)
        return (lambda c: any(t(c) for t in tests)), explain

    def c_AllOf(self, node: ast.AllOf, negated: bool = False):
        parts = [self.cond(i, negated) for i in node.items]
        tests = [t for t, _ in parts]

        def explain(c: Candidate) -> str:
            results = [(t(c), e(c)) for t, e in parts]
            bad = [e for ok, e in results if not ok]
            return "; ".join(bad) if bad else "; ".join(e for _, e in results)
        return (lambda c: all(t(c) for t in tests)), explain

    def c_Not(self, node: ast.Not, negated: bool = False):
        test, explain = self.cond(node.item, not negated)
        return (lambda c: not test(c)), explain

    def c_Stays(self, node: ast.Stays):
        ref, name = node.ref, self.name(node.ref)

        def test(c: Candidate) -> bool:
            after = self.index(ref, c, False)
            return self.index(ref, c, True) == after and after not in c.added

        def explain(c: Candidate) -> str:
            before, after = self.index(ref, c, True), self.index(ref, c, False)
            if after is not None and after in c.added:
                return f"{name} was {_bar_name(before)}, becomes BAR{after}, added by relocation"
            if before != after:
                return f"{name} was {_bar_name(before)}, becomes {_bar_name(after)}"
            return f"{name} is {_bar_name(before)} before and after"
        return test, explain

    def c_IsAttr(self, node: ast.IsAttr, outer_not: bool = False):
        ref, negated = node.ref, node.negated
        has = {"memory": lambda b: b is not None and not b.is_io,
               "io": lambda b: b is not None and b.is_io,
               "64bit": lambda b: b is not None and b.is_64bit,
               "32bit": lambda b: b is not None and b.kind is BarKind.MEM32,
               "prefetchable": lambda b: b is not None and b.prefetchable,
               "implemented": lambda b: b is not None}[node.attr]
        wanted = f"{'not ' if negated != outer_not else ''}{node.attr}"

        def test(c: Candidate) -> bool:
            return has(self.bar(ref, c)[1]) != negated

        def explain(c: Candidate) -> str:
            index, bar = self.bar(ref, c)
            where = "natively " if ref.native else ""
            return f"{self.name(ref)}: {where}{describe_bar(bar, index)} (needs {wanted})"
        return test, explain

    def _size(self, ref: ast.Ref, ok: Callable[[int], bool], wanted: str):
        def test(c: Candidate) -> bool:
            bar = self.bar(ref, c)[1]
            return bar is not None and ok(bar.size)

        def explain(c: Candidate) -> str:
            index, bar = self.bar(ref, c)
            if bar is None:
                return f"{self.name(ref)}: {describe_bar(bar, index)} (needs size {wanted})"
            return f"{self.name(ref)}: BAR{bar.index} size {format_size(bar.size)} (needs {wanted})"
        return test, explain

    def c_SizeCmp(self, node: ast.SizeCmp, negated: bool = False):
        op, size = _OPS[node.op], node.size
        return self._size(node.ref, lambda s: op(s, size),
                          f"{'not ' if negated else ''}{node.op} {format_size(size)}")

    def c_SizeIn(self, node: ast.SizeIn, negated: bool = False):
        allowed = frozenset(node.sizes)
        return self._size(node.ref, allowed.__contains__,
                          f"{'none' if negated else 'one'} of " + ", ".join(format_size(s) for s in node.sizes))

    def _compare(self, ref: ast.Ref, same: Callable[[Bar, Bar], bool], what: str, moved: str = ""):
        name = self.name(ref)

        def pair(c: Candidate):
            before_i, after_i = self.index(ref, c, True), self.index(ref, c, False)
            before = c.nat.get(before_i) if before_i is not None else None
            after = c.rel.get(after_i) if after_i is not None else None
            return before_i, after_i, before, after

        def test(c: Candidate) -> bool:
            before_i, after_i, before, after = pair(c)
            if before_i != after_i or after_i in c.added:
                return False
            if before is None or after is None:
                return before is None and after is None
            return same(before, after)

        def explain(c: Candidate) -> str:
            before_i, after_i, before, after = pair(c)
            added = after_i is not None and after_i in c.added
            if before_i != after_i:
                return (f"{name} was {_bar_name(before_i)}, becomes {_bar_name(after_i)}"
                        + (", added by relocation" if added else ""))
            if added:
                return (f"{name}: BAR{after_i} is added by relocation"
                        f" ({describe_bar(after)}; natively {describe_bar(c.nat.get(after_i), after_i)})")
            if before is None or after is None:
                ok = before is None and after is None
                return (f"{name}: {describe_bar(before, before_i)} natively,"
                        f" {'still' if ok else 'now'} {describe_bar(after, after_i)}")
            if same(before, after):
                return f"{name}: {what} unchanged ({describe_bar(after)})"
            detail = moved.format(old=before.size, new=after.size) if moved else ""
            return (f"{name}: was {_attrs(before)}, becomes {_attrs(after)}{detail}")
        return test, explain

    def c_Unchanged(self, node: ast.Unchanged):
        return self._compare(node.ref, lambda a, b: a == b, "BAR")

    def c_SizeUnchanged(self, node: ast.SizeUnchanged):
        return self._compare(node.ref, lambda a, b: a.size == b.size, "size")

    def c_EndUnchanged(self, node: ast.EndUnchanged):
        return self._compare(node.ref, lambda a, b: a.size == b.size, "end",
                             moved="; its end moves from {old:#x} to {new:#x}: registers the driver"
                                   " addresses from the end move with it, into the half QEMU fills"
                                   " with MSI-X")

    def c_NoBarAdded(self, node: ast.NoBarAdded):
        below = node.below

        def offending(c: Candidate) -> tuple[list[int], int | None]:
            if below is None:
                return sorted(c.added), None
            limit = self.index(below, c, native=True)  # where it was: it may be the added BAR now
            return ([] if limit is None else sorted(i for i in c.added if i < limit)), limit

        def explain(c: Candidate) -> str:
            added, limit = offending(c)
            scope = "" if below is None else f" below {self.name(below)} ({_bar_name(limit)})"
            return f"relocation adds BAR{added[0]}{scope}" if added else f"no BAR added{scope}"
        if below is None:
            return (lambda c: not c.added), explain
        return (lambda c: not offending(c)[0]), explain

    def c_NoBarExtended(self, node: ast.NoBarExtended):
        def explain(c: Candidate) -> str:
            if not c.extended:
                return "no BAR extended"
            i = c.extended[0]
            return (f"relocation extends BAR{i} from {format_size(c.nat[i].size)}"
                    f" to {format_size(c.rel[i].size)}")
        return (lambda c: not c.extended), explain

    def c_Added(self, node: ast.Added):
        ref, name = node.ref, self.name(node.ref)

        def test(c: Candidate) -> bool:
            return self.index(ref, c, False) in c.added

        def explain(c: Candidate) -> str:
            i = self.index(ref, c, False)
            if i is None:
                return f"{name} resolves to no BAR"
            return (f"{name}: BAR{i} added by relocation ({describe_bar(c.rel.get(i))})" if i in c.added
                    else f"{name}: BAR{i} not added by relocation")
        return test, explain

    def c_DeviceId(self, node: ast.DeviceId):
        def test(c: Candidate) -> bool:
            return ids_match(node, c.device)

        wanted = ast.pci_id_text(node.vendor, node.device, node.device_high) + (
            f" subsystem {ast.pci_id_text(node.subsystem_vendor, node.subsystem_device)}"
            if node.has_subsystem else "")

        def explain(c: Candidate) -> str:
            if c.device is None or c.device.vendor is None:
                return f"device ID unknown (rule is for {wanted})"
            return f"device is {c.device.id_text} ({'matches' if test(c) else 'not'} {wanted})"
        return test, explain

    def c_DeviceIdUnknown(self, node: ast.DeviceIdUnknown):
        def test(c: Candidate) -> bool:
            return c.device is None or c.device.vendor is None or c.device.device is None

        def explain(c: Candidate) -> str:
            return "device ID unknown" if test(c) else f"device is {c.device.id_text}"
        return test, explain

    def c_RevisionUnknown(self, node: ast.RevisionUnknown):
        def test(c: Candidate) -> bool:
            return c.device is None or c.device.revision is None

        def explain(c: Candidate) -> str:
            return "revision unknown" if test(c) else f"revision {c.device.revision:#04x}"
        return test, explain

    def c_RevisionCmp(self, node: ast.RevisionCmp):
        op, value = _OPS[node.op], node.value

        def test(c: Candidate) -> bool:
            return c.device is not None and c.device.revision is not None and op(c.device.revision, value)

        def explain(c: Candidate) -> str:
            rev = c.device.revision if c.device is not None else None
            shown = "unknown" if rev is None else f"{rev:#04x}"
            return f"revision {shown} (needs {node.op} {value:#04x})"
        return test, explain

    def c_CountUnchanged(self, node: ast.CountUnchanged):
        def explain(c: Candidate) -> str:
            return f"{len(c.nat)} BARs natively, {len(c.rel)} after relocation"
        return (lambda c: len(c.nat) == len(c.rel)), explain


def _attrs(bar: Bar) -> str:
    return describe_bar(bar)[len(f"BAR{bar.index} is "):]


def compile_file(rule_file: ast.RuleFile) -> CompiledFile:
    """Assumes check() passed: every role a rule names exists."""
    roles = {r.name: r.selector for r in rule_file.roles}
    compiler = _Compiler(roles, f"{rule_file.path}/")
    rules = tuple(CompiledRule(r.name, r.severity, r.message.value,
                               compiler.cond(r.guard) if r.guard is not None else None,
                               compiler.cond(r.cond), r, f"{r.span.path}:{r.span.line}")
                  for r in rule_file.rules)
    name = rule_file.name or "?"
    registers = tuple(RegisterSpan(r.bar, r.start, r.end + 1, r.what.value, name,
                                   r.cite.value if r.cite is not None else "")
                      for r in rule_file.registers)
    return CompiledFile(name, rule_file.path, roles, rules, registers)


def inline_device(example: ast.Example) -> Device:
    """The device an inline example describes (check() made sure it has an msix line)."""
    from ..model import Msix
    bars = tuple(Bar(b.index, BarKind(b.kind), b.size or 0, prefetchable=b.prefetchable)
                 for b in example.items if isinstance(b, ast.ExampleBar))
    m = next(i for i in example.items if isinstance(i, ast.ExampleMsix))
    ids = next((i for i in example.items if isinstance(i, ast.ExampleId)), None)
    rev = next((i for i in example.items if isinstance(i, ast.ExampleRevision)), None)
    return Device(None, vendor=ids.vendor if ids else None, device=ids.device if ids else None,
                  subsystem_vendor=ids.subsystem_vendor if ids else None,
                  subsystem_device=ids.subsystem_device if ids else None,
                  revision=rev.revision if rev else None,
                  bars=tuple(sorted(bars, key=lambda b: b.index)),
                  msix=Msix(m.entries, m.table_bar, m.table_offset, m.pba_bar, m.pba_offset))
