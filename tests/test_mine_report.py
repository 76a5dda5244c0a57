"""which, explain and audit say when a verdict rests on a mined (unreviewed) rule set."""

import json
from pathlib import Path

from engine.cli import main

SEED = str(Path(__file__).resolve().parents[1] / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml")
# The seed card's layout under an ID no reviewed rule set claims (a reviewed set would
# supersede the mined draft).
DEVICE = """barsafe: 1
id: 1234:abcd
class: '0107'
bars:
  - {index: 0, kind: io, size: 0, assigned: false}
  - {index: 1, kind: mem64, prefetchable: false, size: 64K, assigned: true}
  - {index: 3, kind: mem64, prefetchable: false, size: 256K, assigned: true}
msix:
  entries: 96
  table: {bar: 1, offset: '0xe000'}
  pba: {bar: 1, offset: '0xf000'}
"""
MINED = '''ruleset minedsas
status mined
describe "mined by barsafe mine (test)"
source "drivers/scsi/mpt3sas/mpt3sas_base.c:3661" function mpt3sas_base_map_resources kernel "6.12.117"

match id 1234:abcd

role first_mem = first memory bar

rule first-mem-stays:
    require first_mem stays
    else warn "mined: mpt3sas_base_map_resources (mpt3sas_base.c:3661) takes the first memory BAR"
'''


def _rules(tmp_path, text=MINED):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "minedsas.rules").write_text(text)
    (tmp_path / "dev.yaml").write_text(DEVICE)
    return str(d)


def test_which_names_mined_rule_sets(tmp_path, capsys):
    rules = _rules(tmp_path)
    main(["which", str(tmp_path / "dev.yaml"), "--page-size", "64K", "--no-io-space", "--rules", rules])
    out = capsys.readouterr().out
    assert "minedsas: matches id 1234:abcd" in out and "mined rule set" in out and "at most warn" in out
    main(["which", str(tmp_path / "dev.yaml"), "--page-size", "64K", "--no-io-space", "--rules", rules, "--json"])
    data = json.loads(capsys.readouterr().out)
    answer = data[0] if isinstance(data, list) else data
    assert answer["mined_rules"] == ["minedsas"]


def test_a_mined_forbid_is_a_rule_error(tmp_path, capsys):
    rules = _rules(tmp_path, MINED.replace("else warn", "else forbid"))
    assert main(["which", str(tmp_path / "dev.yaml"), "--page-size", "64K", "--rules", rules]) == 2
    assert "at most warn" in capsys.readouterr().err


def test_explain_and_audit_say_mined(tmp_path, capsys):
    rules = _rules(tmp_path)
    main(["explain", rules + "/minedsas.rules", str(tmp_path / "dev.yaml"), "--target", "bar0", "--page-size", "64K", "--no-io-space"])
    assert "minedsas: mined rule set" in capsys.readouterr().out
    main(["audit", str(tmp_path / "dev.yaml"), "--page-size", "64K", "--no-io-space", "--rules", rules])
    out = capsys.readouterr().out
    assert "1 devices were judged by mined rule sets" in out
    main(["audit", str(tmp_path / "dev.yaml"), "--page-size", "64K", "--no-io-space", "--rules", rules, "--format", "json"])
    assert json.loads(capsys.readouterr().out)["mined_rule_devices"] == 1


def test_a_reviewed_rule_set_supersedes_a_mined_one(tmp_path, capsys):
    rules = _rules(tmp_path, MINED.replace("1234:abcd", "1000:0097"))
    main(["which", SEED, "--page-size", "64K", "--no-io-space", "--rules", rules, "--json"])
    data = json.loads(capsys.readouterr().out)
    answer = data[0] if isinstance(data, list) else data
    assert answer["rules"] == ["mpt3sas"] and answer["mined_rules"] == []
