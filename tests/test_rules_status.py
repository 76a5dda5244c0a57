"""`status mined` / `status reviewed`: what barsafe mine writes, and the warn cap on mined rules."""

import pytest

from engine.errors import RuleErrors
from engine.rules import ast
from engine.rules.check import check
from engine.rules.fmt import fmt
from engine.rules.parse import parse

MINED = '''ruleset st
status mined
describe "drafted"

rule a:
    require bar0 size unchanged
    else warn "m"
'''


def test_status_parses_formats_and_defaults_to_reviewed():
    f = parse(MINED, "st.rules")
    assert f.status == "mined"
    assert f.of(ast.Status)[0].value == "mined"
    assert fmt(f) == MINED
    assert parse(fmt(f), "st.rules") == f
    assert parse("ruleset st\n", "st.rules").status == "reviewed"
    assert parse("ruleset st\nstatus reviewed\n", "st.rules").status == "reviewed"
    assert check(f, "st") == []


def test_a_mined_rule_set_gives_at_most_warn():
    f = parse(MINED.replace("else warn", "else forbid"), "st.rules")
    errors = check(f, "st")
    assert len(errors) == 1 and "at most warn" in errors[0].message
    reviewed = parse(MINED.replace("status mined", "status reviewed").replace("else warn", "else forbid"),
                     "st.rules")
    assert check(reviewed, "st") == []


def test_one_status_per_file_and_only_known_words():
    f = parse("ruleset st\nstatus mined\nstatus reviewed\n", "st.rules")
    assert any("second 'status'" in e.message for e in check(f, "st"))
    with pytest.raises(RuleErrors) as caught:
        parse("ruleset st\nstatus draft\n", "st.rules")
    assert "expected mined or reviewed" in str(caught.value.errors[0])
