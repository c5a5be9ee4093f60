"""Invariants of the book of record that every end-to-end test checks."""

from __future__ import annotations

import asyncpg

from streams.fees import breakdown_for
from streams.settings import WorkerSettings
from warehouse.payments import CAPTURED_STATUSES


async def assert_ledger_invariants(pg: asyncpg.Pool) -> None:
    """Every entry balances and the hash chain verifies; every captured payment has exactly one
    authorization and one capture entry, a declined one none; the merchants' pending accounts
    equal the captured amounts to the paisa; and every capture charged exactly the fee and GST
    that the merchant's schedule gives (recomputed here from the fee rules)."""
    unbalanced = await pg.fetch(
        "SELECT entry_id FROM postings GROUP BY entry_id, currency HAVING sum(amount_minor) <> 0"
    )
    assert unbalanced == []
    assert [dict(r) for r in await pg.fetch("SELECT * FROM ledger_verify_chain()")] == []
    per_payment = await pg.fetch(
        """SELECT p.payment_id, p.status, array_agg(e.kind ORDER BY e.kind)
                      FILTER (WHERE e.kind IS NOT NULL) AS kinds
             FROM payments p LEFT JOIN journal_entries e ON e.payment_id = p.payment_id
            GROUP BY p.payment_id, p.status"""
    )
    wrong = [
        dict(r)
        for r in per_payment
        if (r["status"] in CAPTURED_STATUSES and r["kinds"] != ["authorization", "capture"])
        or (r["status"] == "declined" and r["kinds"] is not None)
    ]
    assert wrong == []
    mismatch = await pg.fetch(
        """WITH cap AS (SELECT merchant_id, currency, sum(amount_minor) AS total FROM payments
                         WHERE status = ANY($1::text[]) GROUP BY 1, 2),
                led AS (SELECT a.owner AS merchant_id, a.currency, -sum(po.amount_minor) AS total
                          FROM postings po JOIN ledger_accounts a USING (account_id)
                         WHERE a.kind = 'pending' GROUP BY 1, 2)
           SELECT * FROM cap FULL JOIN led USING (merchant_id, currency)
            WHERE cap.total IS DISTINCT FROM led.total""",
        list(CAPTURED_STATUSES),
    )
    assert mismatch == []
    await _assert_fees_match_schedule(pg)


async def _assert_fees_match_schedule(pg: asyncpg.Pool) -> None:
    settings = WorkerSettings()
    rows = await pg.fetch(
        """SELECT p.payment_id, p.amount_minor, p.method, p.card_network, m.state_code,
                  coalesce(sum(po.amount_minor) FILTER (WHERE a.kind = 'fees'), 0) AS fee,
                  coalesce(sum(po.amount_minor) FILTER (WHERE a.kind = 'gst_payable'), 0) AS gst
             FROM payments p
             JOIN merchants m USING (merchant_id)
             JOIN journal_entries e ON e.payment_id = p.payment_id AND e.kind = 'capture'
             JOIN postings po ON po.entry_id = e.entry_id
             JOIN ledger_accounts a USING (account_id)
            WHERE m.mdr_schedule IS NULL
            GROUP BY p.payment_id, p.amount_minor, p.method, p.card_network, m.state_code"""
    )
    for r in rows:
        expected = breakdown_for(
            settings.default_mdr,
            r["amount_minor"],
            r["method"],
            merchant_state=r["state_code"],
            gateway_state=settings.gateway_state_code,
            network=r["card_network"],
        )
        assert (r["fee"], r["gst"]) == (expected.fee_minor, expected.gst_total_minor), dict(r)
