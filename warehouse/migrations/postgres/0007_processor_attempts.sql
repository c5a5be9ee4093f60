-- Processor attempts: which processor may hold each payment RizzPay sent to one.
-- The rules live in streams/connectors/routing.py (write-ahead, resume where it may be) and
-- streams/authorizer.py; the reads and writes are warehouse/processor_store.py.
-- Every statement is re-runnable.

CREATE TABLE IF NOT EXISTS processor_attempts (
    payment_id      text PRIMARY KEY CHECK (payment_id ~ '^pay_[a-z0-9]{26}$'),
    -- The payment.requested event as JSON: what a status poll needs to charge the payment again
    -- when no processor took it.  Cards travel as a vault token, BIN and last four only.
    request         jsonb NOT NULL,
    -- The processor that may have received a charge (written BEFORE the charge is sent, cleared
    -- only when it provably did not receive it).  NULL: no processor may hold the payment.
    provider        text CHECK (provider IN ('razorpay', 'payu', 'stripe', 'bank_transfer')),
    -- What the customer has to do, as the processor said: {"type": "redirect", "url", ...},
    -- {"type": "upi_collect", "vpa"} or {"type": "bank_transfer", "account_number", "ifsc",
    -- "amount_minor", "modes", ...}.  NULL: nothing.  Read by whoever shows the customer the
    -- next step (the checkout page, the merchant's API).
    customer_action jsonb,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- When the status poller last asked about this payment: it asks the least recently asked
    -- first, so one slow payment never starves the others.
    polled_at       timestamptz
);

-- Payments still waiting for a processor (created without a verdict, or waiting for the
-- customer), found by the poller without scanning every payment.
CREATE INDEX IF NOT EXISTS payments_awaiting_processor ON payments (payment_id)
    WHERE status IN ('created', 'requires_action', 'processing');
