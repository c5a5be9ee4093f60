-- Merchant webhook API (deleted endpoints), dispute evidence, and customer notifications.
-- The webhook outbox itself is 0006; the code is streams/webhooks/ (store, agent), api/webhooks.py,
-- api/disputes.py and streams/notifications/.  Every statement is re-runnable.

-- A deleted endpoint is kept (its deliveries and dead letters reference it and stay readable
-- for audit) but disabled, hidden from the merchant's lists and never enabled again.
ALTER TABLE webhook_endpoints ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'webhook_endpoints_deleted_is_disabled') THEN
        ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_deleted_is_disabled
            CHECK (deleted_at IS NULL OR NOT enabled);
    END IF;
END $$;

-- The merchant's evidence for a dispute.  Submitted once (Stripe's "submit" is final too);
-- the same body again is an idempotent replay, another body is refused.
CREATE TABLE IF NOT EXISTS dispute_evidence (
    dispute_id          text PRIMARY KEY CHECK (dispute_id ~ '^dsp_[a-z0-9]{10,40}$'),
    payment_id          text NOT NULL REFERENCES payments (payment_id),
    merchant_id         text NOT NULL REFERENCES merchants (merchant_id),
    -- sha256 (hex) of the canonical evidence body.
    request_fingerprint text NOT NULL CHECK (request_fingerprint ~ '^[0-9a-f]{64}$'),
    evidence            jsonb NOT NULL,
    submitted_at        timestamptz NOT NULL
);

-- Where a merchant's customer wants receipts and failure notices.  Filled by the merchant
-- (PUT /v1/customers/{customer_id}/contacts); every channel is optional.
CREATE TABLE IF NOT EXISTS customer_contacts (
    merchant_id         text NOT NULL REFERENCES merchants (merchant_id),
    customer_id         text NOT NULL CHECK (length(customer_id) BETWEEN 1 AND 64),
    email               text CHECK (length(email) BETWEEN 3 AND 254),
    -- E.164, e.g. +919876543210.
    phone               text CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    push_platform       text CHECK (push_platform IN ('fcm', 'apns')),
    push_token          text CHECK (length(push_token) BETWEEN 1 AND 4096),
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, customer_id),
    CONSTRAINT customer_contacts_push_pair CHECK ((push_platform IS NULL) = (push_token IS NULL))
);

-- What the notifier needs of a payment that its lifecycle events lack: the customer and the
-- method.  Written by the notifications agent from payments.requested.
CREATE TABLE IF NOT EXISTS notification_payments (
    payment_id          text PRIMARY KEY,
    merchant_id         text NOT NULL,
    customer_id         text,
    method              text NOT NULL,
    description         text,
    requested_at        timestamptz NOT NULL
);

-- One row per (lifecycle event, channel): the claim that makes notifications idempotent per
-- event.  status 'sent' carries the provider's message id; 'failed' keeps the last error after
-- the retries ran out (kept as evidence; a redelivered event does not send again).
CREATE TABLE IF NOT EXISTS notifications (
    notification_id     text PRIMARY KEY,
    event_id            text NOT NULL,
    event_type          text NOT NULL,
    payment_id          text NOT NULL,
    merchant_id         text NOT NULL,
    channel             text NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    recipient           text NOT NULL,
    status              text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    provider_message_id text,
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error          text,
    created_at          timestamptz NOT NULL,
    sent_at             timestamptz,
    CONSTRAINT notifications_once UNIQUE (event_id, channel),
    CONSTRAINT notifications_sent_has_id
        CHECK ((status = 'sent') = (provider_message_id IS NOT NULL AND sent_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS notifications_payment ON notifications (payment_id);
