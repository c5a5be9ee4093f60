-- The full payment lifecycle, per-merchant fee schedules, and a hash-chained journal.

-- Every status of streams.lifecycle.Status.
ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN (
    'created', 'requires_action', 'processing', 'authorized', 'partially_captured', 'captured',
    'partially_refunded', 'refunded', 'disputed', 'charged_back', 'voided', 'declined',
    'failed', 'expired'));
-- The lifecycle state machine's whole state (streams.lifecycle.state_to_json), so later
-- commands (capture, refund, dispute) continue from exactly where the payment is.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS lifecycle jsonb;
ALTER TABLE payments ADD COLUMN IF NOT EXISTS card_network text;

-- A merchant's MDR schedule (streams.fees.MdrSchedule as JSON); NULL means the platform default.
ALTER TABLE merchants ADD COLUMN IF NOT EXISTS mdr_schedule jsonb;

-- Hash chain over the journal.  At commit (once an entry's postings are in), each new entry is
-- appended to ledger_chain with sha256(previous hash || the entry and its postings in canonical
-- form).  Recomputing the chain (ledger_verify_chain) exposes any edit, deletion or insertion
-- made behind the triggers' back.
CREATE TABLE IF NOT EXISTS ledger_chain (
    seq           bigint PRIMARY KEY,
    entry_id      text NOT NULL UNIQUE REFERENCES journal_entries (entry_id),
    prev_hash     bytea NOT NULL,
    entry_hash    bytea NOT NULL,
    chained_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE OR REPLACE FUNCTION ledger_entry_digest(p_entry_id text, p_prev_hash bytea) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT sha256(
        p_prev_hash
        || convert_to(
            concat_ws('|', e.entry_id, coalesce(e.payment_id, ''), coalesce(e.merchant_id, ''),
                      e.kind, e.currency,
                      (SELECT string_agg(concat_ws(':', p.posting_id, p.account_id,
                                                   p.amount_minor::text, p.currency), ';'
                                         ORDER BY p.posting_id)
                         FROM postings p WHERE p.entry_id = e.entry_id)),
            'UTF8'))
      FROM journal_entries e WHERE e.entry_id = p_entry_id
$$;

CREATE OR REPLACE FUNCTION ledger_chain_append() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_seq  bigint;
    last_hash bytea;
BEGIN
    -- One appender at a time, so the chain is a line, not a tree.
    PERFORM pg_advisory_xact_lock(1279607879);  -- "LEDG"
    SELECT seq, entry_hash INTO last_seq, last_hash FROM ledger_chain ORDER BY seq DESC LIMIT 1;
    IF NOT FOUND THEN
        last_seq := 0;
        last_hash := '\x'::bytea;
    END IF;
    INSERT INTO ledger_chain (seq, entry_id, prev_hash, entry_hash)
    VALUES (last_seq + 1, NEW.entry_id, last_hash, ledger_entry_digest(NEW.entry_id, last_hash));
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS journal_entries_chain ON journal_entries;
CREATE CONSTRAINT TRIGGER journal_entries_chain
    AFTER INSERT ON journal_entries DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_chain_append();

-- Journal entries are append-only too.
DROP TRIGGER IF EXISTS journal_entries_append_only ON journal_entries;
CREATE TRIGGER journal_entries_append_only
    BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
DROP TRIGGER IF EXISTS ledger_chain_append_only ON ledger_chain;
CREATE TRIGGER ledger_chain_append_only
    BEFORE UPDATE OR DELETE ON ledger_chain
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- Every place the chain and the journal disagree: a recomputed hash that differs (an edited
-- entry or posting), a broken link, a gap in the sequence, or an entry missing from the chain.
CREATE OR REPLACE FUNCTION ledger_verify_chain()
RETURNS TABLE (seq bigint, entry_id text, problem text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r         record;
    expected  bigint := 1;
    prev      bytea := '\x'::bytea;
BEGIN
    FOR r IN SELECT c.seq, c.entry_id, c.prev_hash, c.entry_hash FROM ledger_chain c ORDER BY c.seq
    LOOP
        IF r.seq <> expected THEN
            seq := expected; entry_id := NULL; problem := 'missing sequence number';
            RETURN NEXT;
        END IF;
        IF r.prev_hash <> prev THEN
            seq := r.seq; entry_id := r.entry_id; problem := 'broken link';
            RETURN NEXT;
        END IF;
        IF ledger_entry_digest(r.entry_id, r.prev_hash) IS DISTINCT FROM r.entry_hash THEN
            seq := r.seq; entry_id := r.entry_id; problem := 'entry or postings changed';
            RETURN NEXT;
        END IF;
        prev := r.entry_hash;
        expected := r.seq + 1;
    END LOOP;
    FOR r IN SELECT e.entry_id FROM journal_entries e
              WHERE NOT EXISTS (SELECT 1 FROM ledger_chain c WHERE c.entry_id = e.entry_id)
    LOOP
        seq := NULL; entry_id := r.entry_id; problem := 'entry not in the chain';
        RETURN NEXT;
    END LOOP;
END $$;
