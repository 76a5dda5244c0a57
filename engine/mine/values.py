"""Reduce a C expression to the set of constants it can take, or say why not.

What counts as resolved: integer literals; #defines and enumerators (the file's
own, its headers', pci_ids.h and friends); function-like macros, expanded and
parsed again; BIT/GENMASK/min/max; arithmetic on resolved values; a local variable
all of whose assignments resolve; a parameter all of whose call sites in the
module pass resolvable values; a call whose every return resolves (direct, or
through a struct field every assignment of which in the module names such a
function: `efx->type->mem_bar(efx)`); a struct field every write of which in the
module resolves.  Anything else raises Unresolved with the reason.  Values are
sets: `bar = is_vf ? 0 : 2` is {0, 2}, and each member is a real possibility in
the source, not a guess.
"""

from __future__ import annotations

import re

from .cfront import Function, Source, captures, line, matches, parse_expression, text
from .index import Index

MAX_VALUES = 16
MAX_DEPTH = 10
WORD_MASK = (1 << 64) - 1

BUILTIN = {"true": 1, "false": 0, "NULL": 0, "PCI_ROM_RESOURCE": 6, "PCI_STD_RESOURCE_END": 5,
           "PCI_NUM_RESOURCES": 17, "DEVICE_COUNT_RESOURCE": 17, "PCI_STD_NUM_BARS": 6,
           "PCI_IOV_RESOURCES": 7}
_SHIFT_ONE = {"BIT", "BIT_ULL", "_BITUL", "_BITULL", "BIT_U32", "BIT_U64"}
_PASS = {"U", "UL", "ULL", "_AC", "_UL", "_ULL", "UINT32_C", "UINT64_C", "cpu_to_le32", "le32_to_cpu"}


class Unresolved(Exception):
    def __init__(self, reason: str, node=None):
        super().__init__(reason)
        self.reason = reason
        self.node = node


def _number(literal: str) -> int:
    s = literal.lower().rstrip("ul")
    if any(c in s for c in ".p") and not s.startswith("0x") or ("e" in s and not s.startswith("0x")):
        raise Unresolved(f"not an integer: {literal}")
    if s.startswith("0x"):
        return int(s, 16)
    if s.startswith("0b"):
        return int(s, 2)
    if len(s) > 1 and s.startswith("0"):
        return int(s, 8)
    return int(s)


_BINARY = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a // b if b else _raise("division by zero"),
    "%": lambda a, b: a % b if b else _raise("division by zero"),
    "<<": lambda a, b: (a << b) if 0 <= b < 128 else _raise("shift out of range"),
    ">>": lambda a, b: a >> b if b >= 0 else _raise("shift out of range"),
    "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
    "==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b), "<": lambda a, b: int(a < b),
    "<=": lambda a, b: int(a <= b), ">": lambda a, b: int(a > b), ">=": lambda a, b: int(a >= b),
    "&&": lambda a, b: int(bool(a) and bool(b)), "||": lambda a, b: int(bool(a) or bool(b)),
}


def _raise(reason: str):
    raise Unresolved(reason)


def _expand(params: tuple[str, ...], body: str, args: list[str]) -> str:
    """A function-like macro's body with its arguments substituted and ## pasted."""
    if params and params[-1] == "...":
        named = params[:-1]
        rest = ", ".join(args[len(named):])
        mapping = dict(zip(named, args)) | {"__VA_ARGS__": rest}
    else:
        if len(args) != len(params) and not (not params and args == [""]):
            raise Unresolved(f"macro takes {len(params)} arguments, given {len(args)}")
        mapping = dict(zip(params, args))
    out = re.sub(r"\b\w+\b", lambda m: mapping.get(m.group(0), m.group(0)), body)
    return re.sub(r"\s*##\s*", "", out)


