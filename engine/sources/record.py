"""barsafe's own YAML device records: read with line numbers, written so they read back identical.

A file holds one record (a mapping), a list of them, or several YAML
documents.  Unknown keys are errors, not silently ignored: a typo in a record
must never change an answer.  The format is documented in README.md.
"""

from __future__ import annotations


import yaml

from ..errors import InputError, Location
from ..model import (BAR_SLOTS, MAX_DEVICES, MSIX_OFFSET_LIMIT, Bar, BarKind, Device, Msix,
                     bar_size_problem, driver_problem, module_problem, rom_size_problem, slot_problem,
                     text_problem)
from ..units import format_size, is_hex, parse_size, quote
from .detect import RECORD_KEYS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: it costs `which` start-up
if TYPE_CHECKING:
    from typing import Any

FORMAT_VERSION = 1
_TOP_KEYS = RECORD_KEYS
_BAR_KEYS = ("index", "kind", "prefetchable", "size", "assigned")
_MSIX_KEYS = ("entries", "enabled", "table", "pba")
_PLACE_KEYS = ("bar", "offset")

# Bounds on what a record file may make the reader build.  A record nests five deep (document,
# list, record, msix, table); case files embed one a few levels further down.  A full record is
# about 100 nodes, so the node cap admits some 10,000 records, several machines' worth.
MAX_DEPTH = 32
MAX_NODES = 1_000_000
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_INT_CHARS = 40  # "0x" and 16 hex digits, or 20 decimal ones, with room for '_' separators
def is_hex_int(text: str) -> bool:
    """re.fullmatch(r"(?:0[xX])?[0-9a-fA-F]{1,16}", text)."""
    return is_hex(text[2:] if text[:2] in ("0x", "0X") else text, 16)


def is_id_pair(text: str) -> bool:
    """re.fullmatch(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{4}", text)."""
    return len(text) == 9 and text[4] == ":" and is_hex(text[:4], 4, 4) and is_hex(text[5:], 4, 4)

# libyaml's parser when PyYAML was built with it (fast); the pure-Python one otherwise.  Both
# keep their nesting in a list, not on the call stack; only composing nodes recurses, and that
# is done here, iteratively.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(text: str, path: str = "<stdin>") -> list[Device]:
    devices: list[Device] = []
    for doc in compose_documents(text, path):
        if doc is None:
            continue
        items = doc.value if isinstance(doc, yaml.SequenceNode) else [doc]
        for node in items:
            if len(devices) == MAX_DEVICES:
                raise InputError(f"more than {MAX_DEVICES} device records: more functions than"
                                 f" a PCI domain has", _where(path, node.start_mark))
            devices.append(_device(node, path))
    if not devices:
        raise InputError("no device records in file", Location(path, 1))
    return devices


def _where(path: str, mark: Any) -> Location:
    return Location(path, mark.line + 1, mark.column + 1)


def compose_documents(text: str, path: str) -> list[yaml.Node | None]:
    """The documents of a YAML stream as nodes, built from parser events without recursion.

    Records need none of YAML's graph features, and each is a way to make a small file
    expensive or ambiguous, so each is refused where it stands: aliases and anchors (a
    "billion laughs" file expands nine aliases nine deep), explicit tags (``!!python/object``,
    ``!foo``: a record's types are fixed), merge keys (``<<``: two sources for one key).
    Nesting deeper than MAX_DEPTH and more than MAX_NODES nodes are refused too.
    """
    loader = None
    try:
        loader = _Loader(text)  # PyYAML's own reader checks every character already here
        return _compose(loader, path)
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {_yaml_problem(exc)}", _yaml_where(exc, text, path)) from None
    finally:
        if loader is not None:
            loader.dispose()


