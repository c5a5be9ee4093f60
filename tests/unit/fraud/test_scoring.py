"""Batch scoring: exact features in batches, rules with and without a champion, shadow scores
that never decide, late payments, and what authorization makes of each decision."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fraud.features import FEATURES, HANDBOOK_FEATURES, compute_features, describe
from fraud.registry import LoadedModel, ModelRegistry
from fraud.rules import parse_rule_set
from fraud.scoring import NO_RULES, FeatureState, Models, score_batch, transaction_for
from models.events import PaymentRequested
from models.topics import PAYMENTS_REQUESTED
from streams.decisions import Decided
from streams.lifecycle import Status
from streams.scoring import authorization_plan, score_request

RULES = parse_rule_set(
    """
version: 1
thresholds: {review: 0.5, block: 0.9}
rules:
  - name: big
    expression: amount_minor >= 500000
    action: block
  - name: busy_customer
    expression: customer_nb_tx_1d >= 3
    action: review
"""
)
T0 = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)


def tx(i: int, customer: str, amount: int) -> dict[str, Any]:
    return {
        "transaction_id": f"pay_{i}",
        "customer_id": customer,
        "terminal_id": "kirana_mart",
        "amount_minor": amount,
        "currency": "INR",
        "method": "upi",
        "card_bin": None,
        "card_last4": None,
        "vpa": f"{customer}@okhdfc",
        "device_id": None,
        "ip": None,
    }


def fitted(features: list[str], seed: int, flip: bool = False) -> Pipeline:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, len(features)))
    y = (x[:, 0] > 0.5).astype(int)
    model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    model.fit(x, 1 - y if flip else y)
    return model


@pytest.fixture
def models(tmp_path: Path) -> Models:
    registry = ModelRegistry(tmp_path / "registry")
    features = list(HANDBOOK_FEATURES)
    meta = {
        "features": features,
        "feature_definitions": describe(features),
        "training_window": {"start": "2018-05-10", "end": "2018-05-16"},
        "metrics": {"auc_roc": 0.8},
        "data": {"sha256": hashlib.sha256(b"x").hexdigest()},
    }
    registry.register(fitted(features, 1), meta, who="t")
    registry.register(fitted(features, 1, flip=True), meta, who="t")
    champion, challenger = registry.load_live()
    return Models(champion, challenger)


def test_batched_features_equal_the_offline_definitions(small_frame: pd.DataFrame) -> None:
    """Fed in batches whose rows arrive shuffled, every feature equals the offline value."""
    frame = small_frame.head(3_000).reset_index(drop=True)
    frame = frame.assign(transaction_id=frame["transaction_id"].astype(int))
    offline = compute_features(frame, list(FEATURES))
    state = FeatureState()
    rng = np.random.default_rng(5)
    out: dict[int, dict[str, float | int]] = {}
    for start in range(0, len(frame), 250):
        rows = frame.iloc[start : start + 250]
        batch = [
            (row._asdict(), row.tx_datetime.to_pydatetime())
            for row in rows.drop(columns=["tx_datetime"])
            .assign(tx_datetime=rows["tx_datetime"])
            .itertuples(index=False)
        ]
        # Distinct timestamps in the simulation, so any arrival order has one time order.
        shuffled = [batch[i] for i in rng.permutation(len(batch))]
        for scored in score_batch(state, shuffled, NO_RULES, Models()):
            out[int(scored.payment_id)] = scored.features
    for name in FEATURES:
        online = np.array([out[int(t)][name] for t in frame["transaction_id"]], dtype=np.float64)
        np.testing.assert_array_equal(online, offline[name].to_numpy(dtype=np.float64), name)


def test_rules_decide_without_a_champion() -> None:
    batch = [(tx(i, "c1", 100_00), T0 + dt.timedelta(minutes=i)) for i in range(3)]
    batch.append((tx(3, "c2", 6_000_00), T0 + dt.timedelta(minutes=4)))
    scored = score_batch(FeatureState(), batch, RULES, Models())
    assert [s.decision for s in scored] == ["allow", "allow", "review", "block"]
    assert [s.reason for s in scored] == ["", "", "busy_customer", "big"]
    assert all(s.score is None and s.model_version is None for s in scored)
    assert scored[2].rule_hits == ("busy_customer",)


def test_the_challenger_is_logged_and_never_decides(models: Models) -> None:
    assert models.champion is not None and models.challenger is not None
    batch = [
        (tx(i, f"c{i % 4}", 150_00 + i * 7_000), T0 + dt.timedelta(minutes=i)) for i in range(40)
    ]
    alone = score_batch(FeatureState(), batch, RULES, Models(models.champion))
    shadowed = score_batch(FeatureState(), batch, RULES, models)
    assert [s.decision for s in shadowed] == [s.decision for s in alone]
    assert [s.score for s in shadowed] == [s.score for s in alone]
    assert all(s.shadow_version == models.challenger.version for s in shadowed)
    shadow = np.array([s.shadow_score for s in shadowed], dtype=np.float64)
    champion = np.array([s.score for s in shadowed], dtype=np.float64)
    assert not np.allclose(shadow, champion)  # it really scored differently

    class Exploding:
        classes_ = np.array([0, 1])

        def predict_proba(self, x: Any) -> Any:
            raise RuntimeError("challenger exploded")

    broken = Models(models.champion, LoadedModel(models.challenger.info, Exploding()))
    failed = score_batch(FeatureState(), batch, RULES, broken)
    assert [s.decision for s in failed] == [s.decision for s in alone]
    assert all(s.shadow_score is None and "exploded" in (s.shadow_error or "") for s in failed)


def test_a_late_payment_is_fed_at_the_newest_time_and_the_state_round_trips() -> None:
    state = FeatureState()
    score_batch(state, [(tx(1, "c1", 100_00), T0)], NO_RULES, Models())
    [late] = score_batch(
        state, [(tx(2, "c1", 100_00), T0 - dt.timedelta(seconds=3))], NO_RULES, Models()
    )
    assert late.feature_time == T0 and late.features["customer_nb_tx_1d"] == 2
    restored = FeatureState.from_json(state.to_json())
    [after] = score_batch(
        restored, [(tx(3, "c1", 100_00), T0 + dt.timedelta(hours=1))], NO_RULES, Models()
    )
    assert after.features["customer_nb_tx_1d"] == 3


def _request(name: str) -> PaymentRequested:
    path = next(p for p in PAYMENTS_REQUESTED.examples() if p.name == name)
    event = PAYMENTS_REQUESTED.decode(path.read_bytes())
    assert isinstance(event, PaymentRequested)
    return event


@pytest.mark.parametrize(
    ("decision", "status", "captured"),
    [
        ("allow", Status.CAPTURED, True),
        ("review", Status.AUTHORIZED, False),
        ("block", Status.DECLINED, False),
    ],
)
def test_authorization_honours_the_risk_decision(
    decision: str, status: Status, captured: bool
) -> None:
    scored = score_request(_request("payment.requested.v1.json"))
    plan = authorization_plan(scored.model_copy(update={"decision": decision}))
    assert isinstance(plan, Decided)
    assert plan.state.status == status
    types = [e.event_type for e in plan.events]
    assert ("payment.captured" in types) == captured
    if decision == "block":
        assert [e.decline_code for e in plan.events if e.event_type == "payment.declined"] == [
            "risk_blocked"
        ]


def test_transaction_for_keeps_only_bin_and_last4_of_a_card() -> None:
    request = _request("payment.requested.v1.card.json")
    transaction = transaction_for(request)
    assert transaction["terminal_id"] == request.merchant_id
    assert transaction["card_bin"] == request.method.bin  # type: ignore[union-attr]
    assert "token" not in transaction and transaction["transaction_id"] == request.payment_id
