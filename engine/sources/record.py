"""barsafe's own YAML device records: read with line numbers, written so they read back identical.

A file holds one record (a mapping), a list of them, or several YAML
documents.  Unknown keys are errors, not silently ignored: a typo in a record
must never change an answer.  The format is documented in README.md.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import InputError, Location
from ..model import Bar, BarKind, Device, Msix
from ..units import format_size, parse_size

FORMAT_VERSION = 1
_TOP_KEYS = ("barsafe", "slot", "id", "subsystem", "class", "revision", "name", "class_name",
             "driver", "modules", "bars", "rom", "msix", "msix_unknown", "notes", "provenance")
_BAR_KEYS = ("index", "kind", "prefetchable", "size", "assigned")
_MSIX_KEYS = ("entries", "enabled", "table", "pba")
_PLACE_KEYS = ("bar", "offset")


def parse(text: str, path: str = "<stdin>") -> list[Device]:
    try:
        docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"invalid YAML: {problem}", where) from None
    devices: list[Device] = []
    for doc in docs:
        if doc is None:
            continue
        items = doc.value if isinstance(doc, yaml.SequenceNode) else [doc]
        for node in items:
            devices.append(_device(node, path))
    if not devices:
        raise InputError("no device records in file", Location(path, 1))
    return devices


class _Reader:
    """Turns YAML nodes into values, raising errors that point at the node."""

    def __init__(self, path: str):
        self.path = path
        self._loader = yaml.SafeLoader("")

    def where(self, node: yaml.Node) -> Location:
        return Location(self.path, node.start_mark.line + 1, node.start_mark.column + 1)

    def fail(self, node: yaml.Node, message: str) -> InputError:
        return InputError(message, self.where(node))

    def mapping(self, node: yaml.Node, allowed: tuple[str, ...], what: str) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = self.value(key)
            if name not in allowed:
                raise self.fail(key, f"unknown key {name!r} in {what}; expected one of: "
                                + ", ".join(allowed))
            if name in out:
                raise self.fail(key, f"duplicate key {name!r} in {what}")
            out[name] = value
        return out

    def value(self, node: yaml.Node) -> Any:
        return self._loader.construct_object(node, deep=True)

    def integer(self, node: yaml.Node, what: str, hex_ok: bool = True) -> int:
        value = self.value(node)
        if isinstance(value, bool):
            raise self.fail(node, f"{what} must be a number")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and hex_ok:
            try:
                return int(value, 0) if value.lower().startswith("0x") else int(value, 16)
            except ValueError:
                pass
        raise self.fail(node, f"{what} must be a number, got {value!r}")

    def hex_number(self, node: yaml.Node, what: str) -> int:
        text = self.text(node, what)
        try:
            return int(text, 16)
        except ValueError:
            raise self.fail(node, f"{what} must be hex digits like 0107, got {text!r}") from None

    def size(self, node: yaml.Node, what: str) -> int:
        value = self.value(node)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            raise self.fail(node, f"{what}: {exc}") from None

    def boolean(self, node: yaml.Node, what: str) -> bool:
        value = self.value(node)
        if not isinstance(value, bool):
            raise self.fail(node, f"{what} must be true or false")
        return value

    def text(self, node: yaml.Node, what: str) -> str:
        # The raw scalar: YAML 1.1 would read 0001:03:00.0 or 1000:0097 as base-60 numbers.
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be text")
        return node.value

    def id_pair(self, node: yaml.Node, what: str) -> tuple[int, int]:
        text = self.text(node, what)
        parts = text.split(":")
        try:
            if len(parts) == 2 and all(len(p) == 4 for p in parts):
                return int(parts[0], 16), int(parts[1], 16)
        except ValueError:
            pass
        raise self.fail(node, f"{what} must look like '1000:0097', got {text!r}")


def device_from_node(node: yaml.Node, path: str) -> Device:
    """A record embedded in another YAML document (e.g. a case file's `device:`)."""
    return _device(node, path)


def _device(node: yaml.Node, path: str) -> Device:
    r = _Reader(path)
    top = r.mapping(node, _TOP_KEYS, "device record")
    if "barsafe" in top and r.value(top["barsafe"]) != FORMAT_VERSION:
        raise r.fail(top["barsafe"], f"unsupported record format {r.value(top['barsafe'])!r};"
                     f" this barsafe reads format {FORMAT_VERSION}")
    if "bars" not in top:
        raise r.fail(node, "device record has no 'bars' list")
    fields: dict[str, Any] = {"origin": str(r.where(node))}
    if "slot" in top:
        fields["slot"] = r.text(top["slot"], "slot")
    else:
        fields["slot"] = None
    if "id" in top:
        fields["vendor"], fields["device"] = r.id_pair(top["id"], "id")
    if "subsystem" in top:
        fields["subsystem_vendor"], fields["subsystem_device"] = r.id_pair(top["subsystem"], "subsystem")
    for key, field_name in (("class", "class_code"), ("revision", "revision")):
        if key in top:  # hex digits as lspci prints them; YAML 1.1 would read 0107 as octal
            fields[field_name] = r.hex_number(top[key], key)
    for key in ("name", "class_name", "driver"):
        if key in top:
            fields[key] = r.text(top[key], key)
    for key in ("modules", "notes"):
        if key in top:
            seq = top[key]
            if not isinstance(seq, yaml.SequenceNode):
                raise r.fail(seq, f"{key} must be a list")
            fields[key] = tuple(r.text(item, key) for item in seq.value)
    if "rom" in top:
        fields["rom_size"] = r.size(top["rom"], "rom")
    if "msix_unknown" in top:
        fields["msix_unknown"] = r.boolean(top["msix_unknown"], "msix_unknown")
    if "provenance" in top:
        prov = top["provenance"]
        if not isinstance(prov, yaml.MappingNode):
            raise r.fail(prov, "provenance must be a mapping")
        fields["provenance"] = tuple((r.text(k, "provenance key"), r.text(v, "provenance"))
                                     for k, v in prov.value)
    bars_node = top["bars"]
    if not isinstance(bars_node, yaml.SequenceNode):
        raise r.fail(bars_node, "bars must be a list")
    bars = tuple(_bar(r, item) for item in bars_node.value)
    if "msix" in top and not (isinstance(top["msix"], yaml.ScalarNode) and r.value(top["msix"]) is None):
        fields["msix"] = _msix(r, top["msix"])
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
        raise r.fail(m["kind"], f"BAR kind must be io, mem32 or mem64, got {kind_text!r}") from None
    try:
        return Bar(index=r.integer(m["index"], "index", hex_ok=False), kind=kind,
                   size=r.size(m["size"], "size") if "size" in m else 0,
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
        places.append((r.integer(p["bar"], "bar", hex_ok=False), r.integer(p["offset"], "offset")))
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
