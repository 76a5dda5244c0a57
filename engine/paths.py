"""Where barsafe's shipped data lives: the rule library, the grammar and the corpus.

In a source checkout they are the top-level folders rules/, grammar/ and
corpus/ beside engine/; an installed wheel carries the same folders inside the
package as engine/data/ (pyproject.toml maps them there), because site-packages
has no place beside a package for them.

Importing pathlib (it imports urllib.parse, ipaddress, fnmatch and ntpath) cost a
warm `which` a sixteenth of its start-up, so what start-up reads works on names:
RULES_DIR, GRAMMAR_FILE and CORPUS_DIR, and ``pure``, ``is_dir`` and ``is_file``,
which say what ``Path(name)`` and its is_dir() and is_file() would.  RULES, GRAMMAR
and CORPUS, the same places as Paths, are made when first asked for.
"""

from __future__ import annotations

import os
import sys
from errno import EBADF, ELOOP, ENOENT, ENOTDIR
from stat import S_ISDIR, S_ISREG

# The errors pathlib's is_dir() and is_file() answer False to, where others raise: up to
# Python 3.13 those of a name that is not there; from 3.14 on (os.path.isdir and isfile) all.
_MISSING = (ENOENT, ENOTDIR, EBADF, ELOOP)
_ALL_ERRORS_FALSE = sys.version_info >= (3, 14)


def pure(name: str) -> str:
    """str(Path(name)): empty and '.' parts and trailing slashes dropped, '' is '.', and a
    leading '//' kept (POSIX leaves its meaning open) where three or more slashes become '/'."""
    root = ""
    if name.startswith("/"):
        rest = name.lstrip("/")
        root = "//" if len(name) - len(rest) == 2 else "/"
        name = rest
    return root + "/".join(part for part in name.split("/") if part and part != ".") or "."


def _mode(name: str) -> int:
    """Path(name).stat().st_mode, or 0 where pathlib's is_dir() and is_file() answer False (no
    such file, a dangling or looping symlink, a NUL byte in the name); other errors raise as
    they raise there."""
    try:
        return os.stat(pure(name)).st_mode
    except OSError as exc:
        if exc.errno not in _MISSING and not _ALL_ERRORS_FALSE:
            raise
        return 0
    except ValueError:
        return 0


def is_dir(name: str) -> bool:
    """Path(name).is_dir()."""
    return S_ISDIR(_mode(name))


def is_file(name: str) -> bool:
    """Path(name).is_file()."""
    return S_ISREG(_mode(name))


_PACKAGE = os.path.dirname(os.path.realpath(__file__))  # Path(__file__).resolve().parent


def _data(name: str) -> str:
    installed = os.path.join(_PACKAGE, "data", name)
    return installed if is_dir(installed) else os.path.join(os.path.dirname(_PACKAGE), name)


RULES_DIR = _data("rules")
GRAMMAR_FILE = os.path.join(_data("grammar"), "barsafe.lark")
CORPUS_DIR = _data("corpus")
_AS_PATHS = {"RULES": RULES_DIR, "GRAMMAR": GRAMMAR_FILE, "CORPUS": CORPUS_DIR}


def __getattr__(name: str):
    """RULES, GRAMMAR and CORPUS: the Paths of RULES_DIR, GRAMMAR_FILE and CORPUS_DIR."""
    if name not in _AS_PATHS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pathlib import Path
    value = globals()[name] = Path(_AS_PATHS[name])
    return value
