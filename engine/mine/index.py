"""A driver's files as the miner sees them: its module's C files, the headers they include,
the kernel headers that name PCI IDs and sizes, and lookups by name across them.

Name resolution follows C's scoping as far as a whole module allows: a static
function in the calling file first, then a function defined elsewhere in the
module, then (for calls that leave the module) a file of the same directory that
defines it (mptspi's probe is mpt_attach in mptbase.c, beside it).
"""

from __future__ import annotations

from pathlib import Path

from .cfront import Define, Function, Source, text
from .kbuild import include_dirs

# Kernel headers every driver sees: PCI IDs, sizes, BAR register bits, PCI_ANY_ID.
GLOBAL_HEADERS = ("include/linux/pci_ids.h", "include/linux/sizes.h",
                  "include/uapi/linux/pci_regs.h", "include/linux/mod_devicetable.h")
MAX_HEADERS = 80  # headers followed per file: the closure of a DRM driver is in the thousands


class SourceCache:
    """Parsed files, shared by every driver one worker mines (headers repeat a lot)."""

    def __init__(self, tree_root: Path):
        self.tree_root = tree_root
        self.sources: dict[str, Source | None] = {}
        self.header_closure: dict[str, list[Source]] = {}
        self.functions_in_dir: dict[str, dict[str, list[Function]]] = {}

    def get(self, path: str) -> Source | None:
        if path not in self.sources:
            try:
                self.sources[path] = Source(self.tree_root, path)
            except OSError:
                self.sources[path] = None
        return self.sources[path]

    def globals(self) -> list[Source]:
        return [s for p in GLOBAL_HEADERS if (s := self.get(p)) is not None]

    def _resolve_include(self, source: Source, quoted: bool, target: str) -> str | None:
        candidates = []
        if quoted:
            candidates.append(Path(source.directory) / target)
        candidates += [Path(d) / target for d in include_dirs(self.tree_root, source.directory)]
        if target.split("/")[0] in _SKIPPED:
            return None
        candidates.append(Path("include") / target)
        for c in candidates:
            full = (self.tree_root / c)
            if full.is_file():
                try:
                    return str(full.resolve().relative_to(self.tree_root.resolve()))
                except ValueError:
                    return None
        return None

    def headers_of(self, source: Source) -> list[Source]:
        """The headers ``source`` includes, breadth first: the driver's own headers and
        everything they and the file include, one level into the kernel's include/ (not
        what <linux/pci.h> itself includes), and vendor subdirectories (<linux/mlx5/...>)
        at any depth."""
        if source.path in self.header_closure:
            return self.header_closure[source.path]
        out: list[Source] = []
        seen = {source.path}
        queue = [(source, True)]
        while queue and len(out) < MAX_HEADERS:
            current, local = queue.pop(0)
            for quoted, target in current.includes():
                if not quoted and not local and not _followed(target):
                    continue  # a kernel header's own kernel includes: not followed
                path = self._resolve_include(current, quoted, target)
                if path is None or path in seen:
                    continue
                seen.add(path)
                header = self.get(path)
                if header is not None:
                    out.append(header)
                    queue.append((header, quoted and local))
        self.header_closure[source.path] = out
        return out


# kernel headers no driver's BAR constants come from (and that are large)
_SKIPPED = {"asm", "asm-generic", "trace", "uapi", "generated", "dt-bindings", "acpi", "xen", "kunit"}


def _followed(target: str) -> bool:
    """Angle-bracket includes worth reading for constants: vendor subdirectories
    (<linux/mlx5/driver.h>, <linux/qed/...>), not the core kernel headers."""
    parts = target.split("/")
    if parts[0] == "linux":
        return len(parts) >= 3
    return False


class Index:
    """One module: its files, its functions by name, name lookups for constants."""

    def __init__(self, cache: SourceCache, files: list[str]):
        self.cache = cache
        self.sources = [s for f in files if (s := cache.get(f)) is not None]
        self.by_path = {s.path: s for s in self.sources}
        self.functions: dict[str, list[Function]] = {}
        for s in self.sources:
            for name, fns in s.functions().items():
                self.functions.setdefault(name, []).extend(fns)
        self._field_values: dict[str, list] | None = None
        self.beyond: dict[str, Source] = {}  # files outside the module that calls reached

    # --- functions ------------------------------------------------------------------------

    def resolve_function(self, name: str, caller: Source | None) -> list[Function]:
        """Definitions a call to ``name`` from ``caller`` may reach."""
        if caller is not None:
            local = caller.functions().get(name)
            if local:
                return local
        found = [f for f in self.functions.get(name, []) if not f.static]
        if found:
            return found
        if caller is not None:
            for directory in (caller.directory, *include_dirs(self.cache.tree_root, caller.directory)):
                found = self._beside(name, directory)
                if found:
                    return found
        return []

    def _beside(self, name: str, directory: str) -> list[Function]:
        """A non-static function defined by another C file of the same directory (the
        driver's own library module, e.g. mptbase beside mptspi) or of a directory its
        makefile puts on the include path (qat_common for qat_c62x)."""
        table = self.cache.functions_in_dir.get(directory)
        if table is None:
            table = {}
            self.cache.functions_in_dir[directory] = table
        if name in table:
            self._reached(table[name])
            return table[name]
        found: list[Function] = []
        needle = name.encode()
        folder = self.cache.tree_root / directory
        for path in sorted(folder.glob("*.c")):
            rel = str(path.relative_to(self.cache.tree_root))
            if rel in self.by_path:
                continue
            try:
                if needle not in path.read_bytes():  # only files that mention the name are parsed
                    continue
            except OSError:
                continue
            source = self.cache.get(rel)
            if source is not None:
                found += [f for f in source.functions().get(name, []) if not f.static]
        table[name] = found
        self._reached(found)
        return found

    def _reached(self, found: list[Function]) -> None:
        """Files outside the module that calls lead into: their field writes count too."""
        for f in found:
            if f.source.path not in self.by_path and f.source.path not in self.beyond:
                self.beyond[f.source.path] = f.source
                self._field_values = None

    def field_values(self, name: str) -> list[tuple[Source, object]]:
        """Every value the module writes to a struct field of this name."""
        if self._field_values is None:
            out: dict[str, list] = {}
            for s in [*self.sources, *self.beyond.values()]:
                for f, values in s.field_values().items():
                    out.setdefault(f, []).extend((s, v) for v in values)
            self._field_values = out
        return self._field_values.get(name, [])

    # --- constants ------------------------------------------------------------------------

    def defines(self, name: str, source: Source) -> list[Define]:
        """#defines of ``name`` visible from ``source``: its own, its headers', the kernel's PCI
        headers'; the first file that defines it wins (several definitions there: all)."""
        for s in self._scope(source):
            found = s.defines().get(name)
            if found:
                return found
        return []

    def enumerators(self, name: str, source: Source) -> list[tuple[Source, object, str | None]]:
        for s in self._scope(source):
            found = s.enumerators().get(name)
            if found:
                return [(s, value, prev) for value, prev in found]
        return []

    def _scope(self, source: Source):
        yield source
        yield from self.cache.headers_of(source)
        yield from self.cache.globals()


def string_value(node) -> str | None:
    """The text of a string literal or a concatenation of them."""
    if node is None:
        return None
    if node.type == "string_literal":
        return "".join(text(c) for c in node.named_children if c.type == "string_content")
    if node.type == "concatenated_string":
        parts = [string_value(c) for c in node.named_children]
        return None if None in parts else "".join(parts)
    return None
