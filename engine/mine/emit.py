"""Facts -> rule AST: one rule file per driver, `status mined`, every rule at most `warn`.

The rules say what the code depends on, in the language's own terms:

  ordinal  `role r = first memory bar [in barL..barH]`, `require r stays`
  fixed    the driver uses BAR n by index: `require not barN added` (a BAR QEMU adds in
           an empty slot would be taken for the device's own)
  flag     the answer of the driver's test must not change:
           `require native barN is A and barN is A or native barN is not A and barN is not A`
  size     likewise for a comparison with a constant: `native barN size OP C` must equal
           `barN size OP C`; with something not constant: `barN size unchanged`
  derived  something is computed from the length: `barN size unchanged`
  mask     the set of memory BARs is compared: `no bar added`
  extent   the length of a BAR chosen at run time is used: `no bar extended`

Each rule's message names the function and file:line, and the file's `source`
lines cite every place with the kernel version.  The AST is written with the
rule language's own formatter (engine/rules/fmt.py), so a mined file reads back
through the same parser and checker as a reviewed one.
"""

from __future__ import annotations

import re

from ..rules import ast
from ..rules.fmt import fmt
from .facts import Dependency, Driver, Place

MAX_LINE = 70


def _name(text: str) -> str:
    """A rule set or role name the language accepts."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", text)
    if not re.match(r"[A-Za-z_]", name):
        name = "d_" + name
    return name


def ruleset_name(driver: Driver) -> str:
    """`<driver>-mined`: never the name of a reviewed set, which `--rules` would replace."""
    return _name(driver.name) + "-mined"


def _ref(bar: int, native: bool = False) -> ast.Ref:
    return ast.Ref(bar=bar, native=native)


def _pieces(message: str) -> tuple[str, ...]:
    words = message.split(" ")
    pieces, current = [], ""
    for w in words:
        if current and len(current) + 1 + len(w) > MAX_LINE:
            pieces.append(current + " ")
            current = w
        else:
            current = f"{current} {w}" if current else w
    pieces.append(current)
    return tuple(pieces)


def _text(message: str) -> ast.Text:
    return ast.Text(message, _pieces(message))


class _Builder:
    def __init__(self, driver: Driver, kernel: str):
        self.driver = driver
        self.kernel = kernel
        self.statements: list = []
        self.comments: list[ast.Comment] = []
        self.line = 1
        self.rule_names: set[str] = set()
        self.bodies: set = set()
        self.roles: dict[tuple, str] = {}

    def span(self, lines: int = 1) -> ast.Span:
        s = ast.Span("<mined>", self.line, 1, self.line + lines - 1, 1)
        self.line += lines + 1
        return s

    def comment(self, text: str) -> None:
        for piece in _pieces(text):
            self.comments.append(ast.Comment(self.line, 1, "# " + piece.rstrip()))
            self.line += 1

    def add(self, node_type, *args, lines: int = 1, **kw) -> None:
        self.statements.append(node_type(*args, span=self.span(lines), **kw))

    def rule(self, name: str, cond: ast.Cond, message: str, why: str, guard: ast.Cond | None = None) -> None:
        if (guard, cond) in self.bodies:
            return
        self.bodies.add((guard, cond))
        base, n = name, 2
        while name in self.rule_names:
            name, n = f"{base}-{n}", n + 1
        self.rule_names.add(name)
        self.comment(why)
        self.add(ast.Rule, name, guard, cond, "warn", _text(message), lines=4)

    def role(self, dep: Dependency) -> str:
        key = (dep.order, dep.attr, dep.low, dep.high, dep.op, dep.value)
        if key not in self.roles:
            kind = {"memory": "mem", "io": "io", "64bit": "mem64", "prefetchable": "pf"}[dep.attr]
            name = f"{dep.order}_{kind}" + (f"_{dep.low}_{dep.high}" if (dep.low, dep.high) != (0, 5) else "")
            if dep.op is not None:
                name += f"_{_OPS[dep.op]}_{dep.value}"
            self.roles[key] = name
            self.add(ast.Role, name, ast.Ordinal(dep.order, dep.attr, dep.low, dep.high,
                                                 dep.op, dep.value))
        return self.roles[key]


_SAME_ANSWER = {"!=": "==", "<": ">=", ">": "<="}
_OPS = {">=": "ge", ">": "gt", "<=": "le", "<": "lt", "==": "eq", "!=": "ne"}


def _grouped(deps: list[Dependency]) -> dict[tuple, list[Dependency]]:
    out: dict[tuple, list[Dependency]] = {}
    filtered = {(d.place, d.order, d.attr) for d in deps if d.kind == "ordinal" and d.op is not None}
    filtered_loops = {(d.place.file, d.place.function, d.order, d.attr) for d in deps
                      if d.kind == "ordinal" and d.op is not None}
    for d in deps:
        if d.kind == "ordinal" and d.op is None and \
                (d.place.file, d.place.function, d.order, d.attr) in filtered_loops:
            continue  # the same scan with its size filter says more
        if d.kind == "fixed":
            key = ("fixed", d.bar)
        elif d.kind == "flag":
            key = ("flag", d.bar, d.attr)
        elif d.kind == "size":  # `len != C` and `len == C` change answer together
            key = ("size", d.bar, _SAME_ANSWER.get(d.op, d.op), d.value)
        elif d.kind == "derived":
            key = ("derived", d.bar)
        elif d.kind == "ordinal":
            key = ("ordinal", d.order, d.attr, d.low, d.high, d.op, d.value)
        elif d.kind == "mask":
            key = ("mask",)
        else:
            key = (d.kind,)
        out.setdefault(key, []).append(d)
    return out


def _cited(deps: list[Dependency], limit: int = 3) -> str:
    """`f (file.c:12, 15), g (other.c:40)`: the functions and lines the rule comes from."""
    lines: dict[tuple[str, str], list[int]] = {}
    for d in deps:
        found = lines.setdefault((d.place.function or "?", d.place.file.rsplit("/", 1)[-1]), [])
        if d.place.line not in found:
            found.append(d.place.line)
    parts = [f"{fn} ({name}:{', '.join(map(str, sorted(ls)[:4]))})" for (fn, name), ls in lines.items()]
    shown = ", ".join(parts[:limit])
    return shown + (f" and {len(parts) - limit} more" if len(parts) > limit else "")


_ORDER_RANK = {"first": 0, "second": 1, "third": 2, "last": 3}


def class_of(pid) -> tuple[int, int | None, bool] | None:
    """An ID entry's class test as a `match` line writes it: (value, mask or None for all
    digits, with prog-if), or None when the entry tests no class (a class mask of 0).

    The kernel compares ``(id->class ^ dev_id->class) & id->class_mask`` over the 24-bit class
    (Linux 6.12.117 drivers/pci/pci.h:318 pci_match_one_id).  A mask that reads the programming
    interface (PCI_DEVICE_CLASS(PCI_CLASS_SERIAL_USB_XHCI, ~0)) gives six digits, `class
    0x0c0330`; one that leaves it out (0xffff00) four, `class 0x0c03`."""
    mask = (pid.class_mask or 0) & 0xFFFFFF
    if pid.class_code is None or not mask:
        return None
    code = pid.class_code & 0xFFFFFF
    if mask & 0xFF:
        return code, None if mask == 0xFFFFFF else mask, True
    return code >> 8, None if mask >> 8 == 0xFFFF else mask >> 8, False


def citations(driver: Driver, groups: dict | None = None) -> list:
    """The places the file's `source` lines cite, one per function (each rule's message gives
    its lines): probe, the functions the dependencies are in, the ID table.  Empty for a
    driver with neither probe nor ID table (drivers/pci/pci-driver.c's placeholder "compat"):
    it drives no device, and a rule file cannot cite it."""
    cited: list = []
    if driver.probe:
        cited.append(driver.probe)
    for deps in (groups if groups is not None else _grouped(driver.dependencies)).values():
        cited.append(deps[0].place)
    if driver.id_table and driver.ids:
        cited.append(Place(driver.place.file, driver.ids[0].line, driver.id_table))
    out, seen = [], set()
    for place in cited:
        if (place.file, place.function) not in seen and place.function:
            seen.add((place.file, place.function))
            out.append(place)
    return out


def build(driver: Driver, kernel: str) -> ast.RuleFile:
    """The mined rule file for one driver."""
    b = _Builder(driver, kernel)
    b.add(ast.Ruleset, ruleset_name(driver))
    b.add(ast.Status, "mined")
    probe = f", probe {driver.probe.function}" if driver.probe else ""
    b.add(ast.Describe, _text(f"mined by barsafe mine from Linux {kernel}: struct pci_driver"
                              f" {driver.variable} ({driver.place.where}{probe}); not reviewed"))
    groups = _grouped(driver.dependencies)
    for place in citations(driver, groups):
        b.add(ast.Source, ast.Text(place.where), place.function, ast.Text(kernel))
    if driver.module:
        b.add(ast.MatchModule, driver.module)
    if driver.name != driver.module and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", driver.name):
        b.add(ast.MatchDriver, driver.name)
    seen_ids = set()
    for pid in driver.ids:
        cls = class_of(pid)
        if pid.vendor is None and pid.device is None:
            if cls is not None and ("class", cls) not in seen_ids:
                seen_ids.add(("class", cls))
                b.add(ast.MatchClass, cls[0], cls[1], with_prog_if=cls[2])
            continue  # without a class test: any device, which says nothing
        if pid.vendor is None:
            continue  # any vendor, one device: the language does not say that
        sub = pid.subvendor is not None or pid.subdevice is not None
        key = (pid.vendor, pid.device, pid.subvendor, pid.subdevice, cls) if sub else (
            pid.vendor, pid.device, cls)
        if key in seen_ids:
            continue
        seen_ids.add(key)
        b.add(ast.MatchId, pid.vendor, pid.device, pid.subvendor if sub else None,
              pid.subdevice if sub else None, sub, **({} if cls is None else {
                  "class_value": cls[0], "class_mask": cls[1], "class_with_prog_if": cls[2]}))

    def order_key(item):
        key = item[0]
        return (["ordinal", "mask", "fixed", "flag", "size", "derived", "extent"].index(key[0]),
                tuple(_ORDER_RANK.get(k, 9) if isinstance(k, str) and k in _ORDER_RANK else
                      (k if isinstance(k, int) else -1 if k is None else 0) for k in key[1:]))

    for key, deps in sorted(groups.items(), key=order_key):
        first = deps[0]
        where = _cited(deps)
        kind = key[0]
        if kind == "ordinal":
            role = b.role(first)
            within = f" among BAR{first.low}-BAR{first.high}" if (first.low, first.high) != (0, 5) else ""
            note = f"; {first.detail}" if first.detail and "mask" in first.detail else ""
            b.rule(f"{role.replace('_', '-')}-stays", ast.Stays(ast.Ref(role=role)),
                   f"mined: {where} takes the {first.order} {first.attr} BAR{within} ({first.api});"
                   f" a BAR added in front of it changes which BAR that is",
                   f"{first.api}: {first.detail}{note}" if first.detail else first.api)
        elif kind == "mask":
            b.rule("memory-bar-set-compared", ast.NoBarAdded(),
                   f"mined: {where} compares the set of memory BARs ({first.detail or first.api});"
                   f" an added BAR changes it",
                   f"{first.api} {first.detail}".strip())
        elif kind == "fixed":
            bar = key[1]
            uses = sorted({d.api for d in deps})
            b.rule(f"bar{bar}-used-by-index", ast.Not(ast.Added(_ref(bar))),
                   f"mined: {where} uses BAR{bar} by its index ({', '.join(uses[:4])}); a BAR QEMU"
                   f" adds in that slot would be taken for the device's own",
                   f"BAR{bar} by index: {', '.join(uses)}")
        elif kind == "flag":
            bar, attr = key[1], key[2]
            both = ast.AllOf((ast.IsAttr(_ref(bar, True), attr), ast.IsAttr(_ref(bar), attr)))
            neither = ast.AllOf((ast.IsAttr(_ref(bar, True), attr, True), ast.IsAttr(_ref(bar), attr, True)))
            b.rule(f"bar{bar}-{attr}-test", ast.AnyOf((both, neither)),
                   f"mined: {where} tests whether BAR{bar} is {attr}; relocation must not change"
                   f" the answer", f"{first.api} tests {attr} on BAR{bar}")
        elif kind == "size":
            bar, op, value = key[1], key[2], key[3]
            if op is None or value is None:
                b.rule(f"bar{bar}-size-compared", ast.SizeUnchanged(_ref(bar)),
                       f"mined: {where} compares BAR{bar}'s length with a value the miner could not"
                       f" resolve; a changed length may change the outcome",
                       f"{first.api}: comparison with a value not constant")
                continue
            if value < 0 or value >= 1 << 62:
                continue
            native = ast.SizeCmp(_ref(bar, True), op, value)
            now = ast.SizeCmp(_ref(bar), op, value)
            cond = ast.AnyOf((ast.AllOf((native, now)), ast.AllOf((ast.Not(native), ast.Not(now)))))
            b.rule(f"bar{bar}-size-test", cond,
                   f"mined: {where} tests len(BAR{bar}) {op} {value:#x}; relocation must not change"
                   f" the answer", f"{first.api} {op} {value:#x}" + (f" ({first.detail})" if first.detail else ""))
        elif kind == "derived":
            bar = key[1]
            what = sorted({d.detail for d in deps if d.detail})
            b.rule(f"bar{bar}-length-used", ast.SizeUnchanged(_ref(bar)),
                   f"mined: {where} computes from BAR{bar}'s length"
                   f" ({'; '.join(what[:2]) or first.api}); extending BAR{bar} changes that value",
                   f"length of BAR{bar} used: {'; '.join(what) or first.api}")
        elif kind == "extent":
            b.rule("length-of-runtime-bar-used", ast.NoBarExtended(),
                   f"mined: {where} uses the length of a BAR whose index it reads at run time"
                   f" ({first.detail}); extending that BAR changes it",
                   f"{first.api}: {first.detail}")
    if driver.unresolved:
        b.comment(f"unresolved ({len(driver.unresolved)}): " + "; ".join(
            f"{u.what} {u.expression} at {u.place.where}" for u in driver.unresolved[:5]))
    return ast.RuleFile(f"{ruleset_name(driver)}.rules", tuple(b.statements), tuple(b.comments))


def render(driver: Driver, kernel: str) -> str:
    return fmt(build(driver, kernel))
