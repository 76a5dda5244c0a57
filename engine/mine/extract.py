"""C syntax trees -> facts: PCI drivers, their ID tables, MSI-X use, and the BAR-layout
dependencies reachable from probe.

For every `struct pci_driver` initializer in a module: `.probe`, `.id_table`,
`.name`.  The call graph (networkx) starts at probe and follows direct calls, calls
through struct fields (to every function the module assigns to that field) and
functions whose address is taken (callbacks), within the module's files and,
for calls that leave it, C files of the same directory.  In every reachable
function the BAR APIs are read with their syntactic context: which index (resolved
to constants by values.py, else reported unresolved), and what the result feeds
(a mapping, a comparison, arithmetic, a flag test); loops over resource indices
and pci_select_bars() masks are read as first/Nth-BAR scans.
"""

from __future__ import annotations

import networkx as nx

from .cfront import Function, Source, captures, line, matches, parse_initializer, text
from .facts import Dependency, Driver, PciId, Place, Unresolved as UnresolvedFact
from .index import Index, string_value
from .values import Resolver, Unresolved

# call -> (position of the BAR index argument, use)
INDEX_CALLS = {
    "pci_resource_start": (1, "start"), "pci_resource_len": (1, "len"),
    "pci_resource_end": (1, "end"), "pci_resource_flags": (1, "flags"), "pci_resource_n": (1, "res"),
    "pci_iomap": (1, "map"), "pci_iomap_wc": (1, "map"), "pci_iomap_range": (1, "map"),
    "pci_iomap_wc_range": (1, "map"), "pcim_iomap": (1, "map"), "pcim_iomap_region": (1, "map"),
    "pcim_iomap_range": (1, "map"), "pci_ioremap_bar": (1, "map"), "pci_ioremap_wc_bar": (1, "map"),
    "pci_request_region": (1, "request"), "pcim_request_region": (1, "request"),
    "pci_request_region_exclusive": (1, "request"), "pcim_request_region_exclusive": (1, "request"),
}
# call -> position of a BAR bitmask argument
MASK_CALLS = {"pcim_iomap_regions": 1, "pcim_iomap_regions_request_all": 1,
              "pci_request_selected_regions": 1, "pci_request_selected_regions_exclusive": 1,
              "pcim_request_selected_regions": 1}
# calls a BAR's length may be handed to without anything being derived from it
_MAPPERS = {"ioremap", "ioremap_wc", "ioremap_uc", "ioremap_cache", "ioremap_np", "ioremap_nocache",
            "devm_ioremap", "devm_ioremap_wc", "devm_ioremap_uc", "devm_ioremap_np",
            "request_mem_region", "devm_request_mem_region", "release_mem_region", "request_region",
            "devm_request_region", "release_region", "memremap", "devm_memremap", "arch_phys_wc_add",
            "devm_arch_phys_wc_add", "arch_io_reserve_memtype_wc", "devm_arch_io_reserve_memtype_wc",
            "io_mapping_create_wc", "io_mapping_init_wc", "pci_iomap_range", "pci_iomap_wc_range",
            "request_mem_region_exclusive", "__request_mem_region", "ioport_map", "devm_ioport_map",
            "pcim_iomap", "pci_iomap", "pci_iomap_wc"}
_LOGGERS_PREFIX = ("dev_", "pr_", "netdev_", "pci_info", "pci_err", "pci_warn", "pci_dbg", "pci_notice",
                   "printk", "drm_", "DRM_", "seq_printf", "snprintf", "sprintf", "scnprintf", "ath1",
                   "ath_", "IWL_", "ibdev_", "mlx5_core_", "mlx4_", "ionic_", "nv_", "nvkm_", "qib_",
                   "hfi1_", "dd_dev_", "ql_", "ql4_", "lpfc_printf", "ioc_", "PDEBUG", "DBG", "dprintk")
_WRAPPERS = {"min", "max", "min_t", "max_t", "clamp", "clamp_t", "round_down", "rounddown"}
_IGNORED_FIELDS = {"mem_start", "mem_end", "base_addr"}  # net_device fields only printed
FLAG_ATTRS = {"IORESOURCE_MEM": "memory", "IORESOURCE_IO": "io", "IORESOURCE_MEM_64": "64bit",
              "IORESOURCE_PREFETCH": "prefetchable", "PCI_BASE_ADDRESS_SPACE_IO": "io",
              "PCI_BASE_ADDRESS_SPACE_MEMORY": "memory", "PCI_BASE_ADDRESS_MEM_TYPE_64": "64bit",
              "PCI_BASE_ADDRESS_MEM_PREFETCH": "prefetchable"}
_FIRST = {"ffs", "__ffs", "ffs64", "__ffs64", "find_first_bit"}
_LAST = {"fls", "__fls", "fls64", "find_last_bit"}
_COUNT = {"hweight8", "hweight16", "hweight32", "hweight64", "hweight_long", "bitmap_weight"}
_COMPARE = {"<", "<=", ">", ">=", "==", "!="}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_TRANSPARENT = ("parenthesized_expression", "cast_expression")
MSIX_CALLS = {"pci_enable_msix_range", "pci_enable_msix_exact", "pci_enable_msix",
              "pci_msix_alloc_irq_at"}
IRQ_VECTOR_CALLS = {"pci_alloc_irq_vectors": 3, "pci_alloc_irq_vectors_affinity": 3}
ORDERS = ("first", "second", "third")
MAX_REACHABLE = 20000


def _up(node):
    """The parent, skipping parentheses and casts."""
    parent = node.parent
    while parent is not None and parent.type in _TRANSPARENT:
        node, parent = parent, parent.parent
    return node, parent


def _args(call) -> list:
    args = call.child_by_field_name("arguments")
    return [a for a in args.named_children if a.type != "comment"] if args is not None else []


def _call_name(call) -> str | None:
    f = call.child_by_field_name("function")
    return text(f) if f is not None and f.type == "identifier" else None


def _idents(node) -> list[str]:
    if node is None:
        return []
    if node.type == "identifier":
        return [text(node)]
    return [text(n) for n in captures("(identifier) @i", node).get("i", [])]


def _short(node, limit: int = 80) -> str:
    s = " ".join(text(node).split())
    return s if len(s) <= limit else s[:limit - 3] + "..."


