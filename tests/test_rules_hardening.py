"""Rule files from people we do not trust: no code from cache files, no reads outside the
corpus and rule roots, no internal errors from odd values, deep nesting or huge inputs."""

from __future__ import annotations

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


# --- example device files stay inside the corpus and the rule roots -----------------------

SEED = ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml"


def _example(device: str) -> str:
    return f'ruleset t\nexample "e" {{\n    device "{device}"\n    expect off safe\n}}\n'


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def _check_errors(path: Path, roots=None) -> list[tuple[int, int, str]]:
    errors = check(parse(path.read_text(), str(path)), "t", roots)
    return [(e.location.line, e.location.column, e.message) for e in errors]


@pytest.mark.parametrize("device, says", [
    ("../../../../../../../../etc/shadow", "leads outside the corpus and the rule directories"),
    ("../../../../../../../../no/such/file", "leads outside the corpus and the rule directories"),
    ("/etc/shadow", "an absolute path"),
    ("", "empty file name"),
    ("a\tb", "control character"),
    ("x" * 2000, "longer than 1024"),
])
def test_check_rejects_device_names_that_leave_the_roots(tmp_path, device, says):
    path = _write(tmp_path / "rules", "t.rules", _example(device))
    ((line, column, message),) = _check_errors(path, [tmp_path / "rules"])
    assert (line, column) == (3, 12)  # the string, not the example
    assert says in message
    assert len(message) < 400  # the name is quoted, cut short


def test_check_rejects_a_symlink_that_leads_outside(tmp_path):
    outside = _write(tmp_path / "outside", "dev.yaml", SEED.read_text())
    rules = tmp_path / "rules"
    _write(rules, "t.rules", _example("dev.yaml"))
    (rules / "dev.yaml").symlink_to(outside)
    ((line, column, message),) = _check_errors(rules / "t.rules", [rules])
    assert (line, column) == (3, 12) and "outside the corpus and the rule directories" in message
    # a dangling link out is refused too: its target may appear later
    (rules / "gone.yaml").symlink_to(tmp_path / "outside" / "nothing.yaml")
    _write(rules, "t.rules", _example("gone.yaml"))
    assert "outside" in _check_errors(rules / "t.rules", [rules])[0][2]


def test_cli_check_and_test_refuse_a_link_out(tmp_path, capsys):
    outside = _write(tmp_path / "outside", "dev.yaml", SEED.read_text())
    rules = tmp_path / "rules"
    _write(rules, "t.rules", _example("dev.yaml"))
    (rules / "dev.yaml").symlink_to(outside)
    assert main(["check", str(rules)]) == 2
    assert main(["test", str(rules)]) == 2
    assert "outside the corpus" in capsys.readouterr().err


def test_test_reads_nothing_outside_even_without_check(tmp_path, monkeypatch):
    """Cached rules skip check(): the lookup itself must refuse."""
    from engine import examples
    outside = _write(tmp_path / "outside", "dev.yaml", SEED.read_text())
    rules = tmp_path / "rules"
    path = _write(rules, "t.rules", _example("dev.yaml"))
    (rules / "dev.yaml").symlink_to(outside)
    read = []
    monkeypatch.setattr(examples, "load_device", lambda p: read.append(p) or [])
    (example,) = parse(path.read_text(), str(path)).examples
    with pytest.raises(examples.BarsafeError, match="outside the corpus"):
        examples.example_device(str(path), example, [rules])
    for name in ("../outside/dev.yaml", str(outside), "../../../../../../../../etc/passwd"):
        (example,) = parse(_example(name), str(path)).examples
        with pytest.raises(examples.BarsafeError):
            examples.example_device(str(path), example, [rules])
    assert read == []


def test_device_files_inside_the_roots_are_found(tmp_path):
    from engine import examples
    rules = tmp_path / "rules"
    _write(rules / "devs", "copy.yaml", SEED.read_text())
    (rules / "link.yaml").symlink_to(rules / "devs" / "copy.yaml")  # a link that stays inside
    for name in ("devs/copy.yaml", "link.yaml", "seed/lsi-sas3008-1000-0097.yaml",
                 "../devices/seed/lsi-sas3008-1000-0097.yaml"):  # relative to corpus/devices
        path = _write(rules, "t.rules", _example(name))
        assert _check_errors(path, [rules]) == []
        (example,) = parse(path.read_text(), str(path)).examples
        assert examples.example_device(str(path), example, [rules]).vendor == 0x1000


