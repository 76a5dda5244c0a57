"""`barsafe export qemu-table`: the lookup table QEMU's 'auto' TODO asks for."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BARSAFE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)


def test_json_table_holds_the_seed_sas3008_with_its_evidence(capsys):
    assert main(["export", "qemu-table", "--no-io-space", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    entry = next(e for e in data["entries"] if (e["vendor"], e["device"]) == (0x1000, 0x97))
    assert entry["option"] == "bar5" and entry["rulesets"] == ["mpt3sas"]
    assert "mpt3sas/registers-are-first-memory-bar" in entry["evidence"]
    assert entry["records"] == ["corpus/devices/seed/lsi-sas3008-1000-0097.yaml"]


def test_generic_only_devices_get_no_entry(capsys):
    main(["export", "qemu-table", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert all(e["rulesets"] != ["generic"] for e in data["entries"])


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")
def test_c_initializer_compiles(tmp_path, capsys):
    main(["export", "qemu-table", "--no-io-space"])
    source = tmp_path / "table.c"
    source.write_text("#include <stdint.h>\n" + capsys.readouterr().out
                      + "int main(void) { return sizeof(vfio_msix_relocation_table) == 0; }\n")
    proc = subprocess.run(["gcc", "-Wall", "-Werror", "-Wno-unused-variable", "-o", str(tmp_path / "t"),
                           str(source)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run([str(tmp_path / "t")]).returncode == 0
