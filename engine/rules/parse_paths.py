"""Where the grammar lives: kept apart so the cache key can be computed without importing lark."""

from ..paths import GRAMMAR

__all__ = ["GRAMMAR"]
