"""The guest's initramfs, built from the host's own files: no image to download.

Contents: a static busybox, the guest init script (``data/init``, a data file
of this package), the driver's kernel modules with their dependencies (read
from the kernel's modules.dep/modules.alias/modules.softdep, as modprobe
would), and lspci with the shared libraries ``ldd`` names, so the guest
prints its own view of the device.  Written as a "newc" cpio archive (the
format the kernel unpacks; usr/gen_init_cpio.c), compressed by nobody.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import UsageError

GUEST_SLOT = "0000:00:10.0"  # where the passed-through device sits in the guest (bus pcie.0, addr 0x10)


@dataclass
class Modules:
    """The modules to load in the guest, in load order, and how they were chosen."""

    paths: list[str] = field(default_factory=list)  # relative to /lib/modules/RELEASE
    wanted: list[str] = field(default_factory=list)  # the driver modules themselves
    builtin: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _name(path: str) -> str:
    base = os.path.basename(path)
    for ext in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base.replace("-", "_")


def _read_dep(moddir: Path) -> dict[str, tuple[str, list[str]]]:
    """module name -> (path, dependency paths) from modules.dep."""
    out = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        path, deps = line.split(":", 1)
        out[_name(path)] = (path.strip(), deps.split())
    return out


_WILDCARD = re.compile(r"[*?\[]")


def _aliases(moddir: Path, modalias: str) -> list[str]:
    """Modules whose alias pattern matches, as modprobe finds them.  A pattern can only match a
    string that starts with its text before the first wildcard, so only those are compiled:
    compiling all 26,000 of Debian's patterns took a minute per device in the lab's TCG L1."""
    found = []
    for line in (moddir / "modules.alias").read_text().splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[0] != "alias":
            continue
        pattern = parts[1]
        wild = _WILDCARD.search(pattern)
        if not modalias.startswith(pattern[:wild.start()] if wild else pattern):
            continue
        if fnmatch.fnmatchcase(modalias, pattern) and _name(parts[2]) not in found:
            found.append(_name(parts[2]))
    return found


def _softdeps(moddir: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    path = moddir / "modules.softdep"
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        m = re.match(r"^softdep\s+(\S+)\s+(.*)$", line)
        if m:
            pre = re.search(r"pre:\s*(.*?)(?:\s+post:|$)", m[2])
            if pre:
                out[_name(m[1])] = [_name(x) for x in pre[1].split()]
    return out


def virtio_modalias(pci_modalias: str) -> str | None:
    """The virtio bus modalias behind a virtio-pci function (virtio spec 4.1.2: PCI device ID
    0x1040 + the virtio device ID, or for a transitional 0x1000..0x103f device its subsystem ID)."""
    m = re.match(r"^pci:v00001AF4d0000(?P<dev>[0-9A-F]{4})sv(?P<sv>[0-9A-F]{8})sd(?P<sd>[0-9A-F]{8})", pci_modalias)
    if not m:
        return None
    dev = int(m["dev"], 16)
    if 0x1040 <= dev <= 0x107F:
        vid = dev - 0x1040
    elif 0x1000 <= dev <= 0x103F:
        vid = int(m["sd"], 16)
    else:
        return None
    return f"virtio:d{vid:08X}v{int(m['sv'], 16):08X}"


def resolve_modules(moddir: Path, wanted: list[str] | None, modalias: str | None) -> Modules:
    """The modules for the guest, dependencies first (modprobe's order)."""
    mods = Modules()
    dep = _read_dep(moddir)
    builtin_path = moddir / "modules.builtin"
    builtin = {_name(l) for l in builtin_path.read_text().split()} if builtin_path.is_file() else set()
    soft = _softdeps(moddir)
    if wanted:
        names = [_name(w) for w in wanted]
    elif modalias:
        names = [n for n in _aliases(moddir, modalias) if n not in ("vfio_pci",)]
        child = virtio_modalias(modalias) if "virtio_pci" in names else None
        if child:  # virtio-pci only transports: the device's own driver binds on the virtio bus
            more = [n for n in _aliases(moddir, child) if n not in names]
            names += more
            if more:
                mods.notes.append(f"virtio device driver from modules.alias for {child}: {', '.join(more)}")
        if not names:
            mods.notes.append(f"no module in {moddir.name}'s modules.alias matches {modalias}:"
                              " give --modules")
        else:
            mods.notes.append(f"driver modules from modules.alias for {modalias}: {', '.join(names)}")
    else:
        names = []
    seen: set[str] = set()

    def add(name: str, optional: bool = False) -> None:
        if name in seen:
            return
        seen.add(name)
        for pre in soft.get(name, []):
            add(pre, optional=True)
        if name in builtin:
            mods.builtin.append(name)
            return
        if name not in dep:
            if not optional:
                raise UsageError(f"module {name} is not in {moddir}/modules.dep")
            return
        path, deps = dep[name]
        for d in reversed(deps):  # modules.dep lists the deepest dependency last
            add(_name(d))
        mods.paths.append(path)

    for n in names:
        add(n)
    mods.wanted = names
    return mods


def shared_libraries(binary: Path) -> list[Path]:
    """What the dynamic loader maps for ``binary`` (ldd), loader included."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30, check=False)
    libs = []
    for line in out.stdout.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append(Path(m[1]))
    return libs


class Cpio:
    """A newc cpio archive written in memory (the kernel's initramfs format)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1
        self.dirs: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        name_b = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name_b), 0)
        header = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
        self.ino += 1
        blob = header + name_b
        blob += b"\0" * (-len(blob) % 4)
        blob += data
        blob += b"\0" * (-len(blob) % 4)
        self.parts.append(blob)

    def mkdir(self, name: str) -> None:
        name = name.strip("/")
        if not name or name in self.dirs:
            return
        parent = os.path.dirname(name)
        if parent:
            self.mkdir(parent)
        self.dirs.add(name)
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        self.mkdir(os.path.dirname(name))
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        self.mkdir(os.path.dirname(name))
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def bytes(self) -> bytes:
        trailer = Cpio()
        trailer._entry("TRAILER!!!", 0)
        data = b"".join(self.parts) + trailer.parts[0]
        return data + b"\0" * (-len(data) % 512)


