"""Streaming fraud scoring end to end, with a real worker, Kafka and PostgreSQL.

A rule sends a payment to review: it is authorized but not captured until an analyst approves
it (then captured) or declines it (then voided).  A block rule declines a payment with
``risk_blocked``.  The challenger model is scored in shadow on every payment and logged, and
never changes a decision: here it is trained on inverted labels, so it calls ordinary payments
fraud, and they are captured all the same.  Labels flow into an exported training file, and the
feature state survives a SIGKILL of the worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest

from fraud.bootstrap import BOOTSTRAP_SIMULATION, train_on_simulation
from fraud.dataset import read_transactions
from fraud.features import HANDBOOK_FEATURES, compute_features
from fraud.registry import ModelRegistry
from fraud.simulator import simulate
from fraud.training import build_model
from models.config import REPO_ROOT, ServiceEndpoints
from tests.conftest import Merchant, WorkerProcess, wait_for
from tests.integration.ledger_checks import assert_ledger_invariants
from warehouse.fraud_store import create_analyst, decision_counts

pytestmark = pytest.mark.integration

RULES = """\
version: 1
thresholds:
  block: 0.9   # the champion's score; the challenger's never counts
rules:
  - name: card_testing_bin
    expression: card_bin == "400012"
    action: block
  - name: watched_vpa
    expression: vpa == "watched@okaxis"
    action: review
"""
UPI = {"type": "upi", "vpa": "asha.k@okhdfc"}
WATCHED = {"type": "upi", "vpa": "watched@okaxis"}
BLOCKED_CARD = {"type": "card", "token": "tok_visa_4242", "bin": "400012", "last4": "4242"}
BLOCK_THRESHOLD = 0.9


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A champion trained on simulated payments and a challenger trained on the same payments
    with every label inverted (it scores ordinary payments as fraud)."""
    root = tmp_path_factory.mktemp("fraud") / "registry"
    registry = ModelRegistry(root)
    champion, meta = train_on_simulation()
    registry.register(champion, meta, who="test", alias="auto")
    frame = simulate(BOOTSTRAP_SIMULATION)
    features = compute_features(frame, list(HANDBOOK_FEATURES)).to_numpy(dtype=np.float64)
    challenger = build_model("logreg")
    challenger.fit(features, 1 - frame["is_fraud"].to_numpy())
    registry.register(challenger, meta, who="test", alias="challenger")
    return root


