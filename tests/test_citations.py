"""Every rule file's `source` line points into the Linux tree it names (when one is at hand).

Set BARSAFE_LINUX_TREE to an extracted linux-source-6.12 tree to run this
(tools/verify_citations.py explains how); without it the test is skipped.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREE = os.environ.get("BARSAFE_LINUX_TREE")


@pytest.mark.skipif(not TREE or not Path(TREE, "drivers").is_dir(), reason="BARSAFE_LINUX_TREE not set")
def test_every_citation_is_inside_the_named_function():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "verify_citations.py"), TREE],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 problems" in proc.stdout
