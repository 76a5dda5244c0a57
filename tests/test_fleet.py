"""Fleet audits: Tally + Audit.merge (what --engine dask runs on), --engine dask itself, and the
per-device rows (--format jsonl / parquet).

The Dask tests share one small in-process cluster (processes=False, two one-thread workers),
reached through --scheduler, plus one run of the default local cluster with a single worker;
they skip when dask is not installed, as the Parquet tests do without pyarrow.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import sys
from pathlib import Path

import pytest

from engine import fleet
from engine.audit import Audit, Tally
from engine.cli import main
from engine.sources import load

ROOT = Path(__file__).resolve().parents[1]
SEED = str(ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml")
DEVICES = str(ROOT / "corpus/devices")
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"
K = 1024
PAGES = [4 * K, 16 * K, 64 * K]
NAMES = ["qemu-rfc", "reverse", "extend-only", "cloud-hypervisor", "pve-tools", "qemu", "off"]


pytestmark = pytest.mark.usefixtures("private_cache")



def inputs() -> list[str]:
    """The shipped corpus, and the shared dumps when they are here."""
    from engine.cli import _audit_inputs
    specs = [DEVICES] + ([str(SHARED)] if SHARED.is_dir() else [])
    return [name for name, _ in _audit_inputs(specs)]


def fleet_of(seed_path: str, hosts: int):
    """(input name, devices) for hosts that all hold the seed at a different slot, and one broken
    and one other device each few hosts: copies, ties in the sort keys, and unlike devices."""
    seed = load(seed_path)[0]
    other = dataclasses.replace(seed, revision=3, driver="vfio-pci", modules=("mpt3sas",))
    for h in range(hosts):
        devices = [dataclasses.replace(seed, slot=f"0001:{h % 7 + 1:02x}:00.0")]
        if h % 3 == 0:
            devices.append(dataclasses.replace(other, slot="0001:01:00.0"))  # same slot as a seed
        yield f"host{h:03d}", devices


def local_result(lib, named_devices) -> dict:
    audit = Audit(lib, PAGES, NAMES, io_space=False)
    for name, devices in named_devices:
        audit.inputs += 1
        for d in devices:
            audit.add(d, name)
    return audit.result()


def merged_result(lib, named_devices, cuts) -> dict:
    """The same inputs cut into tallies at ``cuts``, merged in order."""
    named_devices = list(named_devices)
    audit = Audit(lib, PAGES, NAMES, io_space=False)
    bounds = [0, *cuts, len(named_devices)]
    for a, b in zip(bounds, bounds[1:]):
        tally = Tally()
        for name, devices in named_devices[a:b]:
            tally.read(name, devices)
        audit.merge(pickle.loads(pickle.dumps(tally)))  # as it comes back from a worker
    return audit.result()


@pytest.mark.parametrize("cuts", [[], [1], [5, 6, 17], list(range(1, 30))])
def test_merged_tallies_give_the_local_audit_exactly(lib, cuts):
    named = list(fleet_of(SEED, 30))
    assert json.dumps(merged_result(lib, named, cuts)) == json.dumps(local_result(lib, named))


def test_merged_tallies_of_the_corpus_give_the_local_audit_exactly(lib):
    named = [(n, load(n)) for n in inputs()]
    assert json.dumps(merged_result(lib, named, [3, 4, 20])) == json.dumps(local_result(lib, named))


def test_each_distinct_device_is_judged_once_for_the_whole_run(lib, monkeypatch):
    import engine.audit as audit_module
    calls = []
    real = audit_module.answer
    monkeypatch.setattr(audit_module, "answer", lambda *a: calls.append(a[0].slot) or real(*a))
    named = list(fleet_of(SEED, 30))
    result = merged_result(lib, named, list(range(1, 30)))  # thirty tallies, two distinct devices
    assert len(calls) == 2 * len(PAGES)
    assert result["strategies"]["qemu-rfc"]["64K"]["devices"] == 30 + 10


def test_a_tally_holds_each_distinct_device_once(lib):
    tally = Tally()
    for name, devices in fleet_of(SEED, 30):
        tally.read(name, devices)
    tally.fail("bad.txt", "bad.txt:1: unknown input format")
    assert len(tally.devices) == 2 and tally.counts == [30, 10] and len(tally) == 40
    assert tally.names[-1] == "bad.txt" and tally.failed == [("bad.txt", "bad.txt:1: unknown input format")]
    again = pickle.loads(pickle.dumps(tally))
    again.read("one more", [dataclasses.replace(tally.devices[0], slot="0002:00:00.0")])
    assert again.counts == [31, 10]  # the index is rebuilt after the trip


def test_partitions_are_runs_of_whole_inputs_in_order(tmp_path):
    names = []
    for i in range(40):
        p = tmp_path / f"{i:02d}.txt"
        p.write_bytes(b"x" * (1000 * (i % 5 + 1)))
        names.append(str(p))
    for workers in (1, 2, 8, 64):
        parts = fleet.partitions(names, workers)
        assert [n for part in parts for n in part] == names and all(parts)
        assert len(parts) == min(len(names), workers * fleet.TASKS_PER_WORKER)
    assert fleet.partitions(["-"], 2) == [["-"]]


def test_scheduler_and_workers_need_the_dask_engine(capsys):
    assert main(["audit", SEED, "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    assert main(["audit", SEED, "--workers", "2"]) == 2
    assert main(["audit", SEED, "--engine", "dask", "--scheduler", "tcp://x:1", "--workers", "2"]) == 2
    needs = "barsafe: error: --workers sizes a local Dask cluster: it needs --engine dask and no --scheduler"
    assert capsys.readouterr().err.splitlines() == [
        "barsafe: error: --scheduler needs --engine dask", needs, needs]


def test_without_dask_the_engine_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    assert main(["audit", SEED, "--engine", "dask"]) == 2
    assert capsys.readouterr().err == f"barsafe: error: {fleet.INSTALL}\n"
    assert "pip install 'barsafe[fleet]'" in fleet.INSTALL


def test_parquet_needs_a_file_and_pyarrow(monkeypatch, capsys, tmp_path):
    from engine.report import devices
    assert main(["audit", SEED, "--format", "parquet"]) == 2
    assert capsys.readouterr().err == "barsafe: error: --format parquet writes a file: give -o FILE\n"
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    out = tmp_path / "rows.parquet"
    assert main(["audit", SEED, "--format", "parquet", "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"barsafe: error: {devices.PARQUET_INSTALL}\n"
    assert not out.exists()


def jsonl_rows(args, capsysbinary) -> list[dict]:
    assert main(["audit", *args, "--format", "jsonl"]) == 0
    return [json.loads(line) for line in capsysbinary.readouterr().out.decode().splitlines()]


def test_jsonl_is_one_line_per_device_with_its_input(capsysbinary):
    rows = jsonl_rows([SEED, "--no-io-space", "--page-size", "4K,64K"], capsysbinary)
    assert len(rows) == 1
    row = rows[0]
    assert (row["input"], row["slot"], row["vendor"], row["device"], row["driver"]) == (
        SEED, "0001:03:00.0", 0x1000, 0x97, "mpt3sas")
    assert list(row["pages"]) == ["4K", "64K"]
    assert row["pages"]["64K"]["strategies"]["qemu-rfc"] == {
        "verdict": "forbid", "target": 0, "rule": "mpt3sas/registers-are-first-memory-bar"}
    assert row["pages"]["64K"]["strategies"]["barsafe"] == {"verdict": "safe", "target": 5, "rule": None}


def test_jsonl_rows_add_up_to_the_report(capsysbinary):
    args = [DEVICES, *([str(SHARED)] if SHARED.is_dir() else []), "--no-io-space"]
    rows = jsonl_rows(args, capsysbinary)
    assert main(["audit", *args, "--format", "json"]) == 0
    report = json.loads(capsysbinary.readouterr().out)
    for name, by_page in report["strategies"].items():
        for page, cell in by_page.items():
            verdicts = [r["pages"][page]["strategies"][name]["verdict"] for r in rows]
            assert cell["devices"] == len(rows)
            assert cell["needs_relocation"] == sum(v is not None for v in verdicts)
            for k in ("safe", "warn", "forbid", "refused", "no_pick"):
                assert cell[k] == verdicts.count(k), (name, page, k)
    assert {r["input"] for r in rows} <= set(inputs())


def test_jsonl_to_a_file_replaces_it_whole(tmp_path, capsysbinary):
    out = tmp_path / "rows.jsonl"
    out.write_text("old\n")
    assert main(["audit", SEED, "--format", "jsonl", "-o", str(out)]) == 0
    assert capsysbinary.readouterr().out == b""
    assert json.loads(out.read_text().splitlines()[0])["input"] == SEED
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == ["rows.jsonl"]  # no temp file


def test_parquet_holds_the_jsonl_rows(tmp_path, capsysbinary):
    pq = pytest.importorskip("pyarrow.parquet")
    args = [SEED, DEVICES, "--no-io-space"]
    rows = jsonl_rows(args, capsysbinary)
    out = tmp_path / "rows.parquet"
    assert main(["audit", *args, "--format", "parquet", "-o", str(out)]) == 0
    assert pq.read_table(out).to_pylist() == rows
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == ["rows.parquet"]


# --- Dask ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scheduler():
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def run(args, capsysbinary) -> tuple[int, bytes, bytes]:
    code = main(args)
    out = capsysbinary.readouterr()
    return code, out.out, out.err


def test_dask_json_is_byte_identical_to_the_local_engine(scheduler, tmp_path, capsysbinary):
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not lspci\n")
    args = ["audit", SEED, DEVICES, str(bad), *([str(SHARED)] if SHARED.is_dir() else []),
            "--page-size", "4K,16K,64K", "--no-io-space", "--format", "json"]
    local = run(args, capsysbinary)
    dask = run([*args, "--engine", "dask", "--scheduler", scheduler], capsysbinary)
    assert local[0] == dask[0] == 2  # the bad input
    assert dask[1] == local[1] and dask[2] == local[2]  # the report, and the error line, byte for byte
    assert json.loads(local[1])["strategies"]["qemu-rfc"]["64K"]["forbid"] >= 1


def test_dask_rows_and_stdin_match_the_local_engine(scheduler, monkeypatch, capsysbinary):
    text = (ROOT / "corpus/devices/linuxhw/1000-0072-mpt3sas-39650f.yaml").read_text()
    args = ["audit", SEED, "-", DEVICES, "--format", "jsonl"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    local = run(args, capsysbinary)
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    dask = run([*args, "--engine", "dask", "--scheduler", scheduler], capsysbinary)
    assert local[0] == dask[0] == 0 and dask[1] == local[1]
    assert b'"input":"-"' in local[1]


def test_dask_default_local_cluster(capsysbinary):
    pytest.importorskip("dask.distributed")
    args = ["audit", SEED, DEVICES, "--format", "json"]
    local = run(args, capsysbinary)
    dask = run([*args, "--engine", "dask", "--workers", "1"], capsysbinary)
    assert dask == local


def test_dask_scheduler_that_does_not_answer(monkeypatch, capsys):
    pytest.importorskip("dask.distributed")
    monkeypatch.setattr(fleet, "CONNECT_TIMEOUT", "1s")
    assert main(["audit", SEED, "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("barsafe: error: --scheduler tcp://127.0.0.1:1: no Dask scheduler answers")
    assert err.count("\n") == 1


def test_the_local_engine_never_imports_dask_or_pyarrow():
    import subprocess
    code = ("import sys; from engine.cli import main; main(['audit', sys.argv[1], '--format', 'jsonl']);"
            " bad = sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed', 'pyarrow'});"
            " sys.exit(f'imported {bad}' if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code, SEED], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["input"] == SEED


def test_workers_open_absolute_paths_and_report_the_names_given(tmp_path, monkeypatch):
    """A worker's working directory is not the driver's: it gets the absolute path to open,
    and says what failed under the name the user gave, as the local engine does."""
    monkeypatch.chdir(tmp_path)
    Path("dumps").mkdir()
    Path("dumps/bad.txt").write_text("this is not lspci\n")
    tally = fleet.read_partition([("dumps/bad.txt", str(tmp_path / "dumps/bad.txt")),
                                  ("dumps/gone.txt", str(tmp_path / "dumps/gone.txt")),
                                  ("seed.yaml", SEED)])
    assert tally.names == ["dumps/bad.txt", "dumps/gone.txt", "seed.yaml"]
    assert [message for _, message in tally.failed] == [
        "dumps/bad.txt:1: unknown input format: expected lspci -vvv text, a barsafe YAML record,"
        " or a sysfs PCI device directory", "dumps/gone.txt: no such file"]
    assert tally.counts == [1]
