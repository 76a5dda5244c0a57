"""The C front end: tree-sitter with the tree-sitter-c grammar, and what the miner asks of it.

A `Source` is one parsed C file (a driver file or a header) with indexes built by
tree-sitter queries, which run in C: function definitions, #defines, enumerators,
includes, designated initializers (`.field = value`) and field assignments
(`x->field = value`).  Nothing here reads C with line regexes; the only text
handling is macro-body substitution (what the preprocessor does), and the result
is parsed again by tree-sitter.

tree-sitter is an optional dependency (`pip install barsafe[mine]`): importing this
module without it raises MinerUnavailable with that advice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


class MinerUnavailable(RuntimeError):
    """tree-sitter or its C grammar is not installed."""


@lru_cache(maxsize=1)
def _ts():
    try:
        import tree_sitter
        import tree_sitter_c
    except ImportError as exc:  # pragma: no cover - exercised by the skip in tests
        raise MinerUnavailable("barsafe mine needs tree-sitter and tree-sitter-c:"
                               " pip install 'barsafe[mine]'") from exc
    language = tree_sitter.Language(tree_sitter_c.language())
    return tree_sitter, language


def available() -> bool:
    try:
        _ts()
    except MinerUnavailable:
        return False
    return True


@lru_cache(maxsize=1)
def _parser():
    ts, language = _ts()
    return ts.Parser(language)


@lru_cache(maxsize=None)
def query(pattern: str):
    ts, language = _ts()
    return ts.Query(language, pattern)


def captures(pattern: str, node) -> dict[str, list]:
    ts, _ = _ts()
    return ts.QueryCursor(query(pattern)).captures(node)


def matches(pattern: str, node) -> list[dict[str, list]]:
    ts, _ = _ts()
    return [m for _, m in ts.QueryCursor(query(pattern)).matches(node)]


def parse_bytes(data: bytes):
    return _parser().parse(data)


def text(node) -> str:
    return node.text.decode("utf-8", "replace") if node is not None else ""


def line(node) -> int:
    return node.start_point[0] + 1


def ident_of_declarator(node) -> str | None:
    """The name a declarator declares: `*foo`, `foo[]`, `foo(args)` -> foo."""
    seen = 0
    while node is not None and seen < 16:
        seen += 1
        if node.type in ("identifier", "field_identifier", "type_identifier"):
            return text(node)
        node = node.child_by_field_name("declarator")
    return None


@lru_cache(maxsize=4096)
def parse_expression(source: str):
    """An expression given as text (a macro body after substitution), parsed as C."""
    tree = parse_bytes(f"int __barsafe_x = ({source}\n);".encode())
    found = captures("(init_declarator value: (_) @v)", tree.root_node).get("v", [])
    if not found:
        return None
    node = found[0]
    while node.type == "parenthesized_expression" and node.named_child_count == 1:
        node = node.named_children[0]
    return node


@lru_cache(maxsize=1024)
def parse_initializer(source: str):
    """Text that belongs inside an ID table entry's braces, parsed as an initializer list."""
    tree = parse_bytes(f"static struct pci_device_id __barsafe_x[] = {{ {{ {source}\n}} }};".encode())
    found = captures("(init_declarator value: (initializer_list) @v)", tree.root_node).get("v", [])
    if not found:
        return None
    entries = [c for c in found[0].named_children if c.type != "comment"]
    return entries[0] if entries else None


# --- files -----------------------------------------------------------------------------------

@dataclass
class Define:
    name: str
    params: tuple[str, ...] | None  # None: object-like
    body: str
    source: "Source"
    line: int


@dataclass
class Function:
    name: str
    source: "Source"
    node: object  # function_definition
    static: bool
    line: int
    params: tuple[str, ...] = ()
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def key(self) -> str:
        return f"{self.source.path}:{self.name}"

    @property
    def body(self):
        return self.node.child_by_field_name("body")

    @property
    def end_line(self) -> int:
        return self.node.end_point[0] + 1


_FUNCTIONS = "(function_definition declarator: (_) @decl body: (compound_statement) @body) @fn"
_DEFINES = "(preproc_def name: (identifier) @name) @def"
_FDEFINES = "(preproc_function_def name: (identifier) @name parameters: (preproc_params) @params) @def"
_INCLUDES = "(preproc_include path: (_) @path)"
_ENUMS = "(enumerator_list) @list"
_FIELD_INITS = "(initializer_pair designator: (field_designator (field_identifier) @field) value: (_) @value)"
_FIELD_ASSIGNS = ("(assignment_expression left: (field_expression field: (field_identifier) @field)"
                  " operator: \"=\" right: (_) @value)")
_INIT_DECLS = "(init_declarator declarator: (_) @decl value: (_) @value) @init"


