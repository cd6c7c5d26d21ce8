"""asyncio driver: `AsyncConnection` (``connect`` and friends come with the connect driver)."""

from ._connection import AsyncConnection

__all__ = ["AsyncConnection"]