def _is_logger(name: str | None) -> bool:
    return bool(name) and name.startswith(_LOGGERS_PREFIX)


# --- drivers and ID tables -------------------------------------------------------------------

def find_drivers(index: Index) -> list[tuple[Source, str, object]]:
    """(file, variable, initializer list) of every `struct pci_driver x = {...}`."""
    out = []
    pattern = ("(declaration type: (struct_specifier name: (type_identifier) @t)"
               " declarator: (init_declarator declarator: (_) @d value: (initializer_list) @v))")
    for source in index.sources:
        if b"pci_driver" not in source.data:
            continue
        for m in matches(pattern, source.root):
            if text(m["t"][0]) != "pci_driver":
                continue
            name = _declared_name(m["d"][0])
            if name:
                out.append((source, name, m["v"][0]))
    return out


def _declared_name(declarator) -> str | None:
    node = declarator
    for _ in range(8):
        if node is None:
            return None
        if node.type == "identifier":
            return text(node)
        node = node.child_by_field_name("declarator")
    return None


def _pairs(init) -> dict[str, object]:
    out = {}
    for item in init.named_children:
        if item.type == "initializer_pair":
            designator = item.child_by_field_name("designator")
            value = item.child_by_field_name("value")
            if designator is not None and designator.type == "field_designator" and value is not None:
                out[text(designator.named_children[0])] = value
    return out


ID_FIELDS = ("vendor", "device", "subvendor", "subdevice", "class", "class_mask", "driver_data",
             "override_only")
_PCI_H = "include/linux/pci.h"


