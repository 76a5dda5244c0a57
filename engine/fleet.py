"""`barsafe audit --engine dask`: read a fleet's inputs on a Dask cluster, judge each device once.

The work splits where the costs lie.  Reading and parsing the inputs grows with the fleet
(hundreds of thousands of dumps), so the workers do it: the inputs are cut into partitions of
whole files, in input order, and each worker returns a Tally (engine/audit.py) per partition,
each distinct device once with its count and the slots of its copies.  Judging grows with how
many *different* devices the fleet holds (a few hundred in a fleet of thousands of hosts), so
the driver does it, once per distinct device for the whole run, through the audit's own memo
(Audit.merge), while the workers read on.  That keeps the rules, their cache and any --rules
files on the driver alone: a worker needs barsafe installed and the inputs readable at the same
paths, nothing else.  The tallies are merged in input order, so the report is byte for byte
the one the local engine writes.

dask is imported here only, and only when --engine dask is asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from . import __version__
from .audit import Tally
from .errors import BarsafeError, Location, UsageError

INSTALL = "--engine dask needs Dask: pip install 'barsafe[fleet]' (or pip install 'dask[distributed]')"
PARTITION_BYTES = 8 << 20  # about this much input per task: seconds of parsing, a small tally back
TASKS_PER_WORKER = 4  # at least this many partitions per worker, so none waits on one long task
_DIRECTORY_WEIGHT = 64 << 10  # a sysfs tree counts as this many bytes of input
CONNECT_TIMEOUT = "20s"  # for a scheduler given by --scheduler


def read_partition(inputs: list[tuple[str, str]]) -> Tally:
    """On a worker: the tally of these inputs, in order; each is (its name as given, the absolute
    path to open: a worker's working directory is not the driver's).  An input that fails is
    listed with its error as the local engine prints it, under the name given."""
    from .sources import stream
    tally = Tally()
    for name, path in inputs:
        try:
            # streamed, keeping only MSI-X devices: a worker's memory is that of its devices
            # that matter, not of its files; an input failing half-way adds nothing
            devices = [d for d in stream(path) if d.msix is not None]
        except BarsafeError as exc:
            tally.fail(name, _as_named(exc, name, path))
            continue
        tally.read(name, devices)
    return tally


def _as_named(exc: BarsafeError, name: str, path: str) -> str:
    where = exc.location
    if where is None or path == name or not where.path.startswith(path):
        return str(exc)
    return str(Location(name + where.path[len(path):], where.line, where.column)) + ": " + exc.message


def barsafe_version() -> str:
    """On a worker: which barsafe it runs (a worker without barsafe cannot even unpickle this)."""
    return __version__


def _size(name: str) -> int:
    try:
        st = os.stat(name)
    except OSError:
        return 1  # the worker will say what is wrong with it
    return _DIRECTORY_WEIGHT if os.path.isdir(name) else max(st.st_size, 1)


def partitions(names: list[str], workers: int) -> list[list[str]]:
    """Consecutive runs of whole inputs of about PARTITION_BYTES each, and at least
    TASKS_PER_WORKER per worker while there are inputs enough."""
    sizes = [_size(n) for n in names]
    total = sum(sizes)
    count = max(1, min(len(names), max(workers * TASKS_PER_WORKER, -(-total // PARTITION_BYTES))))
    share = total / count
    parts: list[list[str]] = []
    current: list[str] = []
    done = 0
    for i, (name, size) in enumerate(zip(names, sizes)):
        if current and len(parts) + 1 < count and (
                done + size / 2 > share * (len(parts) + 1)  # past this part's share of the bytes
                or len(names) - i <= count - len(parts) - 1):  # one input per part from here on
            parts.append(current)
            current = []
        current.append(name)
        done += size
    parts.append(current)
    return parts


def _import_dask():
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(INSTALL) from None
    return Client, LocalCluster


class Cluster:
    """A Dask client on the scheduler given, or on a local cluster of `workers` processes (one
    thread each: parsing is pure Python), closed on exit."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None):
        self.scheduler = scheduler
        self.workers = workers or os.cpu_count() or 1
        self.client = self.cluster = None

    def __enter__(self) -> "Cluster":
        Client, LocalCluster = _import_dask()
        try:
            if self.scheduler is None:
                # on this machine only: the scheduler, and its HTTP server on a free port, not
                # :8787 (no dashboard: a second audit must not find the port taken)
                self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                            host="127.0.0.1", dashboard_address=None,
                                            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                            silence_logs=logging.ERROR)
                self.client = Client(self.cluster)
            else:
                self.client = Client(self.scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            self.__exit__(None, None, None)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if self.scheduler is not None:
                raise UsageError(f"--scheduler {self.scheduler}: no Dask scheduler answers there ({first})") from None
            raise UsageError(f"cannot start a local Dask cluster: {first}") from None
        self._check_workers()
        return self

    def _check_workers(self) -> None:
        where = f"the Dask scheduler at {self.scheduler}" if self.scheduler else "the local Dask cluster"
        try:
            versions = self.client.run(barsafe_version)
        except Exception as exc:  # a worker that cannot import barsafe fails to unpickle the probe
            self.__exit__(None, None, None)
            raise UsageError(f"the workers of {where} cannot run barsafe ({type(exc).__name__}:"
                             f" {str(exc).splitlines()[0] if str(exc) else ''}): install barsafe"
                             f" {__version__} on every worker") from None
        if not versions:
            self.__exit__(None, None, None)
            raise UsageError(f"{where} has no workers: start some with `dask worker {self.scheduler or 'ADDRESS'}`")
        other = sorted({v for v in versions.values() if v != __version__})
        if other:
            self.__exit__(None, None, None)
            raise UsageError(f"the workers of {where} run barsafe {', '.join(other)}, this is"
                             f" {__version__}: install the same version everywhere")
        self.workers = len(versions)

    def __exit__(self, *exc) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
        self.client = self.cluster = None

    def tallies(self, names: list[str], progress=None) -> Iterator[Tally]:
        """The inputs' tallies, partition by partition in input order, as the workers finish
        them; standard input ('-') is read here, where it is."""
        runs: list[tuple[str, list[str]]] = []
        for name in names:  # '-' splits the inputs: it is read in this process, in its place
            if name == "-":
                runs.append(("local", [name]))
            elif runs and runs[-1][0] == "remote":
                runs[-1][1].append(name)
            else:
                runs.append(("remote", [name]))
        work = []
        for where, run in runs:
            if where == "local":
                work.append([(name, name) for name in run])
            else:
                for part in partitions(run, self.workers):
                    work.append(self.client.submit(
                        read_partition, [(name, os.path.abspath(name)) for name in part], pure=False))
        for n, item in enumerate(work, start=1):
            if progress is not None:
                progress(n, len(work))
            if isinstance(item, list):
                yield read_partition(item)
            else:
                tally = item.result()
                item.release()
                yield tally
