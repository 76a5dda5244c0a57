"""How much of the hand-reviewed rules the miner finds on its own.

A rule is reduced to the BAR dependencies its `require` condition names (its `when`
guard when the condition names none):

  ("ordinal", order, kind)  a role resolved by order (`first memory bar`, `second io bar`)
  ("bar", n)                BAR n by index: its type, presence, identity (`bar2 is memory`,
                            `not bar5 added`, `bar0 unchanged`)
  ("size", n)               BAR n's length (`size >= 8K`, `size unchanged`, `end unchanged`)
  ("mask",)                 the set of BARs (`no bar added`, `bar count unchanged`)
  ("extend",)               the length of a BAR not fixed by index (`no bar extended`, a
                            role's size)

A reviewed rule counts as found when the mined rule sets of the same module, all
together, name every dependency the reviewed rule names.  Device ID and revision
conditions select chips; they are not dependencies and are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..rules import ast


def _role_sig(role: ast.Role | None):
    if role is None:
        return None
    sel = role.selector
    if isinstance(sel, ast.Ordinal):
        return ("ordinal", sel.order, sel.kind)
    if isinstance(sel, ast.Fixed):
        return ("bar", sel.index)
    return ("other", type(sel).__name__)


def signatures(rule: ast.Rule, roles: dict[str, ast.Role]) -> set[tuple]:
    out: set[tuple] = set()
    for cond in (rule.cond, rule.guard):
        for atom in ast.atoms(cond):
            ref = getattr(atom, "ref", None)
            if isinstance(atom, ast.NoBarAdded):
                out.add(("mask",) if atom.below is None else
                        _role_sig(roles.get(atom.below.role)) if atom.below.role else ("bar", atom.below.bar))
            elif isinstance(atom, ast.NoBarExtended):
                out.add(("extend",))
            elif isinstance(atom, ast.CountUnchanged):
                out.add(("mask",))
            elif ref is not None:
                sized = isinstance(atom, (ast.SizeCmp, ast.SizeIn, ast.SizeUnchanged, ast.EndUnchanged))
                sig = ("bar", ref.bar) if ref.bar is not None else _role_sig(roles.get(ref.role))
                if sig is not None and sig[0] == "bar":
                    out.add(("size", sig[1]) if sized else sig)
                elif sig is not None:  # a role found by order
                    out.add(("extend",) if sized else sig)
        out.discard(None)
        if out:
            return out
    return out


def file_signatures(f: ast.RuleFile) -> list[tuple[ast.Rule, set[tuple]]]:
    roles = {r.name: r for r in f.roles}
    return [(rule, signatures(rule, roles)) for rule in f.rules]


def modules_of(f: ast.RuleFile) -> set[str]:
    return {m.name for m in f.matches if isinstance(m, (ast.MatchModule, ast.MatchDriver))}


@dataclass
class Recall:
    found: list[tuple[str, str]] = field(default_factory=list)  # (rule set, rule)
    missed: list[tuple[str, str, str]] = field(default_factory=list)  # (rule set, rule, why)

    @property
    def total(self) -> int:
        return len(self.found) + len(self.missed)

    @property
    def ratio(self) -> float:
        return len(self.found) / self.total if self.total else 0.0


def recall(reviewed: list[ast.RuleFile], mined: list[ast.RuleFile]) -> Recall:
    """Which reviewed forbid/warn rules the mined rule sets find (module by module)."""
    by_module: dict[str, set[tuple]] = {}
    for f in mined:
        sigs = set().union(*[s for _, s in file_signatures(f)]) if f.rules else set()
        for name in modules_of(f):
            by_module.setdefault(name, set()).update(sigs)
    out = Recall()
    for f in reviewed:
        if f.name == "generic" or f.status == "mined":
            continue
        names = modules_of(f)
        have = set().union(*[by_module.get(n, set()) for n in names]) if names else set()
        known = any(n in by_module for n in names)
        for rule, sigs in file_signatures(f):
            missing = sigs - have
            if not sigs:
                out.missed.append((f.name, rule.name, "the rule names no BAR dependency"))
            elif missing:
                why = "no mined rule set for its module" if not known else \
                    "not mined: " + ", ".join(" ".join(map(str, m)) for m in sorted(missing, key=str))
                out.missed.append((f.name, rule.name, why))
            else:
                out.found.append((f.name, rule.name))
    return out
