"""The rule cache: parsed rule files kept between runs, in a form that cannot run code.

barsafe runs as root, and its cache sits at a predictable path.  So the cache
is plain data, never pickle: JSON with each AST node written as
``{"@": "ClassName", "f": [fields]}`` and each tuple as ``{"t": [...]}``, and
read back through a fixed table of the AST's own node classes.  A span in the
rule file it belongs to is written ``{"s": [line, column, end line, end column]}``
(its path is the file's: writing it in every span made the payloads three times
the size of the rule files, and checking and reading them most of a warm run).
A file that names anything else, or has the wrong number of fields, is a miss.  Plain
data alone would still let another user feed barsafe forged rules, so the
directory and the file are opened without following symlinks and must belong
to this user and be writable by no one else (engine/files.py); a cache that
fails any check is ignored and rebuilt, never trusted and never an error.

Layout of one cache file::

    MAGIC
    <len(material)> <len(index)> <crc32(index)>\\n
    material     every input's bytes (version, grammar, each rule file's path, length and
                 text), joined by NUL bytes
    index        plain JSON, no nodes: [[path, name, includes, keys, matches offset, length,
                 crc32, AST offset, length, crc32], ...]
    payloads     two JSON documents per rule file: its match lines and its AST, each decoded
                 when first needed

A hit needs ``material`` equal to what this run read, byte for byte, so a
changed rule file or grammar can never be served stale.  The file's name
(key_of) is only where to look: it is made from the inputs' names and lengths,
so an edit that keeps a file's length replaces the cache file rather than
adding one.  A warm run reads the header, the material and the index, and no
more; each payload is read when first needed, and its CRC checked then: one
that fails (or can no longer be read) raises Damaged, and the library parses
the rule files again from their text, as on a miss, and rewrites the cache
(library.Library).  The index's CRC is checked when it is read (a damaged one
is a miss).  ``keys`` is the library's summary of a file's match lines
(library.match_keys): a warm run decodes the match lines of only the rule sets
that may claim the device (decoding all of them was most of a warm `which`'s
work), and reading every payload, then the half of the cache it never used,
cost it more than reading the rule files.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence

from .. import files
from . import ast

MAGIC = b"barsafe rule cache 6\n"
_NODES: dict[str, type] = {}


def _node_classes() -> dict[str, type]:
    if not _NODES:
        stack = [ast.Node]
        while stack:
            cls = stack.pop()
            _NODES[cls.__name__] = cls
            stack.extend(cls.__subclasses__())
    return _NODES


class _Damaged(ValueError):
    pass


def _encode(value, path: str | None):
    if isinstance(value, ast.Node):
        if type(value) is ast.Span and value.path == path:
            return {"s": [value.line, value.column, value.end_line, value.end_column]}
        return {"@": type(value).__name__, "f": [_encode(value.__dict__[n], path) for n in value._fields]}
    if isinstance(value, tuple):
        return {"t": [_encode(v, path) for v in value]}
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return value
    raise TypeError(f"cannot cache a {type(value).__name__} in a rule AST")


def _hook_for(path: str | None):
    """json's object hook turning cache JSON back into nodes (spans without a path in ``path``)."""

    def hook(obj: dict):
        if len(obj) == 1:
            if "t" in obj:
                return tuple(obj["t"])
            if "s" in obj and path is not None:
                where = obj["s"]
                if not (isinstance(where, list) and len(where) == 4 and all(type(n) is int for n in where)):
                    raise _Damaged("not a span")
                span = object.__new__(ast.Span)
                span.__dict__.update(path=path, line=where[0], column=where[1], end_line=where[2],
                                     end_column=where[3])
                return span
        if "@" not in obj or "f" not in obj or len(obj) != 2:
            raise _Damaged("not an AST node")
        cls = _node_classes().get(obj["@"])
        values = obj["f"]
        if cls is None or not isinstance(values, list) or len(values) != len(cls._fields):
            raise _Damaged(f"unknown node {obj['@']!r}")
        node = object.__new__(cls)
        node.__dict__.update(zip(cls._fields, values))
        return node

    return hook


