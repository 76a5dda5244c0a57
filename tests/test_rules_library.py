"""The rule library: its content-keyed cache, and which rule sets a device is judged by."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from engine.errors import RuleErrors
from engine.rules import library
from engine.sources import load

ROOT = Path(__file__).resolve().parents[1]
SEED = load(str(ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml"))[0]  # 1000:0097, 15d9:0808, 0x0107
SOURCE = 'source "drivers/x/x.c:10" function x_probe kernel "6.12"\n'


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """A private cache directory for each test."""
    path = tmp_path / "barsafe-cache"
    monkeypatch.setenv("BARSAFE_CACHE_DIR", str(path))
    monkeypatch.delenv("BARSAFE_CACHE", raising=False)
    return path


@pytest.fixture
def rules(tmp_path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "one.rules").write_text('ruleset one\n# first file\nrole regs = first memory bar\n\n'
                                 'rule regs-stay:\n    require regs stays\n    else forbid "original"\n')
    (d / "two.rules").write_text('ruleset two\ninclude "one.rules"\n\n'
                                 'rule no-add:\n    require no bar added\n    else warn "m"\n')
    return d


def cache_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("rules-*")) if cache.exists() else []


# --- the cache ------------------------------------------------------------------------------

def test_second_load_comes_from_the_cache(rules, cache):
    first = library.load([rules])
    assert not first.from_cache
    assert len(cache_files(cache)) == 1
    second = library.load([rules])
    assert second.from_cache
    assert second.files == first.files
    assert sorted(second.files) == sorted(str(p) for p in rules.glob("*.rules"))
    for path, f in first.files.items():
        assert second.files[path] == f
        assert second.files[path].statements == f.statements
        assert second.files[path].comments == f.comments  # fmt needs them too
    assert sorted(second.rulesets) == ["one", "two"]
    assert [p.name for p in second.rulesets["two"].parts] == ["two", "one"]
    assert second.rulesets["one"].file.rules[0].span.line == 5  # spans survive the cache


def test_cached_library_judges_like_a_fresh_one(rules):
    from engine.model import Platform
    from engine.score import judge
    fresh = library.load([rules], use_cache=False)
    library.load([rules])
    cached = library.load([rules])
    assert cached.from_cache
    p = Platform(64 * 1024, io_space=False)
    for strategy in ("off", "bar0", "bar1", "bar5"):
        a = judge(SEED, p, strategy, [fresh.rulesets["two"]])
        b = judge(SEED, p, strategy, [cached.rulesets["two"]])
        assert a.verdict == b.verdict
        assert [(v.rule_id, v.evidence) for v in a.violations] == [(v.rule_id, v.evidence) for v in b.violations]


def test_changing_one_byte_misses_the_cache(rules, cache):
    library.load([rules])
    path = rules / "one.rules"
    path.write_text(path.read_text().replace("original", "origina1"))
    changed = library.load([rules])
    assert not changed.from_cache
    assert changed.rulesets["one"].file.rules[0].message.value == "origina1"
    assert len(cache_files(cache)) == 2
    assert library.load([rules]).from_cache


def test_a_comment_change_misses_the_cache_too(rules):
    library.load([rules])
    path = rules / "one.rules"
    path.write_text(path.read_text().replace("# first file", "# First file"))
    again = library.load([rules])
    assert not again.from_cache
    assert again.files[str(path)].comments[0].text == "# First file"


def test_adding_a_file_misses_the_cache(rules):
    library.load([rules])
    (rules / "three.rules").write_text("ruleset three\n")
    lib = library.load([rules])
    assert not lib.from_cache and "three" in lib.rulesets


def test_reverting_hits_the_earlier_entry(rules):
    path = rules / "one.rules"
    original = path.read_text()
    library.load([rules])
    path.write_text(original.replace("original", "changed"))
    library.load([rules])
    path.write_text(original)
    lib = library.load([rules])
    assert lib.from_cache and lib.rulesets["one"].file.rules[0].message.value == "original"


def test_barsafe_cache_0_disables_it(rules, cache, monkeypatch):
    monkeypatch.setenv("BARSAFE_CACHE", "0")
    assert library.cache_dir() is None
    assert not library.load([rules]).from_cache
    assert not library.load([rules]).from_cache
    assert cache_files(cache) == [] and not cache.exists()


def test_use_cache_false_neither_reads_nor_writes(rules, cache):
    assert not library.load([rules], use_cache=False).from_cache
    assert cache_files(cache) == []
    library.load([rules])
    assert not library.load([rules], use_cache=False).from_cache


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("BARSAFE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert library.cache_dir() == tmp_path / "xdg" / "barsafe"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert library.cache_dir() == tmp_path / "home" / ".cache" / "barsafe"


def test_errors_are_not_cached(tmp_path, cache):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "bad.rules").write_text('ruleset bad\nrule a: require nope stays else warn "m"\n')
    for _ in range(2):
        with pytest.raises(RuleErrors):
            library.load([d])
    assert cache_files(cache) == []


def test_an_unwritable_cache_directory_does_not_stop_loading(rules, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("BARSAFE_CACHE_DIR", str(blocker / "cache"))
    assert not library.load([rules]).from_cache
    assert not library.load([rules]).from_cache


@pytest.mark.parametrize("corrupt", [
    lambda data: b"",
    lambda data: b"garbage, not a cache",
    lambda data: data[: len(data) // 2],
    lambda data: data[:-1],
    lambda data: pickle.dumps("a pickle is never read"),
    lambda data: data.replace(b"ruleset one", b"ruleset One", 1),
    lambda data: data[:2] + bytes([data[2] ^ 0xFF]) + data[3:],
    lambda data: data.replace(b'"@":"Rule"', b'"@":"Path"'),
    lambda data: data.replace(b'"@":"Rule"', b'"@":"Zzzz"'),
], ids=["empty", "text", "half", "last-byte-cut", "pickle", "wrong-material", "header-flip",
        "foreign-class", "unknown-class"])
def test_a_corrupt_cache_file_is_ignored(rules, cache, corrupt):
    good = library.load([rules])
    (entry,) = cache_files(cache)
    entry.write_bytes(corrupt(entry.read_bytes()))
    lib = library.load([rules])
    assert lib.files == good.files
    # a damaged index or material is a miss when the file is read; a damaged payload (the
    # class names) when it is first decoded: either way the rules are parsed from their text
    assert not lib.from_cache
    again = library.load([rules])
    assert again.from_cache  # and it was rewritten
    assert again.files == good.files and again.from_cache


def _replace_last(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new)
    i = data.rindex(old)
    return data[:i] + new + data[i + len(old):]


def test_a_corrupt_payload_is_not_served(rules, cache):
    library.load([rules])
    (entry,) = cache_files(cache)
    entry.write_bytes(_replace_last(entry.read_bytes(), b"original", b"tampered"))
    lib = library.load([rules])
    assert lib.from_cache  # the index is intact: the payload is checked when first decoded
    assert lib.rulesets["one"].file.rules[0].message.value == "original"
    assert not lib.from_cache
    again = library.load([rules])
    assert again.rulesets["one"].file.rules[0].message.value == "original" and again.from_cache


def test_a_corrupt_match_payload_is_not_served(rules, cache):
    """Damage in a file's match lines (read before its AST, to choose rule sets) is caught too."""
    one = rules / "one.rules"
    one.write_text(one.read_text().replace("# first file\n", SOURCE + "match id 1000:0097\n"))
    good = library.load([rules])
    (entry,) = cache_files(cache)
    data = entry.read_bytes()
    i = data.index(b'"@":"MatchId","f":[') + len(b'"@":"MatchId","f":[')
    entry.write_bytes(data[:i] + (b"9" if data[i:i + 1] != b"9" else b"8") + data[i + 1:])
    lib = library.load([rules])
    assert lib.from_cache
    assert [rs.matches for rs in lib.rulesets.values()] == [rs.matches for rs in good.rulesets.values()]
    assert not lib.from_cache


