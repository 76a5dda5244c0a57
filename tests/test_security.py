"""Attacks by a second local user on barsafe run as root: planted caches, planted Lark caches, symlinks.

Each attack is staged by the user `nobody` in a shared world-writable sticky
directory (a shared XDG_CACHE_HOME or TMPDIR), exactly as another user of the
machine could, and then barsafe runs as root with that environment.  The
tests need root (to become `nobody`); elsewhere they are skipped with the
reason.  The payloads would leave a marker file if they ever ran.
"""

from __future__ import annotations

import os
import pickle
import pwd
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from engine.cli import main
from engine.rules import cache, library

ROOT = Path(__file__).resolve().parents[1]
SEED = str(ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml")

try:
    NOBODY = pwd.getpwnam("nobody")
except KeyError:  # pragma: no cover - every Debian has nobody
    NOBODY = None

# the attacker's interpreter: one `nobody` can run (root's pyenv or venv may be private to root)
ATTACKER_PYTHON = shutil.which("python3", path="/usr/bin:/bin")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or NOBODY is None,
                       reason="the attacks run as a second user: needs root and a 'nobody' user"),
    pytest.mark.skipif(ATTACKER_PYTHON is None, reason="no /usr/bin/python3 for the attacker to run"),
]


@pytest.fixture
def shared():
    """A world-writable sticky directory, like /tmp or a shared XDG_CACHE_HOME."""
    d = Path(tempfile.mkdtemp(prefix="barsafe-shared-"))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(script: str, **env: str) -> None:
    """Run Python code as `nobody` (the attacker)."""
    subprocess.run([ATTACKER_PYTHON, "-c", textwrap.dedent(script)], check=True, user=NOBODY.pw_uid,
                   group=NOBODY.pw_gid, extra_groups=[], cwd="/",
                   env={"PATH": "/usr/bin:/bin", **env})


