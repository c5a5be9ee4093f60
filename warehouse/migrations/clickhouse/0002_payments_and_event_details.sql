-- Payments as requested (one row per payment.requested event) and more detail on lifecycle
-- events.  Both tables are ReplacingMergeTree ordered by a key that ends in the event id, so a
-- row loaded twice (a retried batch, a replay from offset 0) collapses into one: read them with
-- FINAL, or argMax(column, loaded_at) grouped by event_id.  Amounts are Int64 minor units of
-- the currency (paise for INR), never floats.
CREATE TABLE IF NOT EXISTS {db}.payments
(
    event_id             String,
    payment_id           String,
    merchant_id          LowCardinality(String),
    customer_id          String,                          -- '' when the merchant sent none
    amount_minor         Int64,
    currency             LowCardinality(FixedString(3)),
    method               LowCardinality(String),          -- card, upi, netbanking, neft, rtgs, imps, wallet
    card_network         LowCardinality(String),          -- cards only, '' otherwise or when unknown
    card_bin             LowCardinality(String),          -- cards only: the first 6 to 8 digits
    bank_code            LowCardinality(String),          -- netbanking bank code, or the IFSC bank of a transfer
    upi_flow             LowCardinality(String),          -- collect or intent, UPI only
    capture              LowCardinality(String),          -- automatic or manual
    request_fingerprint  String,
    requested_at         DateTime64(6, 'UTC'),
    loaded_at            DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(loaded_at)
PARTITION BY toYYYYMM(requested_at)
ORDER BY (merchant_id, requested_at, event_id);

-- The id a lifecycle event refers to (refund_id, dispute_id or action_id) and its reason
-- (why a payment failed or an authorization was released); '' when the event has none.
ALTER TABLE {db}.payment_events ADD COLUMN IF NOT EXISTS ref_id String DEFAULT '' AFTER decline_code;

ALTER TABLE {db}.payment_events ADD COLUMN IF NOT EXISTS reason String DEFAULT '' AFTER ref_id;
