"""`barsafe which` start-up (README Benchmarks): what a warm run must not load, and the
cheap stand-ins start-up uses for what it no longer loads."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

from engine.sources import detect, record

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus" / "devices" / "seed" / "lsi-sas3008-1000-0097.yaml"

# Each of these cost a warm `which` on the seed from 1 % to 20 % of `python -c "import yaml"`:
# dataclasses (inspect), typing, json, shutil (argparse's terminal width), lark (the grammar),
# networkx (include graphs), argparse with gettext and locale (a plain command line is read by
# engine/quickargs.py), pathlib (urllib.parse, ipaddress, fnmatch, ntpath: the start-up path
# names files with strings, engine/paths.py).  Annotations name typing's types under
# TYPE_CHECKING.
NOT_ON_THE_WARM_PATH = ("dataclasses", "inspect", "typing", "json", "shutil", "lark", "networkx",
                        "argparse", "gettext", "locale", "unicodedata", "pathlib")


def loaded_by_which(env: dict, argv: list[str], watched: tuple[str, ...] = NOT_ON_THE_WARM_PATH
                    ) -> tuple[int, list[str]]:
    """(exit code, which of NOT_ON_THE_WARM_PATH were loaded) of `barsafe ARGV` in a new process.

    The process starts without the site module (-S), this one's path (the checkout first) given
    as PYTHONPATH, whose folders' .pth files are not run: an editable install's finder, which
    site would run, imports pathlib itself.  It stops if any of the modules is loaded before
    barsafe is, as their absence after the run would then say nothing."""
    code = ("import sys\n"
            f"early = [m for m in {watched!r} if m in sys.modules]\n"
            "assert not early, f'loaded before barsafe: {early}'\n"
            "import io\n"
            "from contextlib import redirect_stdout\n"
            "from engine.cli import main\n"
            "with redirect_stdout(io.StringIO()):\n"
            f"    rc = main({argv!r})\n"
            f"print(rc, *sorted(m for m in {watched!r} if m in sys.modules))\n")
    path = os.pathsep.join([str(ROOT), *(p for p in sys.path if p)])
    run = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env={**env, "PYTHONPATH": path}, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    rc, *loaded = run.stdout.split()
    return int(rc), loaded


def test_a_warm_which_loads_none_of_the_expensive_modules(tmp_path):
    env = {**os.environ, "BARSAFE_CACHE_DIR": str(tmp_path / "cache")}
    argv = ["which", str(SEED), "--page-size", "64K", "--no-io-space"]
    _, first = loaded_by_which(env, argv)
    assert {"lark", "networkx"} <= set(first)  # the first run parses the rules and fills the cache
    assert loaded_by_which(env, argv) == (0, [])


def test_a_warm_which_on_a_sysfs_device_names_it_without_the_expensive_modules(tmp_path, capsys, monkeypatch):
    """`which` on a sysfs directory (what --sysfs reads) looks its names up in pci.ids: that
    too without dataclasses (and inspect) or typing.  The sysfs reader uses pathlib."""
    from test_sysfs_roundtrip import write_sysfs

    from engine.frozen import replace
    from engine.sources import record
    (seed,) = record.parse(SEED.read_text(), str(SEED))
    seed = replace(seed, bars=tuple(b for b in seed.bars if b.size))  # its I/O BAR is unassigned
    device = write_sysfs(tmp_path / "sys", seed)
    ids = tmp_path / "pci.ids"
    ids.write_text("1000  Broadcom / LSI\n\t0097  SAS3008 PCI-Express Fusion-MPT SAS-3\n"
                   "C 01  Mass storage controller\n\t07  Serial Attached SCSI controller\n")
    env = {**os.environ, "BARSAFE_CACHE_DIR": str(tmp_path / "cache"), "BARSAFE_PCI_IDS": str(ids)}
    argv = ["which", str(device), "--page-size", "64K", "--no-io-space"]
    watched = tuple(m for m in NOT_ON_THE_WARM_PATH if m != "pathlib")
    loaded_by_which(env, argv, watched)
    assert loaded_by_which(env, argv, watched) == (0, [])
    from engine.cli import main
    monkeypatch.setenv("BARSAFE_PCI_IDS", str(ids))
    assert main(argv) == 0
    assert "Serial Attached SCSI controller: Broadcom / LSI SAS3008" in capsys.readouterr().out  # named


def test_record_hex_checks_are_the_patterns_they_replace():
    rng = random.Random(20261203)
    alphabet = "0123456789abcdefABCDEFxXg: _-\u0661\uff10"  # and a non-ASCII digit or two
    hex_int = re.compile(r"(?:0[xX])?[0-9a-fA-F]{1,16}")
    id_pair = re.compile(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{4}")
    hits = 0
    for _ in range(20_000):
        text = rng.choice(["", "0x", "0X"]) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 19)))
        assert record.is_hex_int(text) == bool(hex_int.fullmatch(text)), text
        assert record.is_id_pair(text) == bool(id_pair.fullmatch(text)), text
        for digits in (1, 2, 4):
            assert record.is_hex(text, digits) == bool(re.fullmatch(f"[0-9a-fA-F]{{1,{digits}}}", text))
        hits += record.is_hex_int(text)
    assert hits > 100
    assert record.is_id_pair("1000:0097") and not record.is_id_pair("1000:00971")


def test_string_checks_are_the_patterns_they_replace():
    """model.is_slot, model.is_module_name and detect.starts_record, written without regular
    expressions for start-up, against the patterns they stand for, on random text built from
    the characters that matter to each."""
    from engine import model
    rng = random.Random(20261204)
    slot_re, module_re = re.compile(model.SLOT_PATTERN), re.compile(model.MODULE_PATTERN)
    start_re = re.compile(detect.RECORD_START_PATTERN)
    slots = ["0000:03:00.0", "03:1f.7", "10000:00:00.0", "ffffffff:ff:1f.7"]
    keys = list(detect.RECORD_KEYS) + ["---", "-", "%YAML", "slotx", "class_nam", " id"]
    hits = [0, 0, 0]
    for _ in range(30_000):
        base = rng.choice(slots)
        text = "".join(ch if rng.random() > 0.15 else rng.choice("0f1F2g:.7 8\u0661x") for ch in base)
        text = text[:rng.randint(0, len(text))] if rng.random() < 0.2 else text
        assert model.is_slot(text) == bool(slot_re.fullmatch(text)), text
        hits[0] += model.is_slot(text)
        name = "".join(rng.choice("aZ09_-.:é ") for _ in range(rng.choice([0, 1, 5, 54, 55, 56])))
        assert model.is_module_name(name) == bool(module_re.fullmatch(name)), name
        hits[1] += model.is_module_name(name)
        line = rng.choice(keys) + "".join(rng.choice(" \t:\x1c\u00a0x-") for _ in range(rng.randint(0, 3)))
        assert detect.starts_record(line) == bool(start_re.match(line)), line
        hits[2] += detect.starts_record(line)
    assert min(hits) > 1000, hits  # both answers are common in what was tried


def test_plain_text_shortcuts_change_nothing():
    """model.text_problem and units.quote pass plain ASCII text without looking up each
    character (and without loading unicodedata): the same answers as looking them up."""
    import unicodedata

    from engine import model, units
    rng = random.Random(20261204)
    alphabet = "aZ0 ~\t\n\r\x00\x1b\x7f\x85\u2028\u2029\u202eü日"
    refused = 0
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        bad = next((ch for ch in text if ch != "\t" and unicodedata.category(ch) in ("Cc", "Zl", "Zp")), None)
        want = None if bad is None else f"control character {units.quote(bad)} in text {units.quote(text)}"
        assert model.text_problem(text) == want, text
        refused += bad is not None
        shown = "".join(f"<U+{ord(ch):04X}>" if unicodedata.category(ch) in units._INVISIBLE else ch
                        for ch in text[:6])
        assert units.quote(text, 6) == "'" + shown + ("..." if len(text) > 6 else "") + "'", text
    assert 1000 < refused < 19_000


def test_sizes_are_read_as_their_pattern_says():
    """units.parse_size reads SIZE_PATTERN (ASCII, either case) without compiling it."""
    from engine import units
    size_re = re.compile(units.SIZE_PATTERN, re.ASCII | re.IGNORECASE)
    rng = random.Random(20261204)
    alphabet = "0123456789 \tKkMmGgTtiIBbx\u212a\u0130\u0131\u0663"
    read = 0
    for _ in range(30_000):
        text = "".join(rng.choice(alphabet if rng.random() < 0.3 else "0123456789KiB \t")
                       for _ in range(rng.randint(0, 8)))
        m = size_re.fullmatch(text)
        try:
            got = units.parse_size(text)
        except ValueError:
            assert m is None or len(m.group(1).lstrip("0")) > units.MAX_SIZE_DIGITS, text
            continue
        assert m is not None and got == int(m.group(1)) * units._SUFFIX[m.group(2).upper()], text
        read += 1
    assert read > 3000


def test_a_size_in_other_scripts_letters_is_not_a_size(capsys):
    """The Kelvin sign (U+212A) once passed for K and then failed as a KeyError (an internal
    error, and a traceback from --page-size); "İ" and "ı" passed for i."""
    from engine import units
    from engine.cli import main
    for text in ("64\u212a", "64K\u0130B", "64\u0131B", "\u0663K"):
        try:
            units.parse_size(text)
        except ValueError as exc:
            assert "not a size" in str(exc)
        else:
            raise AssertionError(text)
    try:
        code = main(["which", str(SEED), "--page-size", "4\u212a"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert "argument --page-size: not a size" in capsys.readouterr().err


def test_lspci_patterns_compile_when_first_used():
    assert detect.HEADER_RE is detect.pattern("HEADER_RE")
    assert detect.HEADER_RE.match("0000:03:00.0 RAID bus controller [0104]: x").group("slot") == "0000:03:00.0"
    assert detect.is_prompt("$ sudo lspci -vvvnn") and not detect.is_prompt("03:00.0 x")
    try:
        detect.NO_SUCH_PATTERN
    except AttributeError:
        pass
    else:
        raise AssertionError("a name detect does not have must be an AttributeError")


def test_a_command_that_ends_at_once_still_says_everything(tmp_path, capsys):
    """`barsafe which` ends without the interpreter's teardown (cli._end): its whole output,
    stdout and stderr, and its exit code are those of the same command run in-process (the
    program, engine/__main__.py, as pyproject's script runs it)."""
    from engine.cli import main
    env = {**os.environ, "BARSAFE_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("PYTHONUNBUFFERED", None)  # output to a pipe is held in Python's buffer until flushed
    for argv in (["which", str(SEED), "--page-size", "64K", "--no-io-space"],
                 ["which", str(SEED), "--json"],
                 ["which", str(tmp_path / "missing.yaml")],
                 ["show", str(ROOT / "corpus" / "devices")]):
        run = subprocess.run([sys.executable, "-m", "engine", *argv], capture_output=True, text=True,
                             env=env, cwd=ROOT)
        code = main(argv)
        out, err = capsys.readouterr()
        assert (run.returncode, run.stdout, run.stderr) == (code, out, err), argv
        assert run.stdout or run.stderr