class Resolver:
    def __init__(self, index: Index):
        self.index = index
        self._memo: dict[tuple, frozenset[int] | Unresolved] = {}
        self._busy: set[tuple] = set()
        self._calls: dict[str, list[tuple[Source, object]]] | None = None
        self._locals: dict[str, dict] = {}

    # --- entry point ---------------------------------------------------------------------

    def values(self, node, source: Source, fn: Function | None, depth: int = 0) -> frozenset[int]:
        if node is None:
            raise Unresolved("no expression")
        if depth > MAX_DEPTH:
            raise Unresolved("too many levels of indirection", node)
        key = (source.path, node.id, node.start_byte, fn.key if fn else None)
        if key in self._memo:
            found = self._memo[key]
            if isinstance(found, Unresolved):
                raise found
            return found
        if key in self._busy:
            raise Unresolved("depends on itself", node)
        self._busy.add(key)
        try:
            result = self._values(node, source, fn, depth)
            if len(result) > MAX_VALUES:
                raise Unresolved(f"more than {MAX_VALUES} possible values", node)
            result = frozenset(v & WORD_MASK if v < 0 else v for v in result)
        except Unresolved as exc:
            if exc.node is None:
                exc.node = node
            self._memo[key] = exc
            raise
        except RecursionError:
            exc = Unresolved("nested too deeply", node)
            self._memo[key] = exc
            raise exc from None
        finally:
            self._busy.discard(key)
        self._memo[key] = result
        return result

    def one(self, node, source: Source, fn: Function | None) -> int | None:
        try:
            found = self.values(node, source, fn)
        except Unresolved:
            return None
        return next(iter(found)) if len(found) == 1 else None

    # --- expressions ---------------------------------------------------------------------

    def _values(self, node, source: Source, fn: Function | None, depth: int) -> set[int]:
        t = node.type
        if t == "number_literal":
            return {_number(text(node))}
        if t == "char_literal":
            body = text(node)[1:-1]
            if len(body) == 1:
                return {ord(body)}
            raise Unresolved(f"character {text(node)}")
        if t in ("true", "false", "null"):
            return {1 if t == "true" else 0}
        if t == "parenthesized_expression":
            inner = [c for c in node.named_children if c.type != "comment"]
            if len(inner) != 1:
                raise Unresolved(f"'{text(node)}'")
            return self.values(inner[0], source, fn, depth)
        if t == "cast_expression":
            return self.values(node.child_by_field_name("value"), source, fn, depth)
        if t == "comma_expression":
            return self.values(node.child_by_field_name("right"), source, fn, depth)
        if t == "unary_expression":
            op = text(node.child_by_field_name("operator"))
            vals = self.values(node.child_by_field_name("argument"), source, fn, depth)
            fns = {"-": lambda a: -a, "+": lambda a: a, "~": lambda a: ~a, "!": lambda a: int(not a)}
            if op not in fns:
                raise Unresolved(f"operator {op}")
            return {fns[op](v) for v in vals}
        if t == "binary_expression":
            op = text(node.child_by_field_name("operator"))
            if op not in _BINARY:
                raise Unresolved(f"operator {op}")
            left = self.values(node.child_by_field_name("left"), source, fn, depth)
            right = self.values(node.child_by_field_name("right"), source, fn, depth)
            if len(left) * len(right) > MAX_VALUES * 4:
                raise Unresolved("too many combinations")
            return {_BINARY[op](a, b) for a in left for b in right}
        if t == "conditional_expression" and node.child_by_field_name("consequence") is None:
            cond = self.values(node.child_by_field_name("condition"), source, fn, depth)  # GNU `a ?: b`
            out = {c for c in cond if c}
            if 0 in cond:
                out |= self.values(node.child_by_field_name("alternative"), source, fn, depth + 1)
            return out
        if t == "conditional_expression":
            out: set[int] = set()
            for name in ("consequence", "alternative"):
                out |= self.values(node.child_by_field_name(name), source, fn, depth + 1)
            return out
        if t == "identifier":
            return self._identifier(node, source, fn, depth)
        if t == "call_expression":
            return self._call(node, source, fn, depth)
        if t == "field_expression":
            return self._field(text(node.child_by_field_name("field")), node, depth)
        raise Unresolved(f"'{_short(node)}' ({t.replace('_', ' ')})")

    def _identifier(self, node, source: Source, fn: Function | None, depth: int) -> set[int]:
        name = text(node)
        if fn is not None:
            local = self._local(name, node, source, fn, depth)
            if local is not None:
                return local
        defines = self.index.defines(name, source)
        if defines:
            out: set[int] = set()
            for d in defines:
                if d.params is not None:
                    raise Unresolved(f"function-like macro {name} used without arguments")
                expr = parse_expression(d.body) if d.body else None
                if expr is None:
                    raise Unresolved(f"macro {name} has no value")
                out |= self.values(expr, d.source, None, depth + 1)
            return out
        enums = self.index.enumerators(name, source)
        if enums:
            out = set()
            for esrc, value, previous in enums:
                if value is not None:
                    out |= self.values(value, esrc, None, depth + 1)
                elif previous is None:
                    out.add(0)
                else:
                    prev_vals = self._enumerator(previous, esrc, depth + 1)
                    out |= {v + 1 for v in prev_vals}
            return out
        if name in BUILTIN:
            return {BUILTIN[name]}
        constant = self._file_constant(name, source, depth)
        if constant is not None:
            return constant
        raise Unresolved(f"'{name}' is not a constant the miner can see")

    def _enumerator(self, name: str, source: Source, depth: int) -> set[int]:
        found = source.enumerators().get(name) or []
        out: set[int] = set()
        for value, previous in found:
            if value is not None:
                out |= self.values(value, source, None, depth)
            elif previous is None:
                out.add(0)
            else:
                out |= {v + 1 for v in self._enumerator(previous, source, depth + 1)}
        if not out:
            raise Unresolved(f"enumerator {name}")
        return out

    def _file_constant(self, name: str, source: Source, depth: int) -> set[int] | None:
        """`static const int foo = 3;` at file scope."""
        for decl in source.declarations().get(name, []):
            parent = decl.parent
            if parent is None or parent.type != "declaration" or parent.parent is None \
                    or parent.parent.type != "translation_unit":
                continue
            if not any(c.type == "type_qualifier" and text(c) == "const" for c in parent.children):
                continue
            return set(self.values(decl.child_by_field_name("value"), source, None, depth + 1))
        return None

    # --- calls ---------------------------------------------------------------------------

    def _call(self, node, source: Source, fn: Function | None, depth: int) -> set[int]:
        callee = node.child_by_field_name("function")
        args = [a for a in node.child_by_field_name("arguments").named_children if a.type != "comment"]
        if callee.type == "identifier":
            name = text(callee)
            if name in _SHIFT_ONE and len(args) == 1:
                return {1 << v for v in self.values(args[0], source, fn, depth) if 0 <= v < 128}
            if name in ("GENMASK", "GENMASK_ULL", "GENMASK_U32") and len(args) == 2:
                hs = self.values(args[0], source, fn, depth)
                ls = self.values(args[1], source, fn, depth)
                return {((1 << (h + 1)) - 1) ^ ((1 << l) - 1) for h in hs for l in ls if 0 <= l <= h < 128}
            if name in _PASS and args:
                return self.values(args[0], source, fn, depth)
            if name in ("min", "max", "min_t", "max_t") and len(args) >= 2:
                pair = args[-2:]
                a = self.values(pair[0], source, fn, depth)
                b = self.values(pair[1], source, fn, depth)
                pick = min if name.startswith("min") else max
                return {pick(x, y) for x in a for y in b}
            defines = self.index.defines(name, source)
            if defines:
                out: set[int] = set()
                for d in defines:
                    if d.params is None:
                        raise Unresolved(f"{name} is not a function-like macro")
                    expanded = _expand(d.params, d.body, [text(a) for a in args])
                    expr = parse_expression(expanded)
                    if expr is None:
                        raise Unresolved(f"macro {name} expands to nothing")
                    out |= self.values(expr, source, fn, depth + 1)
                return out
            targets = self.index.resolve_function(name, source)
            if targets:
                return self._returns(targets, depth)
            raise Unresolved(f"call to {name}(), which is not in the driver's files")
        if callee.type == "field_expression":
            field = text(callee.child_by_field_name("field"))
            targets = self._field_functions(field)
            if targets:
                return self._returns(targets, depth)
            raise Unresolved(f"indirect call ->{field}() that the module never assigns a function to")
        raise Unresolved(f"call through '{_short(callee)}'")

    def _field_functions(self, field: str) -> list[Function]:
        out: list[Function] = []
        for src, value in self.index.field_values(field):
            if value.type == "identifier":
                out += self.index.resolve_function(text(value), src)
            elif value.type in ("null",) or text(value) == "NULL":
                continue
        return out

    def _returns(self, targets: list[Function], depth: int) -> set[int]:
        out: set[int] = set()
        for target in targets:
            found = captures("(return_statement (_) @v)", target.body).get("v", [])
            if not found:
                raise Unresolved(f"{target.name}() returns nothing the miner can read")
            for value in found:
                out |= self.values(value, target.source, target, depth + 1)
        return out

    # --- variables and fields ------------------------------------------------------------

    def _field(self, field: str, node, depth: int) -> set[int]:
        writes = self.index.field_values(field)
        if not writes:
            raise Unresolved(f"field '{field}' is never assigned in the driver's files")
        if len(writes) > MAX_VALUES:
            raise Unresolved(f"field '{field}' is assigned in {len(writes)} places")
        out: set[int] = set()
        for src, value in writes:
            if value.type == "identifier" and self.index.resolve_function(text(value), src):
                continue  # a function pointer field of the same name (ops->mem_bar vs efx->mem_bar)
            out |= self.values(value, src, src.function_at(value), depth + 1)
        if not out:
            raise Unresolved(f"field '{field}' only ever holds function pointers")
        return out

    def local_writes(self, fn: Function) -> dict:
        """name -> list of (kind, node): kind 'set' (value node), 'update', 'address'."""
        if fn.key in self._locals:
            return self._locals[fn.key]
        out: dict[str, list] = {}
        body = fn.body
        for m in matches("(init_declarator declarator: (identifier) @n value: (_) @v)", body):
            out.setdefault(text(m["n"][0]), []).append(("set", m["v"][0]))
        for m in matches("(assignment_expression left: (identifier) @n operator: _ @op right: (_) @v)", body):
            kind = "set" if text(m["op"][0]) == "=" else "update"
            out.setdefault(text(m["n"][0]), []).append((kind, m["v"][0]))
        for m in matches("(update_expression argument: (identifier) @n)", body):
            out.setdefault(text(m["n"][0]), []).append(("update", m["n"][0]))
        for m in matches("(pointer_expression operator: \"&\" argument: (identifier) @n)", body):
            out.setdefault(text(m["n"][0]), []).append(("address", m["n"][0]))
        declared = set()
        for m in matches("(declaration declarator: (identifier) @n)", body):
            declared.add(text(m["n"][0]))
        for m in matches("(declaration declarator: (init_declarator declarator: (identifier) @n))", body):
            declared.add(text(m["n"][0]))
        for m in matches("(declaration declarator: (array_declarator declarator: (identifier) @n))", body):
            declared.add(text(m["n"][0]))
        out["__declared__"] = declared
        self._locals[fn.key] = out
        return out

    def _local(self, name: str, node, source: Source, fn: Function, depth: int) -> set[int] | None:
        writes = self.local_writes(fn)
        is_param = name in fn.params
        if name not in writes["__declared__"] and not is_param:
            return None  # not a local: a macro, an enumerator or a global
        mine = writes.get(name, [])
        out: set[int] = set()
        for kind, value in mine:
            if kind == "update":
                raise Unresolved(f"'{name}' is changed in place in {fn.name}()", value)
            if kind == "address":
                raise Unresolved(f"'{name}' is written through a pointer in {fn.name}()", value)
            out |= self.values(value, source, fn, depth + 1)
        if is_param:
            out |= self._parameter(fn, fn.params.index(name), depth)
        elif not mine:
            raise Unresolved(f"'{name}' is never assigned in {fn.name}()")
        return out

    def call_sites(self, name: str) -> list[tuple[Source, object]]:
        if self._calls is None:
            table: dict[str, list] = {}
            for s in self.index.sources:
                for m in matches("(call_expression function: (identifier) @f) @c", s.root):
                    table.setdefault(text(m["f"][0]), []).append((s, m["c"][0]))
            self._calls = table
        return self._calls.get(name, [])

    def _parameter(self, fn: Function, position: int, depth: int) -> set[int]:
        sites = [(s, c) for s, c in self.call_sites(fn.name)
                 if fn in self.index.resolve_function(fn.name, s)]
        if not sites:
            raise Unresolved(f"parameter {fn.params[position]} of {fn.name}(), which is not called"
                             " directly in the driver's files")
        out: set[int] = set()
        for src, call in sites:
            args = [a for a in call.child_by_field_name("arguments").named_children if a.type != "comment"]
            if position >= len(args):
                raise Unresolved(f"call to {fn.name}() at {src.path}:{line(call)} has too few arguments")
            out |= self.values(args[position], src, src.function_at(call), depth + 1)
        return out


def _short(node, limit: int = 60) -> str:
    s = " ".join(text(node).split())
    return s if len(s) <= limit else s[:limit - 3] + "..."