def test_a_missing_device_file_is_a_check_error_at_the_name(tmp_path, capsys):
    path = _write(tmp_path, "t.rules", _example("seed/lsi-sas3008-1000-0079.yaml"))
    (error,) = check(parse(path.read_text(), str(path)), "t")
    assert (error.location.line, error.location.column, error.end) == (3, 12, (3, 45))
    assert error.message == ("example device 'seed/lsi-sas3008-1000-0079.yaml': no such file next"
                             " to the rule file or in corpus/devices")
    assert error.hint == "did you mean 'seed/lsi-sas3008-1000-0097.yaml'?"
    assert (error.code, error.severity) == ("example-device", "error")
    assert main(["check", str(tmp_path)]) == 2
    assert main(["test", str(tmp_path)]) == 2  # test loads the rules through check
    err = capsys.readouterr().err
    assert f"{path}:3:12: error: example device" in err and "did you mean" in err
    assert " " * 15 + "^" * 33 in err  # under the whole string


def test_a_device_file_gone_after_check_is_still_a_test_error(tmp_path):
    """Cached rule sets skip check(): a file removed since is reported when the example runs."""
    from engine import examples
    path = _write(tmp_path, "t.rules", _example("nothing-here.yaml"))
    (example,) = parse(path.read_text(), str(path)).examples
    with pytest.raises(examples.BarsafeError, match="not found"):
        examples.example_device(str(path), example)


# --- example values the model would refuse are check errors ------------------------------

@pytest.mark.parametrize("page", ["3K", "0", "1", "2K", "12K", "3T"])
def test_platform_page_size_must_be_a_power_of_two_of_4k_or_more(tmp_path, capsys, page):
    text = ('ruleset t\nexample "e" {\n    bar0 mem32 64K\n    msix 8 table bar0 0x0 pba bar0 0x800\n'
            f'    platform {page}\n    expect off safe\n}}\n')
    path = _write(tmp_path, "t.rules", text)
    ((line, column, message),) = _check_errors(path)
    assert (line, column) == (5, 5) and "power of two of at least 4K" in message
    for command in ("check", "test"):
        assert main([command, str(tmp_path)]) == 2
    assert "internal error" not in capsys.readouterr().err


@pytest.mark.parametrize("page", ["4K", "16K", "64K", "1G"])
def test_platform_page_sizes_that_hosts_have(tmp_path, page):
    text = ('ruleset t\nexample "e" {\n    bar0 mem32 64K\n    msix 8 table bar0 0x0 pba bar0 0x800\n'
            f'    platform {page}\n    expect off safe\n}}\n')
    assert _check_errors(_write(tmp_path, "t.rules", text)) == []


# --- nesting: a limit the parser enforces, and every walk works at it ----------------------

from engine.rules.parse import MAX_NESTING  # noqa: E402

