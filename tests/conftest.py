import sys
from pathlib import Path

import pytest

# tests/ is not a package: make its helper modules (strategies_devices) importable.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A rule cache of the test's own (BARSAFE_CACHE_DIR, inherited by the programs it runs):
    the user's cache is never read or written.  Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("private_cache")``."""
    monkeypatch.setenv("BARSAFE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def lib():
    """The shipped rule library, compiled from source (no cache), once per run."""
    from engine.rules import library

    return library.load(use_cache=False)