def init_script() -> bytes:
    return resources.files("engine.verify").joinpath("data/init").read_bytes()


def build(busybox: Path, lspci: Path, release: str, moddir: Path | None, modules: Modules,
          settings: dict[str, str], extra: bytes = b"") -> bytes:
    """The initramfs as bytes; ``extra`` (a user's --initrd) is unpacked first, ours on top."""
    c = Cpio()
    for d in ("dev", "proc", "sys", "tmp", "run", "bin", "sbin", "usr/bin", "usr/sbin", "etc"):
        c.mkdir(d)
    c.file("init", init_script(), 0o755)
    c.file("bin/busybox", busybox.read_bytes(), 0o755)
    c.symlink("bin/sh", "busybox")
    c.file("usr/bin/lspci", lspci.read_bytes(), 0o755)
    for lib in shared_libraries(lspci):
        c.file(str(lib), lib.read_bytes(), 0o755)
    ids = Path("/usr/share/misc/pci.ids")
    if ids.is_file():
        c.file(str(ids), ids.read_bytes())
    order = []
    if moddir is not None:
        for rel in modules.paths:
            c.file(f"lib/modules/{release}/{rel}", (moddir / rel).read_bytes())
            order.append(f"/lib/modules/{release}/{rel}")
    c.file("etc/barsafe/modules", ("\n".join(order) + "\n").encode())
    conf = "".join(f"{k}='{v}'\n" for k, v in settings.items() if re.fullmatch(r"[A-Za-z0-9_.:, /-]*", v))
    c.file("etc/barsafe/conf", conf.encode())
    return extra + c.bytes()
