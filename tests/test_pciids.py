"""Names from pci.ids (engine/sources/pciids.py, engine/names.py) against what lspci prints.

The system's pci.ids is the one lspci reads: real devices from the shared dumps are written as
a fake sysfs tree, the real `lspci -nn` names them, and barsafe, reading the same tree (sysfs
has no names), must name them the same way.  Skips where pciutils or its pci.ids is missing.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import InputError
from engine.model import Bar, BarKind, Device, Msix
from engine.names import lacks_names, named
from engine.sources import lspci, pciids, stream, sysfs

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"
SYSTEM = pciids.find()
needs_pci_ids = pytest.mark.skipif(SYSTEM is None, reason="no pci.ids on this system (pciutils)")
needs_lspci = pytest.mark.skipif(shutil.which("lspci") is None, reason="lspci (pciutils) is not installed")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/corpus/lspci absent")

SMALL = """#
#\tVersion: 2099.01.02
#
10ec  Realtek Semiconductor Co., Ltd.
\t8168  RTL8111/8168/8411 PCI Express Gigabit Ethernet Controller
\t\t1043 8554  P8P67 and other motherboards
# a comment inside a block
\t8125  RTL8125 2.5GbE Controller
8086  Intel Corporation
\t10d3  82574L Gigabit Network Connection
C 02  Network controller
\t00  Ethernet controller
\t80  Network controller
C 0c  Serial bus controller
\t03  USB controller
\t\t30  XHCI
"""


def small(tmp_path: Path, text: str = SMALL, name: str = "pci.ids") -> Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_read_gives_lspci_style_names(tmp_path):
    names = pciids.read(small(tmp_path), [0x10EC])
    assert names.version == "2099.01.02" and names.about.startswith("pci.ids 2099.01.02 (")
    assert names.device_name(0x10EC, 0x8168) == ("Realtek Semiconductor Co., Ltd. RTL8111/8168/8411 PCI"
                                                 " Express Gigabit Ethernet Controller")
    assert names.device_name(0x10EC, 0x9999) == "Realtek Semiconductor Co., Ltd. Device"  # as lspci -nn
    assert names.device_name(0x8086, 0x10D3) is None  # not asked for: not kept
    assert names.device_name(0x1234, 0x0001) is None
    assert names.class_name(0x0200) == "Ethernet controller"
    assert names.class_name(0x02FF) == "Network controller"  # unknown subclass: the base class
    assert names.class_name(0x0C03) == "USB controller" and names.class_name(0xEE00) is None
    every = pciids.read(small(tmp_path))
    assert set(every.vendors) == {0x10EC, 0x8086} and len(every.devices) == 3


def test_gzip_as_a_zlib_pciutils_installs_it(tmp_path):
    names = pciids.read(small(tmp_path, name="pci.ids.gz"), [0x8086])
    assert names.device_name(0x8086, 0x10D3) == "Intel Corporation 82574L Gigabit Network Connection"


@pytest.mark.parametrize("line, bad", [
    ("\t81x8  not hex", 6),
    ("\t8168", 6),  # an ID without a name
    ("\t\t1043 85  short subsystem", 6),
    ("\t\t\t1043 8554  nested too deep", 6),
])
def test_a_damaged_line_in_a_block_read_is_reported_at_its_line(tmp_path, line, bad):
    lines = SMALL.splitlines()
    lines.insert(bad - 1, line)
    path = small(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(InputError) as caught:
        pciids.read(path, [0x10EC])
    assert caught.value.location.line == bad and str(caught.value).startswith(f"{path}:{bad}: syntax error")
    assert pciids.read(path, [0x8086]).device_name(0x8086, 0x10D3)  # that block is not read
    assert pciids.lookup([0x10EC], str(path)) == str(caught.value)


def test_lookup_says_why_there_are_no_names(tmp_path):
    assert "BARSAFE_PCI_IDS is empty" in pciids.lookup([0x10EC], "")
    assert pciids.lookup([0x10EC], str(tmp_path / "nothing")) == f"{tmp_path / 'nothing'}: cannot read: No such file or directory"
    assert pciids.find([str(tmp_path / "a"), str(small(tmp_path))]) == tmp_path / "pci.ids"
    assert pciids.find([str(tmp_path / "a")]) is None


def test_named_keeps_what_the_input_had_and_notes_what_it_cannot_give(tmp_path):
    names = pciids.read(small(tmp_path))
    bare = Device("0000:01:00.0", vendor=0x8086, device=0x10D3, class_code=0x0200)
    assert lacks_names(bare)
    got = named(bare, names)
    assert (got.name, got.class_name) == ("Intel Corporation 82574L Gigabit Network Connection",
                                          "Ethernet controller")
    given = Device("0000:01:00.0", vendor=0x8086, device=0x10D3, class_code=0x0200, name="as lspci said",
                   class_name="its class")
    assert named(given, names) is given
    noted = named(named(bare, "no pci.ids here"), "no pci.ids here")
    assert noted.notes == ("names unavailable: no pci.ids here",) and noted.name is None


def test_a_name_a_device_cannot_hold_is_left_out(tmp_path):
    """pci.ids names become Device fields: a control character (a damaged file) is not taken."""
    path = small(tmp_path, SMALL.replace("82574L", "82574L\x1b[31m"))
    got = named(Device(None, vendor=0x8086, device=0x10D3), pciids.read(path))
    assert got.name is None


# --- the real pci.ids and the real lspci ------------------------------------------------------

def corpus_devices() -> list[Device]:
    """Each distinct vendor:device:class of the shared dumps once, as a minimal device."""
    seen, out = set(), []
    for dump in sorted(SHARED.glob("*.txt")):
        for d in stream(str(dump)):
            key = (d.vendor, d.device, d.class_code)
            if None in key or key in seen:
                continue
            seen.add(key)
            n = len(out)
            out.append(Device(f"0000:{n // 32 + 1:02x}:{n % 32:02x}.0", vendor=d.vendor, device=d.device,
                              subsystem_vendor=0, subsystem_device=0, class_code=d.class_code,
                              prog_if=d.prog_if or 0, revision=1, bars=(Bar(0, BarKind.MEM32, 4096),),
                              msix=Msix(1, 0, 0, 0, 0x800)))
    # a device pci.ids does not list under a vendor it does, and a subclass it does not list
    out.append(Device("0000:7f:00.0", vendor=0x8086, device=0xFFFE, subsystem_vendor=0, subsystem_device=0,
                      class_code=0x02FE, prog_if=0, revision=1, bars=(Bar(0, BarKind.MEM32, 4096),)))
    return out


def lspci_names(root: Path, numeric: bool = False) -> str:
    """lspci on the tree, naming from the system's pci.ids alone: pciutils built with libudev
    asks udev's hwdb first, whose names may be newer (hwdb.disable turns that off)."""
    done = subprocess.run(["lspci", "-A", "linux-sysfs", "-O", f"sysfs.path={root}", "-O", "hwdb.disable=1",
                           "-i", str(SYSTEM), "-vvvn" if numeric else "-vvvnn"],
                          capture_output=True, text=True, check=True, timeout=60)
    return done.stdout


