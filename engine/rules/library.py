"""A rule library: every .rules file under the rule roots, parsed, checked, compiled.

Includes form a graph (networkx): a cycle or an include that leaves the rule
roots is an error at the include statement, and so is a rule file reached
through a symlink that leaves its root.  Parsed and checked files are cached
(engine/rules/cache.py: plain data, in a directory only this user can write),
so answering one device does not re-parse every rule file; a file's AST is
only decoded and compiled when a device needs that rule set (matching reads
the small `match` lists alone).
"""

from __future__ import annotations

import os

from .. import __version__, files
from ..paths import GRAMMAR_FILE, RULES_DIR, is_dir, is_file, pure
from ..errors import Location, RuleError, RuleErrors
from ..model import Device
from . import ast, cache
from .ast import stem_of
from .compile import Candidate, CompiledFile, Violation, class_match, compile_file, ids_match

CACHE_FORMAT = 6


def __getattr__(name: str):
    """DEFAULT_ROOT, the shipped rules/ as a Path (paths.RULES): made when first asked for, as
    pathlib costs a warm `which`, which loads the library by name (paths.RULES_DIR)."""
    if name != "DEFAULT_ROOT":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .. import paths
    return paths.RULES


class Ruleset:
    """One rule file with the files it includes: what a matching device is judged by.

    Light until used: matching reads only the file's `match` lines; the AST is
    loaded and compiled the first time the rule set is evaluated.
    """

    def __init__(self, library: "Library", path: str, name: str):
        self.library, self.path, self.name = library, path, name
        self._parts: tuple[CompiledFile, ...] | None = None
        self._by_id: tuple[dict, tuple] | None = None  # _lines_for's index, made when first needed

    @property
    def matches(self) -> tuple:
        """Its `match` lines (from a warm cache, decoded when first read)."""
        return self.library.matches_of(self.path)

    @property
    def file(self) -> ast.RuleFile:
        return self.library.file(self.path)

    @property
    def parts(self) -> tuple[CompiledFile, ...]:
        """Itself first, then its includes (depth first); compiled on first use, then kept."""
        if self._parts is None:
            self._parts = tuple(self.library.compiled(p) for p in (self.path, *self.library.closure(self.path)))
        return self._parts

    @property
    def rules(self) -> list:
        return [rule for part in self.parts for rule in part.rules]

    @property
    def registers(self) -> tuple:
        """Registers its files state (`registers`): RegisterSpans for the page analysis."""
        return tuple(dict.fromkeys(r for part in self.parts for r in part.registers))

    def evaluate(self, candidate: Candidate, trace: list[str] | None = None) -> list[Violation]:
        out: list[Violation] = []
        for part in self.parts:
            if trace is not None:
                trace.append(f"rule set {part.name} ({part.path})")
            out.extend(part.evaluate(candidate, trace))
        return out

    def match(self, device: Device) -> tuple[int, str] | None:
        """(rank, why) if this rule set claims the device: IDs rank before class, class before driver."""
        keys = self.library.entries[self.path].keys
        if keys is not None and not may_match(keys, device):
            return None
        best: tuple[int, str] | None = None
        for m in self._lines_for(device):
            hit = _match_one(m, device)
            if hit is not None and (best is None or hit[0] < best[0]):
                best = hit
        return best


    def _lines_for(self, device: Device) -> list:
        """Its `match` lines that may claim ``device``, in file order: a line naming one vendor
        and device ID only for that ID (rule sets list hundreds), every other line always."""
        if self._by_id is None:
            by_id: dict[tuple[int, int], list] = {}
            rest = []
            for n, m in enumerate(self.matches):
                if type(m) is ast.MatchId and m.vendor is not None and m.device is not None and m.device_high is None:
                    by_id.setdefault((m.vendor, m.device), []).append((n, m))
                else:
                    rest.append((n, m))
            self._by_id = (by_id, tuple(rest))
        by_id, rest = self._by_id
        found = by_id.get((device.vendor, device.device))
        if found is None:
            return [m for _, m in rest]
        return [m for _, m in sorted(found + list(rest), key=lambda line: line[0])]


