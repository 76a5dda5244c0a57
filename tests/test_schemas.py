"""The JSON Schemas in engine/schemas/ (docs/json-schemas.md) against real outputs.

Every machine-readable output barsafe has is produced here the way a user gets it (engine.cli.main
in-process, stdout captured) over every shipped device record and, when ../shared is there, every
real lspci dump at 4K and 64K with and without I/O space, and validated with the jsonschema library.
Each schema is itself checked against draft 2020-12; wrong documents must fail; and a schema whose
accepted documents change without a new version in its $id fails the fingerprint test.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import io
import json
import shutil
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from jsonschema import Draft202012Validator

from engine import schemas, strategies
from engine.cli import build_parser, main
from engine.model import Bar, BarKind, Device, Msix
from engine.sources import load, record

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "engine" / "schemas"
DOCS = ROOT / "docs" / "json-schemas.md"
RECORDS = sorted((ROOT / "corpus" / "devices").rglob("*.yaml"))
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"
DUMPS = sorted(SHARED.glob("*.txt")) if SHARED.is_dir() else []
VERIFY_LAB = ROOT / "tests" / "data" / "verify" / "lab-nvme.json"
MINE_DATA = ROOT / "tests" / "data" / "mine"
PLATFORMS = {"4K": ["--page-size", "4K"], "64K": ["--page-size", "64K"],
             "4K-noio": ["--page-size", "4K", "--no-io-space"],
             "64K-noio": ["--page-size", "64K", "--no-io-space"]}
needs_shared = pytest.mark.skipif(not DUMPS, reason="../shared/corpus/lspci absent")

# What each schema accepts, fingerprinted (annotations left out).  A change here without a new
# version in the schema's $id and a line in docs/json-schemas.md's change log is what this guards.
VERSIONS = {
    "show": (1, "0384e5b42bdf8a85"),
    "simulate": (1, "4e80c9d7c0d331b7"),
    "which": (1, "edd6b6dfab737e9b"),
    "audit": (2, "125956e8f2f5dafe"),
    "audit-jsonl": (1, "489c9083de8fdd62"),
    "export": (1, "42dcbc64562acf1d"),
    "verify": (1, "39ede079af78e030"),
    "mine": (1, "d03c7ec41af99233"),
    "coverage": (1, "486def09008412bc"),
}
_ANNOTATIONS = {"title", "description", "$comment", "examples", "$id"}
_NAME_MAPS = {"properties", "$defs", "patternProperties", "dependentSchemas"}


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """A rule cache of this module's own, so the shared one is never read or written."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BARSAFE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@functools.lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(schemas.load(name))


def problems(name: str, doc, item=None) -> list[str]:
    """What the schema says is wrong, each at its place; item(index) names a list's element."""
    found = []
    for e in validator(name).iter_errors(doc):
        path = list(e.absolute_path)
        where = "/".join(map(str, path)) or "(root)"
        if item is not None and path and isinstance(path[0], int):
            where += f" ({item(doc[path[0]])})"
        found.append(f"{where}: {e.message[:300]}")
    return found


def assert_valid(name: str, doc, what: str = "", item=None) -> None:
    found = problems(name, doc, item)
    assert not found, f"{name} schema rejects {what}:\n  " + "\n  ".join(found[:10])


