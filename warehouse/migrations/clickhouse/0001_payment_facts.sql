-- Analytic facts for payments.  ReplacingMergeTree keyed by the event id makes a retried
-- insert of the same rows collapse into one: loads are idempotent.
CREATE TABLE IF NOT EXISTS {db}.payment_events
(
    event_id      String,
    event_type    LowCardinality(String),
    payment_id    String,
    merchant_id   LowCardinality(String),
    amount_minor  Int64,
    currency      LowCardinality(FixedString(3)),
    method        LowCardinality(String),
    decline_code  LowCardinality(String),
    occurred_at   DateTime64(6, 'UTC'),
    loaded_at     DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(loaded_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (merchant_id, occurred_at, event_id);