def _match_one(m, device: Device) -> tuple[int, str] | None:
    if isinstance(m, ast.MatchId):
        if not ids_match(m, device):
            return None
        if m.class_value is None:
            return 0, f"id {device.id_text} (line {m.span.line})"
        shown = class_match(m.class_value, m.class_mask, m.class_with_prog_if, device)
        return None if shown is None else (0, f"id {device.id_text}, class {shown} (line {m.span.line})")
    if isinstance(m, ast.MatchClass):
        shown = class_match(m.value, m.mask, m.with_prog_if, device)
        return None if shown is None else (1, f"class {shown} (line {m.span.line})")
    if isinstance(m, ast.MatchDriver) and device.driver == m.name:
        return 2, f"driver {m.name} (line {m.span.line})"
    if isinstance(m, ast.MatchModule):
        want = _module_name(m.name)
        if any(_module_name(name) == want for name in device.modules):
            return 2, f"module {m.name} (line {m.span.line})"
        # A built-in driver prints "Kernel driver in use: nvme" and no "Kernel modules:" line;
        # the driver in use is then the module too.  Not for the stub drivers a passed-through
        # device is bound to on the host: they say nothing about the guest's driver.
        if device.driver and device.driver not in HOST_STUB_DRIVERS and _module_name(device.driver) == want:
            return 2, f"module {m.name}, the driver in use (line {m.span.line})"
    return None


HOST_STUB_DRIVERS = frozenset({"vfio-pci", "pci-stub", "pciback", "xen-pciback"})


def match_keys(matches) -> list | None:
    """What a device needs for any of ``matches`` to claim it, as plain data the rule cache
    keeps: [vendors (None: any), classes ([value, mask, with_prog_if]), drivers, modules];
    None (always look) for a kind of match line this does not know.  A warm run then decodes
    the match lines of only the few rule sets that may claim the device (``may_match``),
    and ``_match_one`` decides as it always did."""
    vendors, classes, drivers, modules = set(), [], set(), set()
    for m in matches:
        kind = type(m)
        if kind is ast.MatchId:
            vendors.add(m.vendor)
        elif kind is ast.MatchClass:
            classes.append([m.value, m.mask, m.with_prog_if])
        elif kind is ast.MatchDriver:
            drivers.add(m.name)
        elif kind is ast.MatchModule:
            modules.add(_module_name(m.name))
        else:
            return None
    return [sorted(vendors, key=lambda v: -1 if v is None else v), classes, sorted(drivers), sorted(modules)]


def may_match(keys: list, device: Device) -> bool:
    """False only if no match line summed up in ``keys`` (match_keys) can claim ``device``."""
    vendors, classes, drivers, modules = keys
    if device.vendor is not None and (device.vendor in vendors or None in vendors):
        return True
    for value, mask, with_prog_if in classes:
        if class_match(value, mask, with_prog_if, device) is not None:
            return True
    if device.driver is not None and device.driver in drivers:
        return True
    if modules:
        if any(_module_name(name) in modules for name in device.modules):
            return True
        if device.driver and device.driver not in HOST_STUB_DRIVERS and _module_name(device.driver) in modules:
            return True
    return False


def _keys_ok(keys) -> bool:
    """Keys as match_keys writes them (a cache file is plain data: anything else means 'look')."""
    return (isinstance(keys, list) and len(keys) == 4 and all(isinstance(k, list) for k in keys)
            and all(v is None or type(v) is int for v in keys[0])
            and all(isinstance(c, list) and len(c) == 3 and type(c[0]) is int
                    and (c[1] is None or type(c[1]) is int) and type(c[2]) is bool for c in keys[1])
            and all(isinstance(n, str) for n in keys[2]) and all(isinstance(n, str) for n in keys[3]))


def _module_name(name: str) -> str:
    """modprobe treats '-' and '_' in module names as the same character."""
    return name.replace("-", "_")


