-- Merchants, API keys, payment state and the double-entry ledger.
-- Every statement is re-runnable: the runner records applied versions, and each object is
-- created only if absent.

CREATE TABLE IF NOT EXISTS merchants (
    merchant_id   text PRIMARY KEY CHECK (merchant_id ~ '^[a-z0-9_]{3,64}$'),
    legal_name    text NOT NULL,
    -- GST state code (two digits) of the merchant's registered place of business.
    state_code    char(2) NOT NULL CHECK (state_code ~ '^[0-9]{2}$'),
    gstin         text CHECK (gstin ~ '^[0-9]{2}[A-Z0-9]{10}[0-9A-Z]Z[0-9A-Z]$'),
    kyc_status    text NOT NULL DEFAULT 'pending'
                  CHECK (kyc_status IN ('pending', 'verified', 'rejected')),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Only a SHA-256 of each key is stored; the key itself is shown once, when it is created.
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash      bytea PRIMARY KEY CHECK (length(key_hash) = 32),
    key_prefix    text NOT NULL,
    merchant_id   text NOT NULL REFERENCES merchants (merchant_id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE TABLE IF NOT EXISTS payments (
    payment_id          text PRIMARY KEY,
    merchant_id         text NOT NULL REFERENCES merchants (merchant_id),
    request_fingerprint text NOT NULL,
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    currency            char(3) NOT NULL,
    method              text NOT NULL,
    status              text NOT NULL CHECK (status IN (
                            'requires_action', 'authorized', 'declined', 'captured',
                            'voided', 'refunded', 'failed', 'expired')),
    decline_code        text,
    requested_at        timestamptz NOT NULL,
    decided_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_event_id       text NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_merchant_requested ON payments (merchant_id, requested_at);

-- Requests whose payment_id was already taken by a different request body: an Idempotency-Key
-- reused for another payment.  Kept as evidence; the first request stands.
CREATE TABLE IF NOT EXISTS payment_conflicts (
    event_id            text PRIMARY KEY,
    payment_id          text NOT NULL,
    request_fingerprint text NOT NULL,
    seen_at             timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS ledger_accounts (
    account_id    text PRIMARY KEY,
    owner         text NOT NULL,          -- merchant_id, or 'platform'
    kind          text NOT NULL,          -- pending, available, processor_receivable, ...
    currency      char(3) NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS journal_entries (
    entry_id      text PRIMARY KEY,       -- derived from payment and step: replays collide here
    payment_id    text,
    merchant_id   text,
    kind          text NOT NULL,
    currency      char(3) NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS journal_entries_payment ON journal_entries (payment_id);

CREATE TABLE IF NOT EXISTS postings (
    posting_id    text PRIMARY KEY,
    entry_id      text NOT NULL REFERENCES journal_entries (entry_id),
    account_id    text NOT NULL REFERENCES ledger_accounts (account_id),
    -- Signed minor units: debit positive, credit negative.
    amount_minor  bigint NOT NULL CHECK (amount_minor <> 0),
    currency      char(3) NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS postings_account ON postings (account_id);
CREATE INDEX IF NOT EXISTS postings_entry ON postings (entry_id);

-- The database itself refuses an unbalanced entry: checked at commit, once all its postings
-- are in, per currency.
CREATE OR REPLACE FUNCTION ledger_check_entry_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    unbalanced record;
BEGIN
    SELECT currency, sum(amount_minor) AS total INTO unbalanced
      FROM postings WHERE entry_id = NEW.entry_id
     GROUP BY currency HAVING sum(amount_minor) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % is unbalanced: % % off', NEW.entry_id,
            unbalanced.total, unbalanced.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS postings_balanced ON postings;
CREATE CONSTRAINT TRIGGER postings_balanced
    AFTER INSERT ON postings DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();

-- Postings are append-only: corrections are reversing entries.
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'postings are append-only; post a reversing entry instead'
        USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS postings_append_only ON postings;
CREATE TRIGGER postings_append_only
    BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
DROP TRIGGER IF EXISTS postings_no_truncate ON postings;
CREATE TRIGGER postings_no_truncate
    BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