def _compose(loader: Any, path: str) -> list[yaml.Node | None]:
    docs: list[yaml.Node | None] = []
    stack: list[tuple[yaml.Node, list[yaml.Node]]] = []  # open collections and their children
    root: yaml.Node | None = None
    nodes = 0

    def refuse(event: Any, message: str) -> InputError:
        return InputError(message, _where(path, event.start_mark))

    while True:
        event = loader.get_event()
        kind = type(event)  # PyYAML's event classes have no subclasses: one test per event
        if kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
            node, children = stack.pop()
            node.end_mark = event.end_mark
            node.value = (children if type(node) is yaml.SequenceNode
                          else list(zip(children[0::2], children[1::2])))
        elif kind is yaml.ScalarEvent or kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
            if event.anchor is not None:
                raise refuse(event, f"YAML anchors (&{quote(event.anchor)[1:-1]}) are not allowed"
                                    f" in device records")
            if event.tag is not None:
                raise refuse(event, f"YAML tags ({quote(event.tag)}) are not allowed in device"
                                    f" records: every key has a fixed type")
            nodes += 1
            if nodes > MAX_NODES:
                raise refuse(event, f"more than {MAX_NODES} YAML nodes: too large for device"
                                    f" records")
            if kind is yaml.ScalarEvent:
                tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                if tag == _MERGE_TAG:
                    raise refuse(event, "YAML merge keys (<<) are not allowed in device records")
                node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,
                                       style=event.style)
            else:
                if len(stack) >= MAX_DEPTH:
                    raise refuse(event, f"YAML nested more than {MAX_DEPTH} levels deep: not a"
                                        f" device record")
                node_kind = yaml.SequenceNode if kind is yaml.SequenceStartEvent else yaml.MappingNode
                node = node_kind(loader.resolve(node_kind, None, event.implicit), [], event.start_mark,
                                 None, flow_style=event.flow_style)
                stack.append((node, []))
                continue
        elif kind is yaml.StreamEndEvent:
            return docs
        elif kind is yaml.StreamStartEvent:
            continue
        elif kind is yaml.DocumentStartEvent:
            root = None
            continue
        elif kind is yaml.DocumentEndEvent:
            docs.append(root)
            continue
        elif kind is yaml.AliasEvent:
            raise refuse(event, "YAML aliases (*name) are not allowed in device records: write"
                                " the value out")
        else:  # no other event exists; refuse rather than guess if a PyYAML ever adds one
            raise refuse(event, f"unexpected YAML event {kind.__name__}")
        if stack:  # a scalar, or a collection just closed: a child of the one still open
            stack[-1][1].append(node)
        else:
            root = node


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        code = exc.character
        shown = quote(chr(code)) if isinstance(code, int) and 0 <= code <= 0x10FFFF else quote(code)
        return f"character {shown} is not allowed ({exc.reason})"
    problem = getattr(exc, "problem", None) or str(exc)
    return quote(problem, 200)[1:-1]


def _yaml_where(exc: yaml.YAMLError, text: str, path: str) -> Location:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return _where(path, mark)
    if isinstance(exc, yaml.reader.ReaderError):
        # libyaml counts the position in UTF-8 bytes, PyYAML's reader in characters.
        data: Any = text.encode("utf-8") if _Loader is not yaml.SafeLoader else text
        newline = b"\n" if isinstance(data, bytes) else "\n"
        start = data.rfind(newline, 0, exc.position) + 1
        column = len(data[start:exc.position].decode("utf-8", "replace")) if isinstance(data, bytes) \
            else exc.position - start
        return Location(path, data.count(newline, 0, exc.position) + 1, column + 1)
    return Location(path)


class _Reader:
    """Turns YAML nodes into values, raising errors that point at the node."""

    def __init__(self, path: str):
        self.path = path
        self._loader = yaml.SafeLoader("")

    def where(self, node: yaml.Node) -> Location:
        return _where(self.path, node.start_mark)

    def fail(self, node: yaml.Node, message: str) -> InputError:
        return InputError(message, self.where(node))

    def mapping(self, node: yaml.Node, allowed: tuple[str, ...], what: str) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.fail(key, f"keys in {what} must be plain names")
            name = key.value
            if name not in allowed:
                raise self.fail(key, f"unknown key {quote(name)} in {what}; expected one of: "
                                + ", ".join(allowed))
            if name in out:
                raise self.fail(key, f"duplicate key {quote(name)} in {what}")
            out[name] = value
        return out

    def value(self, node: yaml.Node, what: str) -> Any:
        """A scalar as YAML 1.1 types it (int, bool, float, null, str), refusals at the node."""
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a single value, not a list or mapping")
        if node.tag == _INT_TAG and len(node.value) > _MAX_INT_CHARS:
            raise self.fail(node, f"{what}: number {quote(node.value)} is too long"
                                  f" ({len(node.value)} characters)")
        try:
            return self._loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:  # e.g. a date like 2001-13-45
            raise self.fail(node, f"{what}: cannot read {quote(node.value)}: {quote(exc)[1:-1]}") from None

    def integer(self, node: yaml.Node, what: str, hex_ok: bool = True) -> int:
        value = self.value(node, what)
        if isinstance(value, bool):
            raise self.fail(node, f"{what} must be a number")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and hex_ok and is_hex_int(value):
            return int(value, 16)
        raise self.fail(node, f"{what} must be a number, got {quote(value)}")

    def hex_number(self, node: yaml.Node, what: str, digits: int) -> int:
        text = self.text(node, what)
        if not is_hex(text, digits):
            raise self.fail(node, f"{what} must be 1 to {digits} hex digits like"
                                  f" {'0107'[-digits:]}, got {quote(text)}")
        return int(text, 16)

    def size(self, node: yaml.Node, what: str) -> int:
        value = self.value(node, what)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise self.fail(node, f"{what} cannot be negative")
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            raise self.fail(node, f"{what}: {exc}") from None

    def boolean(self, node: yaml.Node, what: str) -> bool:
        value = self.value(node, what)
        if not isinstance(value, bool):
            raise self.fail(node, f"{what} must be true or false")
        return value

    def text(self, node: yaml.Node, what: str) -> str:
        # The raw scalar: YAML 1.1 would read 0001:03:00.0 or 1000:0097 as base-60 numbers.
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be text")
        return node.value

    def checked_text(self, node: yaml.Node, what: str, problem: Any = text_problem) -> str:
        """Text that must pass a grammar check (slot, driver, module) or hold no control characters."""
        text = self.text(node, what)
        if (why := problem(text)):
            raise self.fail(node, f"{what}: {why}")
        return text

    def id_pair(self, node: yaml.Node, what: str) -> tuple[int, int]:
        text = self.text(node, what)
        if not is_id_pair(text):
            raise self.fail(node, f"{what} must look like '1000:0097', got {quote(text)}")
        return int(text[:4], 16), int(text[5:], 16)