class _Entry:
    """What the library knows of one file before it is needed in full: from a parse (``file``),
    or from a cache row (``row``) whose match lines and AST are decoded when first needed."""

    __slots__ = ("name", "_matches", "includes", "file", "keys", "_row")

    def __init__(self, name: str, matches: tuple | None, includes: tuple[str, ...],
                 file: ast.RuleFile | None = None, keys: list | None = None, row: cache.Row | None = None):
        self.name = name
        self._matches, self._row = matches, row  # match lines, or the cache row to decode them from
        self.includes = includes  # the included files' paths, as keys of the library
        self.file = file
        self.keys = keys  # match_keys(matches); None: look at every match line

    @property
    def matches(self) -> tuple:
        """cache.Damaged if the row's match lines fail their check."""
        if self._matches is None:
            self._matches = tuple(self._row.matches)
        return self._matches

    def __repr__(self) -> str:
        return f"_Entry({self.name!r}, {self.matches!r}, {self.includes!r})"


class Library:
    def __init__(self, entries: dict[str, _Entry], from_cache: bool = False, texts: dict[str, bytes] | None = None,
                 roots: list[str] | None = None):
        self.entries = entries
        self.from_cache = from_cache
        self._texts = texts or {}  # the rule files' bytes, for version (and a damaged cache entry)
        self._roots = roots or []  # _roots(): resolved, as strings
        self._version: str | None = None
        self._compiled: dict[str, CompiledFile] = {}
        self._matching: dict[tuple, tuple[tuple[Ruleset, str], ...]] = {}
        self._closures: dict[str, tuple[str, ...]] = {}
        self._by_key: tuple | None = None  # _candidates' index, made when first needed
        self.rulesets = {e.name: Ruleset(self, path, e.name) for path, e in entries.items()}

    @property
    def version(self) -> str:
        """rules_version() of the files loaded, computed when first asked."""
        if self._version is None:
            self._version = rules_version(self._texts)
        return self._version

    def file(self, path: str) -> ast.RuleFile:
        entry = self.entries[path]
        if entry.file is None:
            try:
                entry.file = entry._row.tree()
            except cache.Damaged:
                self._reparse()
                return self.entries[path].file
        return entry.file

    def matches_of(self, path: str) -> tuple:
        try:
            return self.entries[path].matches
        except cache.Damaged:
            self._reparse()
            return self.entries[path].matches

    def _reparse(self) -> None:
        """A cache entry failed its check when first decoded: every file is parsed again from
        the text this run read (the same text the cache was made from: the material matched),
        as on a miss, and the cache rewritten; the index and keys already read stay valid."""
        parsed = _parse_all(self._texts, self._roots)
        self.entries.update(_entries(parsed))
        self.from_cache = False
        _cache_put(_cache_material(self._texts), self.entries)

    @property
    def files(self) -> dict[str, ast.RuleFile]:
        return {path: self.file(path) for path in self.entries}

    def compiled(self, path: str) -> CompiledFile:
        if path not in self._compiled:
            self._compiled[path] = compile_file(self.file(path))
        return self._compiled[path]

    def closure(self, path: str) -> tuple[str, ...]:
        """The files ``path`` includes, depth first, each once (computed once per library)."""
        found = self._closures.get(path)
        if found is None:
            found = self._closures[path] = tuple(self._walk_includes(path))
        return found

    def _walk_includes(self, path: str) -> list[str]:
        out: list[str] = []

        def visit(p: str) -> None:
            for target in self.entries[p].includes:
                if target not in out and target != path:
                    out.append(target)
                    visit(target)
        visit(path)
        return out

    def matching(self, device: Device) -> list[tuple[Ruleset, str]]:
        """Rule sets for a device: those matching by ID or class; failing that, by driver/module.

        Matching reads only these fields, so devices that agree on them share one answer:
        a fleet audit asks once per page size for the same few devices over and over."""
        key = (device.vendor, device.device, device.subsystem_vendor, device.subsystem_device,
               device.class_code, device.prog_if, device.driver, device.modules)
        found = self._matching.get(key)
        if found is None:
            if len(self._matching) >= 10_000:
                self._matching.clear()
            found = self._matching[key] = self._match(device)
        return list(found)

    def _candidates(self, device: Device) -> set[Ruleset]:
        """The rule sets may_match would not rule out for ``device``, by an index of their match
        keys (vendor, driver, module; those with class lines or no keys always): a fleet's
        distinct devices asked each of some ninety rule sets in turn."""
        if self._by_key is None:
            by_vendor: dict[int, set] = {}
            by_driver: dict[str, set] = {}
            by_module: dict[str, set] = {}
            any_vendor, always = set(), set()
            for rs in self.rulesets.values():
                keys = self.entries[rs.path].keys
                if keys is None or keys[1]:  # no keys, or a class to test
                    always.add(rs)
                    continue
                vendors, _, drivers, modules = keys
                for vendor in vendors:
                    (any_vendor if vendor is None else by_vendor.setdefault(vendor, set())).add(rs)
                for name in drivers:
                    by_driver.setdefault(name, set()).add(rs)
                for name in modules:
                    by_module.setdefault(name, set()).add(rs)
            self._by_key = (by_vendor, any_vendor, always, by_driver, by_module)
        by_vendor, any_vendor, always, by_driver, by_module = self._by_key
        found = set(always)
        if device.vendor is not None:
            found |= any_vendor
            found |= by_vendor.get(device.vendor, found)
        if device.driver is not None:
            found |= by_driver.get(device.driver, found)
            if device.driver not in HOST_STUB_DRIVERS:
                found |= by_module.get(_module_name(device.driver), found)
        for name in device.modules:
            found |= by_module.get(_module_name(name), found)
        return found

    def _match(self, device: Device) -> tuple[tuple[Ruleset, str], ...]:
        hits = []
        for rs in self._candidates(device):
            found = rs.match(device)
            if found is not None:
                hits.append((found[0], rs.name, rs, found[1]))
        if not hits:
            return ()
        best = min(h[0] for h in hits if h)
        tier = (0, 1) if best < 2 else (2,)
        return tuple((rs, why) for rank, _, rs, why in sorted(hits, key=lambda h: (h[0], h[1])) if rank in tier)


