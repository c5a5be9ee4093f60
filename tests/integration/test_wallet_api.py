"""Wallets through the API: open, load, transfer, pay out, holds, balances — idempotent per
Idempotency-Key, refusals posting nothing, and hold expiry run by the real worker."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from api.settings import ApiSettings
from tests.conftest import Merchant, WorkerProcess, wait_for
from warehouse.merchants import create_merchant
from warehouse.wallet_store import reconcile

pytestmark = pytest.mark.integration


async def post(
    api: httpx.AsyncClient, merchant: Merchant, path: str, key: str, body: dict[str, Any]
) -> httpx.Response:
    return await api.post(path, json=body, headers={**merchant.headers, "Idempotency-Key": key})


async def wallet(api: httpx.AsyncClient, merchant: Merchant, wallet_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/wallets/{wallet_id}", headers=merchant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def ledger_state(pg: asyncpg.Pool) -> tuple[int, list[tuple[str, int]]]:
    """Number of postings and every wallet's balances: what a refused request must not move."""
    postings = await pg.fetchval("SELECT count(*) FROM postings")
    rows = await pg.fetch("SELECT wallet_id, balance_minor FROM wallets ORDER BY wallet_id")
    return postings, [(r["wallet_id"], r["balance_minor"]) for r in rows]


async def open_pair(api: httpx.AsyncClient, merchant: Merchant) -> tuple[str, str]:
    shop = await post(api, merchant, "/v1/wallets", "open-shop", {"owner": "merchant"})
    assert shop.status_code == 201, shop.text
    asha = await post(
        api, merchant, "/v1/wallets", "open-asha", {"owner": "customer", "customer_id": "asha_01"}
    )
    assert asha.status_code == 201, asha.text
    assert asha.json()["balance_limit"] == 2_00_000_00  # full KYC: ₹2,00,000
    return shop.json()["id"], asha.json()["id"]


async def test_load_spend_payout_and_refusals_that_post_nothing(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool
) -> None:
    shop, asha = await open_pair(api, merchant)
    loaded = await post(api, merchant, f"/v1/wallets/{asha}/loads", "load-1", {"amount": 5_000_00})
    assert loaded.status_code == 201, loaded.text
    assert (await wallet(api, merchant, asha))["available"] == 5_000_00

    spend = {"to_wallet": shop, "amount": 1_200_50, "purpose": "spend"}
    spent = await post(api, merchant, f"/v1/wallets/{asha}/transfers", "spend-1", spend)
    assert spent.status_code == 201, spent.text
    assert (await wallet(api, merchant, asha))["available"] == 3_799_50
    assert (await wallet(api, merchant, shop))["available"] == 1_200_50

    # Beyond the available balance: a 422 problem, and nothing posted or moved.
    before = await ledger_state(pg)
    too_much = await post(
        api,
        merchant,
        f"/v1/wallets/{asha}/transfers",
        "spend-2",
        {"to_wallet": shop, "amount": 3_799_51},
    )
    assert too_much.status_code == 422
    assert too_much.headers["content-type"] == "application/problem+json"
    assert too_much.json()["code"] == "insufficient_funds"
    over_payout = await post(
        api, merchant, f"/v1/wallets/{shop}/payouts", "payout-1", {"amount": 1_200_51}
    )
    assert (over_payout.status_code, over_payout.json()["code"]) == (422, "insufficient_funds")
    assert await ledger_state(pg) == before

    # A refused request frees its key: the corrected retry with the same key succeeds.
    paid = await post(
        api, merchant, f"/v1/wallets/{shop}/payouts", "payout-1", {"amount": 1_200_50}
    )
    assert paid.status_code == 201, paid.text
    assert (await wallet(api, merchant, shop))["balance"] == 0

    # Bad input is a problem too, never a 500.
    bad = await post(api, merchant, f"/v1/wallets/{asha}/loads", "load-bad", {"amount": 1.5})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_amount")
    no_key = await api.post(
        f"/v1/wallets/{asha}/loads", json={"amount": 1}, headers=merchant.headers
    )
    assert (no_key.status_code, no_key.json()["code"]) == (400, "missing_idempotency_key")
    over_limit = await post(
        api, merchant, f"/v1/wallets/{asha}/loads", "load-big", {"amount": 2_00_000_00}
    )
    assert (over_limit.status_code, over_limit.json()["code"]) == (422, "wallet_limit_exceeded")
    assert await reconcile(pg) == []


async def test_same_key_replays_even_after_redis_forgets_and_another_body_is_refused(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool, api_settings: ApiSettings
) -> None:
    _, asha = await open_pair(api, merchant)
    first = await post(api, merchant, f"/v1/wallets/{asha}/loads", "load-7", {"amount": 700_00})
    again = await post(api, merchant, f"/v1/wallets/{asha}/loads", "load-7", {"amount": 700_00})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = await post(api, merchant, f"/v1/wallets/{asha}/loads", "load-7", {"amount": 1})
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")

    await redis_forgets(api_settings, merchant, "load-7")  # the fast path lost the key
    postings = await pg.fetchval("SELECT count(*) FROM postings")
    replay = await post(api, merchant, f"/v1/wallets/{asha}/loads", "load-7", {"amount": 700_00})
    assert (replay.status_code, replay.json()) == (201, first.json())
    assert await pg.fetchval("SELECT count(*) FROM postings") == postings
    assert (await wallet(api, merchant, asha))["balance"] == 700_00
    # The book of record still knows the key: another body under it is refused.
    await redis_forgets(api_settings, merchant, "load-7")
    reused = await post(api, merchant, f"/v1/wallets/{asha}/loads", "load-7", {"amount": 1})
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    assert (await wallet(api, merchant, asha))["balance"] == 700_00


