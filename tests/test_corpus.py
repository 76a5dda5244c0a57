"""The committed device corpus: every record loads, says where it came from, and is reproducible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.sources import load

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
LINUXHW = CORPUS / "devices" / "linuxhw"
SHARED_LSPCI = ROOT.parent / "shared" / "corpus" / "lspci"  # never copied into the project
RECORDS = sorted((CORPUS / "devices").glob("**/*.yaml"))  # cases/ are tested in test_cases.py


def _layout(dev) -> tuple:
    x = dev.msix
    return (dev.vendor, dev.device,
            tuple((b.index, b.kind, b.prefetchable, b.size) for b in dev.bars),
            (x.entries, x.table_bar, x.table_offset, x.pba_bar, x.pba_offset))


def test_corpus_is_not_empty():
    assert RECORDS, f"no records under {CORPUS}"


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_record_loads_with_msix(path):
    devices = load(str(path))
    assert devices
    for dev in devices:
        assert dev.msix is not None, f"{dev.label}: no MSI-X capability"


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_record_has_provenance(path):
    for dev in load(str(path)):
        assert dev.provenance, f"{dev.label}: no provenance"


def test_linuxhw_has_enough_distinct_layouts():
    devices = [d for p in sorted(LINUXHW.glob("*.yaml")) for d in load(str(p))]
    layouts = {_layout(d) for d in devices}
    assert len(layouts) == len(devices), "duplicate (vendor, device, layout) records"
    assert len(layouts) >= 40


def test_converter_reproduces_committed_files(tmp_path):
    if not SHARED_LSPCI.is_dir():
        pytest.skip(f"shared lspci dumps not present at {SHARED_LSPCI}")
    out = tmp_path / "linuxhw"
    subprocess.run([sys.executable, str(ROOT / "tools" / "import_lspci.py"), str(SHARED_LSPCI),
                    str(out)], check=True, capture_output=True, text=True)
    made = {p.name: p.read_bytes() for p in out.iterdir()}
    committed = {p.name: p.read_bytes() for p in LINUXHW.iterdir()}
    assert sorted(made) == sorted(committed)
    changed = [name for name in made if made[name] != committed[name]]
    assert not changed, f"regenerate corpus/devices/linuxhw; differs: {changed}"
