-- Report runs and their outputs (warehouse/reports/framework.py, docs/reports.md), and the
-- failed transactions whose reversals the RBI turnaround-time report checks
-- (warehouse/reports/rbi.py).

-- One row per (kind, period, fingerprint of inputs + parameters).  Re-running a period whose
-- inputs did not change finds its row: the outputs must be byte-identical (the runner checks
-- the stored hash) and only run_count / last_run_at move.  A changed input is a new row.
CREATE TABLE IF NOT EXISTS report_runs (
    run_id               text PRIMARY KEY,
    kind                 text NOT NULL CHECK (kind ~ '^[a-z0-9_]{2,40}$'),
    period               text NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$'),
    params               jsonb NOT NULL,
    fingerprint          text NOT NULL CHECK (fingerprint ~ '^sha256:[0-9a-f]{64}$'),
    inputs_fingerprint   text NOT NULL CHECK (inputs_fingerprint ~ '^sha256:[0-9a-f]{64}$'),
    params_fingerprint   text NOT NULL CHECK (params_fingerprint ~ '^sha256:[0-9a-f]{64}$'),
    -- published: every data-quality suite passed and the outputs are stored;
    -- blocked: a suite failed (quality says which expectation on which rows); nothing published.
    status               text NOT NULL CHECK (status IN ('published', 'blocked')),
    outputs_fingerprint  text CHECK (outputs_fingerprint ~ '^sha256:[0-9a-f]{64}$'),
    quality              jsonb NOT NULL,
    triggered_by         text NOT NULL CHECK (triggered_by IN ('manual', 'schedule')),
    first_run_at         timestamptz NOT NULL,
    last_run_at          timestamptz NOT NULL CHECK (last_run_at >= first_run_at),
    run_count            integer NOT NULL DEFAULT 1 CHECK (run_count >= 1),
    UNIQUE (kind, period, fingerprint),
    CHECK ((status = 'published') = (outputs_fingerprint IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS report_runs_kind_period ON report_runs (kind, period, last_run_at);

-- The files a published run produced, byte for byte.
CREATE TABLE IF NOT EXISTS report_outputs (
    run_id        text NOT NULL REFERENCES report_runs (run_id),
    name          text NOT NULL CHECK (name ~ '^[A-Za-z0-9._-]{1,120}$'),
    media_type    text NOT NULL,
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content       bytea NOT NULL,
    PRIMARY KEY (run_id, name)
);

-- Outputs are evidence: never rewritten or removed.
CREATE OR REPLACE FUNCTION report_outputs_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'report outputs are append-only (run %)', OLD.run_id
        USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS report_outputs_append_only ON report_outputs;
CREATE TRIGGER report_outputs_append_only
    BEFORE UPDATE OR DELETE ON report_outputs
    FOR EACH ROW EXECUTE FUNCTION report_outputs_refuse_change();

-- A customer's account was debited but the payment failed (RBI, 20 Sep 2019, "harmonisation of
-- TAT and customer compensation for failed transactions"): the debit must be reversed within
-- the channel's turnaround time, or compensation is owed per day late.  Connectors (or
-- operations) record the failure and, later, the reversal.
CREATE TABLE IF NOT EXISTS failed_transactions (
    txn_id          text PRIMARY KEY CHECK (txn_id ~ '^[A-Za-z0-9_.:-]{3,120}$'),
    payment_id      text,
    merchant_id     text NOT NULL REFERENCES merchants (merchant_id),
    -- A key of warehouse.reports.rbi.REVERSAL_TAT (checked there, so new channels need no
    -- migration; the report's data-quality suite refuses unknown ones).
    channel         text NOT NULL,
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- T: when the customer's account was debited (the transaction day is its IST date).
    debited_at      timestamptz NOT NULL,
    -- R: when the reversal reached the customer's account (NULL while outstanding).
    reversed_at     timestamptz CHECK (reversed_at >= debited_at),
    reversal_ref    text,
    recorded_at     timestamptz NOT NULL,
    CHECK ((reversed_at IS NULL) = (reversal_ref IS NULL))
);
CREATE INDEX IF NOT EXISTS failed_transactions_debited ON failed_transactions (debited_at);
CREATE INDEX IF NOT EXISTS failed_transactions_outstanding
    ON failed_transactions (debited_at) WHERE reversed_at IS NULL;

-- The reports read entries by booking time (GST months, settlement days).
CREATE INDEX IF NOT EXISTS journal_entries_created_at ON journal_entries (created_at);
