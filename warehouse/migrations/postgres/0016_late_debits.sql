-- Late debits: a processor confirms a payment after RizzPay's books ended it (failed, expired,
-- or declined as timed out), e.g. a UPI collect that timed out and later turned into a debit at
-- the remitter bank.  The customer was debited for a failed transaction: the status poller
-- records it in failed_transactions (RBI turnaround report) and queues the reversal at the
-- processor in the processor_operations outbox, in one transaction; the operation sender marks
-- the row reversed once the processor has done it (streams/processor_operations.py).
-- Every statement is re-runnable.

-- The outbox operation that reverses the debit (NULL: recorded by operations staff and
-- reversed through warehouse.reports.rbi.record_reversal).
ALTER TABLE failed_transactions ADD COLUMN IF NOT EXISTS reversal_operation_id text;

-- The poller's watch reads ended payments by when they ended.
CREATE INDEX IF NOT EXISTS payments_ended_recently
    ON payments (updated_at) WHERE status IN ('failed', 'expired', 'declined');
