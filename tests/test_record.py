"""barsafe's YAML records: they read back identical, and every mistake names its line."""

from pathlib import Path

import pytest

from engine.errors import InputError
from engine.sources import lspci, parse_text, record

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus" / "lspci"


def test_seed_record_round_trips():
    text = (ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml").read_text()
    (device,) = record.parse(text, "seed.yaml")
    assert record.parse(record.dump(device), "again.yaml") == [device]
    assert dict(device.provenance)["source"].startswith("seed thread")


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/corpus/lspci absent")
def test_every_device_of_the_shared_dumps_round_trips_through_yaml():
    for f in sorted(SHARED.glob("*.txt")):
        devices = lspci.parse(f.read_text(), str(f))
        assert record.parse(record.dump_all(devices), "all.yaml") == devices, f.name


def test_slot_and_ids_are_not_read_as_base60_numbers():
    (d,) = record.parse("slot: 0001:03:00.0\nid: 1000:0097\nbars: []\n")
    assert d.slot == "0001:03:00.0" and (d.vendor, d.device) == (0x1000, 0x97)


def test_a_list_of_records_and_multiple_documents_are_both_accepted():
    one = "- {slot: '00:01.0', bars: []}\n- {slot: '00:02.0', bars: []}\n"
    two = "slot: '00:01.0'\nbars: []\n---\nslot: '00:02.0'\nbars: []\n"
    assert [d.slot for d in record.parse(one)] == [d.slot for d in record.parse(two)] == ["00:01.0", "00:02.0"]


@pytest.mark.parametrize("text, line, col, words", [
    ("slot: x\nbarz: []\n", 2, 1, "unknown key 'barz'"),
    ("bars:\n  - {index: 1, kind: mem65}\n", 2, 22, "io, mem32 or mem64"),
    ("bars:\n  - {index: 9, kind: io}\n", 2, 5, "out of range"),
    ("id: 1000\nbars: []\n", 1, 5, "1000:0097"),
    ("bars: []\nmsix: {entries: 4, table: {bar: 0}, pba: {bar: 0, offset: 0}}\n", 2, 27, "'bar' and 'offset'"),
    ("bars: [\n", 2, 1, "invalid YAML"),
    ("barsafe: 2\nbars: []\n", 1, 10, "unsupported record format"),
    ("slot: x\n", 1, 1, "no 'bars'"),
    ("bars:\n  - {index: 0, kind: mem32, size: 4Q}\n", 2, 35, "not a size"),
])
def test_record_errors_name_line_and_column(text, line, col, words):
    with pytest.raises(InputError) as err:
        record.parse(text, "dev.yaml")
    loc = err.value.location
    assert (loc.path, loc.line, loc.column) == ("dev.yaml", line, col)
    assert words in err.value.message


def test_unknown_format_is_reported_at_its_first_line():
    with pytest.raises(InputError) as err:
        parse_text("\n# just a comment? no\n{}", "x.txt")
    assert err.value.location.line == 2 and "unknown input format" in err.value.message
