"""pciutils' pci.ids: vendor, device and class names for inputs that carry none.

A sysfs directory and `lspci -n` give IDs without names; lspci itself looks names up in
pci.ids, which pciutils (or hwdata) installs.  barsafe reads the system's file (it ships no
copy), only when some device lacks names, and keeps only the vendors those devices have.

The format (pciutils lib/names-parse.c, id_parse_list), one entry a line, nesting by tabs:

    8086  Intel Corporation                     vendor: 4 hex digits, two spaces, name
    \t10d3  82574L Gigabit Network Connection    device
    \t\t8086 a01f  Gigabit CT Desktop Adapter    subsystem (not kept)
    C 02  Network controller                   class
    \t00  Ethernet controller                   subclass
    \t\t00  ...                                  programming interface (not kept)

`#` starts a comment; another capital letter and a space starts a block pciutils skips.  A
line that fits none of these is a syntax error: lspci warns and prints numbers, and barsafe
likewise reports names as unavailable (file and line), never failing for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError, Location
from ..model import Device
from ..units import MiB

# Where distributions put it: Debian's pciutils (/usr/share/misc), Fedora's and Arch's hwdata
# (/usr/share/hwdata), pciutils built from source (/usr/local/share); a zlib build of pciutils
# installs pci.ids.gz instead.
SYSTEM_PATHS = tuple(f"{base}/pci.ids{ext}" for base in
                     ("/usr/share/misc", "/usr/share/hwdata", "/usr/share", "/usr/local/share",
                      "/usr/local/share/hwdata")
                     for ext in ("", ".gz"))
MAX_BYTES = 64 * MiB  # the 2024 file is 1.4 MB; a bound on what a wrong path can make us read



class Names:
    """The names pci.ids gives, for the vendors asked for (all classes are kept: few).  A plain
    class: `which --sysfs` names devices with it, and a dataclass imported dataclasses and
    inspect, as much start-up again as the rest of the answer."""

    __slots__ = ("path", "version", "vendors", "devices", "classes", "subclasses")

    def __init__(self, path: str, version: str | None, vendors: dict[int, str] | None = None,
                 devices: dict[tuple[int, int], str] | None = None, classes: dict[int, str] | None = None,
                 subclasses: dict[int, str] | None = None) -> None:
        self.path = path
        self.version = version  # the file's "# Version: 2023.04.10", None if it has none
        self.vendors = vendors if vendors is not None else {}
        self.devices = devices if devices is not None else {}
        self.classes = classes if classes is not None else {}  # base class -> name
        self.subclasses = subclasses if subclasses is not None else {}  # base << 8 | subclass -> name

    @property
    def about(self) -> str:
        """'pci.ids 2023.04.10 (/usr/share/misc/pci.ids)'."""
        return f"pci.ids {self.version or '(no version)'} ({self.path})"

    def device_name(self, vendor: int, device: int) -> str | None:
        """The "vendor device" text `lspci -nn` prints before the IDs ("Vendor Device" for a
        device pci.ids does not list: the IDs beside it say which); None for a vendor it does
        not list, where lspci prints only "Device"."""
        v = self.vendors.get(vendor)
        if v is None:
            return None
        return f"{v} {self.devices.get((vendor, device), 'Device')}"

    def class_name(self, class_code: int) -> str | None:
        """The subclass's name as lspci prints it before the IDs, else the base class's."""
        return self.subclasses.get(class_code) or self.classes.get(class_code >> 8)


def name_devices(devices: list[Device], path: str | None = None) -> list[Device]:
    """``devices``, each with the names its input lacked (engine/names.py); pci.ids is read
    only when some device needs it, and then only those devices' vendors.  ``path``: the file
    to read instead of the system's ('' for none, as where pciutils is not installed)."""
    from ..names import lacks_names, named
    need = [d for d in devices if lacks_names(d)]
    if not need:
        return devices
    names = lookup({d.vendor for d in need if d.vendor is not None}, path,
                   {(d.vendor, d.device) for d in need if d.vendor is not None and d.device is not None})
    return [named(d, names) for d in devices]


