"""Which files make up a driver's module: read from the kernel's Kbuild makefiles.

A driver's "own files" are the objects of its module: `mpt3sas-y += mpt3sas_base.o
...` in drivers/scsi/mpt3sas/Makefile, `obj-$(CONFIG_HPSA) += hpsa.o` for a
single-file module.  Every configuration branch counts (`foo-$(CONFIG_X) += ...`),
since barsafe cannot know the guest's configuration.  Makefiles are not C: they
are read as Kbuild variable assignments, which is all they are here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

_ANY_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_.$()-]+?)\s*(:=|\+=|\?=|=)\s*(.*)$")
_INCLUDE = re.compile(r"^\s*-?include\s+(\S+)\s*$")
_VAR = re.compile(r"\$\(([A-Za-z0-9_.-]+)\)")
# `name-y`, `name-objs`, `name-$(CONFIG_FOO)`, `obj-m`: a module's (or the folder's) objects
_MODULE_VAR = re.compile(r"^([A-Za-z0-9_.-]+?)-(y|m|objs|\$\([A-Za-z0-9_]+\))$")


@dataclass
class Module:
    name: str
    makefile_dir: str  # tree-relative
    objects: list[str] = field(default_factory=list)  # tree-relative .c paths


def _logical_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    return [l.split("#", 1)[0] for l in joined.split("\n")]


def _assignments(tree_root: Path, directory: str, path: Path, depth: int = 0) -> list[tuple[str, str, str]]:
    """(variable, operator, value) in order, `include $(src)/sub/Makefile` followed."""
    out: list[tuple[str, str, str]] = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for logical in _logical_lines(text):
        inc = _INCLUDE.match(logical)
        if inc and depth < 3:
            target = inc.group(1).replace("$(srctree)/", "").replace("$(src)", directory) \
                .replace("$(obj)", directory)
            if "$" not in target:
                out += _assignments(tree_root, directory, tree_root / target, depth + 1)
            continue
        m = _ANY_ASSIGN.match(logical)
        if m:
            out.append(m.groups())
    return out


@lru_cache(maxsize=4096)
def read_makefile(tree_root: Path, directory: str) -> dict[str, list[str]]:
    """module stem -> objects listed for it (`obj` holds the modules built here), with
    make variables (`habanalabs-y += $(HL_COMMON_FILES)`) expanded."""
    out: dict[str, list[str]] = {}
    plain: dict[str, list[str]] = {}
    rows: list[tuple[str, str, str]] = []
    for name in ("Makefile", "Kbuild"):
        path = tree_root / directory / name
        if path.is_file():
            rows += _assignments(tree_root, directory, path)

    def expand(value: str, depth: int = 0) -> list[str]:
        words = []
        for w in value.split():
            m = _VAR.fullmatch(w)
            if m and m.group(1) in plain and depth < 5:
                words += [x for v in plain[m.group(1)] for x in expand(v, depth + 1)]
            else:
                words.append(w)
        return words

    for var, op, value in rows:
        if "$" not in var:  # `nvkm-y` is a list another line expands: $(nvkm-y)
            plain.setdefault(var, [])
            if op in (":=", "="):
                plain[var] = [value]
            else:
                plain[var].append(value)
    for var, _, value in rows:
        m = _MODULE_VAR.match(var)
        if m is None:
            continue
        out.setdefault(m.group(1), []).extend(w for w in expand(value) if w.endswith(".o"))
    return out


def _c_of(tree_root: Path, directory: str, obj: str) -> str | None:
    resolved = (tree_root / directory / obj).with_suffix(".c").resolve()
    try:
        relative = resolved.relative_to(tree_root.resolve())
    except ValueError:
        return None
    return str(relative) if resolved.is_file() else None


def module_of(tree_root: Path, path: str) -> Module:
    """The module the C file ``path`` (tree-relative) is built into, with all its files."""
    directory = str(Path(path).parent)
    stem = Path(path).stem
    # look in this directory's makefile, then in up to two parents (objects named with a subdir)
    here = Path(directory)
    for up in range(3):
        mk_dir = here
        for _ in range(up):
            mk_dir = mk_dir.parent
        if str(mk_dir) in ("", "."):
            break
        variables = read_makefile(tree_root, str(mk_dir))
        if not variables:
            continue
        rel_obj = str((Path(directory) / f"{stem}.o").relative_to(mk_dir)) if up else f"{stem}.o"
        built = {o[:-2] for o in variables.get("obj", [])}
        for var, objs in sorted(variables.items(), key=lambda kv: kv[0] not in built):
            if var == "obj":
                continue
            if rel_obj in objs:
                files = [c for o in objs if (c := _c_of(tree_root, str(mk_dir), o))]
                return Module(modname(var), str(mk_dir), sorted(set(files)))
        if up == 0 and rel_obj in variables.get("obj", []):
            return Module(modname(stem), directory, [path])
    return Module(modname(stem), directory, [path])


def modname(name: str) -> str:
    """The name the kernel gives a module (KBUILD_MODNAME): xhci-pci.ko is xhci_pci."""
    return name.replace("-", "_")


_INCLUDE_FLAG = re.compile(r"-I\s*(\S+)")


@lru_cache(maxsize=4096)
def include_dirs(tree_root: Path, directory: str) -> tuple[str, ...]:
    """Directories the module's makefile adds to the include path (`ccflags-y := -I
    $(src)/../qat_common`): where its `#include <adf_accel_devices.h>` comes from, and the
    driver family's library code beside it.  This directory's Makefile and its parents'
    `subdir-ccflags`."""
    out: list[str] = []
    here = Path(directory)
    for up, mk_dir in enumerate([here, *here.parents][:4]):
        if str(mk_dir) in ("", "."):
            break
        for name in ("Makefile", "Kbuild"):
            path = tree_root / mk_dir / name
            if not path.is_file():
                continue
            for logical in _logical_lines(path.read_text(errors="replace")):
                if "ccflags" not in logical and "CFLAGS" not in logical:
                    continue
                if up and "subdir-ccflags" not in logical:
                    continue
                for raw in _INCLUDE_FLAG.findall(logical):
                    raw = raw.replace("$(srctree)/", "").replace("$(src)", str(mk_dir)) \
                        .replace("$(obj)", str(mk_dir))
                    if "$" in raw:
                        continue
                    full = (tree_root / raw).resolve()
                    try:
                        rel = str(full.relative_to(tree_root.resolve()))
                    except ValueError:
                        continue
                    if full.is_dir() and rel not in out and rel != directory:
                        out.append(rel)
    return tuple(out)
