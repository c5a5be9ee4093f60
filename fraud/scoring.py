"""Batch fraud scoring: requested payments and the online feature state in, decisions out.

:func:`score_batch` is what the streaming scorer (``streams/scoring.py``) runs on every batch of
``payments.requested``, and what ``bench/fraud_scoring.py`` measures.  For each payment it

1. computes every feature of :data:`fraud.features.FEATURES` with :class:`FeatureState` (the
   :class:`fraud.online.OnlineFeatures` state, exactly the offline definitions);
2. scores the batch with the champion model (one ``predict_proba`` call per batch) and, in
   shadow, with the challenger (logged by the caller, never acted on: a challenger that fails
   or scores everything 1.0 changes nothing here);
3. applies the analysts' rule set (:mod:`fraud.rules`) to features, payment fields and score:
   allow / review / block, the deciding reason and every rule that hit.

No I/O: the models, the rule set and the state are passed in; the state is updated in place.

**Without a champion** (an empty registry, say on a fresh machine) scoring still works on the
rules alone: ``score`` is None, a rule comparing ``score`` is false (the rules see NaN) and the
score thresholds never fire.  So a deployment can start with rules and add a model later.

**Time order.**  Features need transactions in time order, but a batch interleaves Kafka
partitions whose payments were stamped by different API processes.  A batch is fed in
``occurred_at`` order, and a payment older than the newest one already fed is fed at that newest
time instead (its feature time, recorded with its score): windows then count it as a few
milliseconds later than it happened, which moves no feature that matters and keeps the state
consistent.  Results come back in the input order.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fraud.features import FEATURES
from fraud.online import OnlineFeatures
from fraud.registry import FloatArray, LoadedModel
from fraud.rules import ACTIONS, Action, RuleSet, parse_rule_set
from fraud.training import fraud_scores
from models.events import PaymentRequested
from models.methods import CardMethod, UpiMethod

#: Payment fields (strings) a rule may read besides the features and ``score``.
STRING_FIELDS: tuple[str, ...] = (
    "method",
    "currency",
    "card_bin",
    "card_last4",
    "vpa",
    "device_id",
    "ip",
)

#: The rule set used when none is configured: decides nothing (everything is allowed).
NO_RULES: RuleSet = parse_rule_set("version: 1\nrules: []\n", source="<no rules>")


def transaction_for(request: PaymentRequested) -> dict[str, Any]:
    """The feature inputs of a requested payment (without its time; see :func:`score_batch`).

    The merchant is the terminal; a card is its BIN and last four digits (never more, PCI DSS);
    a UPI payment's VPA is its own key.  ``device_id`` and ``ip`` are the intake's keyed tokens
    (``dev_…``, ``ip_…``; api/pii.py), never the raw values: equal devices and IPs have equal
    tokens, so the velocity and novelty features count them as the offline definitions do; a
    request without them (or from before they existed) gives 0 for those features.
    ``transaction_id`` is the payment id, so a label given later
    (:meth:`FeatureState.observe_label`) finds it.
    """
    method = request.method
    return {
        "transaction_id": request.payment_id,
        "customer_id": request.customer_id,
        "terminal_id": request.merchant_id,
        "amount_minor": request.amount.minor,
        "currency": request.amount.currency,
        "method": method.type,
        "card_bin": method.bin if isinstance(method, CardMethod) else None,
        "card_last4": method.last4 if isinstance(method, CardMethod) else None,
        "vpa": method.vpa if isinstance(method, UpiMethod) else None,
        "device_id": request.device_id,
        "ip": request.ip,
    }


@dataclass
class FeatureState:
    """The online feature state of every key, plus the newest feature time fed (the clamp for
    late payments).  JSON round-trips with :meth:`to_json` / :meth:`from_json`."""

    online: OnlineFeatures = field(default_factory=OnlineFeatures)
    watermark: dt.datetime | None = None

    def feed(self, transaction: Mapping[str, Any], when: dt.datetime) -> dict[str, float | int]:
        """Add one payment at ``when`` (moved up to the watermark if older); its features."""
        if self.watermark is not None and when < self.watermark:
            when = self.watermark
        features = self.online.update_and_compute({**transaction, "tx_datetime": when})
        self.watermark = when
        return features

    def observe_label(self, payment_id: str, is_fraud: int) -> bool:
        """A label for a payment already fed (terminal risk features read it after the delay)."""
        return self.online.observe_label(payment_id, is_fraud)

    def to_json(self) -> str:
        return json.dumps(
            {
                "watermark": None if self.watermark is None else self.watermark.isoformat(),
                "online": self.online.to_json(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FeatureState:
        data = json.loads(text)
        mark = data["watermark"]
        return cls(
            OnlineFeatures.from_json(data["online"]),
            None if mark is None else dt.datetime.fromisoformat(mark),
        )


@dataclass(frozen=True)
class ScoredPayment:
    """One payment's scoring outcome.  ``decision`` is what authorization acts on; ``shadow_*``
    is the challenger's, for analysts only."""

    payment_id: str
    feature_time: dt.datetime  # the time the features were computed at (see module docstring)
    decision: Action
    reason: str  # deciding rule, "score>=block", "score>=review" or ""
    score: float | None  # champion's fraud probability; None without a champion
    model_version: str | None
    rule_hits: tuple[str, ...]  # every rule that hit, by priority
    ruleset_sha256: str
    features: dict[str, float | int]
    shadow_version: str | None = None
    shadow_score: float | None = None
    shadow_error: str | None = None


