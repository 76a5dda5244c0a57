"""The rule cache's match keys (library.match_keys / may_match): a warm library decodes the
match lines of only the rule sets that may claim a device, and must claim exactly what a
cold one does."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.rules import ast, library
from engine.sources import load

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"


def corpus_devices() -> list:
    paths = sorted((ROOT / "corpus" / "devices").rglob("*.yaml"))
    if SHARED.is_dir():
        paths += sorted(SHARED.glob("*.txt"))
    return [d for p in paths for d in load(str(p))]


@pytest.fixture(scope="module")
def devices():
    return corpus_devices()


def test_keys_never_rule_out_a_rule_set_that_claims_the_device(devices):
    lib = library.load(use_cache=False)
    pruned = claimed = 0
    for rs in lib.rulesets.values():
        keys = library.match_keys(rs.matches)
        assert keys is not None and library._keys_ok(keys), rs.name
        for d in devices:
            claims = any(library._match_one(m, d) is not None for m in rs.matches)
            may = library.may_match(keys, d)
            assert may or not claims, (rs.name, d.label)
            pruned += not may
            claimed += claims
    assert claimed and pruned > claimed  # the keys do rule sets out, and only those


def test_an_unknown_kind_of_match_line_is_always_looked_at():
    assert library.match_keys([ast.MatchDriver("x"), ast.Ruleset("y")]) is None


def test_a_warm_library_claims_what_a_cold_one_does(devices, tmp_path, monkeypatch):
    monkeypatch.setenv("BARSAFE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BARSAFE_CACHE", raising=False)
    cold = library.load(use_cache=False)
    library.load()  # fills the cache
    warm = library.load()
    assert warm.from_cache
    decoded = 0
    for d in devices:
        want = [(rs.name, why) for rs, why in cold.matching(d)]
        assert [(rs.name, why) for rs, why in warm.matching(d)] == want, d.label
    decoded = sum(e._matches is not None for e in warm.entries.values())
    assert decoded < len(warm.entries)  # match lines decoded only where keys allowed a match


def test_malformed_keys_in_a_cache_file_mean_look_at_every_line():
    for keys in (None, [], [[], [], []], [["x"], [], [], []], [[1], [[1, None]], [], []],
                 [[1], [], [3], []], {"a": 1}):
        assert not library._keys_ok(keys)
    assert library._keys_ok([[None, 4098], [[262, 65535, False]], ["ahci"], ["ahci"]])
