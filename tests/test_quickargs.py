"""engine/quickargs.py: a plain command line read without argparse gives argparse's namespace.

Held to argparse itself on generated command lines for every subcommand: each time quick_args
answers, argparse must accept the same words and give the same values; when it cannot be sure
it answers None, and argparse (its help, its messages) reads them."""

from __future__ import annotations

import random

import pytest

from engine import cli, quickargs

SEED = "corpus/devices/seed/lsi-sas3008-1000-0097.yaml"

# Words a command line may hold: values that convert and values that don't, choices and
# non-choices, what argparse treats specially ('-', '--', -h, abbreviations, negative numbers,
# words with spaces), paths.
VALUES = ["64K", "4K", "16K", "65536", "3K", "0x1000", "4KiB", "", "-1", "-", "qemu", "libvirt", "proxmox",
          "xml", "0", "15", "16", "007", "text", "json", "yaml", "sarif", "jsonl", "bash", "fish",
          "audit", "a b", "-x y", "0000:03:00.0", "03:00.0", SEED, "rules/", "x.rules", "4K,64K",
          "dask", "local", "2", "bar1", "=", "--", "-h", "--help", "--version", "which"]


def words_for(spec: quickargs.Recorder | None, rng: random.Random) -> list[str]:
    flags = sorted(spec.options) if spec is not None and spec.options else ["--json", "--rules", "--page-size"]
    args = [*spec.options.values(), *spec.positionals] if spec is not None else []
    values = VALUES + sorted({str(c) for a in args for c in a.choices or ()})
    positional_choices = sorted({str(c) for a in (spec.positionals if spec else ()) for c in a.choices or ()})
    out = []
    for _ in range(min(rng.randint(0, 7), rng.randint(0, 7))):  # short lines more often
        pick = rng.random()
        if pick < 0.45:
            flag = rng.choice(flags)
            form = rng.random()
            if form < 0.1:
                flag = flag[:rng.randint(3, len(flag))]  # an abbreviation, or the flag itself
            if form > 0.8:
                out.append(f"{flag}={rng.choice(values)}")
            else:
                out.append(flag)
        elif positional_choices and rng.random() < 0.5:
            out.append(rng.choice(positional_choices))
        else:
            out.append(rng.choice(values))
    return out


def argparse_values(command: str, words: list[str], capsys) -> dict | None:
    try:
        ns = cli.build_parser(command).parse_args([command, *words])
    except SystemExit:
        capsys.readouterr()
        return None
    return vars(ns)


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_quick_args_agree_with_argparse(command, capsys):
    rng = random.Random(f"quickargs-{command}")
    spec = quickargs.declared(cli.COMMANDS[command])
    answered = 0
    for _ in range(1500):
        words = words_for(spec, rng)
        quick = cli.quick_args(command, words)
        if quick is None:
            continue
        answered += 1
        assert argparse_values(command, words, capsys) == vars(quick), words
    if spec is not None:
        assert answered > 50, answered  # plain command lines are common enough to be read here


def test_the_answering_commands_are_read_without_argparse():
    """which, show, check, fmt, test, coverage and audit are declared plainly; simulate and
    explain have a required choice of options (a group), export has its own subcommands."""
    plain = {name for name, add in cli.COMMANDS.items() if quickargs.declared(add) is not None}
    assert {"which", "show", "check", "fmt", "test", "schema"} <= plain
    assert not {"simulate", "explain", "export"} & plain


@pytest.mark.parametrize("words", [
    [SEED, "--page-size", "64K", "--no-io-space"],
    ["--page-size=64K", "--emit", "proxmox", "--hostpci", "3", SEED],
    ["--rules", "rules/", "--rules", "x.rules", "--only-rules", "-", "--json"],
    ["--sysfs", "--slot", "0000:03:00.0"],
])
def test_the_usual_which_lines_are_read_quickly(words, capsys):
    quick = cli.quick_args("which", words)
    assert quick is not None
    assert vars(quick) == argparse_values("which", words, capsys)
    assert quick.func is cli.cmd_which and "page_size" in quick


@pytest.mark.parametrize("words", [
    ["-h"], ["--help"], ["--page", "64K", SEED], ["--page-size", "3K", SEED], [SEED, "--json", SEED],
    ["--", SEED], ["--emit", "xml", SEED], ["--json=yes", SEED], ["--hostpci", "-1"], ["--slot"],
])
def test_anything_else_is_left_to_argparse(words):
    assert cli.quick_args("which", words) is None


def test_a_declaration_it_cannot_read_is_not_read():
    def adder(sub):
        p = sub.add_parser("x")
        p.add_argument("-o", "--output")
    assert quickargs.declared(adder) is None

    def grouped(sub):
        p = sub.add_parser("x")
        p.add_mutually_exclusive_group(required=True).add_argument("--a", action="store_true")
    assert quickargs.declared(grouped) is None
