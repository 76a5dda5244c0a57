"""Where the grammar lives: kept apart so the cache key can be computed without importing lark."""

from pathlib import Path

GRAMMAR = Path(__file__).resolve().parents[2] / "grammar" / "barsafe.lark"
