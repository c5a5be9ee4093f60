"""Base of the Hypothesis state machines that drive the real PostgreSQL schema."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from hypothesis.stateful import RuleBasedStateMachine


class PgStateMachine(RuleBasedStateMachine):
    """Owns an event loop and a connection to ``dsn`` (set by the test before running); at the
    end of every run, the ledger's hash chain must verify."""

    dsn: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(asyncpg.connect(self.dsn))

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            # The chain covers the whole database, so it is verified once per run, not per step.
            assert self._run(self.conn.fetch("SELECT * FROM ledger_verify_chain()")) == []
        finally:
            self._run(self.conn.close())
            self.loop.close()