def test_a_corrupt_payload_never_raises(tmp_path, cache):
    d = tmp_path / "r"
    d.mkdir()
    (d / "t.rules").write_text('ruleset t\nrule a:\n    require bar0 is prefetchable\n    else warn "m"\n')
    library.load([d])
    (entry,) = cache_files(cache)
    entry.write_bytes(_replace_last(entry.read_bytes(), b"prefetchable", b"prefetchXble"))
    lib = library.load([d])
    assert lib.rulesets["t"].file.rules[0].cond.attr == "prefetchable"


# --- matching -------------------------------------------------------------------------------

def make_library(tmp_path: Path, files: dict[str, str]) -> library.Library:
    d = tmp_path / "match"
    d.mkdir(parents=True)
    for name, body in files.items():
        (d / f"{name}.rules").write_text(f"ruleset {name}\n{SOURCE}{body}")
    return library.load([d], use_cache=False)


def names(found) -> list[str]:
    return [rs.name for rs, _ in found]


def test_id_match_beats_driver_and_module_match(tmp_path):
    lib = make_library(tmp_path, {"by_module": "match module mpt3sas\n",
                                  "by_driver": "match driver vfio-pci\n",
                                  "by_id": "match id 1000:0097\n"})
    found = lib.matching(SEED)
    assert names(found) == ["by_id"]
    assert found[0][1] == "id 1000:0097 (line 3)"


def test_driver_and_module_match_when_nothing_matches_by_id(tmp_path):
    lib = make_library(tmp_path, {"by_module": "match module mpt3sas\n",
                                  "by_driver": "match driver vfio-pci\n",
                                  "other_id": "match id 1000:0098\n",
                                  "other_module": "match module megaraid_sas\n"})
    found = lib.matching(SEED)
    assert names(found) == ["by_driver", "by_module"]
    assert dict((rs.name, why) for rs, why in found) == {
        "by_driver": "driver vfio-pci (line 3)", "by_module": "module mpt3sas (line 3)"}


