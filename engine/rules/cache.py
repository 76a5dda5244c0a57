"""The rule cache: parsed rule files kept between runs, in a form that cannot run code.

barsafe runs as root, and its cache sits at a predictable path.  So the cache
is plain data, never pickle: JSON with each AST node written as
``{"@": "ClassName", "f": [fields]}`` and each tuple as ``{"t": [...]}``, and
read back through a fixed table of the AST's own node classes.  A file that
names anything else, or has the wrong number of fields, is a miss.  Plain
data alone would still let another user feed barsafe forged rules, so the
directory and the file are opened without following symlinks and must belong
to this user and be writable by no one else (engine/files.py); a cache that
fails any check is ignored and rebuilt, never trusted and never an error.

Layout of one cache file::

    MAGIC
    <len(material)> <len(index)>\\n
    material     every input's bytes (version, grammar, each rule file's path and text)
    index        plain JSON, no nodes: [[path, name, includes, keys, matches offset, length,
                 crc32, AST offset, length, crc32], ...]
    payloads     two JSON documents per rule file: its match lines and its AST, each decoded
                 when first needed

A hit needs ``material`` equal to what this run read, byte for byte, so a
changed rule file or grammar can never be served stale.  Each payload's CRC
is checked when the file is read, so a damaged entry is a miss up front
rather than a failure later, when the rule set is first used.  ``keys`` is the
library's summary of a file's match lines (library.match_keys): a warm run
reads the index alone, and decodes the match lines of only the rule sets that
may claim the device (decoding all of them was most of a warm `which`'s work).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from .. import files
from . import ast

MAGIC = b"barsafe rule cache 4\n"
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


def _encode(value):
    if isinstance(value, ast.Node):
        return {"@": type(value).__name__, "f": [_encode(value.__dict__[n]) for n in value._fields]}
    if isinstance(value, tuple):
        return {"t": [_encode(v) for v in value]}
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return value
    raise TypeError(f"cannot cache a {type(value).__name__} in a rule AST")


def _hook(obj: dict):
    if "t" in obj and len(obj) == 1:
        return tuple(obj["t"])
    if "@" not in obj or "f" not in obj or len(obj) != 2:
        raise _Damaged("not an AST node")
    cls = _node_classes().get(obj["@"])
    values = obj["f"]
    if cls is None or not isinstance(values, list) or len(values) != len(cls._fields):
        raise _Damaged(f"unknown node {obj['@']!r}")
    node = object.__new__(cls)
    node.__dict__.update(zip(cls._fields, values))
    return node


def dumps(value) -> bytes:
    """The AST (or tuple of nodes) as cache bytes; TypeError/RecursionError if it cannot be."""
    import json
    return json.dumps(_encode(value), separators=(",", ":")).encode("utf-8")


def loads(data: bytes):
    """The AST back from ``dumps``; ValueError (or RecursionError) for anything else."""
    return _json_loads(data, _hook)


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


def key_of(material: bytes) -> str:
    return f"{zlib.crc32(material):08x}-{len(material):x}"


class Row:
    """One rule file in the cache: its name, includes and match keys now; its match lines and
    AST (``payload``) as cache bytes, decoded when needed."""

    __slots__ = ("path", "name", "includes", "keys", "payload", "_matches", "_match_payload")

    def __init__(self, path: str, name: str, matches: tuple | None, includes: tuple[str, ...], payload: bytes,
                 keys=None, match_payload: bytes | None = None):
        self.path, self.name, self.includes, self.payload, self.keys = path, name, includes, payload, keys
        self._matches, self._match_payload = matches, match_payload

    @property
    def matches(self) -> tuple:
        if self._matches is None:
            self._matches = loads(self._match_payload)
        return self._matches


def get(directory: Path | None, material: bytes) -> list[Row] | None:
    """The cached rows for exactly this material, or None for any miss."""
    if directory is None:
        return None
    try:
        dfd = files.open_private_dir(directory, create=False)
    except OSError:
        return None
    try:
        data = files.read_private(dfd, f"rules-{key_of(material)}.json")
        return _parse(data, material)
    except (OSError, ValueError, TypeError, RecursionError):
        return None
    finally:
        os.close(dfd)


def _parse(data: bytes, material: bytes) -> list[Row] | None:
    if not data.startswith(MAGIC):
        return None
    head_end = data.index(b"\n", len(MAGIC))
    m_len, i_len = (int(x) for x in data[len(MAGIC):head_end].split(b" "))
    start = head_end + 1
    if data[start:start + m_len] != material:
        return None
    index = _json_loads(data[start + m_len:start + m_len + i_len])
    base = start + m_len + i_len
    rows = []
    for path, name, includes, keys, *places in index:  # a wrong shape raises ValueError or TypeError
        if not (isinstance(path, str) and isinstance(name, str) and isinstance(includes, list)
                and all(isinstance(i, str) for i in includes) and len(places) == 6
                and all(type(n) is int for n in places)):
            return None
        payloads = []
        for offset, length, crc in (places[:3], places[3:]):
            payload = data[base + offset:base + offset + length]
            if offset < 0 or len(payload) != length or zlib.crc32(payload) != crc:
                return None
            payloads.append(payload)
        rows.append(Row(path, name, None, tuple(includes), payloads[1], keys, payloads[0]))
    return rows


def put(directory: Path | None, material: bytes, rows: list[tuple]) -> None:
    """Store (path, name, matches, includes, AST[, keys]) rows (keys: plain JSON data, or
    None); silently nothing if it cannot be done safely."""
    if directory is None:
        return
    try:
        index, payloads, offset = [], [], 0
        for path, name, matches, includes, tree, *keys in rows:
            places = []
            for part in (matches, tree):
                payload = dumps(part)
                places += [offset, len(payload), zlib.crc32(payload)]
                payloads.append(payload)
                offset += len(payload)
            index.append([path, name, list(includes), keys[0] if keys else None, *places])
        import json
        index_bytes = json.dumps(index, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        return  # an AST too deep or odd to store: answer without a cache
    blob = b"".join([MAGIC, f"{len(material)} {len(index_bytes)}\n".encode(), material, index_bytes, *payloads])
    try:
        dfd = files.open_private_dir(directory, create=True)
    except OSError:
        return  # a read-only home, or a directory another user controls: no cache
    try:
        files.write_atomic(f"rules-{key_of(material)}.json", blob, dir_fd=dfd)
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