def device_from_node(node: yaml.Node, path: str) -> Device:
    """A record embedded in another YAML document (e.g. a case file's `device:`).

    Compose that document with ``compose_documents``, so aliases, tags and depth are checked."""
    return _device(node, path)


def _device(node: yaml.Node, path: str) -> Device:
    r = _Reader(path)
    top = r.mapping(node, _TOP_KEYS, "device record")
    if "barsafe" in top:
        version = r.value(top["barsafe"], "barsafe")
        if isinstance(version, bool) or not isinstance(version, int) or version != FORMAT_VERSION:
            raise r.fail(top["barsafe"], f"unsupported record format {quote(top['barsafe'].value)};"
                         f" this barsafe reads format {FORMAT_VERSION}")
    if "bars" not in top:
        raise r.fail(node, "device record has no 'bars' list")
    fields: dict[str, Any] = {"origin": str(r.where(node))}
    if "slot" in top:
        fields["slot"] = r.checked_text(top["slot"], "slot", slot_problem)
    else:
        fields["slot"] = None
    if "id" in top:
        fields["vendor"], fields["device"] = r.id_pair(top["id"], "id")
    if "subsystem" in top:
        fields["subsystem_vendor"], fields["subsystem_device"] = r.id_pair(top["subsystem"], "subsystem")
    # hex digits as lspci prints them; YAML 1.1 would read 0107 as octal
    if "class" in top:
        fields["class_code"] = r.hex_number(top["class"], "class", 4)
    if "prog_if" in top:  # the class code's low byte, lspci's "(prog-if 30 [XHCI])"
        fields["prog_if"] = r.hex_number(top["prog_if"], "prog_if", 2)
    if "revision" in top:
        fields["revision"] = r.hex_number(top["revision"], "revision", 2)
    for key in ("name", "class_name"):
        if key in top:
            fields[key] = r.checked_text(top[key], key)
    if "driver" in top:
        fields["driver"] = r.checked_text(top["driver"], "driver", driver_problem)
    for key, check in (("modules", module_problem), ("notes", text_problem)):
        if key in top:
            seq = top[key]
            if not isinstance(seq, yaml.SequenceNode):
                raise r.fail(seq, f"{key} must be a list")
            fields[key] = tuple(r.checked_text(item, key, check) for item in seq.value)
    if "rom" in top:
        fields["rom_size"] = r.size(top["rom"], "rom")
        if (problem := rom_size_problem(fields["rom_size"])):
            raise r.fail(top["rom"], problem)
    if "msix_unknown" in top:
        fields["msix_unknown"] = r.boolean(top["msix_unknown"], "msix_unknown")
    if "provenance" in top:
        prov = top["provenance"]
        if not isinstance(prov, yaml.MappingNode):
            raise r.fail(prov, "provenance must be a mapping")
        fields["provenance"] = tuple((r.checked_text(k, "provenance key"), r.checked_text(v, "provenance"))
                                     for k, v in prov.value)
    bars_node = top["bars"]
    if not isinstance(bars_node, yaml.SequenceNode):
        raise r.fail(bars_node, "bars must be a list")
    if len(bars_node.value) > BAR_SLOTS:
        raise r.fail(bars_node.value[BAR_SLOTS], f"more than {BAR_SLOTS} BARs: a PCI function has"
                                                 f" six BAR registers")
    bars = tuple(_bar(r, item) for item in bars_node.value)
    msix = top.get("msix")
    if msix is not None and not (isinstance(msix, yaml.ScalarNode) and r.value(msix, "msix") is None):
        fields["msix"] = _msix(r, msix)
    try:
        return Device(bars=tuple(sorted(bars, key=lambda b: b.index)), **fields)
    except ValueError as exc:
        raise r.fail(bars_node, str(exc)) from None


