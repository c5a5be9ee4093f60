"""Invariants of the book of record that every end-to-end test checks."""

from __future__ import annotations

import asyncpg


async def assert_ledger_invariants(pg: asyncpg.Pool) -> None:
    """Every entry balances; every authorized payment has exactly one authorization entry with
    two postings; no declined payment has any; the merchants' pending balances equal the
    authorized amounts to the paisa."""
    unbalanced = await pg.fetch(
        "SELECT entry_id FROM postings GROUP BY entry_id, currency HAVING sum(amount_minor) <> 0"
    )
    assert unbalanced == []
    per_payment = await pg.fetch(
        """SELECT p.payment_id, p.status, count(DISTINCT e.entry_id) AS entries,
                  count(po.posting_id) AS postings
             FROM payments p
             LEFT JOIN journal_entries e ON e.payment_id = p.payment_id
             LEFT JOIN postings po ON po.entry_id = e.entry_id
            GROUP BY p.payment_id, p.status"""
    )
    wrong = [
        dict(r)
        for r in per_payment
        if (r["status"] == "authorized" and (r["entries"], r["postings"]) != (1, 2))
        or (r["status"] == "declined" and r["entries"] != 0)
    ]
    assert wrong == []
    mismatch = await pg.fetch(
        """WITH auth AS (SELECT merchant_id, currency, sum(amount_minor) AS total FROM payments
                          WHERE status = 'authorized' GROUP BY 1, 2),
                led AS (SELECT a.owner AS merchant_id, a.currency, -sum(po.amount_minor) AS total
                          FROM postings po JOIN ledger_accounts a USING (account_id)
                         WHERE a.kind = 'pending' GROUP BY 1, 2)
           SELECT * FROM auth FULL JOIN led USING (merchant_id, currency)
            WHERE auth.total IS DISTINCT FROM led.total"""
    )
    assert mismatch == []