def _param_names(declarator) -> tuple[str, ...]:
    node = declarator
    for _ in range(8):
        if node is None:
            return ()
        if node.type == "function_declarator":
            break
        node = node.child_by_field_name("declarator")
    else:
        return ()
    params = node.child_by_field_name("parameters") if node is not None else None
    if params is None:
        return ()
    names = []
    for p in params.named_children:
        if p.type == "parameter_declaration":
            names.append(ident_of_declarator(p.child_by_field_name("declarator")) or "")
        elif p.type == "variadic_parameter":
            names.append("...")
    return tuple(names)


def _function_name(declarator) -> str | None:
    node = declarator
    for _ in range(8):
        if node is None:
            return None
        if node.type == "function_declarator":
            return ident_of_declarator(node.child_by_field_name("declarator"))
        node = node.child_by_field_name("declarator")
    return None


class Source:
    """One C file, parsed once, with lazily built indexes."""

    def __init__(self, tree_root: Path, path: str):
        self.tree_root = tree_root
        self.path = path  # relative to the tree root
        self.data = (tree_root / path).read_bytes()
        self.tree = parse_bytes(self.data)
        self.root = self.tree.root_node
        self._functions: dict[str, list[Function]] | None = None
        self._defines: dict[str, list[Define]] | None = None
        self._enums: dict[str, list] | None = None
        self._field_values: dict[str, list] | None = None
        self._decls: dict[str, list] | None = None
        self._by_start: dict[int, Function] | None = None

    @property
    def directory(self) -> str:
        return str(Path(self.path).parent)

    def functions(self) -> dict[str, list[Function]]:
        if self._functions is None:
            out: dict[str, list[Function]] = {}
            for m in matches(_FUNCTIONS, self.root):
                fn, decl = m["fn"][0], m["decl"][0]
                name = _function_name(decl)
                if not name:
                    continue
                static = any(c.type == "storage_class_specifier" and text(c) == "static"
                             for c in fn.children)
                out.setdefault(name, []).append(Function(name, self, fn, static, line(fn),
                                                         _param_names(decl)))
            self._functions = out
        return self._functions

    def defines(self) -> dict[str, list[Define]]:
        if self._defines is None:
            out: dict[str, list[Define]] = {}
            for m in matches(_DEFINES, self.root):
                node = m["def"][0]
                value = node.child_by_field_name("value")
                name = text(m["name"][0])
                out.setdefault(name, []).append(Define(name, None, _clean(text(value)), self, line(node)))
            for m in matches(_FDEFINES, self.root):
                node = m["def"][0]
                value = node.child_by_field_name("value")
                params = tuple(text(p) for p in m["params"][0].named_children)
                name = text(m["name"][0])
                out.setdefault(name, []).append(Define(name, params, _clean(text(value)), self, line(node)))
            self._defines = out
        return self._defines

    def enumerators(self) -> dict[str, list]:
        """name -> [(value expression node or None, previous enumerator name or None)]."""
        if self._enums is None:
            out: dict[str, list] = {}
            for node in captures(_ENUMS, self.root).get("list", []):
                previous = None
                for e in node.named_children:
                    if e.type != "enumerator":
                        continue
                    name = text(e.child_by_field_name("name"))
                    out.setdefault(name, []).append((e.child_by_field_name("value"), previous))
                    previous = name
            self._enums = out
        return self._enums

    def includes(self) -> list[tuple[bool, str]]:
        """(quoted, path) of every #include."""
        out = []
        for node in captures(_INCLUDES, self.root).get("path", []):
            raw = text(node)
            if node.type == "string_literal":
                out.append((True, raw.strip('"')))
            elif node.type == "system_lib_string":
                out.append((False, raw.strip("<>")))
        return out

    def field_values(self) -> dict[str, list]:
        """field name -> value nodes written to it: `.f = v` initializers and `x->f = v`."""
        if self._field_values is None:
            out: dict[str, list] = {}
            for pattern in (_FIELD_INITS, _FIELD_ASSIGNS):
                for m in matches(pattern, self.root):
                    out.setdefault(text(m["field"][0]), []).append(m["value"][0])
            self._field_values = out
        return self._field_values

    def declarations(self) -> dict[str, list]:
        """variable name -> init_declarator nodes with an initializer (file scope and local)."""
        if self._decls is None:
            out: dict[str, list] = {}
            for m in matches(_INIT_DECLS, self.root):
                name = ident_of_declarator(m["decl"][0])
                if name:
                    out.setdefault(name, []).append(m["init"][0])
            self._decls = out
        return self._decls

    def function_at(self, node) -> Function | None:
        """The function definition enclosing ``node``, if any."""
        cur = node
        while cur is not None and cur.type != "function_definition":
            cur = cur.parent
        if cur is None:
            return None
        if self._by_start is None:
            self._by_start = {fn.node.start_byte: fn for fns in self.functions().values() for fn in fns}
        return self._by_start.get(cur.start_byte)


def _clean(body: str) -> str:
    """A macro body without line continuations."""
    return body.replace("\\\r\n", " ").replace("\\\n", " ").strip()