def lookup(vendors: Iterable[int], path: str | None = None,
           devices: Iterable[tuple[int, int]] | None = None) -> Names | str:
    """The names of ``vendors`` (of their ``devices`` only, if given) and of every class, or why
    there are none (a phrase)."""
    if path is None:
        found = find()
        if found is None:
            return ("no pci.ids on this system (pciutils installs /usr/share/misc/pci.ids, hwdata"
                    " /usr/share/hwdata/pci.ids)")
    elif not path:
        return "no pci.ids file given (BARSAFE_PCI_IDS is empty)"
    else:
        found = Path(path)
    try:
        return read(found, vendors, devices)
    except InputError as exc:
        return str(exc)


def find(paths: Iterable[str] = SYSTEM_PATHS) -> Path | None:
    """The first of ``paths`` that is a file."""
    for p in paths:
        path = Path(p)
        if path.is_file():
            return path
    return None


def _text(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            import gzip  # here: most systems install the plain file
            with gzip.open(path, "rb") as stream:
                data = stream.read(MAX_BYTES + 1)
        else:
            with open(path, "rb") as stream:
                data = stream.read(MAX_BYTES + 1)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise InputError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", Location(str(path))) from None
    if len(data) > MAX_BYTES:
        raise InputError(f"larger than {MAX_BYTES // MiB} MiB: not a pci.ids file", Location(str(path)))
    # pci.ids is UTF-8 (pciutils reads it as bytes and prints them); a stray byte keeps its line
    return data.decode("utf-8", errors="replace")


def read(path: Path | str, vendors: Iterable[int] | None = None,
         wanted: Iterable[tuple[int, int]] | None = None) -> Names:
    """The names in ``path``: of the vendors in ``vendors`` (None: every vendor) and every class;
    with ``wanted``, of those (vendor, device) pairs' devices only (a vendor's block can list
    thousands: Intel's 4,000 cost `which --sysfs` more than the rest of its answer).  Only the
    blocks read are checked, whole: a line there that pciutils would refuse is an InputError
    at that line."""
    path = Path(path)
    text = _text(path)
    head = _VERSION.search(text, 0, 4096)
    if vendors is None:
        places = {int(m.group(1), 16): m.start() for m in _VENDOR_ID.finditer(text)}
    else:
        places = {v: _top_line(text, f"{v:04x}") for v in vendors}
    only: dict[int, set[int]] | None = None
    if wanted is not None:
        only = {}
        for vendor, device in wanted:
            only.setdefault(vendor, set()).add(device)
    vendor_names: dict[int, str] = {}
    devices: dict[tuple[int, int], str] = {}
    for vendor, at in places.items():
        if at is None:
            continue
        line_end, block_end = _line_end(text, at), _block_end(text, at)
        vendor_names[vendor] = _name(text[at + 4:line_end], text, at, path)
        _check(_VENDOR_BLOCK_BAD, text, line_end, block_end, path)
        if only is None:
            for m in _DEVICE.finditer(text, line_end, block_end):
                devices[(vendor, int(m.group(1), 16))] = m.group(2)
            continue
        for device in only.get(vendor, ()):
            found = _device_line(text, line_end, block_end, device)
            if found is not None:
                devices[(vendor, device)] = found
    classes: dict[int, str] = {}
    subclasses: dict[int, str] = {}
    at = _top_line(text, "C ")
    while at is not None:
        line_end, block_end = _line_end(text, at), _block_end(text, at)
        if not _CLASS_HEAD.match(text, at, line_end):
            raise InputError("syntax error (pci.ids: expected 'C', 2 hex digits, a name)",
                             _where(text, at, path))
        base = int(text[at + 2:at + 4], 16)
        classes[base] = _name(text[at + 4:line_end], text, at, path)
        _check(_CLASS_BLOCK_BAD, text, line_end, block_end, path)
        for m in _SUBCLASS.finditer(text, line_end, block_end):
            subclasses[base << 8 | int(m.group(1), 16)] = m.group(2)
        at = block_end + 1 if text.startswith("C ", block_end + 1) else None
    return Names(str(path), head.group(1) if head else None, vendor_names, devices, classes, subclasses)


# pci.ids writes hex digits in lower case (pciutils would read upper case too)
_VERSION = re.compile(r"^#\s*Version:\s*(\S+)", re.M)
_VENDOR_ID = re.compile(r"^([0-9a-f]{4})[ \t]", re.M)
_DEVICE = re.compile(r"^\t([0-9a-fA-F]{4})[ \t]+(\S.*?)[ \t\r]*$", re.M)
_SUBCLASS = re.compile(r"^\t([0-9a-fA-F]{2})[ \t]+(\S.*?)[ \t\r]*$", re.M)
_CLASS_HEAD = re.compile(r"C [0-9a-fA-F]{2}[ \t]")
_OK_ALWAYS = r"[ \t]*(?:#.*)?\r?$"  # blank, or a comment
# The first line of a block that is none of its entries: devices and subsystems, or
# subclasses and programming interfaces.
_VENDOR_BLOCK_BAD = re.compile(r"^(?!" + _OK_ALWAYS + r"|\t[0-9a-fA-F]{4}[ \t]+\S"
                               r"|\t\t[0-9a-fA-F]{4} [0-9a-fA-F]{4}[ \t]+\S).*", re.M)
_CLASS_BLOCK_BAD = re.compile(r"^(?!" + _OK_ALWAYS + r"|\t\t?[0-9a-fA-F]{2}[ \t]+\S).*", re.M)


def _device_line(text: str, start: int, end: int, device: int) -> str | None:
    """The name on ``device``'s line of the vendor block text[start:end], as matching every
    line with _DEVICE would give it (the last such line), found by searching for the line.
    The ID is looked for in lower and in upper case; one written in mixed case ("10De"),
    which pciutils would read and no pci.ids holds, is not found."""
    name = None
    for digits in {f"{device:04x}", f"{device:04X}"}:
        at = text.find("\n\t" + digits, start, end)
        while at >= 0:
            m = _DEVICE.match(text, at + 1, end)
            if m is not None and (name is None or m.start() > name[0]):
                name = (m.start(), m.group(2))
            at = text.find("\n\t" + digits, at + 1, end)
    return None if name is None else name[1]


def _top_line(text: str, start: str) -> int | None:
    """Where the first line beginning with ``start`` (a vendor ID and a space or tab, or 'C ')
    begins, or None."""
    for sep in (" ", "\t") if len(start) == 4 else ("",):
        key = start + sep
        if text.startswith(key):
            return 0
        found = text.find("\n" + key)
        if found >= 0:
            return found + 1
    return None


def _line_end(text: str, at: int) -> int:
    end = text.find("\n", at)
    return len(text) if end < 0 else end


_NEXT_TOP = re.compile(r"\n(?=[^\t#\n\r])")


def _block_end(text: str, at: int) -> int:
    """The end of the block whose first line starts at ``at``: before the next line that
    is neither nested (a tab), a comment nor blank."""
    m = _NEXT_TOP.search(text, _line_end(text, at))
    return len(text) if m is None else m.start()


def _check(bad: re.Pattern, text: str, start: int, end: int, path: Path) -> None:
    m = bad.search(text, start + 1, end) if start < end else None
    if m is not None:
        raise InputError(f"syntax error (pci.ids: not an entry of this block: {m.group(0)[:40]!r})",
                         _where(text, m.start(), path))


def _where(text: str, at: int, path: Path) -> Location:
    return Location(str(path), text.count("\n", 0, at) + 1)


def _name(name: str, text: str, at: int, path: Path) -> str:
    name = name.strip(" \t\r")
    if not name:
        raise InputError("syntax error (pci.ids: an ID without a name)", _where(text, at, path))
    return name
