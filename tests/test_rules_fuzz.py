"""Seeded fuzz over the shipped rule files: whatever a mutated rule file holds, `check`,
`fmt --check` and `test` answer with exit 0, 1 or 2 and a message, never exit 3 (an
internal error, a bug) and never a traceback.

Mutations: byte flips, deleted, duplicated and swapped lines, conditions nested around
and far past the limit, huge numbers, bytes that are not UTF-8, very long names and
strings, statements cut short.  The suite runs FUZZ_RUNS mutations (seeded, so a failure
repeats); a longer hunt:

    BARSAFE_FUZZ_RUNS=3000 BARSAFE_FUZZ_SEED=7 python -m pytest -q tests/test_rules_fuzz.py
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
from pathlib import Path

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "rules").glob("*.rules"))
FUZZ_RUNS = int(os.environ.get("BARSAFE_FUZZ_RUNS", "250"))
FUZZ_SEED = int(os.environ.get("BARSAFE_FUZZ_SEED", "20261203"))
COMMANDS = (["check"], ["fmt", "--check"], ["test"])

_NUMBER = re.compile(rb"\b(0x[0-9a-fA-F]+|[0-9]+[KMGT]?)\b")
_NAME = re.compile(rb"\b(rule|role|ruleset|driver|module|function) ([A-Za-z_][\w-]*)")
_REQUIRE = re.compile(rb"require (.*?) else", re.S)


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def flip_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def delete_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    start = rng.randrange(len(lines))
    del lines[start:start + rng.randint(1, 4)]
    return b"\n".join(lines)


def duplicate_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    start = rng.randrange(len(lines))
    chunk = lines[start:start + rng.randint(1, 6)]
    at = rng.randrange(len(lines) + 1)
    return b"\n".join(lines[:at] + chunk * rng.randint(1, 3) + lines[at:])


def swap_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def nest_deeply(rng: random.Random, data: bytes) -> bytes:
    found = list(_REQUIRE.finditer(data))
    if not found:
        return data
    m = rng.choice(found)
    depth = rng.choice([rng.randint(60, 70), rng.randint(100, 300), 5000])
    cond = m.group(1)
    if rng.random() < 0.5:
        cond = b"(" * depth + cond + b")" * depth
    elif rng.random() < 0.5:
        cond = b"not " * depth + cond
    else:
        cond = b"(bar0 unchanged or (bar1 is memory and " * (depth // 2) + cond + b"))" * (depth // 2)
    return data[:m.start(1)] + cond + data[m.end(1):]


def _in_code(data: bytes, at: int) -> bool:
    """Not inside a string or a comment (a rough test, per line)."""
    line = data[data.rfind(b"\n", 0, at) + 1:at]
    return line.count(b'"') % 2 == 0 and b"#" not in line


def huge_number(rng: random.Random, data: bytes) -> bytes:
    found = [m for m in _NUMBER.finditer(data) if _in_code(data, m.start())]
    if not found:
        return data
    m = rng.choice(found)
    digits = rng.choice([b"9" * 25, b"1" * 5000, b"0" * 30 + b"8", b"18446744073709551617"])
    number = (b"0x" + digits.replace(b"9", b"f")) if m.group(1).startswith(b"0x") else digits
    suffix = m.group(1)[-1:] if m.group(1)[-1:] in b"KMGT" and not m.group(1).startswith(b"0x") else b""
    return data[:m.start(1)] + number + suffix + data[m.end(1):]


def not_utf8(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x00"]) + data[at:]


def long_name(rng: random.Random, data: bytes) -> bytes:
    found = list(_NAME.finditer(data))
    if not found:
        return data
    m = rng.choice(found)
    name = rng.choice([b"a" * 65, b"n" * 20_000, b"x-" * 3000 + b"y"])
    return data[:m.start(2)] + name + data[m.end(2):]


def long_string(rng: random.Random, data: bytes) -> bytes:
    found = [m for m in re.finditer(rb'"[^"\n]*"', data)]
    if not found:
        return data
    m = rng.choice(found)
    body = rng.choice([b"x" * 3000, b'\\"' * 5000, b"\\" * 4001, b"../" * 400 + b"etc/passwd", b"/etc/shadow", b""])
    return data[:m.start()] + b'"' + body + b'"' + data[m.end():]


_EXAMPLE_LINE = re.compile(rb"^( +)(platform|msix|bar[0-5]|expect|id|revision|device) [^\n]*", re.M)
_ODD_LINES = [b"platform 3K", b"platform 0", b"platform 1T no-io-space", b"platform 8K",
              b"msix 0 table bar0 0x0 pba bar0 0x800", b"msix 4096 table bar0 0x0 pba bar0 0x800",
              b"msix 8 table bar0 0x4 pba bar0 0x7", b"msix 8 table bar5 0x0 pba bar4 0x0",
              b"msix 64 table bar0 0xfffffff8 pba bar0 0x0", b"bar5 mem64 4K", b"bar0 io 64K prefetchable",
              b"bar0 mem32 0", b"bar0 mem32 3K", b"bar1 mem64 1T prefetchable", b"bar0 io 1G",
              b"expect qemu-rfc refused", b"expect bar5 forbid", b"id ffff:ffff subsystem 0000:0000",
              b"revision 0xff", b'device "../../../../etc/passwd"', b'device "/etc/passwd"',
              b'device "seed"', b'device "."', b'device "linuxhw"', b'device "seed/../seed/x.yaml"',
              b'device "nothing.yaml"']


def odd_example_line(rng: random.Random, data: bytes) -> bytes:
    """An example line replaced by one that is valid syntax but an odd or impossible value."""
    found = list(_EXAMPLE_LINE.finditer(data))
    if not found:
        return data
    m = rng.choice(found)
    return data[:m.start()] + m.group(1) + rng.choice(_ODD_LINES) + data[m.end():]


def cut_short(rng: random.Random, data: bytes) -> bytes:
    return data[:rng.randrange(len(data) + 1)]


def splice_keyword(rng: random.Random, data: bytes) -> bytes:
    words = [b"ruleset", b"rule", b"role", b"match", b"example", b"{", b"}", b"(", b")", b"not", b"and",
             b"or", b"require", b"else", b"when", b"platform 3K", b"platform 0", b"device", b"msix 0",
             b"bar9", b"bar5 mem64 4K", b"expect bar9 safe", b"status mined", b"include", b'"', b"#"]
    at = rng.randrange(len(data) + 1)
    return data[:at] + b" " + rng.choice(words) + b" " + data[at:]


MUTATIONS = [flip_bytes, delete_lines, duplicate_lines, swap_lines, nest_deeply, huge_number,
             not_utf8, long_name, long_string, cut_short, splice_keyword, odd_example_line,
             odd_example_line]


def mutate(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if data:
            data = rng.choice(MUTATIONS)(rng, data)
    return data


def run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue() + out.getvalue()


@pytest.fixture(autouse=True)
def _no_rule_cache(monkeypatch):
    monkeypatch.setenv("BARSAFE_CACHE", "0")


def test_mutated_rule_files_never_crash_the_rule_commands(tmp_path):
    rng = random.Random(FUZZ_SEED)
    failures = []
    for n in range(FUZZ_RUNS):
        original = rng.choice(SHIPPED)
        data = mutate(rng, original.read_bytes())
        directory = tmp_path / f"run{n}"
        directory.mkdir()
        (directory / original.name).write_bytes(data)
        for command in COMMANDS:
            code, said = run([*command, str(directory)])
            if code not in (0, 1, 2) or "Traceback" in said or "internal error" in said:
                failures.append((n, original.name, command, code, said[-400:]))
                (tmp_path / f"crash{n}.rules").write_bytes(data)
    assert not failures, (f"seed {FUZZ_SEED}: {len(failures)} crash(es); first: {failures[0]}"
                          f" (inputs kept as {tmp_path}/crash*.rules)")
