"""engine/files.py: all-or-nothing writes that never follow a planted symlink; the private cache directory."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from engine import files
from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = str(ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml")


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_replaces_the_whole_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    files.write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("the old report\n")
    real_write = os.write
    calls = []

    def disk_full(fd, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data[:10]))  # a short write first, as a full disk gives

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError):
        files.write_text_atomic(target, "x" * 100_000)
    monkeypatch.undo()
    assert target.read_text() == "the old report\n"
    assert leftovers(tmp_path) == []


def test_an_interrupted_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("{}\n")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        files.write_text_atomic(target, '{"new": 1}\n')
    monkeypatch.undo()
    assert target.read_text() == "{}\n"
    assert leftovers(tmp_path) == []


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    target = tmp_path / "report.txt"
    target.symlink_to(victim)
    files.write_text_atomic(target, "report\n")
    assert victim.read_text() == "precious\n"
    assert not target.is_symlink() and target.read_text() == "report\n"


def test_an_existing_file_keeps_its_mode(tmp_path):
    target = tmp_path / "kept.txt"
    target.write_text("a")
    target.chmod(0o600)
    files.write_text_atomic(target, "b")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_new_file_follows_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        files.write_text_atomic(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o600


def test_private_dir_is_0700_even_under_umask_000(tmp_path):
    old = os.umask(0)
    try:
        fd = files.open_private_dir(tmp_path / "a" / "cache")
        os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a" / "cache").stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_a_directory_others_can_write_is_refused(tmp_path, mode):
    d = tmp_path / "cache"
    d.mkdir()
    d.chmod(mode)
    with pytest.raises(files.UnsafePath, match="writable by group or others"):
        files.open_private_dir(d)


def test_a_symlinked_directory_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(OSError):
        files.open_private_dir(tmp_path / "link")


def test_a_symlinked_file_in_the_private_dir_is_not_read(tmp_path):
    d = tmp_path / "cache"
    fd = files.open_private_dir(d)
    try:
        (tmp_path / "elsewhere").write_text("x")
        (d / "entry").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(OSError):
            files.read_private(fd, "entry")
        (d / "group-writable").write_text("x")
        (d / "group-writable").chmod(0o664)
        with pytest.raises(files.UnsafePath):
            files.read_private(fd, "group-writable")
    finally:
        os.close(fd)


# --- through the command line ---------------------------------------------------------------

def test_audit_output_that_cannot_be_written_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "no-such-dir" / "report.html"
    assert main(["audit", SEED, "--format", "html", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and "internal error" not in err


def test_audit_output_onto_a_directory_is_one_line_exit_2(tmp_path, capsys):
    assert main(["audit", SEED, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path) in err


def test_audit_output_replaces_a_planted_symlink(tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    out = tmp_path / "report.md"
    out.symlink_to(victim)
    assert main(["audit", SEED, "--format", "markdown", "-o", str(out)]) == 0
    assert victim.read_text() == "root's file\n"
    assert "| strategy" in out.read_text()


def test_fmt_never_writes_outside_the_rule_root(tmp_path, capsys):
    outside = tmp_path / "outside.rules"
    outside.write_text("ruleset   outside\n")  # needs formatting
    root = tmp_path / "rules"
    root.mkdir()
    (root / "ok.rules").write_text("ruleset ok\n")
    (root / "escape.rules").symlink_to(outside)
    assert main(["fmt", str(root)]) == 2
    err = capsys.readouterr().err
    assert "escape.rules" in err and "leaves the rule root" in err
    assert outside.read_text() == "ruleset   outside\n"


@pytest.mark.parametrize("command", [["check"], ["test"], ["fmt", "--check"]])
def test_rule_commands_refuse_a_symlinked_directory_leaving_the_root(tmp_path, capsys, command):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.rules").write_text("ruleset x\n")
    root = tmp_path / "rules"
    root.mkdir()
    (root / "sub").symlink_to(outside, target_is_directory=True)
    (root / "direct.rules").symlink_to(outside / "x.rules")
    assert main([*command, str(root)]) == 2
    assert "leaves the rule root" in capsys.readouterr().err


def test_which_rules_refuses_a_symlink_leaving_the_root(tmp_path, capsys):
    root = tmp_path / "rules"
    root.mkdir()
    (tmp_path / "evil.rules").write_text("ruleset evil\nmatch id 1000:0097\n")
    (root / "evil.rules").symlink_to(tmp_path / "evil.rules")
    assert main(["which", SEED, "--page-size", "64K", "--rules", str(root)]) == 2
    assert "leaves the rule root" in capsys.readouterr().err


def test_fmt_writes_through_a_symlink_inside_the_root(tmp_path, capsys):
    root = tmp_path / "rules"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.rules").write_text("ruleset   a\n")
    (root / "alias.rules").symlink_to(root / "real" / "a.rules")
    assert main(["fmt", str(root)]) == 0
    assert (root / "alias.rules").is_symlink()
    assert (root / "real" / "a.rules").read_text() == "ruleset a\n"


def test_read_bytes_is_reading_the_whole_file(tmp_path):
    """files.read_bytes gives what open(name, "rb").read() gives: empty, small and large files,
    and a file whose size stat does not tell (procfs)."""
    for size in (0, 1, 4095, 65536, 65537, 3 << 20):
        path = tmp_path / f"f{size}"
        path.write_bytes(os.urandom(size))
        assert files.read_bytes(str(path)) == path.read_bytes()
    status = "/proc/self/status"
    if os.path.exists(status):
        got = files.read_bytes(status)
        assert got.startswith(b"Name:") and len(got) > 100
    with pytest.raises(IsADirectoryError):
        files.read_bytes(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        files.read_bytes(str(tmp_path / "missing"))
