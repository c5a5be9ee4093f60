-- Merchant webhooks: endpoints, the delivery outbox and its dead letters.
-- The rules live in streams/webhooks/ (signing, schedule, address_guard); the reads and writes
-- are streams/webhooks/store.py and the sender is streams/webhooks/delivery.py.
-- Every statement is re-runnable.

CREATE TABLE IF NOT EXISTS webhook_endpoints (
    endpoint_id                 text PRIMARY KEY CHECK (endpoint_id ~ '^we_[a-z0-9]{10,40}$'),
    merchant_id                 text NOT NULL REFERENCES merchants (merchant_id),
    -- Checked with streams.webhooks.address_guard.check_url at registration and before every
    -- attempt (DNS rebinding).
    url                         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    -- Lifecycle event types ('payment.captured', ...) or exactly '{*}' for every type.
    event_types                 text[] NOT NULL CHECK (cardinality(event_types) >= 1),
    -- HMAC secrets in the Standard Webhooks form whsec_<base64>.  They sign every request, so
    -- they are stored (not hashed); the database's encryption at rest protects them.
    secret                      text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    -- While a secret is rotated, the old one keeps signing too until this time.
    previous_secret             text CHECK (previous_secret LIKE 'whsec\_%'),
    previous_secret_expires_at  timestamptz,
    enabled                     boolean NOT NULL DEFAULT true,
    -- Why the endpoint was disabled: 'gone' (it answered 410) or 'merchant' (by request).
    disabled_reason             text,
    disabled_at                 timestamptz,
    created_at                  timestamptz NOT NULL,
    CONSTRAINT webhook_endpoints_disabled_has_reason
        CHECK (enabled = (disabled_reason IS NULL)),
    CONSTRAINT webhook_endpoints_rotation_pair
        CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_merchant ON webhook_endpoints (merchant_id);

-- Per payment, a counter that orders its events for every endpoint (see payment_seq below).
CREATE TABLE IF NOT EXISTS webhook_payment_sequences (
    payment_id                  text PRIMARY KEY,
    last_seq                    bigint NOT NULL CHECK (last_seq >= 1)
);

-- One row per (event, endpoint): the outbox.  status 'pending' is queued (or waiting for a
-- retry), 'delivered' got a 2xx, 'dead' is the dead-letter store (dead_reason says why:
-- 'retries_exhausted', 'endpoint_gone' for the delivery that got a 410, 'endpoint_disabled'
-- for the others of a disabled endpoint).  A dead row goes back to 'pending' on replay.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    -- whd_ + digest of (event_id, endpoint_id): enqueueing the same event again is a no-op.
    delivery_id                 text PRIMARY KEY,
    endpoint_id                 text NOT NULL REFERENCES webhook_endpoints (endpoint_id),
    merchant_id                 text NOT NULL REFERENCES merchants (merchant_id),
    event_id                    text NOT NULL,
    event_type                  text NOT NULL,
    payment_id                  text NOT NULL,
    -- Position of the event among its payment's events: a delivery is attempted only when
    -- every earlier one of the same payment to the same endpoint is delivered or dead.
    payment_seq                 bigint NOT NULL CHECK (payment_seq >= 1),
    -- The JSON body exactly as it is signed and sent, the same bytes on every attempt.
    body                        bytea NOT NULL,
    status                      text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts                    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    first_attempt_at            timestamptz,
    next_attempt_at             timestamptz NOT NULL,
    last_attempt_at             timestamptz,
    -- HTTP status of the last attempt; NULL when there was no answer (see last_error).
    last_status                 integer,
    last_error                  text,
    delivered_at                timestamptz,
    dead_at                     timestamptz,
    dead_reason                 text,
    replays                     integer NOT NULL DEFAULT 0 CHECK (replays >= 0),
    created_at                  timestamptz NOT NULL,
    -- Also the index enqueue looks an event up by.
    CONSTRAINT webhook_deliveries_once UNIQUE (event_id, endpoint_id),
    CONSTRAINT webhook_deliveries_dead_has_reason
        CHECK ((status = 'dead') = (dead_reason IS NOT NULL AND dead_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due
    ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_payment_order
    ON webhook_deliveries (endpoint_id, payment_id, payment_seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_dead_letters
    ON webhook_deliveries (merchant_id, dead_at) WHERE status = 'dead';