def dumps(value, path: str | None = None) -> bytes:
    """The AST (or tuple of nodes) as cache bytes, spans in the file ``path`` written without
    it; TypeError/RecursionError if it cannot be."""
    import json
    return json.dumps(_encode(value, path), separators=(",", ":")).encode("utf-8")


def loads(data: bytes, path: str | None = None):
    """The AST back from ``dumps(value, path)``; ValueError (or RecursionError) for anything else."""
    return _json_loads(data, _hook_for(path))


class _Decoding:
    """The settings json.loads gives its scanner (json.JSONDecoder's defaults), with a hook."""

    strict = True
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__

    def __init__(self, object_hook) -> None:
        self.object_hook = object_hook


def _json_loads(data: bytes, object_hook=None):
    """json.loads(data, object_hook=...) for the cache's own (ASCII) JSON, on the scanner the
    json module itself uses, without importing json: a warm `which` reads the cache and
    writes none, and importing the json package (its encoder and its regular expressions)
    cost it more than reading the cache."""
    try:
        from _json import make_scanner
    except ImportError:  # a Python without the C scanner: the json module's own
        import json
        return json.loads(data, object_hook=object_hook)
    text = data.decode("utf-8", "surrogatepass")
    try:
        value, end = make_scanner(_Decoding(object_hook))(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("extra data after the JSON document")
    return value


def key_of(parts: Sequence[bytes]) -> str:
    """The cache file's name for the material ``parts`` make (NUL-joined): a CRC of the parts,
    each longer one (a rule file's text) by its length alone, and the material's length."""
    summary = b"\0".join(part if len(part) <= 256 else b"<%d>" % len(part) for part in parts)
    return f"{zlib.crc32(summary):08x}-{sum(map(len, parts)) + max(len(parts) - 1, 0):x}"


def _same_material(data: bytes, start: int, end: int, parts: Sequence[bytes]) -> bool:
    """Whether data[start:end] is b"\\0".join(parts), compared in place."""
    at = start
    for n, part in enumerate(parts):
        if n:
            if not data.startswith(b"\0", at):
                return False
            at += 1
        if not data.startswith(part, at):
            return False
        at += len(part)
    return at == end


class Damaged(ValueError):
    """A cache entry that fails its CRC, or is not the AST's JSON, when it is first decoded."""


class Row:
    """One rule file in the cache: its name, includes and match keys now; its match lines and
    AST (``payload``) as cache bytes, read from the cache file, checked against their CRC and
    decoded when first needed (Damaged if they fail)."""

    __slots__ = ("path", "name", "includes", "keys", "_file", "_matches", "_match_place", "_place")

    def __init__(self, path: str, name: str, includes: tuple[str, ...], keys, file: tuple,
                 match_place: tuple[int, int, int], place: tuple[int, int, int]):
        self.path, self.name, self.includes, self.keys = path, name, includes, keys
        self._file = file  # (cache directory, file name)
        self._matches, self._match_place, self._place = None, match_place, place

    @property
    def matches(self) -> tuple:
        if self._matches is None:
            self._matches = self._decode(self._match_place)
        return self._matches

    @property
    def payload(self) -> bytes:
        """The AST's cache bytes, as the file holds them now."""
        return self._read(self._place)

    def tree(self) -> ast.RuleFile:
        """The file's AST, decoded anew on each call."""
        return self._decode(self._place)

    def _read(self, place: tuple[int, int, int]) -> bytes:
        directory, name = self._file
        try:
            dfd = files.open_private_dir(directory, create=False)
            try:
                return files.read_private_range(dfd, name, place[0], place[1])
            finally:
                os.close(dfd)
        except OSError as exc:
            raise Damaged(f"cache entry for {self.path}: {exc}") from None

    def _decode(self, place: tuple[int, int, int]):
        return _checked_loads(self._read(place), place[2], self.path)


def _checked_loads(payload: bytes, crc: int, path: str):
    if zlib.crc32(payload) != crc:
        raise Damaged(f"cache entry for {path}: CRC mismatch")
    try:
        return loads(payload, path)
    except (ValueError, RecursionError) as exc:
        raise Damaged(f"cache entry for {path}: {exc}") from None


_HEAD = 96  # MAGIC and the lengths line fit in this many bytes


def get(directory: str | Path | None, parts: Sequence[bytes]) -> list[Row] | None:
    """The cached rows for exactly the material ``parts`` make, or None for any miss."""
    if directory is None:
        return None
    name = f"rules-{key_of(parts)}.json"
    try:
        dfd = files.open_private_dir(directory, create=False)
    except OSError:
        return None
    try:
        head = files.read_private_range(dfd, name, 0, _HEAD)
        if not head.startswith(MAGIC):
            return None
        head_end = head.index(b"\n", len(MAGIC)) + 1
        m_len, i_len, i_crc = (int(x) for x in head[len(MAGIC):head_end - 1].split(b" "))
        if m_len != sum(map(len, parts)) + max(len(parts) - 1, 0) or not 0 <= i_len <= 1 << 30:
            return None
        body = files.read_private_range(dfd, name, head_end, m_len + i_len)
        if not _same_material(body, 0, m_len, parts):
            return None
        return _rows(body[m_len:], i_crc, (directory, name), head_end + m_len + i_len)
    except (OSError, ValueError, TypeError, RecursionError):
        return None
    finally:
        os.close(dfd)


def _rows(index_bytes: bytes, i_crc: int, file: tuple, base: int) -> list[Row] | None:
    if zlib.crc32(index_bytes) != i_crc:  # the match keys in it choose the rule sets
        return None
    index = _json_loads(index_bytes)
    rows = []
    for path, name, includes, keys, *places in index:  # a wrong shape raises ValueError or TypeError
        if not (isinstance(path, str) and isinstance(name, str) and isinstance(includes, list)
                and all(isinstance(i, str) for i in includes) and len(places) == 6
                and all(type(n) is int and n >= 0 for n in places)):
            return None
        # Payloads are read, and their CRCs checked, when each is first decoded (Row).
        rows.append(Row(path, name, tuple(includes), keys, file, (base + places[0], places[1], places[2]),
                        (base + places[3], places[4], places[5])))
    return rows


def put(directory: str | Path | None, parts: Sequence[bytes], rows: list[tuple]) -> None:
    """Store (path, name, matches, includes, AST[, keys]) rows (keys: plain JSON data, or
    None); silently nothing if it cannot be done safely."""
    if directory is None:
        return
    try:
        index, payloads, offset = [], [], 0
        for path, name, matches, includes, tree, *keys in rows:
            places = []
            for part in (matches, tree):
                payload = dumps(part, path)
                places += [offset, len(payload), zlib.crc32(payload)]
                payloads.append(payload)
                offset += len(payload)
            index.append([path, name, list(includes), keys[0] if keys else None, *places])
        import json
        index_bytes = json.dumps(index, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        return  # an AST too deep or odd to store: answer without a cache
    material = b"\0".join(parts)
    blob = b"".join([MAGIC, f"{len(material)} {len(index_bytes)} {zlib.crc32(index_bytes)}\n".encode(), material,
                     index_bytes, *payloads])
    try:
        dfd = files.open_private_dir(directory, create=True)
    except OSError:
        return  # a read-only home, or a directory another user controls: no cache
    try:
        files.write_atomic(f"rules-{key_of(parts)}.json", blob, dir_fd=dfd)
        _prune(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


KEEP = 4  # cache files kept: a rule author switching between a few rule sets stays warm


def _prune(dfd: int) -> None:
    """Remove all but the KEEP newest cache files: each edit of a rule file makes a new one."""
    entries = []
    for name in os.listdir(dfd):
        if name.startswith("rules-") and name.endswith(".json"):
            try:
                entries.append((os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mtime_ns, name))
            except OSError:
                continue
    for _, name in sorted(entries, reverse=True)[KEEP:]:
        try:
            os.unlink(name, dir_fd=dfd)
        except OSError:
            pass
