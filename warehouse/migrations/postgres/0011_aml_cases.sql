-- AML monitoring (warehouse/aml, docs/aml.md): alerts raised by the rules over ClickHouse, the
-- cases they open, what analysts did with them, and suspicious-transaction report drafts.
-- Amounts are bigint minor units of their currency; times are timestamptz (UTC).

-- One row per rule hit.  alert_id is derived from (rule, period, subject), so re-running a
-- period finds the same ids and opens nothing new (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE IF NOT EXISTS aml_alerts (
    alert_id          text PRIMARY KEY CHECK (alert_id ~ '^aml_[0-9a-f]{24}$'),
    rule              text NOT NULL,
    period            text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),  -- IST month
    subject_kind      text NOT NULL CHECK (subject_kind IN ('customer', 'customer_group',
                                                            'merchant', 'payment')),
    subject_id        text NOT NULL,
    amount_minor      bigint NOT NULL CHECK (amount_minor >= 0),
    currency          char(3) NOT NULL,
    transaction_count integer NOT NULL CHECK (transaction_count >= 0),
    -- Evidence: the transaction (or ledger entry) ids with their amounts, and the figures the
    -- rule compared with its thresholds; see docs/aml.md for each rule's fields.
    evidence          jsonb NOT NULL,
    raised_at         timestamptz NOT NULL,
    UNIQUE (rule, period, subject_kind, subject_id)
);
CREATE INDEX IF NOT EXISTS aml_alerts_period ON aml_alerts (period, rule);

-- One case per alert: open -> closed (with a reason) or open -> escalated (an STR draft).
CREATE TABLE IF NOT EXISTS aml_cases (
    case_id        text PRIMARY KEY CHECK (case_id ~ '^case_[0-9a-f]{24}$'),
    alert_id       text NOT NULL UNIQUE REFERENCES aml_alerts (alert_id),
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed', 'escalated')),
    opened_at      timestamptz NOT NULL,
    closed_at      timestamptz,
    close_reason   text,
    escalated_at   timestamptz,
    updated_at     timestamptz NOT NULL,
    CHECK ((status = 'closed') = (closed_at IS NOT NULL AND close_reason IS NOT NULL)),
    CHECK ((status = 'escalated') = (escalated_at IS NOT NULL)),
    CHECK (close_reason IS NULL OR length(btrim(close_reason)) > 0)
);
CREATE INDEX IF NOT EXISTS aml_cases_status ON aml_cases (status, opened_at);

-- What happened to a case, by whom: append-only.
CREATE TABLE IF NOT EXISTS aml_case_actions (
    case_id   text NOT NULL REFERENCES aml_cases (case_id),
    action    text NOT NULL CHECK (action IN ('opened', 'closed', 'escalated', 'str_filed')),
    actor     text NOT NULL,
    note      text,
    at        timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS aml_case_actions_case ON aml_case_actions (case_id, at);

-- A suspicious-transaction report draft: due within 7 working days of the determination of
-- suspicion (working days skip weekends and the listed holidays; warehouse/aml/deadlines.py).
CREATE TABLE IF NOT EXISTS aml_str_drafts (
    str_id                   text PRIMARY KEY CHECK (str_id ~ '^str_[0-9a-f]{24}$'),
    case_id                  text NOT NULL UNIQUE REFERENCES aml_cases (case_id),
    suspicion_determined_on  date NOT NULL,           -- IST calendar date
    due_on                   date NOT NULL CHECK (due_on > suspicion_determined_on),
    grounds                  text NOT NULL CHECK (length(btrim(grounds)) > 0),
    status                   text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'filed')),
    filed_on                 date,
    fiu_reference            text,
    created_at               timestamptz NOT NULL,
    CHECK ((status = 'filed') = (filed_on IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS aml_str_drafts_due ON aml_str_drafts (status, due_on);

-- Actions are evidence: no edits, no deletions.
CREATE OR REPLACE FUNCTION aml_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS aml_case_actions_append_only ON aml_case_actions;
CREATE TRIGGER aml_case_actions_append_only
    BEFORE UPDATE OR DELETE ON aml_case_actions
    FOR EACH ROW EXECUTE FUNCTION aml_refuse_change();
DROP TRIGGER IF EXISTS aml_alerts_append_only ON aml_alerts;
CREATE TRIGGER aml_alerts_append_only
    BEFORE UPDATE OR DELETE ON aml_alerts
    FOR EACH ROW EXECUTE FUNCTION aml_refuse_change();