def rule_files(paths: list[str | Path]) -> list[Path]:
    """Every .rules file under ``paths``; one reached through a symlink that leaves its root is an error.

    The root of a directory is itself; of a file named directly, its folder.
    `check`, `fmt`, `test` and `which --rules` all read through here, so none of
    them reads (or `fmt` rewrites) a file outside the roots it was given.
    """
    from pathlib import Path  # here: `which` reads the files by name (_rule_file_names)
    return [Path(f) for f in _rule_file_names(_names(paths))]


def _names(paths: list[str | Path]) -> list[str]:
    """Paths, or names, as the strings of the Paths they are (paths.pure)."""
    return [pure(os.fspath(p)) for p in paths]


def _rule_file_names(paths: list[str]) -> list[str]:
    """rule_files as the strings of its paths, in the same order, of roots given as such
    strings (_names): making a Path of each file cost a warm `which` more than reading them."""
    out: list[str] = []
    errors: list[RuleError] = []
    for p in paths:
        try:
            directory = is_dir(p)
        except OSError as exc:  # a name the system refuses (too long, a loop of symlinks)
            raise RuleErrors([RuleError(f"cannot read: {exc.strerror or exc}", Location(p))]) from None
        if directory:
            found = []
            for f, plain in _rules_under(p):
                if plain:  # no symlink on the way from p: inside the root, and a file
                    out.append(f)
                else:
                    found.append(f)
            found.sort(key=_path_order)
        elif is_file(p):
            found = [p]
        else:
            raise RuleErrors([RuleError("no such rule file or directory", Location(p))])
        if not found:
            continue
        from pathlib import Path  # here: only files reached through a symlink, or named, need it
        root = Path(p).resolve() if directory else Path(p).parent.resolve()
        for f in found:
            try:
                target = Path(f).resolve()
                is_rule_file = target.is_file()
            except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of symlinks (Python < 3.13)
                reason = "a loop of symbolic links" if isinstance(exc, RuntimeError) else exc.strerror or exc
                errors.append(RuleError(f"cannot read: {reason}", Location(f)))
                continue
            if not target.is_relative_to(root):
                errors.append(RuleError(f"reached through a symlink that leaves the rule root {root}"
                                        f" (it points to {target}): refused", Location(f)))
            elif is_rule_file:
                out.append(f)
    if errors:
        raise RuleErrors(errors)
    return sorted(set(out), key=_path_order)


