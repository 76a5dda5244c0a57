"""`barsafe audit --format jsonl | parquet`: one row per audited device, for the next tool.

A row is Audit.record(): the input the device was read from, its slot and identity, and per
page size whether it needs relocation and, per strategy, the verdict, the target BAR and the
forbid rule it breaks (all null where no relocation is needed, so no strategy is asked).  The
rows are written as the audit goes, so a fleet's millions of devices are never all in memory;
a row's device part is the same for every copy of a device, so it is encoded once per
distinct device.

JSON Lines needs nothing; Parquet needs pyarrow (`pip install 'barsafe[parquet]'`): the columns
are typed from the page sizes and strategies of the run, so every batch has the same schema.
"""

from __future__ import annotations

import json
from typing import BinaryIO

from ..audit import device_key
from ..errors import UsageError

PARQUET_INSTALL = "--format parquet needs pyarrow: pip install 'barsafe[parquet]' (or pip install pyarrow)"
_BODY_CACHE = 4096  # distinct devices whose encoded row body is kept
_BATCH = 65_536  # Parquet rows per row group


def need_pyarrow() -> None:
    """Say how to install pyarrow, before any input is read, if it is missing."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError(PARQUET_INSTALL) from None


class JsonLines:
    """One compact JSON object per line, in input order."""

    def __init__(self, audit, stream: BinaryIO):
        self.audit = audit
        self.stream = stream
        self.rows = 0
        self._bodies: dict[tuple, bytes] = {}

    def __call__(self, name: str, slot: str | None, device, verdicts) -> None:
        key = device_key(device)  # decides the device part of the row, verdicts included
        body = self._bodies.get(key)
        if body is None:
            row = self.audit.record("", None, device, verdicts)
            del row["input"], row["slot"]
            body = json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()
            if len(self._bodies) >= _BODY_CACHE:
                self._bodies.clear()
            self._bodies[key] = body
        head = json.dumps({"input": name, "slot": slot}, separators=(",", ":"), ensure_ascii=False)
        self.stream.write(head[:-1].encode() + b"," + body[1:] + b"\n")
        self.rows += 1

    def close(self) -> None:
        self.stream.flush()


def _schema(audit):
    import pyarrow as pa
    strategy = pa.struct([("verdict", pa.string()), ("target", pa.int8()), ("rule", pa.string())])
    page = pa.struct([("needs_relocation", pa.bool_()),
                      ("strategies", pa.struct([(s, strategy) for s in audit.strategies]))])
    from ..units import format_size
    return pa.schema([
        ("input", pa.string()), ("slot", pa.string()),
        ("vendor", pa.int32()), ("device", pa.int32()),
        ("subsystem_vendor", pa.int32()), ("subsystem_device", pa.int32()),
        ("revision", pa.int16()), ("driver", pa.string()), ("broken_capability", pa.bool_()),
        ("pages", pa.struct([(format_size(p), page) for p in audit.page_sizes])),
    ])


class Parquet:
    """The same rows as JSON Lines, as a Parquet file written in row groups of 65,536."""

    def __init__(self, audit, stream: BinaryIO):
        import pyarrow.parquet as pq
        self.audit = audit
        self.schema = _schema(audit)
        self.writer = pq.ParquetWriter(stream, self.schema, compression="zstd")
        self.batch: list[dict] = []
        self.rows = 0

    def __call__(self, name: str, slot: str | None, device, verdicts) -> None:
        self.batch.append(self.audit.record(name, slot, device, verdicts))
        self.rows += 1
        if len(self.batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        if self.batch:
            self.writer.write_table(pa.Table.from_pylist(self.batch, schema=self.schema))
            self.batch = []

    def close(self) -> None:
        self._flush()
        self.writer.close()


WRITERS = {"jsonl": JsonLines, "parquet": Parquet}