@pytest.fixture
def scoring_worker(
    pg_dsn: str, topic_prefix: str, tmp_path: Path, registry_dir: Path
) -> Iterator[WorkerProcess]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIZZPAY_")}
    env.update(
        RIZZPAY_PG_DSN=pg_dsn,
        RIZZPAY_TOPIC_PREFIX=topic_prefix,
        RIZZPAY_KAFKA_BOOTSTRAP=ServiceEndpoints().kafka_bootstrap,
        RIZZPAY_LOG_LEVEL="info",
        RIZZPAY_FRAUD_RULES=str(rules),
        RIZZPAY_FRAUD_REGISTRY=str(registry_dir),
        RIZZPAY_AUTHORIZER="rules",  # RizzPay's own verdicts, no processor sandbox
        FAUST_DATADIR=str(tmp_path / "faust"),
    )
    process = WorkerProcess(env, tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()


def rizzpay(pg_dsn: str, *argv: str) -> str:
    """Run the ``rizzpay`` CLI against the test's database; its stdout."""
    env = {**os.environ, "RIZZPAY_PG_DSN": pg_dsn}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def pay(
    api: httpx.AsyncClient, merchant: Merchant, key: str, method: dict[str, Any], customer: str
) -> str:
    body = {
        "amount": 100_00,  # ₹100: the models see an ordinary amount
        "currency": "INR",
        "method": method,
        "customer_id": customer,
    }
    response = await api.post(
        "/v1/payments", json=body, headers={**merchant.headers, "Idempotency-Key": key}
    )
    assert response.status_code == 202, response.text
    payment_id: str = response.json()["id"]
    return payment_id


async def payment_row(pg: asyncpg.Pool, payment_id: str, status: str) -> asyncpg.Record:
    async def probe() -> asyncpg.Record | None:
        row = await pg.fetchrow("SELECT * FROM payments WHERE payment_id = $1", payment_id)
        return row if row is not None and row["status"] == status else None

    row: asyncpg.Record = await wait_for(
        probe, timeout_s=90, what=f"{payment_id} to become {status}"
    )
    return row


async def score_of(pg: asyncpg.Pool, payment_id: str) -> asyncpg.Record:
    async def probe() -> asyncpg.Record | None:
        row: asyncpg.Record | None = await pg.fetchrow(
            "SELECT *, features::text AS f FROM fraud_scores WHERE payment_id = $1", payment_id
        )
        return row

    row: asyncpg.Record = await wait_for(probe, timeout_s=90, what=f"{payment_id} scored")
    return row


async def test_review_block_and_shadow_scoring_end_to_end(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    pg_dsn: str,
    scoring_worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    allowed = await pay(api, merchant, "fr-1", UPI, "cust_a")
    to_approve = await pay(api, merchant, "fr-2", WATCHED, "cust_b")
    to_decline = await pay(api, merchant, "fr-3", WATCHED, "cust_c")
    blocked = await pay(api, merchant, "fr-4", BLOCKED_CARD, "cust_d")

    # allow: captured at once; review: authorized and held; block: declined risk_blocked.
    await payment_row(pg, allowed, "captured")
    await payment_row(pg, to_approve, "authorized")
    await payment_row(pg, to_decline, "authorized")
    declined = await payment_row(pg, blocked, "declined")
    assert declined["decline_code"] == "risk_blocked"
    shown = (await api.get(f"/v1/payments/{blocked}", headers=merchant.headers)).json()
    assert shown["decline_code"] == "risk_blocked"

    scores = {p: await score_of(pg, p) for p in (allowed, to_approve, to_decline, blocked)}
    assert [scores[p]["decision"] for p in scores] == ["allow", "review", "review", "block"]
    assert scores[to_approve]["reason"] == "watched_vpa"
    assert list(scores[blocked]["rule_hits"]) == ["card_testing_bin"]
    # Shadow: the challenger scored every payment, and called the allowed one fraud (above
    # the block threshold) while the champion did not; the payment was captured regardless.
    for row in scores.values():
        assert (row["model_version"], row["shadow_model_version"]) == ("v0001", "v0002")
        assert row["score"] is not None and row["shadow_score"] is not None
    assert scores[allowed]["score"] < BLOCK_THRESHOLD <= scores[allowed]["shadow_score"]
    counts = await decision_counts(pg, list(scores))  # what `make run` prints
    assert counts == {"allow": 1, "review": 2, "block": 1}

    # The analyst's queue: merchant keys do not open it.
    refused = await api.get("/v1/reviews", headers=merchant.headers)
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_analyst_token"
    token = rizzpay(pg_dsn, "fraud", "analysts", "create", "asha.k", "--name", "Asha K").strip()
    assert token.startswith("rza_")
    analyst = {"Authorization": f"Bearer {token}"}
    queue = (await api.get("/v1/reviews", headers=analyst)).json()
    listed = {r["payment_id"]: r for r in queue["data"]}
    assert set(listed) == {to_approve, to_decline}
    assert listed[to_approve]["risk"]["rule_hits"] == ["watched_vpa"]
    assert listed[to_approve]["amount"] == 100_00

    # While held, the merchant cannot capture it around the analyst.
    bypass = await api.post(
        f"/v1/payments/{to_approve}/capture",
        headers={**merchant.headers, "Idempotency-Key": "bypass-review"},
        json={},
    )
    assert bypass.status_code == 409 and bypass.json()["code"] == "payment_under_review"
    approved = await api.post(f"/v1/reviews/{to_approve}/approve", headers=analyst, json={})
    assert approved.status_code == 200, approved.text
    assert approved.json()["command"] == "payment.capture_requested"
    refusal = await api.post(f"/v1/reviews/{to_approve}/decline", headers=analyst, json={})
    assert refusal.status_code == 409 and refusal.json()["code"] == "review_already_decided"
    voided = await api.post(
        f"/v1/reviews/{to_decline}/decline", headers=analyst, json={"note": "stolen phone"}
    )
    assert voided.status_code == 200 and voided.json()["command"] == "payment.void_requested"
    await payment_row(pg, to_approve, "captured")
    await payment_row(pg, to_decline, "voided")
    assert (await api.get("/v1/reviews", headers=analyst)).json()["data"] == []
    await assert_ledger_invariants(pg)

    # Labels flow back into training data.
    for payment_id, is_fraud in ((to_decline, True), (allowed, False)):
        labelled = await api.post(
            f"/v1/reviews/{payment_id}/label", headers=analyst, json={"is_fraud": is_fraud}
        )
        assert labelled.status_code == 200, labelled.text
    export = tmp_path / "labels.csv"
    rizzpay(pg_dsn, "fraud", "labels", "export", "--out", str(export))
    frame = read_transactions(export)  # what `rizzpay fraud train` reads
    labels = dict(zip(frame["transaction_id"], frame["is_fraud"], strict=True))
    assert labels == {allowed: 0, to_approve: 0, to_decline: 1, blocked: 0}

    # The feature state survives a crash: after SIGKILL the worker rebuilds it from the scores,
    # so customer A's second payment counts the first.
    scoring_worker.kill()
    scoring_worker.start()
    again = await pay(api, merchant, "fr-5", UPI, "cust_a")
    await payment_row(pg, again, "captured")
    features = json.loads((await score_of(pg, again))["f"])
    assert features["customer_nb_tx_1d"] == 2
    assert features["customer_avg_amount_1d"] == 100.0


async def test_the_review_api_refuses_bad_requests_with_stable_codes(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool
) -> None:
    token = await create_analyst(pg, "ravi", "Ravi")
    analyst = {"Authorization": f"Bearer {token}"}
    unknown = "pay_" + "a" * 26
    cases = [
        (api.get("/v1/reviews"), 401, "unauthenticated"),
        (api.get("/v1/reviews", headers=merchant.headers), 401, "invalid_analyst_token"),
        (api.get("/v1/reviews?limit=0", headers=analyst), 400, "invalid_limit"),
        (api.get("/v1/reviews?cursor=yesterday", headers=analyst), 400, "invalid_cursor"),
        (api.get(f"/v1/reviews/{unknown}", headers=analyst), 404, "review_not_found"),
        (api.post(f"/v1/reviews/{unknown}/approve", headers=analyst), 404, "review_not_found"),
        (
            api.post(f"/v1/reviews/{unknown}/label", headers=analyst, json={"is_fraud": True}),
            404,
            "payment_not_scored",
        ),
        (
            api.post(f"/v1/reviews/{unknown}/label", headers=analyst, json={"is_fraud": "yes"}),
            422,
            "validation_error",
        ),
    ]
    for request, status, code in cases:
        response = await request
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert (await api.get("/v1/reviews", headers=analyst)).json()["data"] == []
