"""engine/frozen.py: records with dataclass behaviour (what they must keep of it)."""

import copy
import dataclasses
import pickle
from pathlib import Path

import pytest

from engine.frozen import Frozen, FrozenInstanceError, _set, replace
from engine.model import Bar, BarKind, Device, Msix, Platform
from engine.sources import load

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus" / "devices" / "seed" / "lsi-sas3008-1000-0097.yaml"


class Point(Frozen, uncompared=("note",), unshown=("secret",)):
    x: int
    y: int
    note: str
    secret: str

    def __init__(self, x: int, y: int = 0, note: str = "", secret: str = "s") -> None:
        _set(self, "x", x)
        _set(self, "y", y)
        _set(self, "note", note)
        _set(self, "secret", secret)


def test_equality_and_hash_leave_out_uncompared_fields():
    assert Point(1, 2, note="a") == Point(1, 2, note="b")
    assert hash(Point(1, 2, note="a")) == hash(Point(1, 2, note="b"))
    assert Point(1, 2) != Point(2, 1)
    assert Point(1, 2) != (1, 2) and Point(1, 2).__eq__((1, 2)) is NotImplemented
    assert len({Point(1), Point(1, note="x"), Point(2)}) == 2


def test_repr_shows_the_fields_but_unshown():
    assert repr(Point(1, 2, "n")) == "Point(x=1, y=2, note='n')"


def test_fields_cannot_be_set_or_added():
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 2
    with pytest.raises(AttributeError):
        p.z = 2
    with pytest.raises(FrozenInstanceError):
        del p.x
    assert not hasattr(p, "__dict__") and Point.__slots__ == ("x", "y", "note", "secret")


def test_init_must_take_the_fields_in_order():
    with pytest.raises(TypeError, match="must take the fields in order: a, b"):
        class Wrong(Frozen):
            a: int
            b: int

            def __init__(self, b: int, a: int) -> None:
                _set(self, "a", a)
                _set(self, "b", b)


def test_pickle_copy_and_replace():
    dev = load(str(SEED))[0]
    for again in (pickle.loads(pickle.dumps(dev)), copy.copy(dev), copy.deepcopy(dev)):
        assert again == dev and again.origin == dev.origin and again.bars == dev.bars
    moved = replace(dev, slot="0002:00:00.0")
    assert moved.slot == "0002:00:00.0" and moved.bars is dev.bars and moved != dev
    with pytest.raises(TypeError):
        replace(dev, no_such_field=1)
    with pytest.raises(ValueError, match="out of range"):
        replace(dev, vendor=0x10000)  # __init__ checks a replaced value as it checks a new one


def test_dataclasses_functions_work_on_records():
    dev = load(str(SEED))[0]
    assert dataclasses.is_dataclass(dev)
    assert dataclasses.replace(dev, revision=3) == replace(dev, revision=3)
    names = [f.name for f in dataclasses.fields(Device)]
    assert names == list(Device._fields)
    origin = dataclasses.fields(Device)[-1]
    assert origin.name == "origin" and origin.compare is False and origin.default is None
    assert dataclasses.asdict(Platform(65536, False)) == {"page_size": 65536, "io_space": False}
    assert dataclasses.astuple(Bar(1, BarKind.MEM64, 4096)) == (1, BarKind.MEM64, 4096, False, True)
    assert [f.repr for f in dataclasses.fields(Point)] == [True, True, True, False]


def test_records_check_their_values():
    with pytest.raises(ValueError, match="BAR5 cannot be 64-bit"):
        Bar(5, BarKind.MEM64, 4096)
    with pytest.raises(ValueError, match="multiple of 8"):
        Msix(4, 0, 0x2004, 0, 0x3000)
    with pytest.raises(ValueError, match="not a power of two"):
        Platform(3000)
    with pytest.raises(ValueError, match="PCI function"):
        Device("0000:03:00.9")