def _bar(r: _Reader, node: yaml.Node) -> Bar:
    m = r.mapping(node, _BAR_KEYS, "BAR")
    for key in ("index", "kind"):
        if key not in m:
            raise r.fail(node, f"BAR needs '{key}'")
    kind_text = r.text(m["kind"], "kind")
    try:
        kind = BarKind(kind_text)
    except ValueError:
        raise r.fail(m["kind"], f"BAR kind must be io, mem32 or mem64, got {quote(kind_text)}") from None
    size = r.size(m["size"], "size") if "size" in m else 0
    if (problem := bar_size_problem(kind, size)):
        raise r.fail(m["size"], problem)
    try:
        return Bar(index=r.integer(m["index"], "index", hex_ok=False), kind=kind, size=size,
                   prefetchable=r.boolean(m["prefetchable"], "prefetchable") if "prefetchable" in m else False,
                   assigned=r.boolean(m["assigned"], "assigned") if "assigned" in m else True)
    except ValueError as exc:
        raise r.fail(node, str(exc)) from None


def _msix(r: _Reader, node: yaml.Node) -> Msix:
    m = r.mapping(node, _MSIX_KEYS, "msix")
    for key in ("entries", "table", "pba"):
        if key not in m:
            raise r.fail(node, f"msix needs '{key}'")
    places = []
    for key in ("table", "pba"):
        p = r.mapping(m[key], _PLACE_KEYS, f"msix {key}")
        if set(p) != set(_PLACE_KEYS):
            raise r.fail(m[key], f"msix {key} needs 'bar' and 'offset'")
        offset = r.integer(p["offset"], "offset")
        if not 0 <= offset < MSIX_OFFSET_LIMIT:
            raise r.fail(p["offset"], f"msix {key} offset {quote(offset)} does not fit the"
                                      f" capability's 32-bit offset field")
        places.append((r.integer(p["bar"], "bar", hex_ok=False), offset))
    try:
        return Msix(r.integer(m["entries"], "entries", hex_ok=False), places[0][0], places[0][1],
                    places[1][0], places[1][1],
                    enabled=r.boolean(m["enabled"], "enabled") if "enabled" in m else None)
    except ValueError as exc:
        raise r.fail(node, str(exc)) from None


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def _size_value(size: int) -> int | str:
    text = format_size(size)
    return int(text) if text.isdigit() else text


def dump(device: Device) -> str:
    """One record, keys in a fixed order, sizes as lspci writes them, offsets in hex."""
    lines = [f"barsafe: {FORMAT_VERSION}"]

    def put(key: str, value: Any) -> None:
        lines.append(f"{key}: {_flow(value)}")

    if device.slot is not None:
        put("slot", device.slot)
    if device.vendor is not None and device.device is not None:
        put("id", f"{device.vendor:04x}:{device.device:04x}")
    if device.subsystem_vendor is not None and device.subsystem_device is not None:
        put("subsystem", f"{device.subsystem_vendor:04x}:{device.subsystem_device:04x}")
    if device.class_code is not None:
        put("class", f"{device.class_code:04x}")
    if device.prog_if is not None:
        put("prog_if", f"{device.prog_if:02x}")
    if device.revision is not None:
        put("revision", f"{device.revision:02x}")
    for key in ("name", "class_name", "driver"):
        if getattr(device, key) is not None:
            put(key, getattr(device, key))
    if device.modules:
        put("modules", list(device.modules))
    lines.append("bars:" if device.bars else "bars: []")
    for bar in device.bars:
        item: dict[str, Any] = {"index": bar.index, "kind": bar.kind.value}
        if bar.kind is not BarKind.IO:
            item["prefetchable"] = bar.prefetchable
        item["size"] = _size_value(bar.size)
        item["assigned"] = bar.assigned
        lines.append(f"  - {_flow(item)}")
    if device.rom_size is not None:
        put("rom", _size_value(device.rom_size))
    if device.msix is not None:
        x = device.msix
        lines.append("msix:")
        lines.append(f"  entries: {x.entries}")
        if x.enabled is not None:
            lines.append(f"  enabled: {_flow(x.enabled)}")
        lines.append(f"  table: {{bar: {x.table_bar}, offset: '{x.table_offset:#x}'}}")
        lines.append(f"  pba: {{bar: {x.pba_bar}, offset: '{x.pba_offset:#x}'}}")
    if device.msix_unknown:
        put("msix_unknown", True)
    if device.notes:
        lines.append("notes:")
        lines.extend(f"  - {_flow(n)}" for n in device.notes)
    if device.provenance:
        lines.append("provenance:")
        lines.extend(f"  {_flow(k)}: {_flow(v)}" for k, v in device.provenance)
    return "\n".join(lines) + "\n"


def dump_all(devices: list[Device]) -> str:
    return "---\n".join(dump(d) for d in devices)
