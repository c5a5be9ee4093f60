"""Leader election through a PostgreSQL session advisory lock: of all processes that try the same
key, one holds it at a time, and it is released when the holder's connection ends (a crashed
leader frees it for a stand-by without anyone's help)."""

from __future__ import annotations

import asyncpg


class LeaderLock:
    """The advisory lock named ``key`` on ``conn``, the holder's own connection."""

    def __init__(self, conn: asyncpg.Connection, key: str) -> None:
        self._conn = conn
        self._key = key
        self.held = False

    async def try_acquire(self) -> bool:
        """Take the lock if it is free (idempotent while held); True when held."""
        if not self.held:
            self.held = bool(
                await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", self._key
                )
            )
        return self.held

    async def release(self) -> None:
        if self.held:
            await self._conn.execute(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))", self._key
            )
            self.held = False