def _path_order(path: str) -> list[str]:
    """The order of Path(path) among Paths (their parts, the root "/" one of them)."""
    return ["/", *path[1:].split("/")] if path.startswith("/") else path.split("/")


def _rules_under(top: str) -> list[tuple[str, bool]]:
    """What ``Path(top).rglob("*.rules")`` finds (``top`` written as str(Path) writes it), each
    with whether it is a regular file reached without a symlink (directory entries' own types:
    no stat, no resolve, which cost a warm `which` more than the rest of loading the library).
    Like rglob it does not descend into symlinked directories and skips a directory it may
    not read."""
    found: list[tuple[str, bool]] = []
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except PermissionError:
            continue
        prefix = "" if folder == "." else folder if folder.endswith("/") else folder + "/"  # as str(Path / name)
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            link = entry.is_symlink()
            if is_dir and not link:
                stack.append(prefix + entry.name)
            if entry.name.endswith(".rules"):
                found.append((prefix + entry.name, not link and entry.is_file(follow_symlinks=False)))
    return found


def _layered(paths: list[str]) -> list[str]:
    """The rule files of several roots, a later root's file replacing an earlier root's of the
    same name: `which --rules mine/` over the shipped rules lets an author try a new mpt3sas.rules."""
    by_stem: dict[str, tuple[int, list[str]]] = {}
    for n, root in enumerate(paths):
        for f in _rule_file_names([root]):
            stem = os.path.basename(f).removesuffix(".rules")  # stem_of, without a Path
            if stem in by_stem and by_stem[stem][0] == n:
                by_stem[stem][1].append(f)  # same name twice in one root: check reports it
            else:
                by_stem[stem] = (n, [f])
    return sorted((f for _, found in by_stem.values() for f in found), key=_path_order)


def _roots(paths: list[str]) -> list[str]:
    """Each root (of a file, its folder) resolved, as str(Path(p).resolve()): that is realpath's
    answer (pathlib stats it too, only to make a symlink loop an error, and _layered has
    already read every root)."""
    return [os.path.realpath(p if is_dir(p) else os.path.dirname(p)) for p in paths]


def cache_dir() -> Path | None:
    """$BARSAFE_CACHE_DIR, else $XDG_CACHE_HOME/barsafe or ~/.cache/barsafe; BARSAFE_CACHE=0: none."""
    name = _cache_dir_name()
    if name is None:
        return None
    from pathlib import Path  # here: the library itself uses the name
    return Path(name)