class Miner:
    """Facts for every PCI driver of one module."""

    def __init__(self, index: Index, module: str):
        self.index = index
        self.module = module
        self.resolver = Resolver(index)

    # --- entry ---------------------------------------------------------------------------

    def drivers(self) -> list[Driver]:
        out = []
        msix = self._msix()
        for source, variable, init in find_drivers(self.index):
            out.append(self._driver(source, variable, init, msix))
        return out

    def _driver(self, source: Source, variable: str, init, msix: list[Place]) -> Driver:
        fields = _pairs(init)
        name = variable
        if "name" in fields:
            value = fields["name"]
            literal = string_value(value)
            if literal is None and value.type == "identifier":
                if text(value) == "KBUILD_MODNAME":
                    literal = self.module
                elif any(string_value(d.child_by_field_name("value")) for d in
                         source.declarations().get(text(value), [])):  # char igb_driver_name[] = "igb";
                    literal = next(string_value(d.child_by_field_name("value")) for d in
                                   source.declarations()[text(value)] if string_value(d.child_by_field_name("value")))
                else:
                    for d in self.index.defines(text(value), source):
                        from .cfront import parse_expression
                        expr = parse_expression(d.body) if d.body else None
                        literal = string_value(expr)
                        if literal:
                            break
            name = literal or variable
        driver = Driver(name=name, module=self.module, variable=variable,
                        place=Place(source.path, line(init), None), probe=None, id_table=None,
                        msix=list(msix), files=[s.path for s in self.index.sources])
        table = fields.get("id_table")
        if table is not None:
            table_name = text(table).lstrip("&").strip()
            driver.id_table = table_name
            self._ids(driver, table_name, source)
        probe = fields.get("probe")
        if probe is not None and probe.type == "identifier":
            targets = self.index.resolve_function(text(probe), source)
            if targets:
                fn = targets[0]
                driver.probe = Place(fn.source.path, fn.line, fn.name)
                self._dependencies(driver, targets)
        return driver

    # --- ID tables -----------------------------------------------------------------------

    def _ids(self, driver: Driver, table: str, source: Source) -> None:
        decls = []
        for s in [source] + [x for x in self.index.sources if x is not source]:
            for d in s.declarations().get(table, []):
                value = d.child_by_field_name("value")
                if value is not None and value.type == "initializer_list":
                    decls.append((s, value))
            if decls:
                break
        if not decls:
            driver.unresolved.append(UnresolvedFact(Place(source.path, line(source.root), None), "id",
                                                    "id_table", table, "table not found in the module"))
            return
        s, value = decls[0]
        for entry in _entries(value):
            for one in self._table_macro(entry, s, 0):
                self._entry(driver, s, one, line(entry))

    def _table_macro(self, entry, source: Source, depth: int) -> list:
        """A macro that stands for whole entries (agpgart's ID(x) is one in braces, aic79xx's
        ID(x) two, each two more) -> those entries; anything else is one entry."""
        if entry.type != "call_expression" or depth > 5 or _call_name(entry) in _ENTRY_MACROS:
            return [entry]
        expanded = self._expanded_text(entry, source)
        table = parse_table(expanded) if expanded is not None else None
        items = [c for c in (table.named_children if table is not None else []) if c.type != "comment"]
        if items and all(c.type in ("initializer_list", "call_expression") for c in items):
            return [e for c in items for e in self._table_macro(c, source, depth + 1)]
        return [entry]

    def _expanded_text(self, call, source: Source) -> str | None:
        from .values import _expand
        name = _call_name(call)
        if not name:
            return None
        defines = [d for d in self.index.defines(name, source) if d.params is not None]
        if not defines:
            pci_h = self.index.cache.get(_PCI_H)
            defines = [d for d in (pci_h.defines().get(name, []) if pci_h else []) if d.params is not None]
        if not defines:
            return None
        d = defines[0]
        try:
            return _expand(d.params, d.body, _macro_args(call))
        except Unresolved:
            return None

    def _entry(self, driver: Driver, source: Source, entry, at: int) -> None:
        fields: dict[str, object] = {}
        try:
            self._entry_fields(entry, source, fields, [0], 0)
        except Unresolved as exc:
            driver.unresolved.append(UnresolvedFact(Place(source.path, at, driver.id_table),
                                                    "id", "id_table", _short(entry), exc.reason))
            return
        values: dict[str, int | None] = {}
        for f in ("vendor", "device", "subvendor", "subdevice", "class", "class_mask"):
            node = fields.get(f)
            if node is None:
                values[f] = None if f in ("subvendor", "subdevice") else 0
                continue
            try:
                found = self.resolver.values(node, source, None)
            except Unresolved as exc:
                driver.unresolved.append(UnresolvedFact(Place(source.path, at, driver.id_table),
                                                        "id", "id_table", _short(entry), exc.reason))
                return
            if len(found) != 1:
                driver.unresolved.append(UnresolvedFact(Place(source.path, at, driver.id_table),
                                                        "id", "id_table", _short(entry),
                                                        f"{f} has several values"))
                return
            v = next(iter(found))
            values[f] = None if (v & 0xFFFFFFFF) == 0xFFFFFFFF and f in (
                "vendor", "device", "subvendor", "subdevice") else v
        if values["vendor"] == 0 and values["device"] == 0 and not values["class"]:
            return  # the table's terminator
        driver.ids.append(PciId(values["vendor"], values["device"], values["subvendor"],
                                values["subdevice"], values["class"] or None,
                                values["class_mask"] if values["class"] else None, at))

    def _entry_fields(self, node, source: Source, fields: dict, position: list[int], depth: int) -> None:
        if depth > 6:
            raise Unresolved("ID entry macros nested too deeply")
        items = node.named_children if node.type == "initializer_list" else [node]
        for item in items:
            if item.type == "comment":
                continue
            if item.type == "initializer_pair":
                designator = item.child_by_field_name("designator")
                name = text(designator.named_children[0]) if designator is not None and \
                    designator.named_children else ""
                fields[name] = item.child_by_field_name("value")
                if name in ID_FIELDS:
                    position[0] = ID_FIELDS.index(name) + 1
                continue
            if item.type == "call_expression" and _call_name(item):
                expanded = self._expand_entry_macro(item, source)
                if expanded is not None:
                    self._entry_fields(expanded, source, fields, position, depth + 1)
                    continue
            if item.type == "initializer_list" and node.type == "initializer_list" and depth == 0 \
                    and position[0] == 0 and len(items) == 1:
                self._entry_fields(item, source, fields, position, depth + 1)
                continue
            if position[0] < len(ID_FIELDS):
                fields[ID_FIELDS[position[0]]] = item
            position[0] += 1

    def _expand_entry_macro(self, call, source: Source):
        from .values import _expand
        name = _call_name(call)
        defines = [d for d in self.index.defines(name, source) if d.params is not None]
        if not defines:
            pci_h = self.index.cache.get(_PCI_H)
            defines = [d for d in (pci_h.defines().get(name, []) if pci_h else []) if d.params is not None]
        if not defines:
            return None
        d = defines[0]
        body = _expand(d.params, d.body, _macro_args(call)).strip()
        if body.startswith("{") and body.endswith("}"):
            body = body[1:-1]
        return parse_initializer(body)

    # --- MSI-X ---------------------------------------------------------------------------

    def _msix(self) -> list[Place]:
        out = []
        for source in self.index.sources:
            out += self._msix_in(source)
        return out

    def _msix_in(self, source: Source) -> list[Place]:
        out = []
        if True:
            if b"msix" not in source.data and b"MSIX" not in source.data and b"irq_vectors" not in source.data:
                return out
            for m in matches("(call_expression function: (identifier) @f) @c", source.root):
                name = text(m["f"][0])
                call = m["c"][0]
                if name in MSIX_CALLS:
                    out.append(self._place(source, call))
                elif name in IRQ_VECTOR_CALLS:
                    args = _args(call)
                    pos = IRQ_VECTOR_CALLS[name]
                    if pos < len(args) and self._irq_flags_msix(args[pos], source, call):
                        out.append(self._place(source, call))
        return out

    def _irq_flags_msix(self, node, source: Source, call) -> bool:
        names = set(_idents(node))
        if names & {"PCI_IRQ_MSIX", "PCI_IRQ_ALL_TYPES"}:
            return True
        fn = source.function_at(call)
        if fn is None:
            return False
        writes = self.resolver.local_writes(fn)
        for name in names:
            for kind, value in writes.get(name, []):
                if kind in ("set", "update") and set(_idents(value)) & {"PCI_IRQ_MSIX", "PCI_IRQ_ALL_TYPES"}:
                    return True
        for name in names:  # a flags parameter or field: look for where its value is built
            for _, value in self.index.field_values(name):
                if set(_idents(value)) & {"PCI_IRQ_MSIX", "PCI_IRQ_ALL_TYPES"}:
                    return True
        return False

    def _place(self, source: Source, node) -> Place:
        fn = source.function_at(node)
        return Place(source.path, line(node), fn.name if fn else None)

    # --- call graph ----------------------------------------------------------------------

    def wrappers(self) -> tuple[dict[str, tuple[int, str, str]], dict[str, tuple[int, str, str]]]:
        """Functions that return a BAR API call on one of their parameters
        (`return pci_resource_len(pdev, bar);`), by name and by the struct fields they are
        assigned to (nouveau's device->func->resource_size(device, 1)): their call sites are
        BAR uses with the index the caller passes."""
        if getattr(self, "_wrappers", None) is None:
            by_name: dict[str, tuple[int, str, str]] = {}
            for name, fns in self.index.functions.items():
                for fn in fns:
                    for value in captures("(return_statement (_) @v)", fn.body).get("v", []):
                        node = value
                        while node.type in _TRANSPARENT and node.named_child_count:
                            node = node.named_children[-1]
                        inner = _call_name(node) if node.type == "call_expression" else None
                        if inner not in INDEX_CALLS:
                            continue
                        pos, use = INDEX_CALLS[inner]
                        args = _args(node)
                        if pos < len(args) and args[pos].type == "identifier" and text(args[pos]) in fn.params:
                            by_name[name] = (fn.params.index(text(args[pos])), use, inner)
            by_field: dict[str, tuple[int, str, str]] = {}
            for source in self.index.sources:
                for field, values in source.field_values().items():
                    for v in values:
                        if v.type == "identifier" and text(v) in by_name:
                            by_field[field] = by_name[text(v)]
            self._wrappers = (by_name, by_field)
        return self._wrappers

    def _ops_tables(self) -> dict[str, list[tuple[Source, str]]]:
        """File-scope variables initialized with a brace list that names the module's
        functions (ops tables): variable -> those functions."""
        if getattr(self, "_tables", None) is None:
            names = self.index.functions
            out: dict[str, list[tuple[Source, str]]] = {}
            for source in self.index.sources:
                for var, decls in source.declarations().items():
                    for d in decls:
                        value = d.child_by_field_name("value")
                        parent = d.parent
                        if value is None or value.type != "initializer_list" or parent is None or \
                                parent.parent is None or parent.parent.type != "translation_unit":
                            continue
                        members = [n for n in _idents(value) if n in names]
                        if members:
                            out.setdefault(var, []).extend((source, n) for n in members)
            self._tables = out
        return self._tables

    def call_graph(self, roots: list[Function]) -> tuple[nx.DiGraph, dict[str, Function]]:
        graph = nx.DiGraph()
        functions: dict[str, Function] = {}
        queue = list(roots)
        for fn in roots:
            functions[fn.key] = fn
            graph.add_node(fn.key)
        names = self.index.functions
        while queue and len(functions) < MAX_REACHABLE:
            fn = queue.pop()
            targets: list[Function] = []
            for m in matches("(call_expression function: (_) @f)", fn.body):
                callee = m["f"][0]
                if callee.type == "identifier":
                    targets += self.index.resolve_function(text(callee), fn.source)
                elif callee.type == "field_expression":
                    targets += self.resolver._field_functions(text(callee.child_by_field_name("field")))
            tables = self._ops_tables()
            for ident in captures("(identifier) @i", fn.body).get("i", []):
                name = text(ident)
                if name in names and not (ident.parent is not None and ident.parent.type == "call_expression"
                                          and ident.parent.child_by_field_name("function") == ident):
                    targets += self.index.resolve_function(name, fn.source)
                elif name in tables:  # netdev->netdev_ops = &foo_netdev_ops: its callbacks
                    for src, member in tables[name]:
                        targets += self.index.resolve_function(member, src)
            for target in targets:
                if target.key not in functions:
                    functions[target.key] = target
                    queue.append(target)
                graph.add_edge(fn.key, target.key)
        return graph, functions

    # --- dependencies ---------------------------------------------------------------------

    def _dependencies(self, driver: Driver, probes: list[Function]) -> None:
        graph, functions = self.call_graph(probes)
        reachable = set()
        for p in probes:
            reachable |= {p.key} | nx.descendants(graph, p.key)
        driver.functions = len(reachable)
        outside = {functions[k].source for k in reachable} - set(self.index.sources)
        for source in sorted(outside, key=lambda s: s.path):  # library code beside the module
            for place in self._msix_in(source):
                if place.function and any(k.endswith(":" + place.function) for k in reachable) \
                        and place not in driver.msix:
                    driver.msix.append(place)
        scan = _Scan(self, driver)
        by_name, by_field = self.wrappers()
        keys = (b"pci_resource", b"iomap", b"ioremap_bar", b"request_region", b"pci_select_bars", b"resource[",
                b"selected_regions", b"iomap_regions", *(n.encode() for n in (*by_name, *by_field)))
        for key in sorted(reachable):
            fn = functions[key]
            if not any(k in fn.source.data for k in keys):  # files that name no BAR API: nothing to read
                continue
            scan.function(fn)
        driver.dependencies = _dedup(driver.dependencies)
        driver.unresolved = _dedup(driver.unresolved)