def run(argv: list[str], ok=(0, 1)) -> str:
    """barsafe in this process; its standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code in ok, f"barsafe {' '.join(argv)} exited {code}"
    return out.getvalue()


def run_json(argv: list[str], ok=(0, 1)):
    return json.loads(run(argv, ok))


def msix_devices(path: Path) -> list[Device]:
    return [d for d in load(str(path)) if d.msix is not None]


# --- edge cases the corpus lacks: real CLI output on small records --------------------------

K = 1024
_B0 = Bar(0, BarKind.MEM64, 16 * K)
EDGE_DEVICES = {
    "table-bir-7": Device("0000:01:00.0", vendor=0x1234, device=0x5678, bars=(_B0,),
                          msix=Msix(8, 7, 0, 0, 0x3000)),
    "table-upper-half": Device("0000:01:00.1", vendor=0x1234, device=0x5679, bars=(_B0,),
                               msix=Msix(8, 1, 0, 0, 0x3000)),
    "no-ids-no-slot-pba-in-io": Device(None, bars=(_B0, Bar(2, BarKind.IO, 256)), msix=Msix(8, 0, 0, 2, 0)),
    "bar-size-unknown": Device("02:00.0", vendor=0x8086, device=0x1521,
                               bars=(Bar(0, BarKind.MEM32, 0), Bar(3, BarKind.MEM32, 16 * K)),
                               msix=Msix(10, 3, 0, 0, 0x2000)),
    "8G-bar-shared-page": Device("03:00.0", vendor=0x10de, device=0x2204, driver="nvidia",
                                 bars=(Bar(0, BarKind.MEM32, 16 << 20), Bar(1, BarKind.MEM64, 8 << 30,
                                                                            prefetchable=True),
                                       Bar(3, BarKind.MEM64, 32 << 20, prefetchable=True),
                                       Bar(5, BarKind.IO, 128)),
                                 msix=Msix(9, 1, 0xB90000, 1, 0xBA0000)),
    "msix-unknown": Device("04:00.0", vendor=0x8086, device=0x1522, msix_unknown=True,
                           notes=("lspci ran without root: the capabilities are not shown",)),
}


@pytest.fixture(scope="module")
def edge_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("edge")
    files = []
    for name, device in EDGE_DEVICES.items():
        path = folder / f"{name}.yaml"
        path.write_text(record.dump_all([device]))
        files.append(path)
    return files


def inputs(edge_files) -> list[Path]:
    return [*RECORDS, *DUMPS, *edge_files]


# --- the schemas themselves -----------------------------------------------------------------

def test_every_schema_file_is_named_and_every_name_has_a_file():
    assert sorted(p.stem for p in SCHEMA_DIR.glob("*.json")) == sorted(schemas.NAMES)


@pytest.mark.parametrize("name", schemas.NAMES)
def test_schema_is_valid_draft_2020_12_with_id_title_and_version(name):
    schema = schemas.load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schemas.version(schema) == (name, VERSIONS[name][0])
    assert schema["title"] and schema["description"]


def _fingerprint(node, names: bool = False):
    """The schema less its annotations: what it accepts."""
    if isinstance(node, dict):
        if names:
            return {k: _fingerprint(v) for k, v in node.items()}
        return {k: _fingerprint(v, k in _NAME_MAPS) for k, v in node.items() if k not in _ANNOTATIONS}
    if isinstance(node, list):
        return [_fingerprint(v) for v in node]
    return node


def fingerprint(name: str) -> str:
    text = json.dumps(_fingerprint(schemas.load(name)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", schemas.NAMES)
def test_a_schema_change_is_a_new_version(name):
    version, known = VERSIONS[name]
    assert fingerprint(name) == known, (
        f"engine/schemas/{name}.json now accepts other documents than version {version} did: give it a"
        f" new version in its $id ({name}-{version + 1}.json), say what changed in docs/json-schemas.md's"
        f" change log, then set VERSIONS[{name!r}] = ({version + 1}, {fingerprint(name)!r}) here")


def test_shared_definitions_are_the_same_in_every_schema():
    """show, simulate, which and verify each carry their own copy of device, outcome, ...: one meaning."""
    seen: dict[str, tuple[str, dict]] = {}
    for name in schemas.NAMES:
        for key, definition in schemas.load(name).get("$defs", {}).items():
            if key in seen:
                first, other = seen[key]
                assert definition == other, f"$defs/{key} differs between {first}.json and {name}.json"
            else:
                seen[key] = (name, definition)


def test_docs_link_every_schema_with_its_version():
    text = DOCS.read_text()
    for name in schemas.NAMES:
        version = VERSIONS[name][0]
        assert f"](../engine/schemas/{name}.json)" in text, f"docs/json-schemas.md does not link {name}.json"
        assert f"{name}-{version}" in text, f"docs/json-schemas.md does not name {name}-{version}"


def test_schemas_are_package_data():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "engine.schemas" in project["packages"]
    assert "*.json" in project["package-data"]["engine.schemas"]


def test_barsafe_schema_prints_the_shipped_file():
    if "schema" not in build_parser()._subparsers._group_actions[0].choices:
        pytest.skip("no barsafe schema command")
    for name in schemas.NAMES:
        assert run(["schema", name], ok=(0,)) == (SCHEMA_DIR / f"{name}.json").read_text()


# --- show, which, simulate: every record and dump ---------------------------------------------

def test_show_every_device(edge_files):
    devices = run_json(["show", *map(str, inputs(edge_files)), "--json"], ok=(0,))
    assert len(devices) >= len(RECORDS) + len(EDGE_DEVICES)
    assert_valid("show", devices, "show --json", item=lambda d: f"the device at {d['slot']}")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_which_every_msix_device(platform, edge_files):
    answers = run_json(["which", *map(str, inputs(edge_files)), "--json", *PLATFORMS[platform]])
    assert len(answers) >= len(RECORDS) + 5
    assert_valid("which", answers, f"which --json at {platform}", item=lambda a: f"read at {a['input']}")
    assert any(a["recommendation"] is None for a in answers)  # the broken capabilities


@pytest.mark.parametrize("platform", PLATFORMS)
def test_simulate_all_every_msix_device(platform, edge_files):
    for path in inputs(edge_files):
        found = msix_devices(path)
        for device in found:
            slot = ["--slot", device.slot] if len(found) > 1 else []
            outcomes = run_json(["simulate", str(path), *slot, "--all", "--json", *PLATFORMS[platform]], ok=(0,))
            assert_valid("simulate", outcomes, f"simulate --all of {path.name} {device.slot}")


def test_simulate_one_strategy_each(edge_files):
    """Every strategy alone (--target, --heuristic) gives one outcome, on every device in turn."""
    names = strategies.all_names()
    n = 0
    for path in inputs(edge_files):
        found = msix_devices(path)
        for device in found:
            name = names[n % len(names)]
            n += 1
            how = ["--target", name] if name in strategies.TARGETS else ["--heuristic", name]
            slot = ["--slot", device.slot] if len(found) > 1 else []
            outcome = run_json(["simulate", str(path), *slot, *how, "--json", "--page-size", "64K",
                                "--no-io-space"], ok=(0,))
            assert isinstance(outcome, dict) and outcome["strategy"] == name
            assert_valid("simulate", outcome, f"simulate {' '.join(how)} of {path.name}")
    assert n >= len(names)


# --- audit and export -------------------------------------------------------------------------

def audit_formats() -> tuple[str, ...]:
    sub = build_parser()._subparsers._group_actions[0].choices["audit"]
    return next(a.choices for a in sub._actions if a.dest == "format")


@pytest.mark.parametrize("io_space", [[], ["--no-io-space"]], ids=["io", "noio"])
def test_audit_json(io_space, edge_files, tmp_path):
    unreadable = tmp_path / "not-a-dump.txt"
    unreadable.write_text("this is not lspci output\n")
    sources = [*map(str, DUMPS), str(ROOT / "corpus" / "devices"), *map(str, edge_files), str(unreadable)]
    result = run_json(["audit", *sources, "--page-size", "4K,16K,64K", "--format", "json", *io_space], ok=(0, 2))
    assert_valid("audit", result, "the audit of the corpus")
    assert result["inputs_failed"] and result["broken_capabilities"]
    every = run_json(["audit", str(ROOT / "corpus" / "devices"), "--strategies", ",".join(strategies.all_names()),
                      "--page-size", "64K", "--format", "json", *io_space], ok=(0,))
    assert_valid("audit", every, "an audit of every strategy")


@pytest.mark.skipif("jsonl" not in audit_formats(), reason="audit has no --format jsonl")
def test_audit_jsonl_every_line(edge_files, tmp_path):
    out = tmp_path / "audit.jsonl"
    sources = [*map(str, DUMPS), str(ROOT / "corpus" / "devices"), *map(str, edge_files)]
    run(["audit", *sources, "--page-size", "4K,16K,64K", "--no-io-space", "--format", "jsonl", "-o", str(out)],
        ok=(0,))
    lines = out.read_text().splitlines()
    assert len(lines) >= len(RECORDS) + 5
    v = validator("audit-jsonl")
    for n, line in enumerate(lines, start=1):
        found = [e.message for e in v.iter_errors(json.loads(line))]
        assert not found, f"audit-jsonl schema rejects line {n}: {found[:3]}"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_export_qemu_table(platform):
    table = run_json(["export", "qemu-table", str(ROOT / "corpus" / "devices"), *PLATFORMS[platform],
                      "--format", "json"], ok=(0,))
    assert_valid("export", table, f"export at {platform}")
    if platform == "64K-noio":
        assert table["entries"]


@needs_shared
def test_export_with_the_dumps_and_their_conflicts():
    table = run_json(["export", "qemu-table", str(ROOT / "corpus" / "devices"), *map(str, DUMPS),
                      "--page-size", "64K", "--format", "json"], ok=(0,))
    assert_valid("export", table, "export over records and dumps")


# --- verify and mine --------------------------------------------------------------------------

def test_verify_json_from_the_lab():
    """A real `barsafe verify --json` (nvme in the lab's nested guest: engine/verify, lab/)."""
    assert_valid("verify", json.loads(VERIFY_LAB.read_text()), VERIFY_LAB.name)


def test_verify_json_of_recorded_runs():
    """verify's own data() over recorded QEMU runs (no VM here): the lab's nvme guest console for an
    accepted target, QEMU's real refusal of megasas's I/O BAR0, and a guest that timed out."""
    from engine.model import Platform
    from engine.relocate import relocate
    from engine.rules import library
    from engine.score import answer
    from engine.verify import compare, guest, initramfs, vm
    from engine.verify.host import Preflight
    from engine.verify.run import CaseResult, Setup, qemu_message
    from engine.verify.text import data
    recorded = VERIFY_LAB.parent
    nvme = Device("0000:01:00.0", vendor=0x1B36, device=0x0010, class_code=0x0108, driver="vfio-pci",
                  modules=("nvme",), bars=(Bar(0, BarKind.MEM64, 16 * K),), msix=Msix(65, 0, 0x2000, 0, 0x3000))
    platform = Platform(4 * K)
    ans = answer(nvme, platform, library.load())
    pf = Preflight("0000:01:00.0", accel="tcg", kernel=Path("/boot/vmlinuz"), kernel_release="6.1.0-57-amd64")
    setup = Setup(pf, nvme, platform, ans, initramfs.Modules(wanted=["nvme"]), "7.2.22")
    rows = {r.strategy: r for r in ans.candidates}
    cases = []
    for target, console, stderr, code in (
            ("bar5", (recorded / "console-nvme-bar5.log").read_text(), "", 0),
            ("bar0", "", (recorded / "qemu-megasas-bar0.stderr").read_text(), 1),
            ("bar2", "", "", None)):
        case = CaseResult(target, relocate(nvme, platform, int(target[3:])), rows[target].verdict,
                          [f"{v.rule_id}: {v.message}" for v in rows[target].judgement.violations])
        case.run = vm.Run(("qemu-system-x86_64", "-device", f"vfio-pci,x-msix-relocation={target}"), code, 1.5,
                          console, stderr)
        case.report = guest.parse(console, initramfs.GUEST_SLOT)
        case.accepted = case.report.booted
        case.qemu_message = None if case.accepted else qemu_message(stderr)
        if case.accepted and case.report.device is not None and case.predicted.layout is not None:
            case.differences = compare.layout_differences(case.predicted, case.report.device)
        case.observed = "timeout" if code is None else compare.observed_outcome(
            case.accepted, case.report.driver is not None, case.report.msix_interrupts > 0)
        case.agrees, case.summary = (None, "timed out") if code is None else compare.agreement(
            case.verdict, case.observed)
        cases.append(case)
    doc = json.loads(json.dumps(data(setup, cases)))
    assert [c["observed"] for c in doc["candidates"]] == ["works", "refused", "timeout"]
    assert doc["candidates"][0]["observed_layout"] is not None
    assert_valid("verify", doc, "verify's data() over recorded runs")


@pytest.fixture(scope="module")
def mine_tree(tmp_path_factory) -> Path:
    """tests/data/mine's drivers laid out as a tiny Linux tree (as tests/test_mine.py does)."""
    root = tmp_path_factory.mktemp("linux")
    (root / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\n")
    shutil.copytree(MINE_DATA / "include", root / "include")
    for c in MINE_DATA.glob("*.c"):
        folder = root / "drivers" / c.stem
        folder.mkdir(parents=True)
        shutil.copy(c, folder)
        if c.with_suffix(".h").exists():
            shutil.copy(c.with_suffix(".h"), folder)
        (folder / "Makefile").write_text(f"obj-$(CONFIG_{c.stem.upper()}) += {c.stem}.o\n")
    return root


def test_mine_json(mine_tree):
    from engine.mine import cfront
    if not cfront.available():
        pytest.skip("tree-sitter is not installed")
    result = run_json(["mine", str(mine_tree), "drivers", "--json", "-j", "1"], ok=(0,))
    assert len(result["drivers"]) >= 7 and any(d["dependencies"] for d in result["drivers"])
    assert_valid("mine", result, "mine over tests/data/mine")


# --- coverage ---------------------------------------------------------------------------------

def test_coverage_json_over_records_and_dumps(edge_files):
    doc = run_json(["coverage", *map(str, inputs(edge_files)), "--json"], ok=(0,))
    assert doc["devices"] and doc["drivers"] and doc["ids"]
    assert_valid("coverage", doc, "coverage over the records, dumps and edge cases")


def test_coverage_json_with_mined_sets_and_pci_ids_names(tmp_path, monkeypatch):
    """sysfs input (no names: pci.ids gives them, or says why not) and a mined rule set."""
    from engine.mine.emit import render
    from engine.mine.facts import Driver, PciId, Place
    from test_sysfs_roundtrip import SAS3008, write_sysfs
    write_sysfs(tmp_path / "sys", SAS3008)
    mined = tmp_path / "mined"
    mined.mkdir()
    driver = Driver(name="sasx", module="sasx", variable="sasx_driver", place=Place("drivers/x/x.c", 9, None),
                    probe=Place("drivers/x/x.c", 5, "sasx_probe"), id_table="sasx_ids",
                    ids=[PciId(0x1000, 0x0097, line=3)])
    (mined / "sasx-mined.rules").write_text(render(driver, "6.12.117"))
    argv = ["coverage", str(tmp_path / "sys" / "devices"), "--only-rules", "--rules", str(mined), "--json"]
    doc = run_json(argv, ok=(0,))
    assert (doc["devices"], doc["mined"], doc["ids"][0]["rulesets"]) == (1, 1, ["sasx-mined"])
    assert_valid("coverage", doc, "coverage of a sysfs device with a mined rule set")
    monkeypatch.setenv("BARSAFE_PCI_IDS", "")
    doc = run_json(argv, ok=(0,))
    assert doc["names_unavailable"] and doc["names_from"] is None and doc["ids"][0]["name"] is None
    assert_valid("coverage", doc, "coverage without pci.ids")
    for change in (_set("ids/0/matched_by", []), _set("names_from", "pci.ids"), _set("mined", -1),
                   _set("ids/0/vendor", "1000"), _set("drivers/0/ids", [])):
        wrong = copy.deepcopy(doc)
        change(wrong)
        assert problems("coverage", wrong)


# --- generated devices: every strategy's arithmetic, straight from engine/report/jsonout ----

@pytest.fixture(scope="module")
def rule_library():
    from engine.rules import library
    return library.load()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_devices_fit_show_simulate_and_which(rule_library, data):
    from strategies_devices import devices, platforms

    from engine.report import jsonout
    from engine.score import answer
    from engine.units import GiB
    device = data.draw(devices(mem32_max=2 * GiB))
    platform = data.draw(platforms)
    assert_valid("show", [jsonout.device(device)], repr(device))
    outcomes = [jsonout.outcome(strategies.run(n, device, platform)) for n in strategies.all_names()]
    assert_valid("simulate", outcomes, repr(device))
    assert_valid("which", [jsonout.answer(answer(device, platform, rule_library))], repr(device))


# --- a wrong document fails ----------------------------------------------------------------

def _which_doc():
    return run_json(["which", str(ROOT / "corpus" / "devices" / "seed" / "lsi-sas3008-1000-0097.yaml"),
                     "--json", "--page-size", "64K", "--no-io-space"], ok=(0,))


def _set(path: str, value):
    def change(doc):
        *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
        node = doc
        for p in parents:
            node = node[p]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return change


WRONG_WHICH = {
    "an unknown verdict": _set("0/candidates/1/verdict", "unsafe"),
    "a vendor ID over 0xffff": _set("0/vendor", 0x10000),
    "an ID as a hex string": _set("0/device", "0097"),
    "a key the schema does not know": _set("0/alternative", None),
    "a fallback where relocation is needed": lambda doc: doc[0].update(fallback=doc[0]["recommendation"]),
    "a missing key": _set("0/why", KeyError),
    "a target BAR 6": _set("0/candidates/3/target", 6),
    "bar2's target somewhere else": _set("0/candidates/3/target", 4),
    "a refused candidate with an MMIO cost": _set("0/candidates/0/refused", "QEMU says no"),
    "a forbid verdict with no forbid reason": _set("0/candidates/1/reasons", []),
    "a recommendation whose option is not its target": _set("0/recommendation/option", "bar0"),
    "candidates out of order": lambda doc: doc[0]["candidates"].reverse(),
    "a candidate missing": lambda doc: doc[0]["candidates"].pop(),
}


@pytest.mark.parametrize("wrong", WRONG_WHICH)
def test_a_wrong_which_document_fails(wrong):
    doc = _which_doc()
    assert_valid("which", doc, "the seed SAS3008")
    WRONG_WHICH[wrong](doc)
    assert problems("which", doc), f"the which schema accepts {wrong}"


WRONG_OTHERS = {
    "show: a BAR index 6": ("show", _set("0/bars/0/index", 6)),
    "show: a prefetchable I/O BAR": ("show", _set("0/bars/0/prefetchable", True)),
    "show: 4096 MSI-X entries": ("show", _set("0/msix/entries", 4096)),
    "show: an MSI-X offset not a multiple of 8": ("show", _set("0/msix/table_offset", 12)),
    "show: a slot that is no PCI address": ("show", _set("0/slot", "01:00")),
    "simulate: an option that is not the target": ("simulate", _set("1/option", "bar3")),
    "simulate: a refusal with a layout": ("simulate", _set("1/refused", "no")),
    "simulate: twelve outcomes": ("simulate", lambda doc: doc.pop()),
    "simulate: a BAR of negative size": ("simulate", _set("0/bars/0/size", -1)),
}


@pytest.mark.parametrize("wrong", WRONG_OTHERS)
def test_other_wrong_documents_fail(wrong):
    seed = str(ROOT / "corpus" / "devices" / "seed" / "lsi-sas3008-1000-0097.yaml")
    name, change = WRONG_OTHERS[wrong]
    if name == "show":
        doc = run_json(["show", seed, "--json"], ok=(0,))
    else:
        doc = run_json(["simulate", seed, "--all", "--json", "--page-size", "64K", "--no-io-space"], ok=(0,))
    assert_valid(name, doc, "the seed SAS3008")
    change(doc)
    assert problems(name, doc), f"the {name} schema accepts {wrong}"


def test_wrong_audit_and_export_documents_fail():
    corpus = str(ROOT / "corpus" / "devices")
    audit = run_json(["audit", corpus, "--page-size", "64K", "--no-io-space", "--format", "json"], ok=(0,))
    assert_valid("audit", audit)
    for change in (_set("strategies/qemu-rfc/64K/safe", -1), _set("strategies/auto", {}),
                   _set("page_sizes", [65536]), _set("strategies/barsafe", KeyError)):
        wrong = copy.deepcopy(audit)
        change(wrong)
        assert problems("audit", wrong)
    table = run_json(["export", "qemu-table", corpus, "--page-size", "64K", "--no-io-space", "--format", "json"],
                     ok=(0,))
    for change in (_set("entries/0/option", "bar1" if table["entries"][0]["target"] != 1 else "bar2"),
                   _set("entries/0/records", []), _set("page_size", "64K")):
        wrong = copy.deepcopy(table)
        change(wrong)
        assert problems("export", wrong)


# Commands whose JSON is not a device answer, so not a stable machine interface of this kind.
NOT_ANSWERS = {"check"}  # check --format json: rule-file diagnostics


def json_outputs(parser, path=()) -> set[str]:
    """Every command (by its words) that has --json or a --format with json in it."""
    found = set()
    for action in parser._actions:
        if action.dest == "json" or (action.dest == "format" and "json" in (action.choices or ())):
            found.add(" ".join(path))
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                found |= json_outputs(sub, (*path, name))
    return found


def test_every_json_output_has_a_schema():
    """A new --json output needs a schema here (docs/json-schemas.md, "Adding an output")."""
    covered = {"show", "simulate", "which", "audit", "export qemu-table", "verify", "mine", "coverage"}
    found = json_outputs(build_parser()) - NOT_ANSWERS
    assert found - covered == set(), f"JSON outputs without a schema: {sorted(found - covered)}"
    assert covered - found == set(), f"schemas for outputs that no longer exist: {sorted(covered - found)}"
