"""Fraud scores, analysts, the review queue and labels in PostgreSQL (migration 0008).

The scorer (``streams/scoring.py``) writes scores and opens reviews; the review API
(``api/reviews.py``) and ``rizzpay fraud`` read them, decide reviews and write labels.  Writes are
idempotent: a score or a review is inserted once per payment (``ON CONFLICT DO NOTHING``), a
review is decided once (only while open), a label keeps its latest value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

ANALYST_TOKEN_PREFIX = "rza_"  # noqa: S105 (a prefix, not a secret)
#: How far back the scorer's feature state reaches: the longest window + delay (37 days for
#: terminal risk) and a day of margin.
FEATURE_HISTORY = dt.timedelta(days=38)
#: At most this many reviews per page of the queue.
REVIEW_PAGE_SIZE_MAX = 200


@dataclass(frozen=True)
class ScoreRow:
    """What the scorer records for one payment (a row of ``fraud_scores``)."""

    payment_id: str
    merchant_id: str
    request_fingerprint: str
    occurred_at: dt.datetime
    feature_time: dt.datetime
    scored_at: dt.datetime
    amount_minor: int
    currency: str
    decision: str
    reason: str
    score: float | None
    model_version: str | None
    rule_hits: tuple[str, ...]
    ruleset_sha256: str
    features: dict[str, float | int]
    shadow_model_version: str | None
    shadow_score: float | None
    shadow_error: str | None
    transaction: dict[str, Any]
    event: bytes  # the PaymentScored as published (JSON)


async def scored_events(
    conn: asyncpg.Connection | asyncpg.Pool, payment_ids: Sequence[str]
) -> dict[str, tuple[str, bytes]]:
    """Payments already scored among ``payment_ids``: id -> (request fingerprint, event JSON)."""
    rows = await conn.fetch(
        """SELECT payment_id, request_fingerprint, event::text AS event
           FROM fraud_scores WHERE payment_id = ANY($1::text[])""",
        list(payment_ids),
    )
    return {r["payment_id"]: (r["request_fingerprint"], r["event"].encode()) for r in rows}


async def record_scores(conn: asyncpg.Connection, rows: Sequence[ScoreRow]) -> int:
    """Insert scores in the given (feed) order and open a review for each ``review`` decision,
    in one transaction.  A payment already scored is left as it was.  Returns rows inserted."""
    if not rows:
        return 0
    async with conn.transaction():
        inserted = await conn.fetch(
            """INSERT INTO fraud_scores (payment_id, merchant_id, request_fingerprint,
                   occurred_at, feature_time, scored_at, amount_minor, currency, decision, reason,
                   score, model_version, rule_hits, ruleset_sha256, features,
                   shadow_model_version, shadow_score, shadow_error, transaction, event)
               SELECT a, b, c, d, e, f, g, h, i, j, k, l,
                      ARRAY(SELECT jsonb_array_elements_text(m::jsonb)), n, o, p, q, s, t, u
               FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                   $5::timestamptz[], $6::timestamptz[], $7::bigint[], $8::text[], $9::text[],
                   $10::text[], $11::float8[], $12::text[], $13::text[], $14::text[],
                   $15::jsonb[], $16::text[], $17::float8[], $18::text[], $19::jsonb[],
                   $20::jsonb[]) WITH ORDINALITY AS r(a, b, c, d, e, f, g, h, i, j, k, l, m, n,
                   o, p, q, s, t, u, ord)
               ORDER BY ord
               ON CONFLICT (payment_id) DO NOTHING
               RETURNING payment_id, decision, scored_at""",
            [r.payment_id for r in rows],
            [r.merchant_id for r in rows],
            [r.request_fingerprint for r in rows],
            [r.occurred_at for r in rows],
            [r.feature_time for r in rows],
            [r.scored_at for r in rows],
            [r.amount_minor for r in rows],
            [r.currency for r in rows],
            [r.decision for r in rows],
            [r.reason for r in rows],
            [r.score for r in rows],
            [r.model_version for r in rows],
            # text[][] cannot be ragged: each row's hits travel as a JSON array, unpacked above.
            [json.dumps(list(r.rule_hits)) for r in rows],
            [r.ruleset_sha256 for r in rows],
            [json.dumps(r.features) for r in rows],
            [r.shadow_model_version for r in rows],
            [r.shadow_score for r in rows],
            [r.shadow_error for r in rows],
            [json.dumps(r.transaction) for r in rows],
            [r.event.decode() for r in rows],
        )
        await conn.execute(
            """INSERT INTO fraud_reviews (payment_id, opened_at)
               SELECT p, t FROM unnest($1::text[], $2::timestamptz[]) AS x(p, t)
               ON CONFLICT (payment_id) DO NOTHING""",
            [r["payment_id"] for r in inserted if r["decision"] == "review"],
            [r["scored_at"] for r in inserted if r["decision"] == "review"],
        )
    return len(inserted)


async def feature_history(
    conn: asyncpg.Connection | asyncpg.Pool,
) -> tuple[list[tuple[dict[str, Any], dt.datetime]], list[tuple[str, int]], int]:
    """What rebuilds the scorer's feature state: the feature inputs of the last
    :data:`FEATURE_HISTORY` (by the newest feature time) in feed order, the labels of those
    payments, and the highest label revision."""
    rows = await conn.fetch(
        """SELECT transaction::text AS transaction, feature_time FROM fraud_scores
           WHERE feature_time > (SELECT max(feature_time) FROM fraud_scores) - $1::interval
           ORDER BY seq""",
        FEATURE_HISTORY,
    )
    history = [(json.loads(r["transaction"]), r["feature_time"]) for r in rows]
    labels, revision = await labels_since(conn, 0)
    return history, labels, revision


async def labels_since(
    conn: asyncpg.Connection | asyncpg.Pool, revision: int
) -> tuple[list[tuple[str, int]], int]:
    """Labels written after ``revision``: (payment id, 0/1) in revision order, and the newest
    revision (``revision`` itself when there is none)."""
    rows = await conn.fetch(
        """SELECT payment_id, is_fraud, revision FROM fraud_labels WHERE revision > $1
           ORDER BY revision""",
        revision,
    )
    if not rows:
        return [], revision
    return [(r["payment_id"], int(r["is_fraud"])) for r in rows], int(rows[-1]["revision"])


# -- analysts ----------------------------------------------------------------------------------


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_analyst(
    conn: asyncpg.Connection | asyncpg.Pool, analyst_id: str, display_name: str
) -> str:
    """Create an analyst (or keep an existing one) and issue a new token, returned once and
    stored hashed; an earlier token of the analyst stops working."""
    token = ANALYST_TOKEN_PREFIX + secrets.token_urlsafe(24)
    await conn.execute(
        """INSERT INTO fraud_analysts (analyst_id, display_name, token_hash, token_prefix)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (analyst_id) DO UPDATE SET token_hash = EXCLUDED.token_hash,
               token_prefix = EXCLUDED.token_prefix, display_name = EXCLUDED.display_name,
               revoked_at = NULL""",
        analyst_id,
        display_name,
        hash_token(token),
        token[: len(ANALYST_TOKEN_PREFIX) + 4],
    )
    return token


async def analyst_for_token(pool: asyncpg.Pool, token: str) -> str | None:
    """The analyst holding an unrevoked ``token``, or None."""
    analyst: str | None = await pool.fetchval(
        "SELECT analyst_id FROM fraud_analysts WHERE token_hash = $1 AND revoked_at IS NULL",
        hash_token(token),
    )
    return analyst


# -- the review queue --------------------------------------------------------------------------


async def open_reviews(
    pool: asyncpg.Pool, *, limit: int, after: tuple[dt.datetime, str] | None = None
) -> list[asyncpg.Record]:
    """Open reviews, oldest first (keyset pagination on (opened_at, payment_id))."""
    return list(
        await pool.fetch(
            """SELECT *, features::text AS features_json FROM fraud_review_queue
               WHERE status = 'open'
                 AND ($2::timestamptz IS NULL OR (opened_at, payment_id) > ($2, $3))
               ORDER BY opened_at, payment_id LIMIT $1""",
            limit,
            after[0] if after else None,
            after[1] if after else "",
        )
    )


async def get_review(pool: asyncpg.Pool, payment_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        """SELECT *, features::text AS features_json FROM fraud_review_queue
           WHERE payment_id = $1""",
        payment_id,
    )
    return row


async def review_is_open(pool: asyncpg.Pool, payment_id: str) -> bool:
    """Whether an analyst still has to decide ``payment_id``."""
    found = await pool.fetchval(
        "SELECT 1 FROM fraud_reviews WHERE payment_id = $1 AND status = 'open'", payment_id
    )
    return found is not None


async def close_review(
    pool: asyncpg.Pool, payment_id: str, status: str, analyst_id: str, note: str | None
) -> bool:
    """Mark an open review approved or declined; False if it was not open (already decided)."""
    done = await pool.fetchval(
        """UPDATE fraud_reviews SET status = $2, decided_by = $3, decided_at = now(), note = $4
           WHERE payment_id = $1 AND status = 'open' RETURNING payment_id""",
        payment_id,
        status,
        analyst_id,
        note,
    )
    return done is not None


async def set_label(
    pool: asyncpg.Pool, payment_id: str, is_fraud: bool, analyst_id: str, note: str | None
) -> bool:
    """Label a scored payment (the latest label wins); False if the payment was never scored."""
    done = await pool.fetchval(
        """INSERT INTO fraud_labels (payment_id, is_fraud, labelled_by, labelled_at, note)
           SELECT payment_id, $2, $3, now(), $4 FROM fraud_scores WHERE payment_id = $1
           ON CONFLICT (payment_id) DO UPDATE SET is_fraud = EXCLUDED.is_fraud,
               labelled_by = EXCLUDED.labelled_by, labelled_at = EXCLUDED.labelled_at,
               note = EXCLUDED.note, revision = nextval('fraud_label_revisions')
           RETURNING payment_id""",
        payment_id,
        is_fraud,
        analyst_id,
        note,
    )
    return done is not None


async def labelled_transactions(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    only_labelled: bool,
) -> list[asyncpg.Record]:
    """Scored payments with their analyst label (NULL when unlabelled), in feed order."""
    return list(
        await conn.fetch(
            """SELECT s.payment_id, s.feature_time, s.merchant_id, s.amount_minor, s.currency,
                      s.transaction::text AS transaction, s.score, s.decision, l.is_fraud
               FROM fraud_scores s LEFT JOIN fraud_labels l USING (payment_id)
               WHERE ($1::timestamptz IS NULL OR s.feature_time >= $1)
                 AND ($2::timestamptz IS NULL OR s.feature_time < $2)
                 AND (NOT $3 OR l.is_fraud IS NOT NULL)
               ORDER BY s.seq""",
            since,
            until,
            only_labelled,
        )
    )


async def decision_counts(pool: asyncpg.Pool, payment_ids: Sequence[str]) -> dict[str, int]:
    """How many of ``payment_ids`` fraud scoring allowed, sent to review and blocked."""
    rows = await pool.fetch(
        """SELECT decision, count(*) AS n FROM fraud_scores WHERE payment_id = ANY($1::text[])
           GROUP BY decision""",
        list(payment_ids),
    )
    return {r["decision"]: int(r["n"]) for r in rows}