_ENTRY_MACROS = {"PCI_DEVICE", "PCI_VDEVICE", "PCI_DEVICE_SUB", "PCI_DEVICE_CLASS", "PCI_VDEVICE_SUB",
                 "PCI_DEVICE_DATA", "PCI_DEVICE_DRIVER_OVERRIDE", "PCI_DRIVER_OVERRIDE_DEVICE_VFIO"}


def _macro_args(call) -> list[str]:
    """A macro call's arguments as the preprocessor splits them: by top-level commas of the
    text (`PCI_VEND_DEV(AMD, 8111_LPC)` holds a token C would not parse)."""
    args = call.child_by_field_name("arguments")
    raw = text(args)[1:-1] if args is not None else ""
    out, depth, current = [], 0, ""
    for ch in raw:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip() or out:
        out.append(current.strip())
    return out


def parse_table(body: str):
    from .cfront import captures as _captures, parse_bytes
    tree = parse_bytes(f"static struct pci_device_id __barsafe_t[] = {{ {body}\n}};".encode())
    found = _captures("(init_declarator value: (initializer_list) @v)", tree.root_node).get("v", [])
    return found[0] if found else None


def _entries(table) -> list:
    """The entries of an ID table initializer, looking inside #if blocks."""
    out = []
    for child in table.named_children:
        if child.type in ("preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "preproc_elifdef"):
            out += _entries(child)
        elif child.type in ("initializer_list", "call_expression"):
            out.append(child)
    return out


def _dedup(items: list) -> list:
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


class _Scan:
    """BAR uses in one function at a time."""

    def __init__(self, miner: Miner, driver: Driver):
        self.miner = miner
        self.driver = driver
        self.resolver = miner.resolver
        self.loops_done: set[tuple[str, int]] = set()

    def dep(self, fn: Function, node, kind: str, **kw) -> None:
        place = Place(fn.source.path, line(node), fn.name)
        self.driver.dependencies.append(Dependency(kind, place, **kw))

    def unresolved(self, fn: Function, node, what: str, api: str, expr, reason: str) -> None:
        place = Place(fn.source.path, line(node), fn.name)
        self.driver.unresolved.append(UnresolvedFact(place, what, api, _short(expr), reason))

    def function(self, fn: Function) -> None:
        by_name, by_field = self.miner.wrappers()
        if by_field:
            for m in matches("(call_expression function: (field_expression field: (field_identifier) @f)) @c",
                             fn.body):
                field = text(m["f"][0])
                if field in by_field:
                    pos, use, inner = by_field[field]
                    args = _args(m["c"][0])
                    if pos < len(args):
                        self.index_use(fn, m["c"][0], args[pos], f"->{field}() ({inner})", use)
        for m in matches("(call_expression function: (identifier) @f) @c", fn.body):
            name = text(m["f"][0])
            call = m["c"][0]
            if name in by_name and name not in INDEX_CALLS:
                pos, use, inner = by_name[name]
                args = _args(call)
                if pos < len(args):
                    self.index_use(fn, call, args[pos], f"{name}() ({inner})", use)
                continue
            if name in INDEX_CALLS:
                pos, use = INDEX_CALLS[name]
                args = _args(call)
                if pos < len(args):
                    self.index_use(fn, call, args[pos], name, use)
            elif name in MASK_CALLS:
                args = _args(call)
                pos = MASK_CALLS[name]
                if pos < len(args):
                    self.mask_use(fn, call, args[pos], name)
            elif name == "pci_select_bars":
                self.select_bars(fn, call)
            elif name == "pcim_iomap_table":
                node, parent = _up(call)
                if parent is not None and parent.type == "subscript_expression":
                    self.index_use(fn, parent, parent.child_by_field_name("index"), "pcim_iomap_table()[]",
                                   "map")
        tables = {n for n, writes in self.resolver.local_writes(fn).items() if n != "__declared__" and any(
            k == "set" and v.type == "call_expression" and _call_name(v) == "pcim_iomap_table" for k, v in writes)}
        for m in matches("(subscript_expression argument: (identifier) @a index: (_) @i) @s", fn.body):
            if text(m["a"][0]) in tables:  # iomap = pcim_iomap_table(pdev); iomap[N]
                self.index_use(fn, m["s"][0], m["i"][0], "pcim_iomap_table()[]", "map")
        for m in matches("(subscript_expression argument: (field_expression field: (field_identifier) @f)"
                         " index: (_) @i) @s", fn.body):
            if text(m["f"][0]) != "resource":
                continue
            sub = m["s"][0]
            use, api, at = self._resource_use(sub)
            self.index_use(fn, at, m["i"][0], api, use)

    def _resource_use(self, sub) -> tuple[str, str, object]:
        """What `pdev->resource[i]` is used for: .start/.end/.flags, resource_size(&...)."""
        node, parent = _up(sub)
        if parent is not None and parent.type == "field_expression":
            f = text(parent.child_by_field_name("field"))
            use = {"start": "start", "end": "end", "flags": "flags"}.get(f, "res")
            return use, f"resource[].{f}", parent
        if parent is not None and parent.type == "pointer_expression":
            node2, grand = _up(parent)
            if grand is not None and grand.type == "argument_list":
                call = grand.parent
                name = _call_name(call)
                if name == "resource_size":
                    return "len", "resource_size(&resource[])", call
                if name == "resource_type":
                    return "flags", "resource_type(&resource[])", call
                return "res", f"{name}(&resource[])", call
        return "res", "resource[]", sub

    # --- an index -------------------------------------------------------------------------

    def index_use(self, fn: Function, at, index_node, api: str, use: str) -> None:
        if index_node is None:
            return
        if index_node.type == "identifier" and text(index_node) in fn.params and \
                fn.name in self.miner.wrappers()[0] and self.miner.wrappers()[0][fn.name][0] == \
                fn.params.index(text(index_node)):
            return  # a wrapper's own parameter: read at each call site
        loop = self.loop_of(fn, at, index_node)
        if loop is not None:
            self.loop(fn, loop, index_node)
            if use in ("len", "end"):
                self.loop_size(fn, at, loop, api, text(index_node))
            return
        try:
            bars = self.resolver.values(index_node, fn.source, fn)
        except Unresolved as exc:
            if self._from_mask_scan(fn, index_node):
                return  # the pci_select_bars() scan it comes from is read where it is called
            self.unresolved(fn, at, "index", api, index_node, exc.reason)
            if use in ("len", "end"):
                context = self.size_context(fn, at)
                if any(c[0] in ("compare", "derived", "unresolved") for c in context):
                    self.dep(fn, at, "extent", api=api,
                             detail=f"length of a BAR chosen at run time ({_short(index_node, 40)})")
            return
        for bar in sorted(bars):
            if not 0 <= bar <= 5:
                continue
            self.dep(fn, at, "fixed", bar=bar, api=api, detail=use)
            if use in ("len", "end", "res"):
                for kind, op, value, where in self.size_context(fn, at):
                    if kind == "compare":
                        self.dep(fn, where, "size", bar=bar, op=op, value=value, api=api)
                    elif kind == "derived":
                        self.dep(fn, where, "derived", bar=bar, api=api, detail=op or "")
                    elif kind == "unresolved":
                        self.unresolved(fn, where, "size", api, where, op)
                        self.dep(fn, where, "size", bar=bar, op=None, value=None, api=api)
            if use == "flags":
                for attr in self.flag_attrs(fn, at):
                    self.dep(fn, at, "flag", bar=bar, attr=attr, api=api)

    def _from_mask_scan(self, fn: Function, node, depth: int = 0) -> bool:
        """Does this index come from ffs(pci_select_bars(...)) or the like (through locals)?"""
        if depth > 3:
            return False
        names = _idents(node)
        if "pci_select_bars" in names or set(names) & (_FIRST | _LAST):
            return True
        if node.type == "field_expression":  # ioc->bars = pci_select_bars(...) elsewhere
            writes = self.miner.index.field_values(text(node.child_by_field_name("field")))
            if writes and all("pci_select_bars" in _idents(v) or text(v) == "0" for _, v in writes):
                return True
        writes = self.resolver.local_writes(fn)
        for name in names:
            for kind, value in writes.get(name, []):
                if kind == "set" and self._from_mask_scan(fn, value, depth + 1):
                    return True
        return False

    # --- what a length feeds ---------------------------------------------------------------

    def size_context(self, fn: Function, call, depth: int = 0) -> list[tuple[str, str | None, int | None, object]]:
        """(kind, op/detail, constant, node): compare (op, constant), derived (what), presence,
        map; unresolved (reason) for a comparison with something not constant."""
        node, parent = _up(call)
        if parent is None or depth > 3:
            return [("derived", "", None, call)]
        t = parent.type
        if t == "binary_expression":
            op = text(parent.child_by_field_name("operator"))
            left = parent.child_by_field_name("left")
            other = parent.child_by_field_name("right") if left == node else left
            if op in _COMPARE:
                if other.type == "number_literal" and text(other) in ("0", "0UL", "0ULL") and op in ("==", "!=", ">"):
                    return [("presence", None, None, parent)]
                if left != node:
                    op = _FLIP[op]
                try:
                    values = self.resolver.values(other, fn.source, fn)
                except Unresolved as exc:
                    return [("unresolved", f"compared with '{_short(other, 40)}': {exc.reason}", None, parent)]
                return [("compare", op, v, parent) for v in sorted(values)]
            if op in ("&&", "||"):
                return [("presence", None, None, parent)]
            return [("derived", f"'{_short(parent, 60)}'", None, parent)]
        if t == "unary_expression" and text(parent.child_by_field_name("operator")) == "!":
            return [("presence", None, None, parent)]
        if t in ("if_statement", "while_statement", "conditional_expression") and \
                parent.child_by_field_name("condition") == node:
            return [("presence", None, None, parent)]
        if t == "argument_list":
            call2 = parent.parent
            name = _call_name(call2)
            if name in _MAPPERS or name in INDEX_CALLS:
                return [("map", None, None, call2)]
            if _is_logger(name):
                return [("log", None, None, call2)]
            if name in _WRAPPERS:
                return self.size_context(fn, call2, depth + 1)
            return [("derived", f"passed to {name or _short(call2.child_by_field_name('function'), 30)}()",
                     None, call2)]
        if t in ("init_declarator", "assignment_expression"):
            target = parent.child_by_field_name("declarator") if t == "init_declarator" \
                else parent.child_by_field_name("left")
            if target is not None and target.type == "identifier":
                return self._variable_uses(fn, text(target), parent, depth)
            if target is not None and target.type == "field_expression":
                f = text(target.child_by_field_name("field"))
                if f in _IGNORED_FIELDS:
                    return [("log", None, None, parent)]
                return [("derived", f"stored in ->{f}", None, parent)]
            return [("derived", f"stored in '{_short(target, 30)}'", None, parent)]
        if t == "return_statement":
            return [("derived", "returned", None, parent)]
        return [("derived", f"'{_short(parent, 60)}'", None, parent)]

    def _variable_uses(self, fn: Function, name: str, definition, depth: int) -> list:
        out = []
        for ident in captures("(identifier) @i", fn.body).get("i", []):
            if text(ident) != name or ident.start_byte < definition.start_byte:
                continue
            p = ident.parent
            if p is not None and p.type == "assignment_expression" and p.child_by_field_name("left") == ident:
                continue
            if p is not None and p.type == "init_declarator":
                continue
            out += self.size_context(fn, ident, depth + 1)
        return out

    def flag_attrs(self, fn: Function, call) -> list[str]:
        """Attributes tested on a pci_resource_flags() result (through one local variable)."""
        stmt = call
        while stmt.parent is not None and stmt.parent.type not in (
                "if_statement", "expression_statement", "return_statement", "declaration", "compound_statement",
                "while_statement", "for_statement", "switch_statement"):
            stmt = stmt.parent
        names = set(_idents(stmt))
        node, parent = _up(call)
        if parent is not None and parent.type in ("init_declarator", "assignment_expression"):
            target = parent.child_by_field_name("declarator") if parent.type == "init_declarator" \
                else parent.child_by_field_name("left")
            if target is not None and target.type == "identifier":
                var = text(target)
                for ident in captures("(identifier) @i", fn.body).get("i", []):
                    if text(ident) == var and ident.start_byte > parent.start_byte:
                        s = ident
                        while s.parent is not None and s.parent.type not in (
                                "if_statement", "expression_statement", "return_statement", "compound_statement"):
                            s = s.parent
                        names |= set(_idents(s))
        return sorted({FLAG_ATTRS[n] for n in names if n in FLAG_ATTRS})

    # --- masks -----------------------------------------------------------------------------

    def mask_use(self, fn: Function, call, mask_node, api: str) -> None:
        try:
            masks = self.resolver.values(mask_node, fn.source, fn)
        except Unresolved as exc:
            if self._from_mask_scan(fn, mask_node) or self._all_bars_mask(fn, mask_node):
                return
            self.unresolved(fn, call, "index", api, mask_node, exc.reason)
            return
        for mask in masks:
            for bar in range(6):
                if mask >> bar & 1:
                    self.dep(fn, call, "fixed", bar=bar, api=api, detail="mask")

    def _all_bars_mask(self, fn: Function, node) -> bool:
        return any(n in ("pci_select_bars",) for n in _idents(node))

    def select_bars(self, fn: Function, call) -> None:
        args = _args(call)
        if len(args) < 2:
            return
        kinds = {FLAG_ATTRS[n] for n in _idents(args[1]) if n in FLAG_ATTRS}
        if len(kinds) != 1 or not kinds <= {"memory", "io"}:
            return  # every BAR, or something else: mapping them all keeps their indices
        kind = next(iter(kinds))
        self._mask_context(fn, call, kind, None, 0)

    def _mask_context(self, fn: Function, node, kind: str, submask: int | None, depth: int) -> None:
        if depth > 4:
            return
        node, parent = _up(node)
        if parent is None:
            return
        t = parent.type
        if t == "argument_list":
            call = parent.parent
            name = _call_name(call)
            if name in _FIRST:
                self.dep(fn, call, "ordinal", order="first", attr=kind, api=f"{name}(pci_select_bars)",
                         detail=self._submask_note(submask))
            elif name in _LAST:
                self.dep(fn, call, "ordinal", order="last", attr=kind, api=f"{name}(pci_select_bars)",
                         detail=self._submask_note(submask))
            elif name in _COUNT:
                self.dep(fn, call, "mask", api=f"{name}(pci_select_bars)", detail="count of BARs")
            elif name in ("test_bit",):
                a = _args(call)
                if a:
                    self._presence_bits(fn, call, a[0])
            return
        if t == "pointer_expression":
            self._mask_context(fn, parent, kind, submask, depth + 1)
            return
        if t == "binary_expression":
            op = text(parent.child_by_field_name("operator"))
            left = parent.child_by_field_name("left")
            other = parent.child_by_field_name("right") if left == node else left
            if op in ("==", "!="):
                value = self.resolver.one(other, fn.source, fn)
                self.dep(fn, parent, "mask", value=value, api="pci_select_bars() ==",
                         detail=f"compared with {_short(other, 40)}")
                return
            if op == "&":
                value = self.resolver.one(other, fn.source, fn)
                if value is not None and value & (value - 1) == 0 and value:
                    bar = value.bit_length() - 1  # `mask & BIT(n)`: is BAR n there?
                    if bar <= 5:
                        self.dep(fn, parent, "fixed", bar=bar, api="pci_select_bars() & BIT", detail="presence")
                    return
                self._mask_context(fn, parent, kind, value, depth + 1)
                return
            return
        if t in ("init_declarator", "assignment_expression"):
            target = parent.child_by_field_name("declarator") if t == "init_declarator" \
                else parent.child_by_field_name("left")
            if target is None or target.type != "identifier":
                return
            var = text(target)
            for ident in captures("(identifier) @i", fn.body).get("i", []):
                if text(ident) != var or ident.start_byte <= parent.start_byte:
                    continue
                p = ident.parent
                if p is not None and p.type == "assignment_expression" and p.child_by_field_name("left") == ident:
                    continue
                if self._is_macro_loop_arg(ident):  # for_each_set_bit(b, &mask, n) { ... }
                    self._macro_loop(fn, ident)
                    continue
                self._mask_context(fn, ident, kind, submask, depth + 1)

    def _presence_bits(self, fn: Function, node, bit_node) -> None:
        try:
            bars = self.resolver.values(bit_node, fn.source, fn)
        except Unresolved:
            return
        for bar in bars:
            if 0 <= bar <= 5:
                self.dep(fn, node, "fixed", bar=bar, api="test_bit(pci_select_bars)", detail="presence")

    @staticmethod
    def _submask_note(submask: int | None) -> str:
        return f"among the BARs in mask {submask:#x}" if submask is not None else ""

    def _macro_loop(self, fn: Function, ident) -> None:
        node = ident
        while node is not None and node.type != "call_expression":
            node = node.parent
        stmt = node.parent if node is not None else None
        if stmt is None or stmt.type != "expression_statement":
            return
        body = stmt.next_named_sibling
        args = _args(node)
        if body is not None and body.type == "compound_statement" and args and args[0].type == "identifier":
            self.loop(fn, body, args[0])

    @staticmethod
    def _is_macro_loop_arg(ident) -> bool:
        node = ident
        for _ in range(3):
            node = node.parent
            if node is None:
                return False
            if node.type == "call_expression":
                name = _call_name(node)
                return bool(name) and "for_each" in name
        return False

    # --- loops -----------------------------------------------------------------------------

    def loop_of(self, fn: Function, at, index_node):
        """The loop whose variable ``index_node`` is, if it is one."""
        if index_node.type != "identifier":
            return None
        var = text(index_node)
        node = at
        while node is not None and node != fn.node:
            parent = node.parent
            if parent is None:
                return None
            if parent.type == "for_statement" and node == parent.child_by_field_name("body"):
                if var in self._for_vars(parent):
                    return parent
            if parent.type in ("while_statement", "do_statement") and node == parent.child_by_field_name("body"):
                if any(text(u) == var for u in captures("(update_expression argument: (identifier) @u)",
                                                       parent).get("u", [])):
                    return parent
            if node.type == "compound_statement" and parent.type == "compound_statement":
                prev = node.prev_named_sibling
                if prev is not None and prev.type == "expression_statement" and prev.named_child_count:
                    call = prev.named_children[0]
                    if call.type == "call_expression" and "for_each" in (_call_name(call) or ""):
                        a = _args(call)
                        if a and text(a[0]) == var:
                            return node  # the body of a for_each_*() macro loop
            node = parent
        return None

    @staticmethod
    def _for_vars(loop) -> set[str]:
        names = set()
        init = loop.child_by_field_name("initializer")
        for n in captures("(assignment_expression left: (identifier) @n)", init).get("n", []) if init else []:
            names.add(text(n))
        if init is not None and init.type == "declaration":
            for n in captures("(init_declarator declarator: (identifier) @n)", init).get("n", []):
                names.add(text(n))
        update = loop.child_by_field_name("update")
        if update is not None:
            for n in captures("(update_expression argument: (identifier) @n)", update).get("n", []):
                names.add(text(n))
            if update.type == "update_expression":
                arg = update.child_by_field_name("argument")
                if arg is not None and arg.type == "identifier":
                    names.add(text(arg))
        return names

    def loop(self, fn: Function, loop, index_node) -> None:
        key = (fn.source.path, loop.start_byte)
        if key in self.loops_done:
            return
        self.loops_done.add(key)
        var = text(index_node)
        body = loop if loop.type == "compound_statement" else loop.child_by_field_name("body")
        names = set(_idents(body))
        kinds: set[str] = set()
        if "IORESOURCE_MEM" in names:
            kinds.add("memory")
        if "IORESOURCE_IO" in names:
            kinds.add("io")
        if "PCI_BASE_ADDRESS_SPACE_IO" in names:
            kinds |= {"io", "memory"}
        low, high = 0, 5
        submask = None
        if loop.type == "compound_statement":  # for_each_set_bit(var, &mask, n): kind from the mask
            call = loop.prev_named_sibling.named_children[0]
            a = _args(call)
            mask_kind, submask = self._mask_origin(fn, a[1]) if len(a) > 1 else (None, None)
            if mask_kind:
                kinds = {mask_kind}
        else:
            low, high = self._range(fn, loop, var)
        if not kinds:
            return  # every BAR in turn, by its own index: nothing depends on order
        mode = self._mode(loop, body, var)
        detail = f"loop over BARs {low}..{high}" + (f", {self._submask_note(submask)}" if submask else "")
        where = loop if loop.type != "compound_statement" else loop.prev_named_sibling
        if mode == "packed":
            for kind in sorted(kinds):
                for order in ORDERS:
                    self.dep(fn, where, "ordinal", order=order, attr=kind, low=low, high=high,
                             api="BARs packed in order into an array", detail=detail)
            # any BAR added among those packed moves the others or lengthens the array (QAT's
            # has three entries)
            self.dep(fn, where, "mask", api="BARs packed in order into an array",
                     detail="a BAR added among them shifts or overruns the packed array")
        if submask is not None and mode in ("packed", "first"):
            for bar in range(6):  # qat_4xxx packs only the memory BARs of slots 0, 2 and 4
                if submask >> bar & 1:
                    self.dep(fn, where, "fixed", bar=bar, api=f"pci_select_bars() & {submask:#x}",
                             detail="slot taken part in the scan")
        elif mode == "first":
            for kind in sorted(kinds):
                self.dep(fn, where, "ordinal", order="first", attr=kind, low=low, high=high,
                         api="loop stops at the first match", detail=detail)

    def _mask_origin(self, fn: Function, node) -> tuple[str | None, int | None]:
        names = _idents(node)
        writes = self.resolver.local_writes(fn)
        for name in names:
            for kind, value in writes.get(name, []):
                if kind != "set":
                    continue
                inner = _idents(value)
                if "pci_select_bars" in inner:
                    attrs = {FLAG_ATTRS[n] for n in inner if n in FLAG_ATTRS} & {"memory", "io"}
                    sub = None
                    if value.type == "binary_expression" and text(value.child_by_field_name("operator")) == "&":
                        for side in ("left", "right"):
                            s = value.child_by_field_name(side)
                            if "pci_select_bars" not in _idents(s):
                                sub = self.resolver.one(s, fn.source, fn)
                    return (next(iter(attrs)) if len(attrs) == 1 else None), sub
        return None, None

    def _range(self, fn: Function, loop, var: str) -> tuple[int, int]:
        low, high = 0, 5
        init = loop.child_by_field_name("initializer")
        if init is not None:
            for m in matches("(assignment_expression left: (identifier) @n right: (_) @v)", init) + \
                    matches("(init_declarator declarator: (identifier) @n value: (_) @v)", init):
                if text(m["n"][0]) == var:
                    v = self.resolver.one(m["v"][0], fn.source, fn)
                    if v is not None:
                        low = max(0, min(v, 5))
        cond = loop.child_by_field_name("condition")
        for m in matches("(binary_expression left: (identifier) @n operator: _ @op right: (_) @v)", cond) \
                if cond is not None else []:
            if text(m["n"][0]) != var:
                continue
            op = text(m["op"][0])
            v = self.resolver.one(m["v"][0], fn.source, fn)
            if v is None:
                continue
            if op == "<":
                high = min(high, v - 1)
            elif op == "<=":
                high = min(high, v)
        return low, max(low, high)

    def _mode(self, loop, body, var: str) -> str:
        subscripted = set()  # variables used as array indices in the loop: bars[j] = ...
        for idx in captures("(subscript_expression index: (_) @i)", body).get("i", []):
            subscripted |= set(_idents(idx))
        for m in captures("(update_expression argument: (identifier) @n) @u", body).get("n", []):
            if text(m) != var and text(m) in subscripted and not self._in_inner_loop(m, body):
                return "packed"
        for m in matches("(assignment_expression left: (identifier) @n operator: \"+=\")", body):
            if text(m["n"][0]) != var and text(m["n"][0]) in subscripted:
                return "packed"
        stops = captures("(break_statement) @b (return_statement) @r (goto_statement) @g", body)
        for name in ("b", "r", "g"):
            for node in stops.get(name, []):
                if name != "b" or not self._in_inner_loop(node, body, switch=True):
                    return "first"
        assigned = {text(n) for n in captures("(assignment_expression left: (identifier) @n)", body).get("n", [])}
        cond = loop.child_by_field_name("condition") if loop.type != "compound_statement" else None
        if cond is not None and (set(_idents(cond)) - {var}) & assigned:
            return "first"
        for cont in captures("(if_statement condition: (_) @c consequence: (continue_statement))", body).get("c", []):
            if set(_idents(cont)) & assigned:
                return "first"
        for cont in captures("(if_statement condition: (_) @c consequence: (compound_statement"
                             " (continue_statement)))", body).get("c", []):
            if set(_idents(cont)) & assigned:
                return "first"
        return "all"

    @staticmethod
    def _in_inner_loop(node, body, switch: bool = False) -> bool:
        kinds = {"for_statement", "while_statement", "do_statement"} | ({"switch_statement"} if switch else set())
        cur = node.parent
        while cur is not None and cur != body:
            if cur.type in kinds:
                return True
            cur = cur.parent
        return False

    def loop_size(self, fn: Function, at, loop, api: str, var: str) -> None:
        """A length compared inside a BAR loop.  Tested together with the BAR's type, it
        filters the scan (forcedeth: the first memory BAR at least register_size long): the
        role gets `with size`.  Tested on its own with a break or continue, every BAR the
        loop visits is compared (jmb38x_ms counts 256-byte BARs).  Otherwise it checks the
        BAR the scan chose (atlantic: > 24 bytes or -EIO), which the role already covers."""
        low, high = (0, 5) if loop.type == "compound_statement" else self._range(fn, loop, var)
        body = loop if loop.type == "compound_statement" else loop.child_by_field_name("body")
        for kind, op, value, where in self.size_context(fn, at):
            if kind == "unresolved":
                self.unresolved(fn, where, "size", api, where, op)
                continue
            if kind == "derived":  # bars[j].len = pci_resource_len(pdev, i): every scanned BAR's length
                self.dep(fn, where, "extent", api=api, detail=f"length of each BAR the loop visits, {op}")
                continue
            if kind != "compare":
                continue
            cond, stmt = self._condition_of(where, body)
            if cond is not None and set(_idents(cond)) & set(FLAG_ATTRS):
                attrs = {FLAG_ATTRS[n] for n in _idents(cond) if n in FLAG_ATTRS} & {"memory", "io"}
                for attr in sorted(attrs):
                    self.dep(fn, where, "ordinal", order="first", attr=attr, low=low, high=high, op=op,
                             value=value, api="loop stops at the first match",
                             detail=f"loop over BARs {low}..{high} with len {op} {value:#x}")
            elif stmt is not None and self._stops(stmt.child_by_field_name("consequence")):
                for bar in range(low, high + 1):
                    self.dep(fn, where, "size", bar=bar, op=op, value=value, api=api,
                             detail="in a loop over BARs")

    @staticmethod
    def _condition_of(node, body):
        cur = node
        while cur is not None and cur != body:
            parent = cur.parent
            if parent is not None and parent.type == "if_statement" and \
                    parent.child_by_field_name("condition") == cur:
                return cur, parent
            cur = parent
        return None, None

    @staticmethod
    def _stops(node) -> bool:
        if node is None:
            return False
        if node.type in ("break_statement", "continue_statement"):
            return True
        if node.type == "compound_statement":
            return any(c.type in ("break_statement", "continue_statement") for c in node.named_children)
        return False
