"""Balances, journal entries page by page, and settlements, as a merchant reads them."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from warehouse.merchants import create_merchant

pytestmark = pytest.mark.integration

UPI = {"type": "upi", "vpa": "sana@okaxis"}
CARD = {"type": "card", "token": "tok_visa_0077", "bin": "411111", "last4": "4242"}


async def test_balances_and_paged_journal(api, merchant, pg, worker) -> None:
    for i, (amount, method) in enumerate([(1_000_00, CARD), (250_00, UPI), (999_99, CARD)]):
        res = await api.post(
            "/v1/payments",
            json={"amount": amount, "currency": "INR", "method": method},
            headers={**merchant.headers, "Idempotency-Key": f"k{i}"},
        )
        assert res.status_code == 202

    async def all_captured() -> bool:
        n: int = await pg.fetchval("SELECT count(*) FROM payments WHERE status = 'captured'")
        return n == 3

    await wait_for(all_captured, timeout_s=60, what="three captured payments")

    balances = (await api.get("/v1/balances", headers=merchant.headers)).json()["data"]
    by_account = {b["account"]: b["amount"] for b in balances}
    assert by_account["pending"] == 1_000_00 + 250_00 + 999_99
    # UPI is zero-MDR; the cards pay 190 bps with GST (both in state 27 → 29: IGST 18%).
    assert by_account["fees"] == 19_00 + 19_00
    assert by_account["gst_payable"] == 3_42 + 3_42
    assert by_account.get("authorized", 0) == 0  # every hold was captured

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/ledger/entries", params=params, headers=merchant.headers)).json()
        pages += 1
        for entry in page["data"]:
            assert sum(p["amount_minor"] for p in entry["postings"]) == 0
            seen.append(entry["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 6  # 3 authorizations + 3 captures

    bad = await api.get("/v1/ledger/entries", params={"cursor": "nope"}, headers=merchant.headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
    too_big = await api.get("/v1/ledger/entries", params={"limit": 101}, headers=merchant.headers)
    assert too_big.status_code == 400 and too_big.json()["code"] == "invalid_limit"

    # Another merchant sees none of it.
    other = await create_merchant(pg, merchant.merchant_id + "_x", "Other Pvt Ltd", "29")
    headers = {"Authorization": f"Bearer {other}"}
    assert (await api.get("/v1/balances", headers=headers)).json()["data"] == []
    assert (await api.get("/v1/ledger/entries", headers=headers)).json()["data"] == []
    assert (await api.get("/v1/settlements", headers=headers)).json()["data"] == []
    missing = await api.get("/v1/settlements/stl_nope/lines", headers=headers)
    assert missing.status_code == 404 and missing.json()["code"] == "settlement_not_found"
