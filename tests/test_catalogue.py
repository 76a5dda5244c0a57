"""Every finding of the shared catalogue (../shared/research/driver-assumptions.md, 130 places
in Linux 6.12.117 where a driver depends on BAR layout) is accounted for in
corpus/catalogue/*.tsv: encoded by a rule file that cites the finding's source file, dismissed
with the reason, or left open with the reason (issue 10)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT.parent / "shared" / "research" / "driver-assumptions.md"
ACCOUNTS = ROOT / "corpus" / "catalogue"
STATUSES = {"encoded", "dismissed", "open"}
ROW = re.compile(r"^\| (\d+) \| ([^|]+?) \| (\S+?):(\d+)[^|]*\|", re.M)
WHERE = re.compile(r"^(rules/[\w.+-]+\.rules):(\d+)$")


def catalogue_rows() -> dict[int, tuple[str, str]]:
    """Row number -> (driver, source file) from the catalogue's table."""
    return {int(m[1]): (m[2], m[3]) for m in ROW.finditer(CATALOGUE.read_text())}


def accounts() -> list[dict[str, str]]:
    out = []
    for path in sorted(ACCOUNTS.glob("*.tsv")):
        with path.open(newline="") as f:
            for number, row in enumerate(csv.DictReader(f, delimiter="\t"), start=2):
                out.append({**row, "_at": f"{path.name}:{number}"})
    return out


def test_the_accounts_are_well_formed():
    seen: dict[str, str] = {}
    for a in accounts():
        at = a["_at"]
        assert set(a) == {"row", "driver", "status", "where", "reason", "_at"}, at
        assert a["row"].isdigit(), at
        assert a["row"] not in seen, f"{at}: row {a['row']} again (first at {seen.get(a['row'])})"
        seen[a["row"]] = at
        assert a["status"] in STATUSES, f"{at}: status {a['status']!r}"
        assert a["reason"].strip(), f"{at}: no reason"
        if a["status"] == "encoded" or a["where"] != "-":
            m = WHERE.match(a["where"])
            assert m, f"{at}: where {a['where']!r} is not rules/NAME.rules:LINE"
            lines = (ROOT / m[1]).read_text().splitlines()
            assert 0 < int(m[2]) <= len(lines), f"{at}: {a['where']} is past the file's end"
            assert lines[int(m[2]) - 1].strip(), f"{at}: {a['where']} is a blank line"


@pytest.mark.skipif(not CATALOGUE.is_file(), reason="../shared/research/driver-assumptions.md is absent")
def test_every_catalogue_row_is_accounted_for_once():
    rows = catalogue_rows()
    assert len(rows) == 130
    accounted = {int(a["row"]) for a in accounts()}
    assert sorted(set(rows) - accounted) == [], "catalogue rows with no account"
    assert sorted(accounted - set(rows)) == [], "accounts for rows the catalogue does not have"


@pytest.mark.skipif(not CATALOGUE.is_file(), reason="../shared/research/driver-assumptions.md is absent")
def test_an_encoded_finding_is_cited_by_its_rule_file():
    """The rule file named as encoding a finding cites the finding's source file (a `source`
    or a `registers ... cite`), so the claim can be checked against the tree."""
    rows = catalogue_rows()
    for a in accounts():
        if a["status"] != "encoded":
            continue
        _, source = rows[int(a["row"])]
        m = WHERE.match(a["where"])
        text = (ROOT / m[1]).read_text()
        assert f'"{source}:' in text, f"{a['_at']}: {a['where']} does not cite {source}"
        line = text.splitlines()[int(m[2]) - 1].strip()
        assert not line.startswith("#"), f"{a['_at']}: {a['where']} is a comment, not the statement encoding it"


@pytest.mark.skipif(not CATALOGUE.is_file(), reason="../shared/research/driver-assumptions.md is absent")
def test_a_dismissal_in_a_rule_file_is_a_comment_there():
    for a in accounts():
        if a["status"] != "dismissed" or a["where"] == "-":
            continue
        m = WHERE.match(a["where"])
        line = (ROOT / m[1]).read_text().splitlines()[int(m[2]) - 1]
        assert line.lstrip().startswith("#") and f"catalogue #{a['row']}" in line, \
            f"{a['_at']}: {a['where']} is not the '# catalogue #{a['row']} dismissed: ...' comment"
