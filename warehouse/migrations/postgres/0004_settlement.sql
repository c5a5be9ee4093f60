-- Settlement: per-merchant schedules and payout accounts, batches per merchant and cutoff, the
-- ledger postings each batch settled, rolling-reserve holds, and payouts with their UTR.
-- The computation is streams/settlement.py; the writes are warehouse/settlement_store.py.
-- Amounts are signed bigint paise like postings.amount_minor, or non-negative totals.

-- A merchant's settlement terms (streams.settlement.SettlementSchedule as JSON) and the bank
-- account payouts go to.  Only the masked account number is kept.
CREATE TABLE IF NOT EXISTS merchant_settlement_profiles (
    merchant_id     text PRIMARY KEY REFERENCES merchants (merchant_id),
    schedule        jsonb NOT NULL DEFAULT '{}'::jsonb,
    holder_name     text,
    account_masked  text CHECK (account_masked ~ '^X{5,14}[0-9]{4}$'),
    ifsc            text CHECK (ifsc ~ '^[A-Z]{4}0[A-Z0-9]{6}$'),
    updated_at      timestamptz NOT NULL,
    CHECK ((holder_name IS NULL) = (account_masked IS NULL)
           AND (account_masked IS NULL) = (ifsc IS NULL))
);

-- One row per (merchant, currency, cutoff); batch_id is derived from them
-- (streams.settlement.batch_id_for), so a re-run at the same cutoff finds its batch.
CREATE TABLE IF NOT EXISTS settlement_batches (
    batch_id                text PRIMARY KEY,
    merchant_id             text NOT NULL REFERENCES merchants (merchant_id),
    currency                char(3) NOT NULL,
    cutoff                  timestamptz NOT NULL,
    settlement_date         date NOT NULL,
    instant                 boolean NOT NULL,
    status                  text NOT NULL CHECK (status IN (
                                'held', 'carried_forward', 'superseded', 'settled',
                                'payout_pending', 'paid')),
    hold_reason             text,
    line_count              integer NOT NULL CHECK (line_count >= 0),
    captured_minor          bigint NOT NULL,
    refunds_minor           bigint NOT NULL,
    disputes_minor          bigint NOT NULL,
    adjustments_minor       bigint NOT NULL,
    fees_minor              bigint NOT NULL,
    gst_minor               bigint NOT NULL,
    reserve_withheld_minor  bigint NOT NULL CHECK (reserve_withheld_minor >= 0),
    reserve_released_minor  bigint NOT NULL CHECK (reserve_released_minor >= 0),
    instant_fee_minor       bigint NOT NULL CHECK (instant_fee_minor >= 0),
    instant_fee_gst_minor   bigint NOT NULL CHECK (instant_fee_gst_minor >= 0),
    net_minor               bigint NOT NULL,
    -- The settlement entry it posted (NULL while held or carried forward, or when net is 0 and
    -- every leg cancels).
    entry_id                text REFERENCES journal_entries (entry_id),
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    CONSTRAINT settlement_batches_net_adds_up CHECK (net_minor = captured_minor - refunds_minor
        - disputes_minor + adjustments_minor - fees_minor - gst_minor - reserve_withheld_minor
        + reserve_released_minor - instant_fee_minor - instant_fee_gst_minor),
    CONSTRAINT settlement_batches_paid_net_not_negative CHECK (
        status IN ('held', 'carried_forward', 'superseded') OR net_minor >= 0),
    CONSTRAINT settlement_batches_carried_forward_is_negative CHECK (
        status <> 'carried_forward' OR net_minor < 0),
    CONSTRAINT settlement_batches_held_says_why CHECK ((status = 'held') = (hold_reason IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS settlement_batches_merchant_cutoff
    ON settlement_batches (merchant_id, currency, cutoff);
CREATE INDEX IF NOT EXISTS settlement_batches_status ON settlement_batches (status);

-- A held batch may be re-evaluated (rewritten whole); a released one only moves
-- payout_pending → paid; none is ever deleted.
CREATE OR REPLACE FUNCTION settlement_batch_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'settlement batch % cannot be deleted', OLD.batch_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.status = 'held' THEN
        RETURN NEW;
    END IF;
    IF OLD.status = 'payout_pending' AND NEW.status = 'paid'
       AND to_jsonb(NEW) - 'status' - 'updated_at' = to_jsonb(OLD) - 'status' - 'updated_at' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'settlement batch % is %: only payout_pending -> paid may change it',
        OLD.batch_id, OLD.status USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS settlement_batches_guard ON settlement_batches;
CREATE TRIGGER settlement_batches_guard
    BEFORE UPDATE OR DELETE ON settlement_batches
    FOR EACH ROW EXECUTE FUNCTION settlement_batch_guard();

-- The postings each batch covered.  settled = true: this batch settled the posting, and the
-- partial unique index makes that happen at most once per posting, ever.  settled = false: the
-- lines of a held or carried-forward attempt, kept as evidence; they stay unsettled.
CREATE TABLE IF NOT EXISTS settlement_lines (
    batch_id      text NOT NULL REFERENCES settlement_batches (batch_id),
    posting_id    text NOT NULL REFERENCES postings (posting_id),
    entry_id      text NOT NULL REFERENCES journal_entries (entry_id),
    payment_id    text,
    entry_kind    text NOT NULL,
    account_id    text NOT NULL REFERENCES ledger_accounts (account_id),
    amount_minor  bigint NOT NULL CHECK (amount_minor <> 0),
    booked_at     timestamptz NOT NULL,
    settled       boolean NOT NULL,
    PRIMARY KEY (batch_id, posting_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS settlement_lines_settle_once
    ON settlement_lines (posting_id) WHERE settled;
CREATE INDEX IF NOT EXISTS settlement_lines_posting ON settlement_lines (posting_id);

CREATE OR REPLACE FUNCTION settlement_lines_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR OLD.settled THEN
        RAISE EXCEPTION 'settled lines are append-only (batch %, posting %)',
            OLD.batch_id, OLD.posting_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END $$;

DROP TRIGGER IF EXISTS settlement_lines_guard ON settlement_lines;
CREATE TRIGGER settlement_lines_guard
    BEFORE UPDATE OR DELETE ON settlement_lines
    FOR EACH ROW EXECUTE FUNCTION settlement_lines_guard();

-- Rolling reserve withheld by a batch (hold_id = that batch), released by a later one.
CREATE TABLE IF NOT EXISTS settlement_reserve_holds (
    hold_id       text PRIMARY KEY REFERENCES settlement_batches (batch_id),
    merchant_id   text NOT NULL REFERENCES merchants (merchant_id),
    currency      char(3) NOT NULL,
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    held_at       timestamptz NOT NULL,
    release_at    timestamptz NOT NULL CHECK (release_at > held_at),
    released_by   text REFERENCES settlement_batches (batch_id),
    CHECK (released_by IS DISTINCT FROM hold_id)
);
CREATE INDEX IF NOT EXISTS settlement_reserve_holds_open
    ON settlement_reserve_holds (merchant_id, currency) WHERE released_by IS NULL;

-- A hold changes once: from open to released by a batch.
CREATE OR REPLACE FUNCTION settlement_reserve_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.released_by IS NULL AND NEW.released_by IS NOT NULL
       AND to_jsonb(NEW) - 'released_by' = to_jsonb(OLD) - 'released_by' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'reserve hold % may only be released once', OLD.hold_id
        USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS settlement_reserve_holds_guard ON settlement_reserve_holds;
CREATE TRIGGER settlement_reserve_holds_guard
    BEFORE UPDATE OR DELETE ON settlement_reserve_holds
    FOR EACH ROW EXECUTE FUNCTION settlement_reserve_guard();

-- The payout instruction of a released batch with a positive net, and its completion: the
-- bank's UTR (22 characters: bank code, N/R, channel, YYYYMMDD, 8 digits), unique.
CREATE TABLE IF NOT EXISTS settlement_payouts (
    batch_id              text PRIMARY KEY REFERENCES settlement_batches (batch_id),
    amount_minor          bigint NOT NULL CHECK (amount_minor > 0),
    currency              char(3) NOT NULL,
    holder_name           text NOT NULL,
    beneficiary           text NOT NULL,   -- masked account number
    ifsc                  text NOT NULL,
    instruction_entry_id  text NOT NULL REFERENCES journal_entries (entry_id),
    instructed_at         timestamptz NOT NULL,
    utr                   text UNIQUE CHECK (utr ~ '^[A-Z]{4}[NR][A-Z0-9][0-9]{16}$'),
    completion_entry_id   text REFERENCES journal_entries (entry_id),
    completed_at          timestamptz,
    CHECK ((utr IS NULL) = (completed_at IS NULL)
           AND (utr IS NULL) = (completion_entry_id IS NULL))
);

-- A payout changes once: from instructed to completed.
CREATE OR REPLACE FUNCTION settlement_payout_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.utr IS NULL
       AND to_jsonb(NEW) - 'utr' - 'completion_entry_id' - 'completed_at'
           = to_jsonb(OLD) - 'utr' - 'completion_entry_id' - 'completed_at' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'payout of batch % is already complete or cannot be removed', OLD.batch_id
        USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS settlement_payouts_guard ON settlement_payouts;
CREATE TRIGGER settlement_payouts_guard
    BEFORE UPDATE OR DELETE ON settlement_payouts
    FOR EACH ROW EXECUTE FUNCTION settlement_payout_guard();