class Boom:
    """A pickle that runs a command when loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(Boom(marker))


def expected_which(capsys) -> str:
    os.environ["BARSAFE_CACHE"] = "0"
    try:
        main(["which", SEED, "--page-size", "64K", "--no-io-space"])
    finally:
        del os.environ["BARSAFE_CACHE"]
    return capsys.readouterr().out


def root_key() -> str:
    texts = {str(f): f.read_bytes() for f in library.rule_files([library.DEFAULT_ROOT])}
    return cache.key_of(library._cache_material(texts))


def test_a_cache_planted_in_a_shared_xdg_cache_home_never_runs_or_counts(shared, monkeypatch, capsys):
    want = expected_which(capsys)
    marker = shared / "pwned"
    key = root_key()  # the key is computed from public inputs: the attacker can compute it too
    (shared / "evil.pickle").write_bytes(evil_pickle(marker))
    as_nobody(f"""
        import os, shutil
        d = {str(shared / 'xdg' / 'barsafe')!r}
        os.makedirs(d, mode=0o777)
        os.chmod(d, 0o777)
        for name in ("rules-{key}.pickle", "rules-{key}.json"):
            shutil.copy({str(shared / 'evil.pickle')!r}, os.path.join(d, name))
        """)
    monkeypatch.delenv("BARSAFE_CACHE_DIR", raising=False)
    monkeypatch.delenv("BARSAFE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared / "xdg"))
    assert main(["which", SEED, "--page-size", "64K", "--no-io-space"]) == 0
    assert capsys.readouterr().out == want
    assert not marker.exists()
    assert not library.load().from_cache  # the attacker's directory is neither read nor written
    assert sorted(os.listdir(shared / "xdg" / "barsafe")) == [f"rules-{key}.json", f"rules-{key}.pickle"]


def forge(good: Path, material: list[bytes], into: Path) -> bytes:
    """A well-formed cache for the same material whose forbid rules all say warn."""
    rows = cache.get(good.parent, material)
    forged = [(r.path, r.name, r.matches, r.includes,
               cache.loads(r.payload.replace(b'"forbid"', b'"warn"'), r.path)) for r in rows]
    cache.put(into, material, forged)
    (entry,) = into.glob("rules-*.json")
    return entry.read_bytes()


def test_a_forged_cache_file_in_roots_own_directory_is_not_served(shared, monkeypatch, capsys):
    """root's cache directory made world-writable (an old barsafe under umask 000): nobody's file is ignored."""
    want = expected_which(capsys)
    texts = {str(f): f.read_bytes() for f in library.rule_files([library.DEFAULT_ROOT])}
    material = library._cache_material(texts)
    cache_dir = shared / "rootcache"
    monkeypatch.setenv("BARSAFE_CACHE_DIR", str(cache_dir))
    monkeypatch.delenv("BARSAFE_CACHE", raising=False)
    library.load()  # root builds its cache
    (entry,) = cache_dir.glob("rules-*.json")
    forged = forge(entry, material, shared / "forgery")
    # the forgery works when trusted: root's own copy of it changes the answer
    entry.write_bytes(forged)
    assert library.load().from_cache
    main(["which", SEED, "--page-size", "64K", "--no-io-space"])
    assert capsys.readouterr().out != want
    # planted by nobody, it is never served
    entry.unlink()
    cache_dir.chmod(0o1777)
    staged = shared / "forged.json"
    staged.write_bytes(forged)
    staged.chmod(0o644)
    as_nobody(f"""
        import shutil
        shutil.copy({str(staged)!r}, {str(entry)!r})
        """)
    assert entry.stat().st_uid == NOBODY.pw_uid
    assert main(["which", SEED, "--page-size", "64K", "--no-io-space"]) == 0
    assert capsys.readouterr().out == want
    assert not library.load().from_cache
    # nor in a private directory: a file of another user's is not read there either
    cache_dir.chmod(0o700)
    assert not library.load().from_cache


def test_a_planted_lark_cache_in_a_shared_tmpdir_never_runs(shared, monkeypatch, capsys):
    marker = shared / "pwned-lark"
    payload = evil_pickle(marker)
    (shared / "evil.pickle").write_bytes(payload)
    # Lark's cache name is .lark_cache_<user>_<hash>_<version>.tmp; plant every name it could pick
    import hashlib
    import lark
    from engine.paths import GRAMMAR
    grammar = GRAMMAR.read_text()
    names = []
    for user in ("root", "nobody"):
        for options in ("", "lalr", "contextual"):
            digest = hashlib.md5((grammar + options).encode()).hexdigest()
            names.append(f".lark_cache_{user}_{digest}_{lark.__version__}.tmp")
    as_nobody(f"""
        import shutil, os
        for name in {names!r}:
            shutil.copy({str(shared / 'evil.pickle')!r}, os.path.join({str(shared)!r}, name))
        """)
    monkeypatch.setenv("TMPDIR", str(shared))
    tempfile.tempdir = None  # re-read TMPDIR
    monkeypatch.setenv("BARSAFE_CACHE", "0")  # every run parses: Lark is always used
    try:
        assert main(["check"]) == 0
        assert main(["which", SEED, "--page-size", "64K"]) == 0
    finally:
        tempfile.tempdir = None
    capsys.readouterr()
    assert not marker.exists()
    assert not list(shared.glob(".lark_cache_root_*")) or all(
        p.stat().st_uid == NOBODY.pw_uid for p in shared.glob(".lark_cache_*"))


def test_sprayed_symlinks_never_make_root_overwrite_a_file(shared, monkeypatch, capsys):
    """The attacker points every name barsafe might write at a file root owns."""
    victim = shared / "victim"
    victim.write_text("root's file\n")
    victim.chmod(0o644)
    report = shared / "report.html"
    cache_dir = shared / "cache"
    key = root_key()
    spray = [report.name, *(f".{report.name}.{i:016x}.tmp" for i in range(50))]
    as_nobody(f"""
        import os
        os.makedirs({str(cache_dir)!r}, mode=0o777)
        os.chmod({str(cache_dir)!r}, 0o777)
        for d, names in (({str(shared)!r}, {spray!r}),
                         ({str(cache_dir)!r}, ["rules-{key}.json", ".rules-{key}.json.tmp"])):
            for name in names:
                os.symlink({str(victim)!r}, os.path.join(d, name))
        """)
    monkeypatch.setenv("BARSAFE_CACHE_DIR", str(cache_dir))
    monkeypatch.delenv("BARSAFE_CACHE", raising=False)
    assert main(["audit", SEED, "--format", "html", "-o", str(report)]) == 0
    assert main(["which", SEED, "--page-size", "64K"]) == 0
    capsys.readouterr()
    assert victim.read_text() == "root's file\n"
    assert not report.is_symlink() and report.read_text().startswith("<!DOCTYPE html>")
    assert report.stat().st_uid == 0
