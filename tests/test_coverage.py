"""barsafe coverage (engine/coverage.py, engine/report/coverage.py) on the shared dumps and on
rule sets made for the purpose: reviewed, mined, none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.coverage import Coverage, guest_driver, judged_by
from engine.mine.emit import render
from engine.mine.facts import Driver, PciId, Place
from engine.model import Bar, BarKind, Device, Msix
from engine.rules import library
from engine.score import choose_rules
from engine.sources import record, stream

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"
DUMPS = sorted(SHARED.glob("*.txt")) if SHARED.is_dir() else []
needs_shared = pytest.mark.skipif(not DUMPS, reason="../shared/corpus/lspci absent")
SEED = ROOT / "corpus" / "devices" / "seed"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def mined_dir(tmp_path: Path, name: str, *ids: tuple[int, int]) -> Path:
    """A rule directory holding one set as barsafe mine writes it (status mined)."""
    folder = tmp_path / f"mined-{name}"
    folder.mkdir()
    driver = Driver(name=name, module=name, variable=f"{name}_driver", place=Place(f"drivers/{name}.c", 90, None),
                    probe=Place(f"drivers/{name}.c", 40, f"{name}_probe"), id_table=f"{name}_ids",
                    ids=[PciId(v, d, line=10) for v, d in ids])
    (folder / f"{name}-mined.rules").write_text(render(driver, "6.12.117"))
    return folder


@needs_shared
def test_the_shared_dumps_are_covered_by_reviewed_rule_sets(capsys):
    """Issue 10's bar: at least 95% of the MSI-X devices in ../shared/corpus/lspci match a
    reviewed driver rule set, and all of them a reviewed or mined one (README, Rule coverage)."""
    code, out, _ = run(capsys, "coverage", str(SHARED), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["inputs"] == len(DUMPS) and doc["inputs_failed"] == []
    assert doc["devices"] == 62  # the dumps' MSI-X capabilities (shared/README.md)
    assert doc["reviewed"] >= 0.95 * doc["devices"]
    assert doc["reviewed"] + doc["mined"] == doc["devices"]
    assert sum(d["devices"] for d in doc["drivers"]) == sum(i["devices"] for i in doc["ids"]) == doc["devices"]


@needs_shared
def test_each_device_is_judged_by_the_rule_sets_which_would_use():
    """coverage and which choose rule sets the same way (score.choose_rules), device by device."""
    lib = library.load()
    for dump in DUMPS:
        for d in stream(str(dump)):
            if d.msix is None:
                continue
            kind, names, how = judged_by(d, lib)
            _, chosen, _ = choose_rules(d, lib)
            assert (names or ("generic",)) == chosen, (dump.name, d.slot)
            assert kind == ("generic" if not names else "reviewed") and bool(how) == bool(names)


@needs_shared
def test_a_reviewed_set_supersedes_a_mined_one_and_a_mined_one_the_generic_set(tmp_path, capsys):
    mined = mined_dir(tmp_path, "r8169", (0x10EC, 0x8168), (0x10EC, 0x8125))
    _, out, _ = run(capsys, "coverage", str(SHARED), "--rules", str(mined), "--json")
    with_shipped = json.loads(out)
    assert (with_shipped["reviewed"], with_shipped["mined"]) == (62, 0)
    _, out, _ = run(capsys, "coverage", str(SHARED), "--only-rules", "--rules", str(mined), "--json")
    alone = json.loads(out)
    realtek = [i for i in alone["ids"] if i["vendor"] == 0x10EC]
    assert alone["mined"] == sum(i["devices"] for i in realtek) == 5
    assert alone["generic"] == alone["devices"] - 5 and alone["reviewed"] == 0
    assert all(i["rulesets"] == ["r8169-mined"] and i["matched_by"] == ["id"] for i in realtek)
    # gaps first: the generic-only rows lead, the mined-only rows come last here
    assert alone["ids"][0]["generic"] and alone["ids"][-1]["mined"]
    (driver_row,) = [d for d in alone["drivers"] if d["driver"] == "r8169"]
    assert (driver_row["mined"], driver_row["rulesets"]) == (5, ["r8169-mined"])


def test_text_output_lists_gaps_per_driver_and_id(tmp_path, capsys):
    mined = mined_dir(tmp_path, "sasx", (0x1000, 0x0097))
    code, out, _ = run(capsys, "coverage", str(SEED), "--only-rules", "--rules", str(mined))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "3 MSI-X devices in 3 inputs; rule sets that judge them:"
    assert lines[1:4] == ["  0    0.0%  a reviewed driver rule set",
                          "  1   33.3%  a mined rule set only (not reviewed)",
                          "  2   66.7%  no driver rule set matches: the generic set only"]
    ids = lines[lines.index("per ID:") + 2:]
    assert ids[-1].startswith("1000:0097        1         0      1        0  id          sasx-mined")


def test_an_unreadable_input_is_named_and_the_rest_counted(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("00:01.0 Ethernet controller [0200]: X [8086:10d3]\n\tRegion 0: Memory at zz\n"
                   "\tCapabilities: [a0] MSI-X: Enable+ Count=5 Masked-\n")
    code, out, err = run(capsys, "coverage", str(SEED), str(bad), str(tmp_path / "absent.txt"), "--json")
    doc = json.loads(out)
    assert code == 2 and doc["inputs"] == 5 and doc["devices"] == 3
    assert doc["inputs_failed"] == sorted([str(bad), str(tmp_path / "absent.txt")])
    assert f"barsafe: error: {tmp_path / 'absent.txt'}: no such file" in err
    assert "Traceback" not in err


def test_devices_without_msix_are_not_counted_and_unknown_ones_are_said():
    cov = Coverage(library.load())
    plain = Device("0000:01:00.0", vendor=0x8086, device=0x10D3, bars=(Bar(0, BarKind.MEM32, 4096),))
    unknown = Device("0000:01:00.1", vendor=0x8086, device=0x10D3, msix_unknown=True)
    cov.read("x", [plain, unknown])
    result = cov.result()
    assert (result["devices"], result["msix_unknown"], result["ids"]) == (0, 1, [])


def test_guest_driver_is_the_module_behind_a_stub():
    d = Device(None, driver="vfio-pci", modules=("mpt3sas",))
    assert guest_driver(d) == "mpt3sas"
    assert guest_driver(Device(None, driver="vfio-pci")) == "vfio-pci"
    assert guest_driver(Device(None, driver="nvme", modules=("nvme",))) == "nvme"
    assert guest_driver(Device(None)) is None


def test_input_text_is_escaped_in_the_table(tmp_path, capsys):
    """A device name is input: a bidi override in it must not reorder the terminal's line."""
    hostile = Device("0000:05:00.0", vendor=0x10EC, device=0x8168, class_code=0x0200,
                     name="Realtek \u202eevil", class_name="Ethernet controller", driver="r8169",
                     bars=(Bar(2, BarKind.MEM64, 4096), Bar(4, BarKind.MEM64, 16384, prefetchable=True)),
                     msix=Msix(4, 4, 0, 4, 0x800))
    path = tmp_path / "hostile.yaml"
    path.write_text(record.dump_all([hostile]))
    code, out, _ = run(capsys, "coverage", str(path))
    assert code == 0 and "\u202e" not in out and "Realtek \\u202eevil" in out


def test_names_come_from_pci_ids_when_the_input_has_none(tmp_path, capsys, monkeypatch):
    from test_sysfs_roundtrip import SAS3008, write_sysfs
    write_sysfs(tmp_path / "sys", SAS3008)
    ids = tmp_path / "pci.ids"
    ids.write_text("#\tVersion: 2099.01.02\n1000  LSI Logic\n\t0097  SAS3008 PCI-Express Fusion-MPT SAS-3\n"
                   "C 01  Mass storage controller\n\t07  Serial Attached SCSI controller\n")
    monkeypatch.setenv("BARSAFE_PCI_IDS", str(ids))
    code, out, _ = run(capsys, "coverage", str(tmp_path / "sys" / "devices"))
    assert code == 0
    assert f"names the inputs lacked: pci.ids 2099.01.02 ({ids})" in out
    assert out.rstrip().endswith("Serial Attached SCSI controller: LSI Logic SAS3008 PCI-Express Fusion-MPT SAS-3")
    monkeypatch.setenv("BARSAFE_PCI_IDS", "")
    code, out, _ = run(capsys, "coverage", str(tmp_path / "sys" / "devices"))
    assert code == 0 and "names unavailable: no pci.ids file given" in out and out.rstrip().endswith("[0107]")
