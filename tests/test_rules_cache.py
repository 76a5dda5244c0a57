"""engine/rules/cache.py: plain data that reads back only as the AST's own nodes."""

from __future__ import annotations

import json

import pytest

from engine.rules import ast, cache, library


@pytest.fixture(scope="module")
def shipped() -> dict[str, ast.RuleFile]:
    return library.load(use_cache=False).files


def test_every_shipped_rule_file_reads_back_equal_with_its_spans(shipped):
    for path, tree in shipped.items():
        back = cache.loads(cache.dumps(tree))
        assert back == tree, path
        assert repr(back) == repr(tree)  # repr shows every field but spans
        assert [r.span for r in back.rules] == [r.span for r in tree.rules]
        assert [c.text for c in back.comments] == [c.text for c in tree.comments]


def test_nodes_read_back_frozen_and_hashable(shipped):
    tree = cache.loads(cache.dumps(next(iter(shipped.values()))))
    with pytest.raises(ast.FrozenInstanceError):
        tree.rules[0].name = "x"
    assert hash(tree.rules[0]) == hash(next(iter(shipped.values())).rules[0])
    assert isinstance(tree.statements, tuple)


@pytest.mark.parametrize("doc", [
    {"@": "Path", "f": ["/etc/shadow"]},                     # a name from outside the AST
    {"@": "object", "f": []},
    {"@": "Node.__class__", "f": []},
    {"@": "Zzz", "f": []},                                   # no such node
    {"@": "Fixed", "f": [1, 2]},                             # wrong number of fields
    {"@": "Fixed", "f": 3},
    {"@": "Fixed", "f": [1], "x": 1},                        # stray keys
    {"f": [1]},
    {"__reduce__": "os.system"},
])
def test_anything_but_an_ast_node_is_refused(doc):
    with pytest.raises(ValueError):
        cache.loads(json.dumps(doc).encode())


def test_a_tree_too_deep_to_store_is_simply_not_cached(tmp_path):
    cond = ast.Fixed(0)
    for _ in range(100_000):
        cond = ast.Not(cond)
    with pytest.raises(RecursionError):
        cache.dumps(cond)
    cache.put(tmp_path / "c", [b"material"], [("p", "n", (), (), cond)])
    assert not (tmp_path / "c").exists()  # nothing written, not even the directory
    assert cache.get(tmp_path / "c", [b"material"]) is None


def test_put_then_get_is_the_same_rows(tmp_path, shipped):
    rows = [(path, f.name, tuple(f.matches), (), f) for path, f in shipped.items()]
    material = [b"m", b"x" * 300]
    cache.put(tmp_path / "c", material, rows)
    got = cache.get(tmp_path / "c", material)
    assert [(r.path, r.name, r.matches) for r in got] == [(p, n, m) for p, n, m, _, _ in rows]
    back = [cache.loads(r.payload, r.path) for r in got]
    assert back == [f for *_, f in rows]
    # spans are left out of ==, and the cache writes them without their path: they come back whole
    assert [list(spans(f)) for f in back] == [list(spans(f)) for *_, f in rows]
    assert all(s[0] == r.path for f, r in zip(back, got) for s in spans(f))
    assert cache.get(tmp_path / "c", [b"other", b"material"]) is None
    # the same file name (a long part counts by its length), not the same bytes
    assert cache.key_of([b"m", b"y" * 300]) == cache.key_of(material)
    assert cache.get(tmp_path / "c", [b"m", b"y" * 300]) is None
    assert cache.get(tmp_path / "c", [b"m", b"x" * 299 + b"y"]) is None


def spans(value):
    """Every Span in an AST, depth first."""
    if isinstance(value, ast.Span):
        yield (value.path, value.line, value.column, value.end_line, value.end_column)
    elif isinstance(value, ast.Node):
        for name in value._fields:
            yield from spans(value.__dict__[name])
    elif isinstance(value, tuple):
        for v in value:
            yield from spans(v)


def test_a_span_without_its_file_is_damage():
    """A compact span is read only where the file it belongs to is known."""
    data = cache.dumps(ast.Span("/r/x.rules", 1, 2, 3, 4), "/r/x.rules")
    assert data == b'{"s":[1,2,3,4]}'
    assert cache.loads(data, "/r/x.rules") == ast.Span("/r/x.rules", 1, 2, 3, 4)
    for bad in (data, b'{"s":[1,2,3]}', b'{"s":[1,2,3,"4"]}', b'{"s":1}'):
        with pytest.raises(ValueError):
            cache.loads(bad, None if bad == data else "/r/x.rules")


def test_only_the_newest_cache_files_are_kept(tmp_path, shipped):
    import os
    rows = [(path, f.name, tuple(f.matches), (), f) for path, f in list(shipped.items())[:2]]
    for n in range(cache.KEEP + 3):
        cache.put(tmp_path / "c", [f"material {n}".encode()], rows)
        newest = tmp_path / "c" / f"rules-{cache.key_of([f'material {n}'.encode()])}.json"
        os.utime(newest, ns=(n * 10**9, n * 10**9))
    kept = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert len(kept) == cache.KEEP
    assert all(cache.get(tmp_path / "c", [f"material {n}".encode()]) is not None
               for n in range(3, cache.KEEP + 3))