async def redis_forgets(settings: ApiSettings, merchant: Merchant, key: str) -> None:
    redis = aioredis.from_url(settings.redis_url)
    await redis.delete(f"idem:{merchant.merchant_id}:{key}")
    await redis.aclose()


async def test_holds_post_partially_void_and_refuse_twice(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool
) -> None:
    shop, asha = await open_pair(api, merchant)
    await post(api, merchant, f"/v1/wallets/{asha}/loads", "load-1", {"amount": 1_000_00})
    hold_body = {"amount": 600_00, "ttl_seconds": 3600, "destination_wallet": shop}
    placed = await post(api, merchant, f"/v1/wallets/{asha}/holds", "hold-1", hold_body)
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert (hold["status"], hold["amount"]) == ("pending", 600_00)
    shown = await wallet(api, merchant, asha)
    assert (shown["balance"], shown["held"], shown["available"]) == (1_000_00, 600_00, 400_00)
    # The held money cannot be spent twice.
    blocked = await post(api, merchant, f"/v1/wallets/{asha}/payouts", "p-1", {"amount": 400_01})
    assert (blocked.status_code, blocked.json()["code"]) == (422, "insufficient_funds")

    posted = await post(
        api, merchant, f"/v1/wallet_holds/{hold['id']}/post", "post-1", {"amount": 450_00}
    )
    assert posted.status_code == 200, posted.text
    shown = await wallet(api, merchant, asha)
    assert (shown["balance"], shown["held"], shown["available"]) == (550_00, 0, 550_00)
    assert (await wallet(api, merchant, shop))["balance"] == 450_00
    again = await post(api, merchant, f"/v1/wallet_holds/{hold['id']}/void", "void-1", {})
    assert (again.status_code, again.json()["code"]) == (409, "hold_already_settled")

    second = await post(
        api, merchant, f"/v1/wallets/{asha}/holds", "hold-2", {"amount": 50_00, "ttl_seconds": 60}
    )
    voided = await post(api, merchant, f"/v1/wallet_holds/{second.json()['id']}/void", "v-2", {})
    assert voided.status_code == 200, voided.text
    state = await api.get(f"/v1/wallet_holds/{second.json()['id']}", headers=merchant.headers)
    assert state.json()["status"] == "voided"
    assert (await wallet(api, merchant, asha))["available"] == 550_00
    assert await reconcile(pg) == []


async def test_another_merchant_cannot_see_or_move_the_wallets(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool
) -> None:
    shop, asha = await open_pair(api, merchant)
    await post(api, merchant, f"/v1/wallets/{asha}/loads", "load-1", {"amount": 100_00})
    other = Merchant("m_other_shop", await create_merchant(pg, "m_other_shop", "Other", "29"))
    assert (await api.get(f"/v1/wallets/{asha}", headers=other.headers)).status_code == 404
    theft = await post(api, other, f"/v1/wallets/{asha}/payouts", "steal-1", {"amount": 100_00})
    assert (theft.status_code, theft.json()["code"]) == (404, "wallet_not_found")
    # Its own customer "asha_01" is a different wallet.
    own = await post(
        api, other, "/v1/wallets", "open-asha", {"owner": "customer", "customer_id": "asha_01"}
    )
    assert own.status_code == 201 and own.json()["id"] != asha
    # Nor can it pay into the first merchant's wallets.
    await post(api, other, f"/v1/wallets/{own.json()['id']}/loads", "load-1", {"amount": 10_00})
    sneak = {"to_wallet": shop, "amount": 10_00}
    push = await post(api, other, f"/v1/wallets/{own.json()['id']}/transfers", "t-1", sneak)
    assert (push.status_code, push.json()["code"]) == (404, "wallet_not_found")
    assert (await wallet(api, merchant, asha))["balance"] == 100_00


async def test_an_expired_hold_is_released_by_the_worker(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool, worker: WorkerProcess
) -> None:
    _, asha = await open_pair(api, merchant)
    await post(api, merchant, f"/v1/wallets/{asha}/loads", "load-1", {"amount": 300_00})
    placed = await post(
        api, merchant, f"/v1/wallets/{asha}/holds", "hold-1", {"amount": 250_00, "ttl_seconds": 1}
    )
    hold_id = placed.json()["id"]
    assert (await wallet(api, merchant, asha))["available"] == 50_00

    async def released() -> bool:
        shown = await api.get(f"/v1/wallet_holds/{hold_id}", headers=merchant.headers)
        return bool(shown.json()["status"] == "expired")

    await wait_for(released, timeout_s=90, what=f"the sweep\n{worker.log_tail()}")
    shown = await wallet(api, merchant, asha)
    assert (shown["balance"], shown["held"], shown["available"]) == (300_00, 0, 300_00)
    late = await post(api, merchant, f"/v1/wallet_holds/{hold_id}/post", "post-1", {})
    assert (late.status_code, late.json()["code"]) == (409, "hold_expired")
    kinds = await pg.fetch("SELECT kind FROM journal_entries ORDER BY created_at")
    assert [r["kind"] for r in kinds] == ["wallet_load", "wallet_hold", "wallet_expire_hold"]
    assert await reconcile(pg) == []
