"""Semantic checks: check() on parsed files, library.load() on files on disk, and `barsafe check`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import RuleErrors
from engine.rules import ast, library
from engine.rules.check import check
from engine.rules.parse import parse

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "rules"
SOURCE = 'source "drivers/x/x.c:10" function x_probe kernel "6.12"\n'


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BARSAFE_CACHE_DIR", str(tmp_path / "barsafe-cache"))
    monkeypatch.delenv("BARSAFE_CACHE", raising=False)


def problems(text: str, stem: str | None = "t") -> list[tuple[int | None, str]]:
    """(line, message) of every check() error, in place order."""
    errors = check(parse(text, "t.rules"), stem)
    assert all(e.location.path == "t.rules" for e in errors)
    return sorted(((e.location.line, e.message) for e in errors), key=lambda t: (t[0] or 0, t[1]))


def messages(text: str, stem: str | None = "t") -> list[str]:
    return [m for _, m in problems(text, stem)]


def load_errors(*paths: Path) -> list:
    with pytest.raises(RuleErrors) as info:
        library.load(list(paths), use_cache=False)
    return info.value.errors


def write(dir_: Path, name: str, text: str) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    path = dir_ / name
    path.write_text(text)
    return path


# --- a clean file ---------------------------------------------------------------------------

SHIPPED = [ROOT / "rules" / f"{n}.rules" for n in ("generic", "mpt3sas", "tsi721")]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_files_have_no_problems(path):
    assert check(parse(path.read_text(), str(path)), path.stem) == []


def test_a_small_clean_file_has_no_problems():
    assert problems('ruleset t\nrole regs = first memory bar\n'
                    'rule a: require regs stays else warn "m"\n') == []


# --- roles ----------------------------------------------------------------------------------

def test_unknown_role_names_the_known_roles():
    errors = check(parse('ruleset t\nrole regs = bar1\nrole db = last memory bar\n'
                         'rule a:\n    require regs stays and doorbell stays\n    else warn "m"\n',
                         "t.rules"), "t")
    (e,) = errors
    assert e.message == "unknown role 'doorbell' (roles: db, regs; or use bar0..bar5)"
    assert (e.location.line, e.location.column) == (5, 28)


def test_unknown_role_with_no_roles_defined():
    assert messages('ruleset t\nrule a: when native x is memory require bar0 unchanged else warn "m"\n') == [
        "unknown role 'x' (roles: none defined; or use bar0..bar5)"]


def test_unknown_role_in_no_bar_added_below():
    assert messages('ruleset t\nrule a: require no bar added below regs else warn "m"\n') == [
        "unknown role 'regs' (roles: none defined; or use bar0..bar5)"]


def test_duplicate_role():
    assert problems('ruleset t\nrole regs = bar1\nrole regs = bar2\n') == [
        (3, "role 'regs' already defined at line 2")]


@pytest.mark.parametrize("name", ["bar0", "bar7", "memory", "largest", "native", "size", "stays"])
def test_reserved_role_name(name):
    assert messages(f"ruleset t\nrole {name} = bar1\n") == [
        f"'{name}' is a reserved word; choose another role name"]


def test_fixed_bar_stays_is_rejected():
    errors = check(parse('ruleset t\nrule a:\n    require bar1 stays or bar0 stays\n    else warn "m"\n',
                         "t.rules"), "t")
    assert [(e.location.line, e.location.column) for e in errors] == [(3, 13), (3, 27)]
    assert errors[0].message.startswith("'bar1 stays' always holds")
    assert errors[1].message.startswith("'bar0 stays' always holds")
    assert "use 'unchanged'" in errors[0].message


def test_native_on_a_comparing_predicate_is_rejected():
    assert messages('ruleset t\nrule a: require native bar0 size unchanged else warn "m"\n') == [
        "'native' compares nothing here: this predicate already compares the native and relocated layouts"]


# --- rules ----------------------------------------------------------------------------------

def test_duplicate_rule_name():
    assert problems('ruleset t\nrule a: require bar0 unchanged else warn "m"\n'
                    'rule a: require bar1 unchanged else warn "m"\n') == [
        (3, "rule 'a' already defined at line 2")]


def test_rule_repeating_another_condition():
    assert problems('ruleset t\nrule a: when bar1 is memory require bar0 unchanged else warn "m"\n'
                    'rule b: when bar1 is memory require bar0 unchanged else forbid "n"\n') == [
        (3, "rule 'b' repeats the condition of rule 'a' (line 2)")]


def test_contradictory_rules_with_the_same_guard():
    text = ('ruleset t\n'
            'rule a:\n    when native bar0 is memory\n    require bar0 size unchanged and no bar added\n'
            '    else warn "m"\n'
            'rule b:\n    when native bar0 is memory\n    require not (bar0 size unchanged and no bar added)\n'
            '    else warn "n"\n')
    assert problems(text) == [(6, "rule 'b' contradicts rule 'a' (line 2): no layout satisfies both")]


def test_contradiction_is_found_either_way_round():
    text = ('ruleset t\nrule a: require not no bar extended else warn "m"\n'
            'rule b: require no bar extended else warn "m"\n')
    assert problems(text) == [(3, "rule 'b' contradicts rule 'a' (line 2): no layout satisfies both")]


def test_negated_rules_with_different_guards_do_not_contradict():
    assert problems('ruleset t\nrule a: when bar1 is io require bar0 unchanged else warn "m"\n'
                    'rule b: require not bar0 unchanged else warn "m"\n') == []


@pytest.mark.parametrize("cond, fact", [
    ("bar0 is io and bar0 is memory", "bar0 is io/memory"),
    ("bar0 is 64bit and bar0 is 32bit", "bar0 is 64bit/32bit"),
    ("bar0 is prefetchable and bar0 is not prefetchable", "bar0 is prefetchable"),
    ("bar1 unchanged and (native bar2 is io and native bar2 is prefetchable)", "native bar2 is io/prefetchable"),
])
def test_condition_that_can_never_hold_attributes(cond, fact):
    assert messages(f'ruleset t\nrule a: require {cond} else warn "m"\n') == [
        f"condition can never hold: {fact}"]


@pytest.mark.parametrize("cond", [
    "bar0 size >= 1M and bar0 size <= 4K",
    "bar0 size > 4K and bar0 size < 8K and bar0 size == 64K",
    "bar3 size == 4K and bar3 size == 8K",
    "bar0 size > 4K and bar0 size < 4K",
])
def test_condition_that_can_never_hold_sizes(cond):
    ref = cond.split()[0]
    assert messages(f'ruleset t\nrule a: require {cond} else warn "m"\n') == [
        f"condition can never hold: no size of {ref} satisfies all its size tests"]


@pytest.mark.parametrize("cond", [
    "bar0 size >= 4K and bar0 size <= 4K",
    "bar0 size >= 1M and bar1 size <= 4K",
    "bar0 size >= 1M and native bar0 size <= 4K",
    "bar0 is io or bar0 is memory",
    "bar0 is io and bar1 is memory",
])
def test_conditions_that_can_hold_are_accepted(cond):
    assert messages(f'ruleset t\nrule a: require {cond} else warn "m"\n') == []


def test_empty_message():
    assert messages('ruleset t\nrule a: require bar0 unchanged else warn "" "  "\n') == [
        "empty message: say what breaks in the driver"]


# --- header ---------------------------------------------------------------------------------

def test_missing_ruleset():
    errors = check(parse('describe "x"\n', "t.rules"), "t")
    (e,) = errors
    assert e.message.startswith("missing 'ruleset NAME'")
    assert e.location.path == "t.rules" and e.location.line is None


def test_ruleset_name_must_match_the_file_name():
    assert problems("ruleset other\n", "t") == [
        (1, "rule set 'other' is in file 't.rules': name them alike")]


def test_second_ruleset_and_describe():
    assert problems('ruleset t\ndescribe "a"\nruleset t\ndescribe "b"\n') == [
        (3, "a file holds one rule set: second 'ruleset'"), (4, "second 'describe': join the text into one")]


def test_match_lines_need_a_source():
    assert problems("ruleset t\nmatch module x\nmatch id 1000:0097\n") == [
        (2, 'a rule file that matches devices must cite its driver source: source "path/file.c:LINE"'
            ' function NAME kernel "6.12"')]


def test_ill_formed_sources():
    text = ('ruleset t\nmatch driver x\n'
            'source "drivers/x/x.c" function f kernel "6.12"\n'   # 3: no line
            'source "drivers/x/x.c:12" kernel "6.12"\n'           # 4: no function
            'source "drivers/x/x.c:12" function f\n'              # 5: no kernel
            'source "x.py:12" function f kernel "6.12"\n')        # 6: not C
    assert problems(text) == [
        (3, "source 'drivers/x/x.c' must be 'path/file.c:LINE'"),
        (4, "source needs 'function NAME': the C function holding the check"),
        (5, "source needs 'kernel \"VERSION\"': the kernel tree the line number is valid for"),
        (6, "source 'x.py:12' must be 'path/file.c:LINE'"),
    ]


def test_a_file_without_match_lines_needs_no_source():
    assert problems("ruleset t\n") == []


def test_match_id_and_class_checks():
    assert problems(f"ruleset t\n{SOURCE}match id *:0097\nmatch class 0x10107\nmatch id 1000:*\n") == [
        (3, "'match id *:DDDD' matches a device ID of any vendor: name the vendor"),
        (4, "class 0x10107 has 5 hex digits: write 4, base class and subclass (e.g. 0x0107), or 6 with"
            " the programming interface (e.g. 0x0c0330)"),
    ]


# --- examples -------------------------------------------------------------------------------

def test_example_without_expect():
    assert problems('ruleset t\nexample "e" {\n    device "seed/lsi-sas3008-1000-0097.yaml"\n}\n') == [
        (2, "example 'e' expects nothing: add 'expect TARGET VERDICT' lines")]


def test_example_with_device_and_inline_bars():
    text = ('ruleset t\nexample "e" {\n    device "seed/lsi-sas3008-1000-0097.yaml"\n    bar0 mem32 4K\n'
            '    msix 1 table bar0 0x0 pba bar0 0x800\n    expect off safe\n}\n')
    assert problems(text) == [
        (2, "an example takes either 'device \"FILE\"' or inline 'id'/'revision'/'bar'/'msix' lines, not both")]


def test_inline_example_needs_msix():
    assert problems('ruleset t\nexample "e" {\n    bar0 mem32 4K\n    expect off safe\n}\n') == [
        (2, "an inline example needs an 'msix ENTRIES table barN OFFSET pba barN OFFSET' line")]


def test_second_expectation_and_platform():
    text = ('ruleset t\nexample "e" {\n    device "seed/lsi-sas3008-1000-0097.yaml"\n    platform 4K\n    platform 64K\n'
            '    expect bar1 safe\n    expect bar1 warn\n}\n')
    assert problems(text) == [(5, "one 'platform' line per example"), (7, "second expectation for bar1")]


def test_unknown_strategy_is_a_syntax_error():
    with pytest.raises(RuleErrors) as info:
        parse('ruleset t\nexample "e" {\n    device "seed/lsi-sas3008-1000-0097.yaml"\n    expect bar6 safe\n}\n', "t.rules")
    (e,) = info.value.errors
    assert "unexpected 'bar6'" in e.message and "a strategy" in e.message
    assert (e.location.line, e.location.column) == (4, 12)


def test_unknown_strategy_reaching_check():
    # The grammar already limits strategies; check() guards the AST built by other means.
    span = ast.Span("t.rules", 4, 5, 4, 20)
    f = ast.RuleFile("t.rules", (ast.Ruleset("t"), ast.Example(
        ast.Text("e"), (ast.ExampleDevice(ast.Text("seed/lsi-sas3008-1000-0097.yaml")), ast.Expect("bar9", "safe", span)))))
    (e,) = check(f, "t")
    assert e.message == "unknown strategy 'bar9'" and e.location.line == 4


def test_all_problems_of_a_file_in_one_run():
    text = ('ruleset wrong\n'                                   # 1 name
            'match module x\n'                                  # 2 no source
            'role regs = bar1\nrole regs = bar2\n'              # 4 duplicate role
            'role io = bar3\n'                                  # 5 reserved
            'rule a: require bar0 stays else warn "m"\n'        # 6 bar0 stays
            'rule b: require nope stays else warn "m"\n'        # 7 unknown role
            'rule b: require bar2 is io and bar2 is 64bit else warn "m"\n'  # 8 duplicate, never holds
            'example "e" {\n    device "seed/lsi-sas3008-1000-0097.yaml"\n}\n')           # 9 no expect
    found = problems(text)
    assert [line for line, _ in found] == [1, 2, 4, 5, 6, 7, 8, 8, 9]
    text_of = " | ".join(m for _, m in found)
    for piece in ("name them alike", "cite its driver source", "already defined at line 3",
                  "reserved word", "'bar0 stays' always holds", "unknown role 'nope'",
                  "rule 'b' already defined", "can never hold: bar2 is io/64bit", "expects nothing"):
        assert piece in text_of


# --- the library: files on disk, names, includes --------------------------------------------

def test_load_reports_every_error_of_every_file(tmp_path):
    write(tmp_path, "a.rules", 'ruleset a\nrule x: require foo stays else warn "m"\n')
    write(tmp_path, "b.rules", 'ruleset other\nrule x: require bar0 stays else warn "m"\n')
    write(tmp_path, "c.rules", 'ruleset c\nrule x: require bar0 @ else warn "m"\n')
    errors = load_errors(tmp_path)
    assert [(Path(e.location.path).name, e.location.line) for e in errors] == [
        ("a.rules", 2), ("b.rules", 1), ("b.rules", 2), ("c.rules", 2)]


def test_two_files_with_one_ruleset_name(tmp_path):
    write(tmp_path / "x", "same.rules", "ruleset same\n")
    write(tmp_path / "y", "same.rules", "ruleset same\n")
    (e,) = load_errors(tmp_path)
    assert e.message.startswith("rule set 'same' also defined in ")


def test_include_cycle_is_reported_at_the_include(tmp_path):
    write(tmp_path, "a.rules", 'ruleset a\n# a includes b\ninclude "b.rules"\n')
    write(tmp_path, "b.rules", 'ruleset b\ninclude "a.rules"\n')
    (e,) = load_errors(tmp_path)
    assert e.message in ("include cycle: a.rules -> b.rules -> a.rules",
                         "include cycle: b.rules -> a.rules -> b.rules")
    owner = "a.rules" if e.message.startswith("include cycle: a") else "b.rules"
    assert Path(e.location.path).name == owner
    assert (e.location.line, e.location.column) == ((3, 1) if owner == "a.rules" else (2, 1))


def test_self_include_is_a_cycle(tmp_path):
    write(tmp_path, "a.rules", 'ruleset a\ninclude "./a.rules"\n')
    (e,) = load_errors(tmp_path)
    assert e.message == "include cycle: a.rules -> a.rules" and e.location.line == 2


def test_longer_include_cycle(tmp_path):
    write(tmp_path, "a.rules", 'ruleset a\ninclude "sub/b.rules"\n')
    write(tmp_path / "sub", "b.rules", 'ruleset b\ninclude "c.rules"\n')
    write(tmp_path / "sub", "c.rules", 'ruleset c\ninclude "../a.rules"\n')
    (e,) = load_errors(tmp_path)
    assert e.message.startswith("include cycle: ") and e.message.count("->") == 3


def test_include_outside_the_rule_roots(tmp_path):
    write(tmp_path / "outside", "x.rules", "ruleset x\n")
    write(tmp_path / "rules", "a.rules", 'ruleset a\n\ninclude "../outside/x.rules"\n')
    (e,) = load_errors(tmp_path / "rules")
    assert e.message.startswith("include '../outside/x.rules' leaves the rule roots")
    assert str((tmp_path / "rules").resolve()) in e.message
    assert (Path(e.location.path).name, e.location.line, e.location.column) == ("a.rules", 3, 1)


def test_include_of_a_missing_file(tmp_path):
    write(tmp_path, "a.rules", 'ruleset a\ninclude "missing.rules"\n')
    (e,) = load_errors(tmp_path)
    assert e.message == "include 'missing.rules': no such rule file among those loaded"
    assert e.location.line == 2


def test_include_errors_come_together(tmp_path):
    write(tmp_path / "outside", "x.rules", "ruleset x\n")
    write(tmp_path / "r", "a.rules", 'ruleset a\ninclude "b.rules"\ninclude "gone.rules"\n')
    write(tmp_path / "r", "b.rules", 'ruleset b\ninclude "a.rules"\ninclude "../outside/x.rules"\n')
    errors = load_errors(tmp_path / "r")
    kinds = sorted(e.message.split(":")[0].split(" '")[0] for e in errors)
    assert kinds == ["include", "include", "include cycle"]


def test_an_included_file_lends_its_rules(tmp_path):
    write(tmp_path, "base.rules", 'ruleset base\nrole regs = first memory bar\n'
                                  'rule r: require regs stays else warn "m"\n')
    write(tmp_path, "drv.rules", 'ruleset drv\ninclude "base.rules"\nrole regs = bar2\n'
                                 'rule r: require regs unchanged else forbid "n"\n')
    lib = library.load([tmp_path], use_cache=False)
    parts = lib.rulesets["drv"].parts
    assert [p.name for p in parts] == ["drv", "base"]
    assert [type(p.roles["regs"]).__name__ for p in parts] == ["Fixed", "Ordinal"]  # own scopes


def test_include_cycle_is_reported_with_errors_of_other_files(tmp_path):
    write(tmp_path, "a.rules", 'ruleset a\nrule x: require foo stays else warn "m"\n')
    write(tmp_path, "b.rules", 'ruleset b\ninclude "b.rules"\n')
    errors = load_errors(tmp_path)
    assert any(e.message.startswith("include cycle") for e in errors)


@pytest.mark.parametrize("items", [
    "bar0 mem32 64K\n    msix 0 table bar0 0x0 pba bar0 0x800",
    "bar0 mem32 64K\n    msix 1 table bar0 0x4 pba bar0 0x800",
    "bar5 mem64 64K\n    msix 1 table bar5 0x0 pba bar5 0x800",
    "bar0 io 256 prefetchable\n    bar1 mem32 64K\n    msix 1 table bar1 0x0 pba bar1 0x800",
    "bar0 mem64 64K\n    bar1 mem32 64K\n    msix 1 table bar0 0x0 pba bar0 0x800",
])
def test_impossible_inline_example_is_a_check_error(tmp_path, capsys, items):
    write(tmp_path, "bad.rules", f'ruleset bad\nexample "impossible" {{\n    {items}\n    expect off safe\n}}\n')
    code = main(["test", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "internal error" not in err and "bad.rules:" in err


# --- the CLI --------------------------------------------------------------------------------

BAD = ('ruleset bad\n'
       'role regs = first memory bar\n'
       'rule a:\n'
       '    require regs stays and\tdoorbell stays\n'
       '    else forbid "m"\n'
       'rule b:\n'
       '    require bar0 is io and bar0 is memory\n'
       '    else warn "n"\n')


def test_cli_check_prints_located_errors_with_source_and_caret(tmp_path, capsys):
    path = write(tmp_path, "bad.rules", BAD)
    code = main(["check", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == f"{path}:4:28: error: unknown role 'doorbell' (roles: regs; or use bar0..bar5)"
    assert lines[1] == "    " + "    require regs stays and\tdoorbell stays".expandtabs(4)
    assert lines[2] == "    " + " " * len("    require regs stays and\t".expandtabs(4)) + "^" * len("doorbell")
    assert lines[3] == f"{path}:7:13: error: condition can never hold: bar0 is io/memory"
    assert lines[4] == "        require bar0 is io and bar0 is memory"
    assert lines[5] == "    " + " " * 12 + "^" * len("bar0 is io and bar0 is memory")
    assert lines[-1] == "2 errors"
    assert "Traceback" not in err


def test_cli_check_syntax_error(tmp_path, capsys):
    path = write(tmp_path, "bad.rules", 'ruleset bad\nrule a\n    require bar0 unchanged\n    else warn "m"\n')
    code = main(["check", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [f"{path}:3:5: error: unexpected 'require'; expected ':'",
                                "        require bar0 unchanged",
                                "        ^^^^^^^"]  # the whole token


def test_cli_check_process_exit_code_and_no_traceback(tmp_path):
    path = write(tmp_path, "bad.rules", BAD)
    env = {**os.environ, "BARSAFE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: error: ", proc.stderr)
    assert "Traceback" not in proc.stderr


def test_cli_check_missing_ruleset_has_no_line(tmp_path, capsys):
    path = write(tmp_path, "t.rules", 'describe "x"\n')
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: error: missing 'ruleset NAME' (the name of the rule set, the file name without .rules)"]


def test_cli_check_shipped_rules_ok(capsys):
    assert main(["check", *map(str, SHIPPED)]) == 0
    assert capsys.readouterr().out == "ok: 3 rule files, 9 rules, 5 examples\n"


def test_cli_check_fixture_directory(capsys):
    assert main(["check", str(DATA / "ok")]) == 0
    assert main(["check", str(DATA / "bad")]) == 2
    err = capsys.readouterr().err
    assert "broken.rules:4:28: error: unknown role 'doorbell' (roles: regs; or use bar0..bar5)" in err