_ATOM = "bar0 unchanged"
NESTINGS = {  # name: condition with n levels
    "not": lambda n: "not " * n + _ATOM,
    "parentheses": lambda n: "(" * n + _ATOM + ")" * n,
    "and": lambda n: "(bar1 unchanged and " * n + _ATOM + ")" * n,
    "or": lambda n: "(bar1 is memory or " * n + _ATOM + ")" * n,
    "and-or": lambda n: "(bar1 unchanged or (bar2 size >= 4K and " * (n // 2) + _ATOM + "))" * (n // 2),
    "not-and": lambda n: "not (bar1 unchanged and " * (n // 2) + _ATOM + ")" * (n // 2),
}


def _nested_rule(cond: str) -> str:
    return f'ruleset t\nrule a:\n    when {cond}\n    require {cond}\n    else warn "m"\n'


@pytest.mark.parametrize("form", sorted(NESTINGS))
def test_one_level_past_the_limit_is_an_error_at_its_place(form):
    parse(_nested_rule(NESTINGS[form](MAX_NESTING)), "t.rules")
    with pytest.raises(RuleErrors) as info:
        parse(_nested_rule(NESTINGS[form](MAX_NESTING + 2)), "t.rules")
    assert {e.message for e in info.value.errors} == {
        f"condition nested deeper than {MAX_NESTING} levels (each 'not' and each pair of"
        " parentheses is a level)"}
    assert all(e.location.line in (3, 4) and e.location.column for e in info.value.errors)


def test_far_deeper_nesting_is_the_same_error_not_a_crash():
    with pytest.raises(RuleErrors, match="1 error"):
        parse(_nested_rule("(" * 5_000 + _ATOM + ")" * 5_000).replace("when", "# when"), "t.rules")


def _stack_depth() -> int:
    import sys
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


@pytest.mark.parametrize("form", sorted(NESTINGS))
def test_every_walk_works_at_the_limit_with_room_to_spare(form):
    """parse, check, compile, evaluate (with evidence), fmt, pickle and == at the deepest
    nesting allowed, with only 400 frames above the caller: a caller deep in its own stack
    (the CLI, a test runner, the rule cache's encoder) still has most of Python's 1000."""
    import pickle
    import sys

    from engine.model import Platform
    from engine.rules.compile import Candidate, compile_file
    from engine.rules.fmt import fmt
    from engine.score import native_layout
    from engine.sources import load

    text = _nested_rule(NESTINGS[form](MAX_NESTING))
    device = load(str(SEED))[0]
    platform = Platform(64 * 1024, io_space=False)
    layout = native_layout(device, platform)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 400)
    try:
        f = parse(text, "t.rules")
        assert check(f, "t") == []
        compiled = compile_file(f)
        trace: list[str] = []
        for v in compiled.evaluate(Candidate(layout, layout, platform, device=device), trace):
            assert v.evidence
        formatted = fmt(f)
        assert parse(formatted, "t.rules") == f and fmt(parse(formatted, "t.rules")) == formatted
        assert pickle.loads(pickle.dumps(f)) == f and hash(f) == hash(parse(text, "t.rules"))
    finally:
        sys.setrecursionlimit(old)


@pytest.mark.parametrize("form", sorted(NESTINGS))
def test_cli_at_and_past_the_limit(tmp_path, capsys, form):
    for depth, code in ((MAX_NESTING, 0), (MAX_NESTING + 2, 2)):
        text = (_nested_rule(NESTINGS[form](depth)) + 'example "e" {\n    bar0 mem32 64K\n'
                "    msix 8 table bar0 0x0 pba bar0 0x800\n    expect bar0 refused\n}\n")
        _write(tmp_path, "t.rules", text)
        assert main(["check", str(tmp_path)]) == code
        assert main(["fmt", "--check", str(tmp_path)]) in ((0, 1) if code == 0 else (2,))
        assert main(["test", str(tmp_path)]) in ((0, 1) if code == 0 else (2,))
    assert "internal error" not in capsys.readouterr().err


# --- big files: work linear in the file (operation counts, no timings) ---------------------

_HEAD = 'ruleset t\nsource "drivers/x/x.c:10" function x_probe kernel "6.12"\n'


def _pci(i: int) -> str:
    return f"{i >> 16 & 0xffff:04x}:{i & 0xffff:04x}"


SHAPES = {  # the file shapes that once hid quadratic work (benchmarks/bench_rule_scaling.py)
    "match": lambda n: "".join(f"match id {_pci(i)}\n" for i in range(n)),
    "rules": lambda n: "".join(f"rule r{i}:\n    require bar{i % 6} size >= {i + 1}\n"
                               f'    else warn "m{i}"\n' for i in range(n)),
    "comments": lambda n: "".join(f"# c{i}\nmatch id {_pci(i)}\n" for i in range(n)),
    "trailing": lambda n: "".join(f"match id {_pci(i)}  # t{i}\n" for i in range(n)),
}


def _lines_run(text: str) -> int:
    """Python lines executed in engine/rules by parse + check + fmt: a count of the work done
    there (loop iterations included), the same on every machine."""
    import sys
    from engine.rules.fmt import fmt
    here = str(Path(parse_module.__file__).parent)
    count = 0

    def local(frame, event, arg):
        nonlocal count
        count += 1
        return local

    sys.settrace(lambda frame, event, arg: local if frame.f_code.co_filename.startswith(here) else None)
    try:
        f = parse(text, "t.rules")
        assert check(f, "t") == []
        fmt(f)
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_four_times_the_file_is_four_times_the_work(shape):
    """check compared each rule with every earlier one and fmt rescanned every comment per
    statement: 4x the file cost 10-15x the work.  Linear is 4x."""
    small = _lines_run(_HEAD + SHAPES[shape](300))
    large = _lines_run(_HEAD + SHAPES[shape](1200))
    assert large / small < 4.5, (small, large)


def test_the_lexer_reads_each_character_once(monkeypatch):
    """Each statement was parsed behind start-1 newlines (to get line numbers right), which
    Lark's lexer rescanned: characters lexed grew with the square of the file's lines."""
    real = parse_module.parser()
    fed = []

    class Counting:
        def parse(self, text):
            fed.append(len(text))
            return real.parse(text)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(parse_module, "parser", lambda: Counting())
    text = _HEAD + SHAPES["match"](5000)
    f = parse(text, "t.rules")
    assert len(f.matches) == 5000 and f.matches[-1].span.line == 5002
    assert sum(fed) <= len(text)


def test_fifty_thousand_match_lines_parse_and_check():
    text = _HEAD + SHAPES["match"](50_000)
    f = parse(text, "t.rules")
    assert check(f, "t") == []
    assert len(f.matches) == 50_000
    assert (f.matches[-1].span.line, f.matches[-1].device) == (50_002, 49_999 & 0xffff)


# --- long strings, huge numbers, long names: bounded memory and bounded messages -----------

def _peak_bytes(work) -> int:
    import tracemalloc
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("body", ["x" * 2_000_000, '\\"' * 1_000_000, "\\\\x" * 700_000])
def test_a_long_string_costs_a_few_copies_of_itself(body):
    """The string pattern was "(a|b)*": Python's re kept state for every character, about
    190 bytes each (a 10 MB describe took 1.9 GB)."""
    text = f'ruleset t\ndescribe "{body}"\n'
    parsed = []
    peak = _peak_bytes(lambda: parsed.append(parse(text, "t.rules")))
    assert peak < 20 * len(text), peak
    ((line, column, message),) = [(e.location.line, e.location.column, e.message)
                                  for e in check(parsed[0], "t")]
    assert (line, column) == (2, 10)
    assert message.startswith("describe text is ") and message.endswith("characters long; at most 2000")


def test_texts_and_names_over_their_limits_are_errors_with_short_messages():
    long = "n" * 100_000
    text = (f'ruleset {long}\n{_HEAD.split(chr(10))[1]}\nmatch driver {long}\nrole {long} = bar0\n'
            f'rule {long}: require {long}x stays else warn "{long}"\n'
            f'example "{long}" {{\n    bar0 mem32 64K\n    msix 8 table bar0 0x0 pba bar0 0x800\n'
            '    expect off safe\n}\n')
    errors = check(parse(text, "t.rules"), "t")
    assert all(len(e.message) < 300 for e in errors), [e.message[:300] for e in errors]
    said = " | ".join(e.message for e in errors)
    assert said.count("characters long; at most 64") == 4  # ruleset, driver, role, rule names
    for what in ("message text", "example title text"):
        assert f"{what} is 100000 characters long" in said
    assert "unknown role 'nnnnnnnn" in said and "rule set 'nnnnn" in said


def test_an_unknown_role_lists_a_dozen_roles_at_most():
    roles = "".join(f"role r{i} = bar{i % 6}\n" for i in range(500))
    text = f'ruleset t\n{roles}rule a: require nope stays else warn "m"\n'
    (e,) = check(parse(text, "t.rules"), "t")
    assert e.message.startswith("unknown role 'nope' (roles: r0, r1, r10, r100,") and ", ..." in e.message


@pytest.mark.parametrize("statement, column", [
    ("match class 0x" + "f" * 5000, 13),
    ("rule a: require bar0 size >= " + "9" * 5000 + "K else warn \"m\"", 30),
    ("rule a: require bar0 size in {4K, " + "1" * 30 + "} else warn \"m\"", 35),
    ("role r = first memory bar with size > 99999999999999999999999", 39),
    ('example "e" {\n    msix ' + "9" * 5000 + " table bar0 0x0 pba bar0 0x800\n    expect off safe\n}", 10),
    ('example "e" {\n    msix 8 table bar0 0x' + "8" * 100 + " pba bar0 0x800\n    expect off safe\n}", 23),
    ('example "e" {\n    bar0 mem32 ' + "7" * 5000 + "T\n    expect off safe\n}", 16),
    ('example "e" {\n    platform ' + "4" * 5000 + "K\n    expect off safe\n}", 14),
])
def test_a_huge_number_is_an_error_at_the_number(statement, column):
    text = f"ruleset t\n{statement}\n"
    with pytest.raises(RuleErrors) as info:
        parse(text, "t.rules")
    (e,) = info.value.errors
    assert "is too large (at most 2^64)" in e.message and len(e.message) < 200
    assert (e.location.line, e.location.column) == (3 if statement.startswith("example") else 2, column)


def test_the_largest_numbers_allowed_still_parse():
    f = parse("ruleset t\nrule a: require bar0 size <= 16777216T else warn \"m\"\n"
              "match class 0x00000000000000000000000107\n", "t.rules")
    assert f.rules[0].cond.size == 1 << 64 and f.of(type(f.matches[0]))[0].value == 0x107


def test_an_unexpected_long_string_is_quoted_short():
    with pytest.raises(RuleErrors) as info:
        parse('ruleset t\nmatch id "' + "x" * 100_000 + '"\n', "t.rules")
    (e,) = info.value.errors
    assert e.message.startswith("unexpected '\"xxxx") and len(e.message) < 300
