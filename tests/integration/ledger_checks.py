"""Invariants of the book of record that every end-to-end test checks."""

from __future__ import annotations

import asyncpg

from streams.fees import breakdown_for
from streams.settings import WorkerSettings
from warehouse.payments import CAPTURED_STATUSES, SETTLEMENT_KINDS


async def assert_ledger_invariants(pg: asyncpg.Pool) -> None:
    """Every entry balances and the hash chain verifies; every captured payment has an
    authorization and a capture entry, a declined one none; each merchant's pending and refunds
    accounts equal the lifecycle's counters to the paisa; and every capture charged exactly the
    fee and GST that the merchant's schedule gives (recomputed here from the fee rules)."""
    unbalanced = await pg.fetch(
        "SELECT entry_id FROM postings GROUP BY entry_id, currency HAVING sum(amount_minor) <> 0"
    )
    assert unbalanced == []
    assert [dict(r) for r in await pg.fetch("SELECT * FROM ledger_verify_chain()")] == []
    per_payment = await pg.fetch(
        """SELECT p.payment_id, p.status, array_agg(DISTINCT e.kind ORDER BY e.kind)
                      FILTER (WHERE e.kind IS NOT NULL) AS kinds
             FROM payments p LEFT JOIN journal_entries e ON e.payment_id = p.payment_id
            GROUP BY p.payment_id, p.status"""
    )
    wrong = [
        dict(r)
        for r in per_payment
        if (
            r["status"] in CAPTURED_STATUSES and not {"authorization", "capture"} <= set(r["kinds"])
        )
        or (r["status"] == "declined" and r["kinds"] is not None)
    ]
    assert wrong == []
    # Per merchant, the ledger's accounts equal the lifecycle's counters to the paisa (what
    # settlement moved on from them is the settlement tests' business).
    mismatch = await pg.fetch(
        """WITH life AS (
               SELECT merchant_id, currency,
                      sum((lifecycle->>'captured_minor')::bigint
                          - (lifecycle->>'disputed_minor')::bigint
                          - (lifecycle->>'chargeback_minor')::bigint) AS pending,
                      sum((lifecycle->>'refunded_minor')::bigint) AS refunds
                 FROM payments WHERE lifecycle IS NOT NULL GROUP BY 1, 2),
           led AS (
               SELECT a.owner AS merchant_id, a.currency,
                      coalesce(-sum(po.amount_minor) FILTER (WHERE a.kind = 'pending'), 0)
                          AS pending,
                      coalesce(sum(po.amount_minor) FILTER (WHERE a.kind = 'refunds'), 0)
                          AS refunds
                 FROM postings po
                 JOIN journal_entries e USING (entry_id)
                 JOIN ledger_accounts a USING (account_id)
                WHERE a.owner <> 'platform' AND a.kind IN ('pending', 'refunds')
                  AND e.kind <> ALL($1::text[])
                GROUP BY 1, 2)
           SELECT * FROM life FULL JOIN led USING (merchant_id, currency)
            WHERE (coalesce(life.pending, 0), coalesce(life.refunds, 0))
                  IS DISTINCT FROM (coalesce(led.pending, 0), coalesce(led.refunds, 0))""",
        list(SETTLEMENT_KINDS),
    )
    assert [dict(r) for r in mismatch] == []
    await _assert_fees_match_schedule(pg)


async def _assert_fees_match_schedule(pg: asyncpg.Pool) -> None:
    settings = WorkerSettings()
    rows = await pg.fetch(
        """SELECT e.entry_id, p.method, p.card_network, m.state_code,
                  -sum(po.amount_minor) FILTER (WHERE a.kind = 'pending') AS amount_minor,
                  coalesce(sum(po.amount_minor) FILTER (WHERE a.kind = 'fees'), 0) AS fee,
                  coalesce(sum(po.amount_minor) FILTER (WHERE a.kind = 'gst_payable'), 0) AS gst
             FROM payments p
             JOIN merchants m USING (merchant_id)
             JOIN journal_entries e ON e.payment_id = p.payment_id AND e.kind = 'capture'
             JOIN postings po ON po.entry_id = e.entry_id
             JOIN ledger_accounts a USING (account_id)
            WHERE m.mdr_schedule IS NULL
            GROUP BY e.entry_id, p.method, p.card_network, m.state_code"""
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
