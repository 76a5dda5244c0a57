"""The CLI as users run it: output shapes, exit codes, and errors without tracebacks."""

import json
import shutil
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = str(ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml")
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"
DELL = SHARED / "dell-poweredge-r340-x86_64-03cc317284.txt"
HP_DL20 = SHARED / "hp-proliant-dl20-gen9-x86_64-b78e0fdb9f.txt"  # a whole machine: most devices lack MSI-X
CENTRIQ = SHARED / "wiwynn-qualcomm-centriq-2400-rep-aarch64-bd0fe2f7fd.txt"  # domains 0000 and 0003


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_simulate_all_json_lists_every_strategy_in_order(capsys):
    code, out, _ = run(capsys, "simulate", SEED, "--page-size", "64K", "--no-io-space", "--all", "--json")
    data = json.loads(out)
    assert code == 0
    assert [d["strategy"] for d in data] == ["off", "bar0", "bar1", "bar2", "bar3", "bar4", "bar5",
                                             "qemu-rfc", "reverse", "extend-only", "cloud-hypervisor", "pve-tools", "qemu"]
    by = {d["strategy"]: d for d in data}
    assert by["qemu-rfc"]["target"] == 0 and by["qemu-rfc"]["msix"]["pba_offset"] == 0x600
    assert by["bar2"] == {"strategy": "bar2", "target": 2,
                          "refused": "Invalid MSI-X relocation BAR 2, consumed by 64-bit BAR 1", "notes": []}
    assert {"index": 5, "kind": "mem32", "prefetchable": True, "size": 65536, "assigned": True} in by["bar5"]["bars"]


def test_simulate_text_shows_lspci_lines_and_the_qemu_option(capsys):
    code, out, _ = run(capsys, "simulate", SEED, "--page-size", "64K", "--no-io-space", "--target", "bar5")
    assert code == 0
    assert "Region 5: Memory at <guest> (32-bit, prefetchable) [size=64K]   <- new" in out
    assert "Vector table: BAR=5 offset=00000000" in out and "PBA: BAR=5 offset=00000600" in out
    assert "-device vfio-pci,host=0001:03:00.0,x-msix-relocation=bar5" in out
    assert "relocation needed" in out


def test_show_json_has_the_documented_device_fields(capsys):
    code, out, _ = run(capsys, "show", SEED, "--json")
    (dev,) = json.loads(out)
    assert code == 0
    for key in ("slot", "vendor", "device", "subsystem_vendor", "subsystem_device", "class", "driver",
                "modules", "bars", "msix"):
        assert key in dev
    assert dev["msix"] == {"entries": 96, "table_bar": 1, "table_offset": 0xE000, "pba_bar": 1,
                           "pba_offset": 0xF000}
    assert dev["bars"][0] == {"index": 0, "kind": "io", "prefetchable": False, "size": 0, "assigned": False}


def test_show_yaml_reads_back_identical(capsys, tmp_path):
    _, out, _ = run(capsys, "show", SEED, "--format", "yaml")
    again = tmp_path / "again.yaml"
    again.write_text(out)
    _, out2, _ = run(capsys, "show", str(again), "--format", "yaml")
    assert out == out2


@pytest.mark.skipif(not DELL.is_file(), reason="../shared/corpus/lspci absent")
def test_stdin_machine_dump_needs_a_slot_and_then_simulates(capsys, monkeypatch):
    import io
    monkeypatch.setattr(sys, "stdin", io.StringIO(DELL.read_text()))
    code, _, err = run(capsys, "simulate", "-", "--page-size", "64K", "--heuristic", "reverse")
    assert code == 2 and "choose one with --slot" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO(DELL.read_text()))
    code, out, _ = run(capsys, "simulate", "-", "--slot", "02:00.0", "--page-size", "64K",
                       "--heuristic", "reverse", "--json")
    assert code == 0 and json.loads(out)["target"] == 5


@pytest.mark.parametrize("argv, words", [
    (["show", "/nonexistent/file"], "/nonexistent/file: no such file"),
    (["simulate", SEED, "--slot", "00:09.0", "--all"], "no device at slot 00:09.0"),
    (["show"], "no input"),
])
def test_bad_input_exits_2_with_one_clear_line(capsys, monkeypatch, argv, words):
    monkeypatch.setattr(sys, "stdin", Terminal())
    code, out, err = run(capsys, *argv)
    assert code == 2 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