@needs_shared
@needs_lspci
@needs_pci_ids
def test_names_are_the_ones_lspci_prints_from_the_same_pci_ids(tmp_path):
    from test_sysfs_roundtrip import write_sysfs
    devices = corpus_devices()
    for d in devices:
        write_sysfs(tmp_path, d)
    by_lspci = {d.slot: d for d in lspci.parse(lspci_names(tmp_path), "lspci")}
    read = [d for d in sysfs.read_tree(tmp_path / "devices")]
    assert all(lacks_names(d) for d in read)
    names = pciids.read(SYSTEM, {d.vendor for d in read})
    compared = 0
    for d in read:
        ours, theirs = named(d, names), by_lspci[d.slot.removeprefix("0000:")]
        assert ours.class_name == theirs.class_name, d.slot
        if ours.name is None:  # a vendor pci.ids does not know: lspci says "Device"
            assert theirs.name == "Device", d.slot
            continue
        assert ours.name == theirs.name, d.slot
        compared += 1
    assert compared > 40
    assert named(read[-1], names).name == "Intel Corporation Device"


@needs_shared
@needs_lspci
@needs_pci_ids
def test_show_names_lspci_dash_n_output_as_lspci_dash_nn_does(tmp_path, capsys, monkeypatch):
    import json
    from test_sysfs_roundtrip import write_sysfs
    monkeypatch.delenv("BARSAFE_PCI_IDS", raising=False)
    for d in corpus_devices()[:12]:
        write_sysfs(tmp_path, d)
    (tmp_path / "n.txt").write_text(lspci_names(tmp_path, numeric=True))
    assert main(["show", str(tmp_path / "n.txt"), "--json"]) == 0
    ours = {d["slot"]: d["name"] for d in json.loads(capsys.readouterr().out)}
    theirs = {d.slot: d.name for d in lspci.parse(lspci_names(tmp_path), "lspci")}
    assert ours == theirs and all(ours.values())


def test_without_pci_ids_show_says_names_are_unavailable_and_succeeds(tmp_path, capsys, monkeypatch):
    from test_sysfs_roundtrip import SAS3008, write_sysfs
    path = write_sysfs(tmp_path, SAS3008)
    monkeypatch.setenv("BARSAFE_PCI_IDS", str(tmp_path / "missing.ids"))
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"note: names unavailable: {tmp_path / 'missing.ids'}: cannot read: No such file" in out
    monkeypatch.setenv("BARSAFE_PCI_IDS", str(small(tmp_path, SMALL + "1000  LSI Logic\n\t0097  SAS3008\n")))
    assert main(["show", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "0000:03:00.0 [0107]: LSI Logic SAS3008 [1000:0097] (rev 02)")  # no class 01 in the small file


@needs_shared
def test_inputs_with_names_never_read_pci_ids(monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("pci.ids read although every device has its names")
    monkeypatch.setattr(pciids, "read", refuse)
    dumps = sorted(str(p) for p in SHARED.glob("*.txt"))
    assert main(["show", *dumps[:5], "--json"]) == 0
    assert main(["coverage", *dumps]) == 0
    assert "names" not in capsys.readouterr().out.split("per driver")[0]


def test_looking_up_some_devices_names_them_as_reading_the_whole_block(tmp_path):
    """read(..., wanted) finds each device's line instead of matching every line of its
    vendor's block: the same names, on the small file and (when installed) the system's."""
    import random
    files = [small(tmp_path)] + ([SYSTEM] if SYSTEM is not None else [])
    rng = random.Random(20261204)
    for path in files:
        vendors = [0x10EC, 0x8086, 0x1AF4, 0x1000, 0xFFFF]
        whole = pciids.read(path, vendors)
        known = [pair for pair in whole.devices]
        wanted = set(rng.sample(known, min(300, len(known))))
        wanted |= {(v, rng.randrange(0x10000)) for v in vendors for _ in range(30)}  # mostly absent
        wanted |= {(0x8086, 0x10D3), (0x10EC, 0x8125)}
        some = pciids.read(path, vendors, wanted)
        assert some.devices == {pair: name for pair, name in whole.devices.items() if pair in wanted}
        assert some.vendors == whole.vendors and some.classes == whole.classes
        assert some.device_name(0x8086, 0x10D3) == whole.device_name(0x8086, 0x10D3)
