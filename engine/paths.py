"""Where barsafe's shipped data lives: the rule library, the grammar and the corpus.

In a source checkout they are the top-level folders rules/, grammar/ and
corpus/ beside engine/; an installed wheel carries the same folders inside the
package as engine/data/ (pyproject.toml maps them there), because site-packages
has no place beside a package for them.
"""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data(name: str) -> Path:
    installed = _PACKAGE / "data" / name
    return installed if installed.is_dir() else _PACKAGE.parent / name


RULES = _data("rules")
GRAMMAR = _data("grammar") / "barsafe.lark"
CORPUS = _data("corpus")
