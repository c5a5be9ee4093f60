-- Fraud scoring: every scored payment, fraud analysts, the review queue and analysts' labels.
-- Written by streams/scoring.py (scores, review queue) and api/reviews.py (decisions, labels)
-- through warehouse/fraud_store.py.  Every statement is re-runnable.

-- One row per scored payment, written in the scorer's feed order before payments.scored is
-- sent.  It is also the scorer's changelog: after a restart the online feature state is rebuilt
-- by feeding `transaction` at `feature_time` in `seq` order, and a redelivered request finds its
-- row here and is re-sent as `event`, never fed twice.
CREATE TABLE IF NOT EXISTS fraud_scores (
    payment_id            text PRIMARY KEY CHECK (payment_id ~ '^pay_[a-z0-9]{26}$'),
    seq                   bigserial NOT NULL UNIQUE,
    merchant_id           text NOT NULL,
    request_fingerprint   text NOT NULL,
    occurred_at           timestamptz NOT NULL,
    -- When the features were computed for (occurred_at, or the newest time already fed when the
    -- payment arrived late; see fraud/scoring.py).
    feature_time          timestamptz NOT NULL,
    scored_at             timestamptz NOT NULL,
    amount_minor          bigint NOT NULL CHECK (amount_minor > 0),
    currency              char(3) NOT NULL,
    decision              text NOT NULL CHECK (decision IN ('allow', 'review', 'block')),
    reason                text NOT NULL,
    -- The champion's fraud probability; NULL when no champion was deployed (rules only).
    score                 double precision CHECK (score BETWEEN 0 AND 1),
    model_version         text,
    rule_hits             text[] NOT NULL,
    ruleset_sha256        text NOT NULL CHECK (ruleset_sha256 ~ '^[0-9a-f]{64}$'),
    features              jsonb NOT NULL,
    -- The challenger's score in shadow: logged for analysts, never acted on.
    shadow_model_version  text,
    shadow_score          double precision CHECK (shadow_score BETWEEN 0 AND 1),
    shadow_error          text,
    -- The feature inputs (card BIN and last four only, never a PAN) and the published event.
    transaction           jsonb NOT NULL,
    event                 jsonb NOT NULL,
    CONSTRAINT fraud_scores_model_scored CHECK ((score IS NULL) = (model_version IS NULL))
);
CREATE INDEX IF NOT EXISTS fraud_scores_feature_time ON fraud_scores (feature_time);
CREATE INDEX IF NOT EXISTS fraud_scores_merchant_scored ON fraud_scores (merchant_id, scored_at);

-- Risk analysts: a role of their own, not a merchant API key.  Tokens are shown once and
-- stored as SHA-256 (like api_keys).
CREATE TABLE IF NOT EXISTS fraud_analysts (
    analyst_id    text PRIMARY KEY CHECK (analyst_id ~ '^[a-z0-9][a-z0-9_.-]{1,63}$'),
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    token_hash    bytea NOT NULL UNIQUE,
    token_prefix  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

-- The review queue: one row per payment the scorer sent to review (held: authorized, not
-- captured).  An analyst approves (the payment is captured) or declines (it is voided).
CREATE TABLE IF NOT EXISTS fraud_reviews (
    payment_id   text PRIMARY KEY REFERENCES fraud_scores (payment_id),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'approved', 'declined')),
    opened_at    timestamptz NOT NULL,
    decided_by   text REFERENCES fraud_analysts (analyst_id),
    decided_at   timestamptz,
    note         text CHECK (length(note) <= 1000),
    CONSTRAINT fraud_reviews_decided CHECK ((status = 'open') = (decided_at IS NULL))
);
CREATE INDEX IF NOT EXISTS fraud_reviews_open ON fraud_reviews (opened_at, payment_id)
    WHERE status = 'open';

-- Analysts' labels (fraud or legitimate), the latest per payment.  `revision` grows with every
-- write, so the scorer picks up new labels (terminal risk features) by asking for revisions
-- above the last it saw, and `rizzpay fraud labels export` turns them into training data.
CREATE SEQUENCE IF NOT EXISTS fraud_label_revisions;
CREATE TABLE IF NOT EXISTS fraud_labels (
    payment_id   text PRIMARY KEY REFERENCES fraud_scores (payment_id),
    is_fraud     boolean NOT NULL,
    labelled_by  text NOT NULL REFERENCES fraud_analysts (analyst_id),
    labelled_at  timestamptz NOT NULL,
    note         text CHECK (length(note) <= 1000),
    revision     bigint NOT NULL DEFAULT nextval('fraud_label_revisions')
);
CREATE INDEX IF NOT EXISTS fraud_labels_revision ON fraud_labels (revision);

-- The review queue as analysts (and api/reviews.py) read it: each review with its score, the
-- rules that hit, the challenger's shadow score and the current label.
CREATE OR REPLACE VIEW fraud_review_queue AS
SELECT r.payment_id, r.status, r.opened_at, r.decided_by, r.decided_at, r.note,
       s.merchant_id, s.amount_minor, s.currency, s.occurred_at, s.decision, s.reason, s.score,
       s.model_version, s.rule_hits, s.features, s.shadow_model_version, s.shadow_score,
       s.transaction ->> 'method' AS method, s.transaction ->> 'customer_id' AS customer_id,
       l.is_fraud AS label_is_fraud, l.labelled_by, l.labelled_at
FROM fraud_reviews r
JOIN fraud_scores s USING (payment_id)
LEFT JOIN fraud_labels l USING (payment_id);
