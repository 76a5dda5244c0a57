"""JSON Schemas (draft 2020-12) of barsafe's machine-readable outputs, shipped with the package.

One file per output, NAME.json; its version is the number in its ``$id`` (``.../which-1.json``).
docs/json-schemas.md says which command writes each, what bumps a version, and every change.
tests/test_schemas.py validates real outputs against them.
"""

from __future__ import annotations

import json
import re
from importlib import resources

# name -> the output it describes (`barsafe schema NAME` prints the file)
OUTPUTS = {
    "show": "show --json",
    "simulate": "simulate --json (one strategy, or --all)",
    "which": "which --json",
    "audit": "audit --format json",
    "audit-jsonl": "audit --format jsonl (one line)",
    "export": "export qemu-table --format json",
    "verify": "verify --json",
    "mine": "mine --json",
    "coverage": "coverage --json",
}
NAMES = tuple(OUTPUTS)
_VERSION = re.compile(r"/([a-z-]+)-([0-9]+)\.json$")


def text(name: str) -> str:
    """The schema file as shipped."""
    if name not in OUTPUTS:
        raise KeyError(f"no schema {name!r}; known: {', '.join(NAMES)}")
    return resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")


def load(name: str) -> dict:
    return json.loads(text(name))


def version(schema: dict) -> tuple[str, int]:
    """(name, version) from the schema's $id."""
    m = _VERSION.search(schema.get("$id", ""))
    if m is None:
        raise ValueError(f"schema $id {schema.get('$id')!r} does not end in NAME-VERSION.json")
    return m.group(1), int(m.group(2))
