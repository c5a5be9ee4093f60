-- Facts copied from the PostgreSQL book of record by the warehouse sink
-- (warehouse/sinks/ledger_facts.py): every ledger posting, and every settlement batch.
-- Amounts are Int64 minor units of the currency, never floats.  Both tables are
-- ReplacingMergeTree ordered by a key that ends in the row's own id, so a copy repeated after
-- a crash or a replay collapses into one row: read them with FINAL.

-- One row per posting.  chain_seq is the entry's position in ledger_chain (gap-free, in commit
-- order), which is also how far the copy has got.  Signed amounts: debit positive, credit
-- negative; every entry sums to zero per currency, as in PostgreSQL.
CREATE TABLE IF NOT EXISTS {db}.ledger_postings
(
    posting_id     String,
    entry_id       String,
    chain_seq      UInt64,
    entry_kind     LowCardinality(String),
    payment_id     String,                          -- '' for entries about no payment
    merchant_id    String,                          -- '' for a customer's own wallet entry
    account_id     String,
    account_owner  String,                          -- merchant id, 'platform' or 'customer:<id>'
    account_kind   LowCardinality(String),          -- pending, fees, wallet, processor_receivable...
    amount_minor   Int64,
    currency       LowCardinality(FixedString(3)),
    booked_at      DateTime64(6, 'UTC'),
    loaded_at      DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(loaded_at)
PARTITION BY toYYYYMM(booked_at)
ORDER BY (account_owner, booked_at, posting_id);

-- One row per settlement batch, in its latest state: a batch's status moves on
-- (payout_pending -> paid), so the version column is PostgreSQL's updated_at.
CREATE TABLE IF NOT EXISTS {db}.settlement_batches
(
    batch_id                String,
    merchant_id             String,
    currency                LowCardinality(FixedString(3)),
    cutoff                  DateTime64(6, 'UTC'),
    settlement_date         Date,
    instant                 UInt8,
    status                  LowCardinality(String),
    line_count              UInt32,
    captured_minor          Int64,
    refunds_minor           Int64,
    disputes_minor          Int64,
    adjustments_minor       Int64,
    fees_minor              Int64,
    gst_minor               Int64,
    reserve_withheld_minor  Int64,
    reserve_released_minor  Int64,
    instant_fee_minor       Int64,
    instant_fee_gst_minor   Int64,
    net_minor               Int64,
    created_at              DateTime64(6, 'UTC'),
    updated_at              DateTime64(6, 'UTC'),
    loaded_at               DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (merchant_id, batch_id);

-- How far each copy from PostgreSQL has got, written after the rows it covers: a crash
-- between the two re-copies rows that are already there, which changes nothing.
CREATE TABLE IF NOT EXISTS {db}.sink_cursors
(
    source      LowCardinality(String),
    position    Int64,
    updated_at  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY source;

-- One row per payment.scored event (fraud scoring's verdict, from the payments.scored topic).
-- score is a probability (Float64 is right for it; it is not money).  features are kept as
-- the event's JSON text: some are sums of paise, which must not become floats.
CREATE TABLE IF NOT EXISTS {db}.fraud_scores
(
    event_id              String,
    payment_id            String,
    merchant_id           LowCardinality(String),
    customer_id           String,
    amount_minor          Int64,
    currency              LowCardinality(FixedString(3)),
    method                LowCardinality(String),
    decision              LowCardinality(String),          -- allow, review, block
    reason                String,                          -- the deciding rule, or ''
    score                 Nullable(Float64),               -- None: no champion model deployed
    model_version         LowCardinality(String),
    rule_hits             Array(String),
    ruleset_sha256        String,
    shadow_model_version  LowCardinality(String),
    shadow_score          Nullable(Float64),
    features_json         String,
    scored_at             DateTime64(6, 'UTC'),
    loaded_at             DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(loaded_at)
PARTITION BY toYYYYMM(scored_at)
ORDER BY (merchant_id, scored_at, event_id);