@dataclass(frozen=True)
class Models:
    """The deployed models: the champion (acted on) and the challenger (shadow); both optional."""

    champion: LoadedModel | None = None
    challenger: LoadedModel | None = None


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def batch_columns(
    features: Sequence[Mapping[str, float | int]],
    transactions: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The column arrays :func:`score_features` reads: every feature and ``amount_minor`` as
    float64 (exact for any amount in paise; rules and models decide, they never compute money),
    the :data:`STRING_FIELDS` as object arrays with a missing value as ``""`` (as the rules
    expect)."""
    columns: dict[str, Any] = {
        name: np.fromiter((f[name] for f in features), dtype=np.float64, count=len(features))
        for name in FEATURES
    }
    columns["amount_minor"] = np.fromiter(
        (t["amount_minor"] for t in transactions), dtype=np.float64, count=len(transactions)
    )
    for name in STRING_FIELDS:
        values = [t.get(name) for t in transactions]
        columns[name] = np.array(["" if v is None else str(v) for v in values], dtype=object)
    return columns


def _model_scores(model: LoadedModel, columns: Mapping[str, Any]) -> FloatArray:
    """The model's fraud probabilities; its feature columns are taken by name, in its order
    (``KeyError`` naming a column it needs that the batch lacks)."""
    matrix = np.column_stack([columns[name] for name in model.info.features])
    return fraud_scores(model.pipeline, matrix)


def score_features(
    columns: Mapping[str, Any], n: int, rules: RuleSet, models: Models
) -> tuple[list[Action], list[str], list[tuple[str, ...]], Any, Any, str | None]:
    """Score and decide a batch of ``n`` payments whose features are already computed.

    ``columns`` is what :func:`batch_columns` gives.  Returns per payment the action, reason
    and rule hits, the champion's scores (NaN without a champion), the challenger's scores
    (None without a challenger or when it failed) and the challenger's error.  The champion's
    errors propagate; the challenger's never do (shadow scoring must not break live scoring).
    """
    champion, challenger = models.champion, models.challenger
    scores = np.full(n, np.nan) if champion is None else _model_scores(champion, columns)
    shadow: Any = None
    shadow_error: str | None = None
    if challenger is not None:
        try:
            shadow = _model_scores(challenger, columns)
        except Exception as exc:  # the challenger must never break live scoring
            shadow_error = f"{type(exc).__name__}: {exc}"
    decisions = rules.decide({**columns, "score": scores}, n)
    ordered = [r.name for r in rules.ordered()]
    hits: list[tuple[str, ...]] = [()] * n
    for name in reversed(ordered):  # only rows a rule hit pay for it
        for i in np.flatnonzero(decisions.hits[name]):
            hits[i] = (name, *hits[i])
    actions = [ACTIONS[int(a)] for a in decisions.action]
    reasons = [str(r) for r in decisions.reason]
    return actions, reasons, hits, scores, shadow, shadow_error


def score_batch(
    state: FeatureState,
    batch: Sequence[tuple[Mapping[str, Any], dt.datetime]],
    rules: RuleSet,
    models: Models,
) -> list[ScoredPayment]:
    """Features, scores and decisions for ``batch`` (``(transaction, occurred_at)`` pairs; a
    transaction as :func:`transaction_for` gives it), in the input order.

    Updates ``state``: every payment of the batch is fed once, in time order.  Raises what the
    state raises for a malformed transaction (``TypeError``/``KeyError``/``ValueError``, state
    unchanged for that payment) and what the champion raises; never because of the challenger.
    """
    if not batch:
        return []
    order = sorted(range(len(batch)), key=lambda i: batch[i][1])
    features: list[dict[str, float | int]] = [{} for _ in batch]
    times: list[dt.datetime] = [batch[0][1]] * len(batch)
    for i in order:
        transaction, when = batch[i]
        features[i] = state.feed(transaction, when)
        times[i] = state.watermark or when
    columns = batch_columns(features, [t for t, _ in batch])
    actions, reasons, hits, scores, shadow, shadow_error = score_features(
        columns, len(batch), rules, models
    )
    champion, challenger = models.champion, models.challenger
    out = []
    for i, (transaction, _) in enumerate(batch):
        out.append(
            ScoredPayment(
                payment_id=str(transaction["transaction_id"]),
                feature_time=times[i],
                decision=actions[i],
                reason=reasons[i],
                score=_finite(float(scores[i])),
                model_version=None if champion is None else champion.version,
                rule_hits=hits[i],
                ruleset_sha256=rules.sha256,
                features=features[i],
                shadow_version=None if challenger is None else challenger.version,
                shadow_score=None if shadow is None else _finite(float(shadow[i])),
                shadow_error=shadow_error,
            )
        )
    return out
