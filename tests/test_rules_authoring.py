"""Rule authoring as the best linters do it: a misspelt keyword as the whole word with the
choices and a did-you-mean; a missing example device and an unused role from `check`;
`check --format json|sarif` (one list of diagnostics, three renderings) and `fmt --diff`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engine import __version__
from engine.cli import main
from engine.errors import Location, RuleError, RuleErrors
from engine.report import diagnostics
from engine.rules import check as check_mod
from engine.rules.parse import _chunks, parse, parser, terminal_words

ROOT = Path(__file__).resolve().parents[1]
SEED = "seed/lsi-sas3008-1000-0097.yaml"
HEAD = ('ruleset t\nmatch driver x\nsource "drivers/x/x.c:10" function x_probe kernel "6.12"\n')


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BARSAFE_CACHE_DIR", str(tmp_path / "barsafe-cache"))
    monkeypatch.delenv("BARSAFE_CACHE", raising=False)


def errors_of(text: str, path: str = "t.rules") -> list[RuleError]:
    with pytest.raises(RuleErrors) as info:
        parse(text, path)
    return info.value.errors


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


# --- misspelt keywords and verdicts --------------------------------------------------------

RULE = 'rule r: {} else warn "m"'
EX = 'example "e" {{\n    {}\n}}'

# (statement with the typo, the typo, the suggestion): every place a keyword or a verdict
# stands in the grammar, with a typo people make there (swapped, missing, doubled or wrong
# letters; a word the lexer cuts, like forbid+den; a word it reads as a role name, like nto)
TYPOS = [
    # statements: the file's first, and one after another
    ("rulset t", "rulset", "ruleset"),
    ("stauts reviewed", "stauts", "status"),
    ('descibe "d"', "descibe", "describe"),
    ('soruce "x.c:1" function f kernel "6.12"', "soruce", "source"),
    ('inlcude "other.rules"', "inlcude", "include"),
    ("mtach driver x", "mtach", "match"),
    ('regsiters bar0 0x2800..0x28ff "csr"', "regsiters", "registers"),
    ("roel regs = bar0", "roel", "role"),
    ('rul r: require bar0 unchanged else warn "m"', "rul", "rule"),
    ('exmaple "e" {\n    expect off safe\n}', "exmaple", "example"),
    # status, source, registers
    ("status mnied", "mnied", "mined"),
    ("status reviwed", "reviwed", "reviewed"),
    ('source "x.c:1" fucntion f kernel "6.12"', "fucntion", "function"),
    ('source "x.c:1" function f kernl "6.12"', "kernl", "kernel"),
    ('registers bar0 0x2800..0x28ff "csr" ctie "x.h:1"', "ctie", "cite"),
    # match
    ("match drvier x", "drvier", "driver"),
    ("match modlue x", "modlue", "module"),
    ("match ids 1000:0097", "ids", "id"),
    ("match clas 0x0107", "clas", "class"),
    ("match id 1000:0097 subsytem 1000:3090", "subsytem", "subsystem"),
    ("match class 0x0107 maks 0xff00", "maks", "mask"),
    # role selectors
    ("role r = frist memory bar", "frist", "first"),
    ("role r = secnd io bar", "secnd", "second"),
    ("role r = thrid memory bar", "thrid", "third"),
    ("role r = lsat memory bar", "lsat", "last"),
    ("role r = first memroy bar", "memroy", "memory"),
    ("role r = first prefetchble bar", "prefetchble", "prefetchable"),
    ("role r = first 64bti bar", "64bti", "64bit"),
    ("role r = first memory bra", "bra", "bar"),
    ("role r = first memory bar inn bar0..bar3", "inn", "in"),
    ("role r = first memory bar wiht size >= 4K", "wiht", "with"),
    ("role r = first memory bar with szie >= 4K", "szie", "size"),
    ("role r = largset bar", "largset", "largest"),
    ("role r = msi bar", "msi", "msix"),
    # a rule's frame: require, when, else, severity, and/or/not, native
    ('rule r: requier bar0 unchanged else warn "m"', "requier", "require"),
    ('rule r: wehn bar0 is io require bar0 unchanged else warn "m"', "wehn", "when"),
    ('rule r: require bar0 unchanged elze warn "m"', "elze", "else"),
    ('rule r: require bar0 unchanged else wran "m"', "wran", "warn"),
    ('rule r: require bar0 unchanged else frobid "m"', "frobid", "forbid"),
    ('rule r: require bar0 unchanged else forbidd "m"', "forbidd", "forbid"),  # forbid + d
    (RULE.format("require bar0 unchanged adn bar1 unchanged"), "adn", "and"),
    (RULE.format("require bar0 unchanged orr bar1 unchanged"), "orr", "or"),  # or + r (a name)
    (RULE.format("require nto bar0 unchanged"), "nto", "not"),  # read as a role name
    (RULE.format("require nativ bar0 unchanged"), "nativ", "native"),
    # conditions
    (RULE.format("require regs stay"), "stay", "stays"),
    (RULE.format("require bar0 iss io"), "iss", "is"),
    (RULE.format("require bar0 is memroy"), "memroy", "memory"),
    (RULE.format("require bar0 is implmented"), "implmented", "implemented"),
    (RULE.format("require bar0 is prefetchabel"), "prefetchabel", "prefetchable"),
    (RULE.format("require bar0 is 64bits"), "64bits", "64bit"),
    (RULE.format("require bar0 is 32bti"), "32bti", "32bit"),
    (RULE.format("require bar0 szie >= 4K"), "szie", "size"),
    (RULE.format("require bar0 unchnaged"), "unchnaged", "unchanged"),
    (RULE.format("require bar0 size unchnaged"), "unchnaged", "unchanged"),
    (RULE.format("require bar0 edn unchanged"), "edn", "end"),
    (RULE.format("require bar4 aded"), "aded", "added"),
    (RULE.format("require no bra added"), "bra", "bar"),
    (RULE.format("require no bar aded"), "aded", "added"),
    (RULE.format("require no bar extnded"), "extnded", "extended"),
    (RULE.format("require no bar added blow bar4"), "blow", "below"),
    (RULE.format("require bar cuont unchanged"), "cuont", "count"),
    (RULE.format("require devcie id 1000:0097"), "devcie", "device"),
    (RULE.format("require device id unknwn"), "unknwn", "unknown"),
    (RULE.format("require revison >= 0x01"), "revison", "revision"),  # fails at '>='
    (RULE.format("require revision unknwon"), "unknwon", "unknown"),
    # example lines
    (EX.format("expct off safe"), "expct", "expect"),
    (EX.format('devcie "x.yaml"'), "devcie", "device"),
    (EX.format("ids 1000:0097"), "ids", "id"),
    (EX.format("id 1000:0097 subsytem 1000:3090"), "subsytem", "subsystem"),
    (EX.format("revison 0x02"), "revison", "revision"),
    (EX.format("bra 0 mem32 4K"), "bra", "bar"),
    (EX.format("bar 0 mme32 4K"), "mme32", "mem32"),
    (EX.format("bar 0 mem64 4K prefetchble"), "prefetchble", "prefetchable"),
    (EX.format("msxi 8 table bar0 0x2000 pba bar0 0x3000"), "msxi", "msix"),
    (EX.format("msix 8 tabel bar0 0x2000 pba bar0 0x3000"), "tabel", "table"),
    (EX.format("msix 8 table bar0 0x2000 pab bar0 0x3000"), "pab", "pba"),
    (EX.format("platfrom 4K"), "platfrom", "platform"),
    (EX.format("platform 4K no-io-spaec"), "no-io-spaec", "no-io-space"),
    # strategies and verdicts
    (EX.format("expect qemu-rcf safe"), "qemu-rcf", "qemu-rfc"),
    (EX.format("expect revrese safe"), "revrese", "reverse"),
    (EX.format("expect extend-onyl safe"), "extend-onyl", "extend-only"),
    (EX.format("expect cloud-hypervsior safe"), "cloud-hypervsior", "cloud-hypervisor"),
    (EX.format("expect pve-tols safe"), "pve-tols", "pve-tools"),
    (EX.format("expect off forbidden"), "forbidden", "forbid"),  # forbid + den
    (EX.format("expect off refusd"), "refusd", "refused"),
    (EX.format("expect off saef"), "saef", "safe"),
    (EX.format("expect off wanr"), "wanr", "warn"),
]


@pytest.mark.parametrize("statement, typo, suggestion", TYPOS,
                         ids=[f"{t}->{s}" for _, t, s in TYPOS])
def test_a_misspelt_keyword_is_the_whole_word_with_a_did_you_mean(statement, typo, suggestion):
    text = statement + "\n" if statement.startswith("rulset") else "ruleset t\n" + statement + "\n"
    (error,) = errors_of(text)
    assert error.hint == f"did you mean {suggestion!r}?"
    assert error.message.startswith(f"unexpected {typo!r}; expected ")
    assert suggestion in error.message  # among the choices listed
    offset = re.search(rf"(?<![\w-]){re.escape(typo)}(?![\w-])", text).start()
    line = text.count("\n", 0, offset) + 1
    column = offset - text.rfind("\n", 0, offset)
    assert (error.location.line, error.location.column) == (line, column)
    assert error.end == (line, column + len(typo))  # the caret spans the whole word
    assert error.code == "syntax" and error.severity == "error"


def test_the_verdict_cut_by_the_lexer_is_one_word_with_the_verdicts_listed():
    (error,) = errors_of('ruleset t\nexample "e" {\n    expect bar0 forbidden\n}\n')
    assert error.message == "unexpected 'forbidden'; expected safe, warn, forbid or refused"
    assert str(error) == ("t.rules:3:17: unexpected 'forbidden'; expected safe, warn, forbid or"
                          " refused; did you mean 'forbid'?")


@pytest.mark.parametrize("kind", ["swap", "drop", "double", "wrong-last", "plural"])
def test_every_keyword_of_the_shipped_rules_misspelt_in_place(kind):
    """Each keyword in each place the shipped rule files use it (a keyword after each kind of
    token, once), misspelt: the error is at that word and suggests it back."""
    typo = {"swap": lambda w: w[0] + w[2] + w[1] + w[3:], "drop": lambda w: w[:2] + w[3:],
            "double": lambda w: w[:3] + w[2:], "wrong-last": lambda w: w[:-1] + ("q" if w[-1] != "q" else "z"),
            "plural": lambda w: w + "s"}[kind]
    seen, tried = set(), 0
    for path in sorted((ROOT / "rules").glob("*.rules")):
        for _, chunk in _chunks(path.read_text()):
            try:
                tokens = list(parser().parse_interactive(chunk).iter_parse())
            except Exception:  # a comment-only chunk
                continue
            before = None
            for token in tokens:
                word, context, before = str(token), (token.type, before), token.type
                if len(word) < 4 or word not in terminal_words(token.type) or context in seen:
                    continue
                seen.add(context)
                wrong = typo(word)
                if wrong == word:
                    continue
                tried += 1
                bad = chunk[:token.start_pos] + wrong + chunk[token.end_pos:]
                (error,) = errors_of(bad)
                assert error.hint == f"did you mean {word!r}?", (path.name, bad, str(error))
                assert error.message.startswith(f"unexpected {wrong!r}"), str(error)
    assert tried > 60  # the shipped rules use keywords in many places


def test_a_word_far_from_every_choice_lists_the_choices_and_suggests_nothing():
    (error,) = errors_of('ruleset t\nexample "e" {\n    expect off banana\n}\n')
    assert error.message == "unexpected 'banana'; expected safe, warn, forbid or refused"
    assert error.hint is None and error.end == (3, 22)


def test_bar_numbers_are_not_spelling():
    (error,) = errors_of('ruleset t\nexample "e" {\n    expect bar6 safe\n}\n')
    assert error.hint is None  # not "did you mean 'bar0'?"
    assert "unexpected 'bar6'" in error.message and "a strategy" in error.message


def test_a_huge_misspelt_word_is_quoted_short():
    (error,) = errors_of("ruleset t\nstatus " + "x" * 100_000 + "\n")
    assert len(error.message) < 200 and "(100000 characters)" in error.message


def test_cli_renders_the_whole_word_and_the_suggestion(tmp_path, capsys):
    path = write(tmp_path, "t.rules", 'ruleset t\nexample "e" {\n    expect bar0 forbidden\n}\n')
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:3:17: error: unexpected 'forbidden'; expected safe, warn, forbid or refused;"
        " did you mean 'forbid'?",
        "        expect bar0 forbidden",
        "                    ^^^^^^^^^"]


# --- check: missing example devices, unused roles ------------------------------------------

def test_an_unused_role_is_a_warning_at_the_role():
    text = HEAD + ('role regs = first memory bar\nrole spare = last memory bar\n'
                   'rule a: require regs stays else warn "m"\n')
    f = parse(text, "t.rules")
    assert check_mod.check(f, "t") == []  # a warning is no error
    (warning,) = check_mod.warnings(f)
    assert warning.message == "role 'spare' is never used: no rule refers to it"
    assert (warning.location.line, warning.location.column, warning.end) == (5, 1, (5, 29))
    assert (warning.severity, warning.code) == ("warning", "unused-role")
    assert warning.hint == "use it in a rule, or remove it"


def test_a_misspelt_role_name_gets_a_did_you_mean():
    text = HEAD + 'role doorbell = bar2\nrule a: require native doorbel size >= 4K else warn "m"\n'
    (error,) = check_mod.check(parse(text, "t.rules"), "t")
    assert error.message == "unknown role 'doorbel' (roles: doorbell; or use bar0..bar5)"
    assert error.hint == "did you mean 'doorbell'?"
    assert (error.location.line, error.location.column, error.end) == (5, 17, (5, 31))


@pytest.mark.parametrize("use", [
    "when regs is memory require bar0 unchanged",  # in a guard
    "require native regs size >= 4K",  # native
    "require no bar added below regs",  # below
    "require not (bar0 unchanged or regs stays)",  # nested
])
def test_a_role_used_anywhere_in_a_rule_is_used(use):
    text = HEAD + f'role regs = first memory bar\nrule a: {use} else warn "m"\n'
    assert check_mod.warnings(parse(text, "t.rules")) == []


def test_check_prints_warnings_and_exits_0_unless_strict(tmp_path, capsys):
    path = write(tmp_path, "t.rules", HEAD + "role spare = bar2\n")
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == "ok: 1 rule files, 0 rules, 0 examples, 1 warning\n"
    assert err.splitlines() == [
        f"{path}:4:1: warning: role 'spare' is never used: no rule refers to it;"
        " use it in a rule, or remove it",
        "    role spare = bar2",
        "    ^^^^^^^^^^^^^^^^^"]
    assert main(["check", "--strict", str(path)]) == 1


def test_errors_and_warnings_are_reported_together(tmp_path, capsys):
    write(tmp_path, "a.rules", HEAD.replace("ruleset t", "ruleset a") + "role spare = bar2\n")
    write(tmp_path, "b.rules", 'ruleset b\nrole r = bar1\nrule x: requier r stays else warn "m"\n')
    assert main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "1 error, 1 warning"  # b does not parse: no warnings of b
    assert "did you mean 'require'?" in err and "role 'spare'" in err


# --- check --format json and sarif ---------------------------------------------------------

def _problem_tree(tmp_path: Path) -> Path:
    write(tmp_path, "a.rules", HEAD.replace("ruleset t", "ruleset a") + 'role spare = bar2\n'
          'example "e" {\n    device "seed/lsi-sas3008-1000-0079.yaml"\n    expect off safe\n}\n')
    write(tmp_path, "b.rules", 'ruleset b\nexample "e" {\n    expect bar0 forbidden\n}\n')
    return tmp_path


def test_check_json_is_a_list_of_diagnostics(tmp_path, capsys):
    root = _problem_tree(tmp_path)
    assert main(["check", "--format", "json", str(root)]) == 2
    out, err = capsys.readouterr()
    assert err == ""
    found = json.loads(out)
    a, b = str(root / "a.rules"), str(root / "b.rules")
    assert found == [
        {"path": a, "line": 4, "column": 1, "end": {"line": 4, "column": 18},
         "severity": "warning", "code": "unused-role",
         "message": "role 'spare' is never used: no rule refers to it",
         "hint": "use it in a rule, or remove it"},
        {"path": a, "line": 6, "column": 12, "end": {"line": 6, "column": 45},
         "severity": "error", "code": "example-device",
         "message": "example device 'seed/lsi-sas3008-1000-0079.yaml': no such file next to the"
                    " rule file or in corpus/devices",
         "hint": "did you mean 'seed/lsi-sas3008-1000-0097.yaml'?"},
        {"path": b, "line": 3, "column": 17, "end": {"line": 3, "column": 26},
         "severity": "error", "code": "syntax",
         "message": "unexpected 'forbidden'; expected safe, warn, forbid or refused",
         "hint": "did you mean 'forbid'?"},
    ]


def test_check_json_of_clean_rules_is_an_empty_list(capsys):
    assert main(["check", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_json_messages_are_escaped():
    error = RuleError("unexpected '\x1b[31m'", Location("x.rules", 1, 2), hint="did you \u202emean")
    (item,) = [diagnostics.as_json(d) for d in diagnostics.diagnostics_of([error])]
    assert item["message"] == "unexpected '\\x1b[31m'" and item["hint"] == "did you \\u202emean"
    assert item["end"] is None and item["code"] == "check"


def _sarif(tmp_path, capsys, monkeypatch) -> dict:
    root = _problem_tree(tmp_path)
    monkeypatch.chdir(root)
    assert main(["check", "--format", "sarif", "."]) == 2
    out, err = capsys.readouterr()
    assert err == ""
    return json.loads(out)


def test_check_sarif_results(tmp_path, capsys, monkeypatch):
    log = _sarif(tmp_path, capsys, monkeypatch)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("barsafe", __version__)
    ids = [r["id"] for r in driver["rules"]]
    assert set(ids) >= {"syntax", "check", "example-device", "unused-role"}
    results = run["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [
        ("unused-role", "warning"), ("example-device", "error"), ("syntax", "error")]
    for r in results:
        assert ids[r["ruleIndex"]] == r["ruleId"]
    syntax = results[2]
    assert syntax["message"]["text"] == ("unexpected 'forbidden'; expected safe, warn, forbid or"
                                         " refused; did you mean 'forbid'?")
    (loc,) = syntax["locations"]
    assert loc["physicalLocation"] == {
        "artifactLocation": {"uri": "b.rules", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 3, "startColumn": 17, "endLine": 3, "endColumn": 26}}
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"
    assert run["columnKind"] == "unicodeCodePoints"


def test_sarif_names_files_outside_the_base_by_absolute_uri(tmp_path):
    d = diagnostics.diagnostics_of([RuleError("m", Location(str(tmp_path / "x y.rules"), 2, 3))])
    log = diagnostics.sarif(d, "1", base=tmp_path / "elsewhere")
    (result,) = log["runs"][0]["results"]
    uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == (tmp_path / "x y.rules").as_uri() and "%20" in uri
    d = diagnostics.diagnostics_of([RuleError("m", Location(str(tmp_path / "x y.rules"), 2, 3))])
    inside = diagnostics.sarif(d, "1", base=tmp_path)["runs"][0]["results"][0]
    assert inside["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "x%20y.rules"


# What SARIF 2.1.0 (OASIS Standard, errata 01) requires of the parts barsafe writes, written
# down from the specification's own schema (sections 3.13 sarifLog, 3.14 run, 3.18 tool,
# 3.19 toolComponent, 3.27 result, 3.11 message, 3.28 location, 3.29 physicalLocation,
# 3.4 artifactLocation, 3.30 region, 3.49 reportingDescriptor).  It always runs; the test
# after it validates against the official schema file when one is at hand.
_REGION = {"type": "object", "properties": {
    "startLine": {"type": "integer", "minimum": 1}, "startColumn": {"type": "integer", "minimum": 1},
    "endLine": {"type": "integer", "minimum": 1}, "endColumn": {"type": "integer", "minimum": 1}},
    "additionalProperties": False}
_SARIF_REQUIRED = {
    "type": "object", "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string"},
        "version": {"enum": ["2.1.0"]},
        "runs": {"type": "array", "items": {
            "type": "object", "required": ["tool"],
            "properties": {
                "tool": {"type": "object", "required": ["driver"], "properties": {"driver": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                   "rules": {"type": "array", "items": {
                                       "type": "object", "required": ["id"],
                                       "properties": {"id": {"type": "string"},
                                                      "shortDescription": {
                                                          "type": "object", "required": ["text"]},
                                                      "defaultConfiguration": {"type": "object", "properties": {
                                                          "level": {"enum": ["none", "note", "warning", "error"]}}}}}}}}}},
                "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                "originalUriBaseIds": {"type": "object", "additionalProperties": {
                    "type": "object", "properties": {"uri": {"type": "string"}}}},
                "results": {"type": "array", "items": {
                    "type": "object", "required": ["message"],
                    "properties": {
                        "ruleId": {"type": "string"},
                        "ruleIndex": {"type": "integer", "minimum": -1},
                        "level": {"enum": ["none", "note", "warning", "error"]},
                        "message": {"type": "object", "anyOf": [{"required": ["text"]}, {"required": ["id"]}]},
                        "locations": {"type": "array", "items": {"type": "object", "properties": {
                            "physicalLocation": {
                                "type": "object",
                                "anyOf": [{"required": ["address"]}, {"required": ["artifactLocation"]}],
                                "properties": {
                                    "artifactLocation": {"type": "object", "properties": {
                                        "uri": {"type": "string"}, "uriBaseId": {"type": "string"}}},
                                    "region": _REGION}}}}}}}}}}}}}


def test_sarif_has_what_the_specification_requires(tmp_path, capsys, monkeypatch):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft7Validator(_SARIF_REQUIRED).validate(_sarif(tmp_path, capsys, monkeypatch))


def _official_schema() -> Path | None:
    """The official SARIF 2.1.0 schema (sarif-schema-2.1.0.json from the OASIS sarif-spec
    repository), when $BARSAFE_SARIF_SCHEMA names a copy: barsafe ships none."""
    name = os.environ.get("BARSAFE_SARIF_SCHEMA")
    return Path(name) if name and Path(name).is_file() else None


def test_sarif_validates_against_the_official_schema(tmp_path, capsys, monkeypatch):
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = _official_schema()
    if schema_path is None:
        pytest.skip("set BARSAFE_SARIF_SCHEMA to the official sarif-schema-2.1.0.json")
    schema = json.loads(schema_path.read_text())
    assert schema.get("id", schema.get("$id", "")).endswith("sarif-schema-2.1.0.json")
    validator = jsonschema.validators.validator_for(schema)
    validator(schema).validate(_sarif(tmp_path, capsys, monkeypatch))
    # a clean run too: no results is still a valid log
    clean = diagnostics.sarif([], __version__)
    validator(schema).validate(clean)


# --- fmt --diff -----------------------------------------------------------------------------

UNFORMATTED = 'ruleset t\nrule   a :   require bar0 unchanged else warn "m"\n'


def test_fmt_diff_prints_a_unified_diff_writes_nothing_and_exits_1(tmp_path, capsys):
    path = write(tmp_path, "t.rules", UNFORMATTED)
    before = path.stat().st_mtime_ns
    assert main(["fmt", "--diff", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == (f"--- {path}\n+++ {path}\n@@ -1,2 +1,5 @@\n ruleset t\n"
                   '-rule   a :   require bar0 unchanged else warn "m"\n'
                   "+\n+rule a:\n+    require bar0 unchanged\n+    else warn \"m\"\n")
    assert err == "1 rule file(s) would be reformatted\n"
    assert path.read_text() == UNFORMATTED and path.stat().st_mtime_ns == before


def test_fmt_diff_of_formatted_files_is_empty_and_exits_0(capsys):
    assert main(["fmt", "--diff"]) == 0  # the shipped rules are formatted
    assert capsys.readouterr().out == ""


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch(1)")
def test_fmt_diff_applies_with_patch_to_what_fmt_writes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "t.rules", UNFORMATTED + "# no newline at the end")
    assert main(["fmt", "--diff", "t.rules"]) == 1
    diff = capsys.readouterr().out
    subprocess.run(["patch", "-p0", "--quiet"], input=diff, text=True, check=True, cwd=tmp_path)
    patched = (tmp_path / "t.rules").read_text()
    assert main(["fmt", "t.rules"]) == 0  # fmt itself changes nothing more
    assert (tmp_path / "t.rules").read_text() == patched


def test_fmt_diff_escapes_control_characters(tmp_path, capsys):
    path = write(tmp_path, "t.rules", "ruleset t\nrole   r = bar0  # \x1b[31m red\n")
    assert main(["fmt", "--diff", str(path)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[31m red" in out