class Terminal:
    """Standard input as a terminal: nothing is piped in."""

    def isatty(self) -> bool:
        return True


def test_bad_file_content_names_file_and_line(capsys, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("00:01.0 Ethernet controller [0200]: X [8086:1521]\n\tRegion 0: Memory at zz\n")
    code, _, err = run(capsys, "show", str(bad))
    assert code == 2 and f"{bad}:2: cannot read BAR line" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", SEED, "--page-size", "3K", "--all"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["simulate", SEED])  # no --target/--heuristic/--all
    assert exc.value.code == 2


def test_console_script_runs_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "simulate", SEED, "--page-size", "64K",
                           "--no-io-space", "--heuristic", "qemu-rfc", "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["target"] == 0


def test_python_dash_m_engine_is_the_same_command(tmp_path, monkeypatch):
    monkeypatch.setenv("BARSAFE_CACHE", "0")
    run = subprocess.run([sys.executable, "-m", "engine", "which", SEED, "--page-size", "64K",
                          "--no-io-space", "--emit", "qemu"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("x-msix-relocation=bar5")
    usage = subprocess.run([sys.executable, "-m", "engine", "--version"], capture_output=True, text=True)
    assert usage.stdout.startswith("barsafe ")


# --- input as users give it ------------------------------------------------------------------

def barsafe(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *argv], input=stdin, capture_output=True,
                          env={**os.environ, "BARSAFE_CACHE": "0"})


def test_a_pipe_is_read_without_a_dash():
    run = barsafe("which", "--page-size", "64K", "--no-io-space", "--emit", "qemu",
                  stdin=Path(SEED).read_bytes())
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode().strip().endswith("x-msix-relocation=bar5")


@pytest.mark.parametrize("slot", ["0001:03:00.0", "03:00.0", "3:0.0", "03:00", "3:0", "0001:3:0"])
def test_slot_forms_people_type(capsys, slot):
    code, out, err = run(capsys, "which", SEED, "--slot", slot, "--page-size", "64K", "--no-io-space",
                         "--emit", "qemu")
    assert code == 0, err
    assert out.strip() == "-device vfio-pci,host=0001:03:00.0,x-msix-relocation=bar5"


@pytest.mark.parametrize("slot, words", [
    ("0000:03:00.0", "no device at slot 0000:03:00.0 in the input (it has: 0001:03:00.0)"),
    ("03:00.1", "no device at slot 03:00.1"),
    ("03:20.0", "not a PCI address"),
    ("03:00.0\nhookscript: x", "not a PCI address"),
])
def test_a_wrong_slot_names_the_slot(capsys, slot, words):
    code, _, err = run(capsys, "which", SEED, "--slot", slot, "--page-size", "64K")
    assert code == 2 and words in err, err
    assert err.count("\n") == 1


@pytest.mark.skipif(not HP_DL20.exists(), reason="../shared/corpus/lspci absent")
def test_a_slot_without_msix_says_so(capsys):
    code, _, err = run(capsys, "which", str(HP_DL20), "--slot", "00:14.0", "--page-size", "64K")
    assert code == 2 and "00:14.0" in err and "has no MSI-X capability" in err, err
    assert "in the input" not in err


@pytest.mark.skipif(not CENTRIQ.exists(), reason="../shared/corpus/lspci absent")
def test_a_slot_without_domain_must_be_unique(capsys):
    code, _, err = run(capsys, "show", str(CENTRIQ), "--slot", "00:00.0")
    assert code == 2 and "several PCI domains" in err and "0003:00:00.0" in err
    code, out, _ = run(capsys, "show", str(CENTRIQ), "--slot", "3:0:0")
    assert code == 0 and out.startswith("0003:00:00.0 ")


@pytest.mark.parametrize("argv, words", [
    (["--json", "--emit", "qemu"], "--json and --emit"),
    (["--hostpci", "2"], "--hostpci"),
    (["--hostpci", "2", "--emit", "qemu"], "needs --emit proxmox"),
    (["--hostpci", "-1", "--emit", "proxmox"], "--hostpci"),
    (["--only-rules"], "--only-rules needs"),
])
def test_meaningless_option_combinations_are_usage_errors(capsys, argv, words):
    code, out, err = run(capsys, "which", SEED, "--page-size", "64K", *argv)
    assert code == 2 and words in err and not out


def write_rules(d: Path, name: str, body: str) -> Path:
    d.mkdir(exist_ok=True)
    (d / f"{name}.rules").write_text(
        f'ruleset {name}\nsource "drivers/x/x.c:1" function x_probe kernel "6.12"\n{body}')
    return d


def test_rules_add_to_the_shipped_rules(capsys, tmp_path):
    mine = write_rules(tmp_path / "mine", "extra", 'match id 1000:0097\nrule no-bar5:\n'
                       '    require not bar5 added\n    else warn "extra says so"\n')
    code, out, err = run(capsys, "which", SEED, "--page-size", "64K", "--no-io-space", "--json",
                         "--rules", str(mine))
    assert code == 0, err
    (a,) = json.loads(out)
    assert a["rules"] == ["extra", "mpt3sas"]
    verdicts = {c["strategy"]: c["verdict"] for c in a["candidates"]}
    assert verdicts["bar0"] == "forbid"  # the shipped mpt3sas rules still judge
    assert verdicts["bar5"] == "warn"    # and the added set too


def test_a_rule_set_of_the_same_name_replaces_the_shipped_one(capsys, tmp_path):
    mine = write_rules(tmp_path / "mine", "mpt3sas", "match id 1000:0097\n")
    code, out, _ = run(capsys, "which", SEED, "--page-size", "64K", "--no-io-space", "--json",
                       "--rules", str(mine))
    (a,) = json.loads(out)
    assert a["rules"] == ["mpt3sas"]
    assert {c["strategy"]: c["verdict"] for c in a["candidates"]}["bar0"] == "safe"


def test_only_rules_leaves_the_shipped_and_generic_sets_out(capsys, tmp_path):
    mine = write_rules(tmp_path / "mine", "other", "match id 1234:5678\n")
    code, out, _ = run(capsys, "which", SEED, "--page-size", "64K", "--no-io-space", "--json",
                       "--rules", str(mine), "--only-rules")
    (a,) = json.loads(out)
    assert a["rules"] == []


def test_which_takes_several_inputs_and_names_each_device_s_input(capsys, tmp_path):
    other = tmp_path / "copy.yaml"
    other.write_text(Path(SEED).read_text())
    code, out, err = run(capsys, "which", SEED, str(tmp_path), "--page-size", "64K", "--no-io-space")
    assert code == 0, err
    assert out.count("recommendation: bar5") == 2
    assert f"input: {SEED}:" in out and f"input: {other}:" in out
    code, out, _ = run(capsys, "which", SEED, str(other), "--page-size", "64K", "--json")
    assert [a["input"].rsplit(":", 2)[0] for a in json.loads(out)] == [SEED, str(other)]


@pytest.mark.skipif(not DELL.exists(), reason="../shared/corpus/lspci absent")
@pytest.mark.parametrize("before, after", [
    ("$ sudo lspci -vvvnn\n", ""),
    ("root@pve:~# lspci -vvvnn\n", "root@pve:~# \n"),
    ("sudo lspci -vvvnn\n\n", ""),
])
def test_a_pasted_prompt_line_just_works(before, after):
    dump = DELL.read_bytes()
    plain = barsafe("which", "--page-size", "64K", "--emit", "qemu", stdin=dump)
    pasted = barsafe("which", "--page-size", "64K", "--emit", "qemu",
                     stdin=before.encode() + dump + after.encode())
    assert pasted.returncode == plain.returncode == 0, pasted.stderr
    assert pasted.stdout == plain.stdout and b"-device vfio-pci" in plain.stdout


def test_a_prompt_is_not_taken_for_device_text(capsys, tmp_path):
    bad = tmp_path / "x.txt"
    bad.write_text("$ sudo lspci -vvvnn\nlspci: Unable to load libkmod resources: error -2\nnot a device\n")
    code, _, err = run(capsys, "show", str(bad))
    assert code == 2 and f"{bad}:" in err


def completions(line: str) -> list[str]:
    """What the shell gets for ``line`` through argcomplete's protocol (as its hook asks)."""
    read, write = os.pipe()
    env = {**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line)), "_ARGCOMPLETE": "1",
           "_ARGCOMPLETE_IFS": "\n", "BARSAFE_CACHE": "0"}
    proc = subprocess.run([sys.executable, "-m", "engine"], env=env, close_fds=False,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          preexec_fn=lambda: os.dup2(write, 8))  # argcomplete answers on fd 8
    os.close(write)
    with os.fdopen(read) as fh:
        out = fh.read()
    assert proc.returncode == 0
    return sorted(out.split("\n")) if out else []


