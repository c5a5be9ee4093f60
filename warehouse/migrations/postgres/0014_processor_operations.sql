-- Processor operations: the outbox of captures, voids and refunds that RizzPay's books recorded
-- for a payment a processor holds, and what the processor answered.  Written in the same
-- transaction as the command's ledger entries (warehouse/payments.py apply_commands through
-- warehouse/processor_operations.py); sent by the leader's operation sender
-- (streams/processor_operations.py) with our id as the provider's idempotency reference.
-- Every statement is re-runnable.

CREATE TABLE IF NOT EXISTS processor_operations (
    payment_id             text NOT NULL REFERENCES processor_attempts (payment_id),
    -- Our id of the operation: the capture_id (cap_…), the refund_id (rfd_…), or 'void'
    -- (a payment is voided at most once).  The provider sees it as the idempotency key or
    -- the refund's receipt, so sending it again can only name the same operation.
    operation_id           text NOT NULL CHECK (operation_id ~ '^(cap_[a-z0-9]{10,40}|rfd_[a-z0-9]{10,40}|void)$'),
    -- Order of the operations of one payment: each is sent only after the earlier ones ended.
    seq                    bigserial NOT NULL UNIQUE,
    kind                   text NOT NULL CHECK (kind IN ('capture', 'void', 'refund')),
    provider               text NOT NULL
                           CHECK (provider IN ('razorpay', 'payu', 'stripe', 'bank_transfer')),
    amount_minor           bigint NOT NULL CHECK (amount_minor >= 0),
    currency               text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- A capture that closes the authorization (the processor releases what is left).
    final                  boolean NOT NULL DEFAULT true,
    -- pending: not yet answered for sure; done: the processor took it; refused: the processor
    -- said no and nothing changed there.  A refused operation stays for operations staff to
    -- resolve: the ledger already records it and is never reversed behind their back.
    status                 text NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'done', 'refused')),
    -- The provider's id of the payment (looked up by our reference before the first send).
    provider_payment_ref   text,
    -- The provider's id of the capture/refund/cancellation once done.
    provider_operation_ref text,
    refusal_code           text,
    refusal_message        text,
    -- The last transient failure, for whoever looks at a payment stuck in pending.
    last_error             text,
    attempts               integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (payment_id, operation_id),
    CHECK ((status = 'done') = (provider_operation_ref IS NOT NULL)),
    CHECK ((status = 'refused') = (refusal_code IS NOT NULL))
);

-- The sender's queue: pending operations by when they are due, without scanning finished ones.
CREATE INDEX IF NOT EXISTS processor_operations_due
    ON processor_operations (next_attempt_at, seq) WHERE status = 'pending';
