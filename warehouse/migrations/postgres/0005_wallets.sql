-- Wallets: customer and merchant stored-value accounts, their two-phase holds, and the
-- operations already applied (for idempotent replay).  The rules are streams/wallets.py; the
-- writes are warehouse/wallet_store.py, which locks a wallet row (SELECT ... FOR UPDATE), checks
-- the rules, posts the journal entry and updates the row in one transaction.
-- Amounts are bigint paise.

CREATE TABLE IF NOT EXISTS wallets (
    wallet_id               text PRIMARY KEY CHECK (wallet_id ~ '^(customer|merchant):[a-z0-9_]{1,64}:[A-Z]{3}$'),
    currency                char(3) NOT NULL,
    kyc_level               text NOT NULL CHECK (kyc_level IN ('min', 'full', 'business')),
    -- NULL: no balance limit (merchant wallets); otherwise the PPI cap on balance_minor.
    balance_limit_minor     bigint CHECK (balance_limit_minor >= 0),
    overdraft_limit_minor   bigint NOT NULL DEFAULT 0 CHECK (overdraft_limit_minor >= 0),
    -- Posted balance, holds included; the ledger's wallet + wallet_held accounts hold -balance.
    balance_minor           bigint NOT NULL DEFAULT 0,
    held_minor              bigint NOT NULL DEFAULT 0 CHECK (held_minor >= 0),
    created_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Last line of defence behind the application's check: available never below -overdraft.
    CONSTRAINT wallets_no_overdraft CHECK (balance_minor - held_minor >= -overdraft_limit_minor)
);

CREATE TABLE IF NOT EXISTS wallet_holds (
    hold_id                 text PRIMARY KEY,
    wallet_id               text NOT NULL REFERENCES wallets (wallet_id),
    -- NULL: posting pays out to the holder's bank (platform wallet_payouts account).
    destination_wallet_id   text REFERENCES wallets (wallet_id),
    amount_minor            bigint NOT NULL CHECK (amount_minor > 0),
    currency                char(3) NOT NULL,
    status                  text NOT NULL CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    posted_minor            bigint NOT NULL DEFAULT 0
                            CHECK (posted_minor >= 0 AND posted_minor <= amount_minor),
    created_at              timestamptz NOT NULL,
    expires_at              timestamptz NOT NULL,
    settled_at              timestamptz
);
CREATE INDEX IF NOT EXISTS wallet_holds_pending_expiry
    ON wallet_holds (expires_at) WHERE status = 'pending';

-- One row per applied operation id: a replay with the same fingerprint is a no-op, another
-- fingerprint is an idempotency conflict.  Written in the same transaction as the entry.
CREATE TABLE IF NOT EXISTS wallet_operations (
    op_id                   text PRIMARY KEY,
    kind                    text NOT NULL,
    fingerprint             text NOT NULL,
    entry_id                text NOT NULL
                            REFERENCES journal_entries (entry_id) DEFERRABLE INITIALLY DEFERRED,
    applied_at              timestamptz NOT NULL
);