def test_completion_comes_from_the_parser():
    pytest.importorskip("argcomplete")
    assert [c.strip() for c in completions("barsafe wh")] == ["which"]
    assert any(c.startswith("--emit") for c in completions("barsafe which --em"))
    assert {c.strip() for c in completions("barsafe which --emit ")} == {"libvirt", "proxmox", "qemu"}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_for_each_shell(capsys, shell):
    pytest.importorskip("argcomplete")
    code, out, _ = run(capsys, "completion", shell)
    assert code == 0 and "barsafe" in out and "_ARGCOMPLETE" in out


def test_bash_loads_the_completion_script(capsys, tmp_path):
    pytest.importorskip("argcomplete")
    if not shutil.which("bash"):
        pytest.skip("no bash")
    _, script, _ = run(capsys, "completion", "bash")
    (tmp_path / "c.sh").write_text(script)
    proc = subprocess.run(["bash", "-c", f"source {tmp_path / 'c.sh'} && complete -p barsafe"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "barsafe" in proc.stdout, proc.stderr


def test_every_option_has_help_text():
    import argparse

    from engine.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, where: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{where} {name}")
            elif not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
    walk(build_parser(), "barsafe")
    assert missing == []


@pytest.mark.skipif(not DELL.exists(), reason="../shared/corpus/lspci absent")
def test_without_ids_which_says_what_is_missing(capsys, tmp_path):
    import re
    dump = tmp_path / "no-nn.txt"  # lspci -vvv without -nn: no [vendor:device], no [class]
    dump.write_text(re.sub(r" \[[0-9a-f]{4}(:[0-9a-f]{4})?\]", "", DELL.read_text()))
    code, out, err = run(capsys, "which", str(dump), "--page-size", "64K")
    assert "????" not in out and "0000:0000" not in out, out
    assert "[IDs unknown]" in out and "run lspci with -nn" in out
    assert "rules: megaraid_sas: matches module megaraid_sas" in out


def test_which_answers_a_device_behind_vmd_without_configuration(tmp_path, capsys):
    """A five-digit PCI domain (Intel VMD) is a device model accepts and QEMU's host= does not:
    `which` answers it, says why there is no configuration line, and answers the rest."""
    seed = Path(SEED).read_text()
    assert "0001:03:00.0" in seed
    vmd = tmp_path / "vmd.yaml"
    vmd.write_text(seed.replace("0001:03:00.0", "10000:e1:00.0"))
    assert main(["which", str(vmd), SEED, "--page-size", "64K", "--no-io-space"]) == 0
    out = capsys.readouterr().out
    assert "QEMU:    none: slot 10000:e1:00.0 is not an address QEMU's vfio-pci host= takes" in out
    assert "-device vfio-pci,host=0001:03:00.0,x-msix-relocation=bar5" in out
    assert "host=10000" not in out
    # configuration alone (--emit) is still refused outright rather than half written
    assert main(["which", str(vmd), "--page-size", "64K", "--no-io-space", "--emit", "qemu"]) == 2
    assert "not a PCI address" in capsys.readouterr().err


LONG_NAME = "a" * 300  # longer than NAME_MAX: the system refuses it (ENAMETOOLONG)


@pytest.mark.parametrize("argv", [
    ["which", LONG_NAME], ["show", LONG_NAME], ["simulate", LONG_NAME, "--all"],
    ["explain", "rules", LONG_NAME, "--target", "bar1"], ["check", LONG_NAME], ["fmt", LONG_NAME],
    ["test", LONG_NAME], ["export", "qemu-table", LONG_NAME], ["which", SEED, "--rules", LONG_NAME],
])
def test_a_name_the_system_refuses_is_bad_input_not_a_bug(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "cannot read: File name too long" in err, err
    assert "internal error" not in err


def test_a_loop_of_symlinks_among_rule_files_is_bad_input_not_a_bug(tmp_path, capsys):
    (tmp_path / "x.rules").symlink_to("y.rules")
    (tmp_path / "y.rules").symlink_to("x.rules")
    for argv in (["check", str(tmp_path)], ["which", SEED, "--rules", str(tmp_path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        # Python 3.11 and 3.12 name the loop; 3.13's pathlib raises the system's ELOOP
        assert f"{tmp_path}/x.rules: error: cannot read: " in err, err
        assert "a loop of symbolic links" in err or "Too many levels of symbolic links" in err, err
        assert "internal error" not in err
