"""engine/paths.py: the names start-up uses say what pathlib's Paths would, and the Paths
other code uses are the same places."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, strategies as st

from engine import paths
from engine.rules import library


@given(st.text(alphabet="/.a-", max_size=12))
def test_pure_is_the_string_of_the_path(name):
    assert paths.pure(name) == str(PurePosixPath(name))


def test_pure_keeps_two_leading_slashes_as_pathlib_does():
    assert [paths.pure(n) for n in ("", ".", "./", "//a//b/./", "///a", "a/../b/")] == \
        [".", ".", ".", "//a/b", "/a", "a/../b"]


def places(tmp_path: Path) -> list[str]:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "to-dir").symlink_to("dir")
    (tmp_path / "to-file").symlink_to("file")
    (tmp_path / "dangling").symlink_to("nowhere")
    (tmp_path / "loop").symlink_to("loop")
    names = ["", ".", "/", "//", "missing", "file/", "file/x", "dir/", "dir/./", "a\0b", "x" * 300]
    names += [str(tmp_path / n) for n in ("dir", "file", "to-dir", "to-file", "dangling", "loop")]
    return names + [n + "/" for n in names[-6:]] + [str(tmp_path) + "//dir/."]


def outcome(check, name: str):
    try:
        return check(name)
    except OSError as exc:  # pathlib raises what it does not call a missing file: too long a name
        return type(exc), exc.errno


@pytest.mark.parametrize("kind", ["is_dir", "is_file"])
def test_is_dir_and_is_file_answer_as_pathlib_does(tmp_path, kind):
    for name in places(tmp_path):
        assert outcome(getattr(paths, kind), name) == outcome(lambda n: getattr(Path(n), kind)(), name), name


def test_the_paths_are_the_names():
    assert paths.RULES == Path(paths.RULES_DIR) and paths.RULES.is_dir()
    assert paths.GRAMMAR == Path(paths.GRAMMAR_FILE) and paths.GRAMMAR.is_file()
    assert paths.CORPUS == Path(paths.CORPUS_DIR) and paths.CORPUS.is_dir()
    assert library.DEFAULT_ROOT == paths.RULES
    with pytest.raises(AttributeError):
        paths.NO_SUCH_PLACE
    with pytest.raises(AttributeError):
        library.NO_SUCH_NAME


def test_the_library_reads_names_as_the_paths_they_name(tmp_path, monkeypatch):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "one.rules").write_text("ruleset one\nrole regs = first memory bar\n")
    monkeypatch.chdir(tmp_path)
    for name in ("rules", "rules/", "./rules//", str(tmp_path) + "//rules/."):
        assert library.rule_files([name]) == library.rule_files([Path(name)]) == [Path(name) / "one.rules"]
        assert library._roots(library._names([name])) == [str((tmp_path / "rules").resolve())]
        assert list(library.load([name], use_cache=False).rulesets) == ["one"]


@pytest.mark.parametrize("env, where", [
    ({"BARSAFE_CACHE_DIR": "c//d/"}, "c/d"),
    ({"XDG_CACHE_HOME": "x/"}, "x/barsafe"),
    ({"XDG_CACHE_HOME": "", "HOME": "/h/"}, "/h/.cache/barsafe"),
])
def test_the_cache_directory_by_name_and_by_path(monkeypatch, env, where):
    for key in ("BARSAFE_CACHE", "BARSAFE_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert library.cache_dir() == Path(where)
    assert library._cache_dir_name() == where