def _cache_dir_name() -> str | None:
    """cache_dir() as a string, str(cache_dir())."""
    if os.environ.get("BARSAFE_CACHE") == "0":
        return None
    if os.environ.get("BARSAFE_CACHE_DIR"):
        return pure(os.environ["BARSAFE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pure(os.path.join(base, "barsafe"))


def load(paths: list[str | Path] | None = None, use_cache: bool = True) -> Library:
    """Parse, check and compile every rule file under ``paths`` (default: the shipped rules/):
    Paths, or names read as Paths read them."""
    paths = _names(paths) if paths else [RULES_DIR]
    texts = {f: files.read_bytes(f) for f in _layered(paths)}
    material = _cache_material(texts)
    roots = _roots(paths)
    entries = _cache_get(material) if use_cache else None
    if entries is not None:
        return Library(entries, from_cache=True, texts=texts, roots=roots)
    entries = _entries(_parse_all(texts, roots))
    if use_cache:
        _cache_put(material, entries)
    return Library(entries, texts=texts, roots=roots)


def _entries(parsed: dict[str, ast.RuleFile]) -> dict[str, _Entry]:
    from pathlib import Path  # here: a warm run takes the entries from the cache
    resolved = {str(Path(p).resolve()): p for p in parsed}
    return {path: _Entry(f.name or stem_of(path), tuple(f.matches),
                         tuple(resolved[str(_resolve_include(path, inc))] for inc in f.includes),
                         file=f, keys=match_keys(f.matches))
            for path, f in parsed.items()}


def rules_version(texts: dict[str, bytes]) -> str:
    """A rule library's version, as reports print it: the first 12 hex digits of a SHA-256 over
    every rule file's name and text, so the same rules give the same version wherever they are
    installed, and any edit to a rule file a new one."""
    import hashlib  # here: only reports ask (Library.version), not every start-up
    digest = hashlib.sha256()
    for name, data in sorted((os.path.basename(p), data) for p, data in texts.items()):
        digest.update(b"%s\0%d\0" % (name.encode(), len(data)) + data)
    return digest.hexdigest()[:12]


def _parse_all(texts: dict[str, bytes], roots: list[str]) -> dict[str, ast.RuleFile]:
    from .check import check
    from .parse import parse  # lark loads only when the cache misses
    parsed: dict[str, ast.RuleFile] = {}
    errors: list[RuleError] = []
    names: dict[str, str] = {}
    for path, data in texts.items():
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(RuleError("not UTF-8 text", Location(path, data[:exc.start].count(b"\n") + 1)))
            continue
        try:
            f = parse(text, path)
        except RuleErrors as exc:
            errors.extend(exc.errors)
            continue
        errors.extend(check(f, stem_of(path)))
        if f.name in names:
            errors.append(RuleError(f"rule set '{f.name}' also defined in {names[f.name]}",
                                    f.of(ast.Ruleset)[0].span.location))
        names.setdefault(f.name or path, path)
        parsed[path] = f
    try:  # include problems are reported with the others, in the same run
        _check_includes(parsed, roots, missing_ok=set(texts) - set(parsed))
    except RuleErrors as exc:
        errors.extend(exc.errors)
    if errors:
        raise RuleErrors(errors)
    return parsed


def _resolve_include(owner: str, inc: ast.Include) -> Path:
    from pathlib import Path  # here: a warm run takes the includes from the cache
    return (Path(owner).parent / inc.path.value).resolve()


def _check_includes(parsed: dict[str, ast.RuleFile], roots: list[str],
                    missing_ok: set[str] = frozenset()) -> None:
    from pathlib import Path

    import networkx as nx  # only when the cache misses: it costs a tenth of a second to import

    errors: list[RuleError] = []
    graph = nx.DiGraph()
    by_resolved = {str(Path(p).resolve()): p for p in parsed}
    for path, f in parsed.items():
        graph.add_node(path)
        for inc in f.includes:
            target = _resolve_include(path, inc)
            if not any(target.is_relative_to(root) for root in roots):
                errors.append(RuleError(f"include {inc.path.value!r} leaves the rule roots"
                                        f" ({', '.join(map(str, roots))})", inc.span.location))
            elif str(target) not in by_resolved:
                if any(str(Path(p).resolve()) == str(target) for p in missing_ok):
                    continue  # that file has its own errors, already reported
                errors.append(RuleError(f"include {inc.path.value!r}: no such rule file among"
                                        " those loaded", inc.span.location))
            else:
                graph.add_edge(path, by_resolved[str(target)], span=inc.span)
    for cycle in nx.simple_cycles(graph):
        first = cycle[0]
        nxt = cycle[1] if len(cycle) > 1 else cycle[0]
        span = graph.edges[first, nxt]["span"]
        chain = " -> ".join(Path(p).name for p in cycle + [first])
        errors.append(RuleError(f"include cycle: {chain}", span.location))
    if errors:
        raise RuleErrors(errors)


def _cache_material(texts: dict[str, bytes]) -> list[bytes]:
    """What a cache entry must have been made from to be served (cache.get): the parts of its
    material, which the cache compares in place rather than joined (half a megabyte copied)."""
    parts = [f"{CACHE_FORMAT}:{__version__}".encode(), files.read_bytes(GRAMMAR_FILE)]
    for path in sorted(texts):
        parts += [path.encode(), str(len(texts[path])).encode(), texts[path]]
    return parts


def _cache_get(material: list[bytes]) -> dict[str, _Entry] | None:
    rows = cache.get(_cache_dir_name(), material)
    if rows is None:
        return None
    return {r.path: _Entry(r.name, None, r.includes, row=r, keys=r.keys if _keys_ok(r.keys) else None)
            for r in rows}


def _cache_put(material: list[bytes], entries: dict[str, _Entry]) -> None:
    cache.put(_cache_dir_name(), material,
              [(path, e.name, e.matches, e.includes, e.file, e.keys) for path, e in entries.items()])
