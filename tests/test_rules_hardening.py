"""Rule files from people we do not trust: no code from cache files, no reads outside the
corpus and rule roots, no internal errors from odd values, deep nesting or huge inputs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import RuleErrors
from engine.rules import parse as parse_module
from engine.rules.check import check
from engine.rules.parse import parse

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    monkeypatch.setenv("BARSAFE_CACHE", "0")


def test_the_parser_reads_and_writes_no_cache_file(tmp_path, monkeypatch):
    """Lark's cache=True unpickles $TMPDIR/.lark_cache_*: anyone who can write /tmp runs code."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    planted = tmp_path / ".lark_cache_planted.tmp"
    planted.write_bytes(b"not a pickle")
    parse_module.parser.cache_clear()
    try:
        parse('ruleset t\nrule a: require bar0 unchanged else warn "m"\n', "t.rules")
    finally:
        parse_module.parser.cache_clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == [planted.name]
