"""Files barsafe writes, and the private directory its cache lives in.

barsafe runs as root, so every file it creates is a target: another local user
who can predict a path can plant a symlink there (root then overwrites what it
points to) or a file of their own (root then trusts what it reads).  So:

- a new file is created with O_CREAT|O_EXCL|O_NOFOLLOW under a random name in
  the target's directory, written and flushed completely, and only then
  renamed over the target: a full disk or a killed process leaves the old file
  as it was, and a planted symlink is never followed;
- the cache directory is opened with O_NOFOLLOW and checked through its file
  descriptor (owned by this user, writable by nobody else), and every file in
  it is opened relative to that descriptor and checked the same way, so
  renaming directories under us cannot swap in someone else's.

Failures are OSError; callers decide whether that is fatal (an output the user
asked for) or not (a cache).
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UnsafePath(OSError):
    """A path another user controls, or that is not what it should be."""


def _check_private(st: os.stat_result, what: str, kind: int) -> None:
    if stat.S_IFMT(st.st_mode) != kind:
        raise UnsafePath(f"{what} is not a {'directory' if kind == stat.S_IFDIR else 'regular file'}")
    if st.st_uid != os.geteuid():
        raise UnsafePath(f"{what} is owned by uid {st.st_uid}, not by this user ({os.geteuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafePath(f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})")


def open_private_dir(path: str | Path, create: bool = True) -> int:
    """A descriptor for ``path``, a directory only this user can write; made 0700 if missing."""
    if create:
        from pathlib import Path  # here: a warm run only opens the cache, and pathlib costs it
        try:
            os.makedirs(Path(path).parent, mode=0o700, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    fd = os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
    try:
        _check_private(os.fstat(fd), str(path), stat.S_IFDIR)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_private(dir_fd: int, name: str) -> bytes:
    """The bytes of ``name`` in the checked directory, if it is a regular file of this user's."""
    fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
    try:
        _check_private(os.fstat(fd), name, stat.S_IFREG)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def read_bytes(name: str) -> bytes:
    """open(name, "rb").read() in four system calls (open, fstat, read, close) rather than
    seven: the buffered file also asks whether it is a terminal and where it stands, and a
    warm `which` reads every rule file."""
    fd = os.open(name, os.O_RDONLY | _CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) <= size:  # a regular file reads short only at its end
            return data
        chunks = [data]  # it grew since fstat, or is not a regular file: read on to the end
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_private_range(dir_fd: int, name: str, offset: int, length: int) -> bytes:
    """``length`` bytes of ``name`` from ``offset`` (fewer at its end), checked as read_private
    checks it: the part of a large file that is needed, without reading the rest."""
    fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
    try:
        _check_private(os.fstat(fd), name, stat.S_IFREG)
        chunks = []
        while length > 0:
            chunk = os.pread(fd, length, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@contextmanager
def _replacing(name: str, dir_fd: int | None, like: os.stat_result | None):
    """A descriptor open on a new temp file beside ``name``; when the block ends without an
    exception the file is flushed to disk and renamed over ``name``, else it is removed."""
    if dir_fd is None:
        from pathlib import Path  # here: a warm `which` writes nothing, and pathlib costs it
        target = Path(name)
        directory, base = str(target.parent), target.name
    else:
        directory, base = None, name
    tmp = f".{base}.{os.urandom(8).hex()}.tmp"  # secrets would import hashlib: 15 ms
    dfd = dir_fd if dir_fd is not None else os.open(directory, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o644, dir_fd=dfd)
        try:
            try:
                if like is not None:
                    os.fchmod(fd, stat.S_IMODE(like.st_mode))
                    if os.geteuid() == 0 and (like.st_uid, like.st_gid) != (0, 0):
                        os.fchown(fd, like.st_uid, like.st_gid)
                yield fd
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, base, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
    finally:
        if dir_fd is None:
            os.close(dfd)


def write_atomic(name: str, data: bytes, dir_fd: int | None = None, like: os.stat_result | None = None) -> None:
    """Replace ``name`` by ``data`` all at once: a temp file beside it, flushed, then renamed.

    ``name`` is relative to ``dir_fd`` when given (the cache), else a path.  A
    symlink at ``name`` is replaced, never followed.  With ``like`` (the old
    file's stat) the new file keeps the old one's mode, and its owner when
    root rewrites another user's file; otherwise it is 0644 less the umask.
    """
    with _replacing(name, dir_fd, like) as fd:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]


def _like(path: str | Path) -> os.stat_result | None:
    try:
        like = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return like if stat.S_ISREG(like.st_mode) else None


@contextmanager
def replacing_file(path: str | Path):
    """A binary file object for an output the user named that is too large to hold in memory
    (one row per device of a fleet): written as write_text_atomic writes, so ``path`` is
    replaced only when the block ends without an exception, and never through a symlink."""
    with _replacing(str(path), None, _like(path)) as fd:
        with os.fdopen(fd, "wb", buffering=1 << 20, closefd=False) as stream:
            yield stream


def write_text_atomic(path: str | Path, text: str) -> None:
    """An output file the user named: the old file stays intact unless the new one is complete."""
    write_atomic(str(path), text.encode("utf-8"), like=_like(path))