def test_a_builtin_driver_in_use_matches_module_lines(tmp_path):
    """lspci prints no "Kernel modules:" line for a built-in driver: the driver in use is the module."""
    builtin = dataclasses.replace(SEED, vendor=0x1234, device=0x5678, driver="mpt3_sas", modules=())
    lib = make_library(tmp_path, {"by_module": "match module mpt3_sas\n",
                                  "dashed": "match module mpt3-sas\n",  # modprobe: '-' is '_'
                                  "other": "match module megaraid_sas\n"})
    assert names(lib.matching(builtin)) == ["by_module", "dashed"]
    assert lib.rulesets["by_module"].match(builtin) == (2, "module mpt3_sas, the driver in use (line 3)")


@pytest.mark.parametrize("stub", ["vfio-pci", "pci-stub"])
def test_a_host_stub_driver_matches_no_module_line(tmp_path, stub):
    bound = dataclasses.replace(SEED, vendor=0x1234, device=0x5678, driver=stub, modules=())
    lib = make_library(tmp_path, {"vfio": "match module vfio_pci\n", "stub": "match module pci_stub\n"})
    assert lib.matching(bound) == []


def test_class_match_ranks_with_id_matches(tmp_path):
    lib = make_library(tmp_path, {"sas": "match class 0x0107\n", "by_id": "match id 1000:0097\n",
                                  "by_module": "match module mpt3sas\n"})
    assert names(lib.matching(SEED)) == ["by_id", "sas"]
    assert lib.rulesets["sas"].match(SEED) == (1, "class 0107 (line 3)")


@pytest.mark.parametrize("line, hit", [
    ("match class 0x0107", True),
    ("match class 0x0100", False),
    ("match class 0x0100 mask 0xff00", True),    # any mass-storage controller
    ("match class 0x01ff mask 0xff00", True),    # masked-out bits do not matter
    ("match class 0x0200 mask 0xff00", False),   # network controller
    ("match class 0x0007 mask 0x00ff", True),
    ("match class 0x0000 mask 0x0000", True),    # matches every class
])
def test_class_with_mask(tmp_path, line, hit):
    lib = make_library(tmp_path, {"c": line + "\n"})
    assert (lib.rulesets["c"].match(SEED) is not None) == hit
    assert names(lib.matching(SEED)) == (["c"] if hit else [])


def test_class_match_needs_a_class(tmp_path):
    lib = make_library(tmp_path, {"c": "match class 0x0000 mask 0x0000\n"})
    assert lib.matching(dataclasses.replace(SEED, class_code=None)) == []


@pytest.mark.parametrize("line, hit", [
    ("match id 1000:0097 subsystem 15d9:0808", True),
    ("match id 1000:0097 subsystem 15d9:*", True),
    ("match id 1000:0097 subsystem *:0808", True),
    ("match id 1000:0097 subsystem *:*", True),
    ("match id 1000:0097 subsystem 15d9:0001", False),
    ("match id 1000:0097 subsystem 1028:*", False),
    ("match id 1000:* subsystem 15d9:*", True),
    ("match id 1000:*", True),
    ("match id 1000:0098 subsystem 15d9:*", False),
])
def test_subsystem_wildcards(tmp_path, line, hit):
    lib = make_library(tmp_path, {"s": line + "\n"})
    assert (lib.rulesets["s"].match(SEED) is not None) == hit


def test_subsystem_match_needs_subsystem_ids(tmp_path):
    lib = make_library(tmp_path, {"s": "match id 1000:0097 subsystem 15d9:*\n"})
    bare = dataclasses.replace(SEED, subsystem_vendor=None, subsystem_device=None)
    assert lib.rulesets["s"].match(bare) is None
    lib = make_library(tmp_path / "x", {"s": "match id 1000:0097 subsystem *:*\n"})
    assert lib.rulesets["s"].match(bare) is not None


def test_id_match_needs_a_vendor(tmp_path):
    lib = make_library(tmp_path, {"s": "match id 1000:*\n", "m": "match module mpt3sas\n"})
    anon = dataclasses.replace(SEED, vendor=None, device=None)
    assert names(lib.matching(anon)) == ["m"]


def test_best_match_line_of_a_file_wins(tmp_path):
    lib = make_library(tmp_path, {"multi": "match module mpt3sas\nmatch class 0x0107\nmatch id 1000:0097\n"})
    assert lib.rulesets["multi"].match(SEED) == (0, "id 1000:0097 (line 5)")


def test_no_match_at_all(tmp_path):
    lib = make_library(tmp_path, {"other": "match id 8086:1521\nmatch module igb\n"})
    assert lib.matching(SEED) == []


def test_shipped_library_matches_the_seed_to_mpt3sas():
    shipped = [ROOT / "rules" / f"{n}.rules" for n in ("generic", "mpt3sas", "tsi721")]
    found = library.load(shipped).matching(SEED)
    assert names(found) == ["mpt3sas"]
    assert found[0][1].startswith("id 1000:0097")
