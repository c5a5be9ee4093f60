-- Scheduled (and manual) AML rule runs (warehouse/aml/schedule.py, docs/aml.md): one row per
-- run, so compliance can see when each month was last checked and what it opened.
-- ``kind``: month_to_date (the open month, every interval), final (a closed month, once),
-- manual (``rizzpay aml run``).  A run that fails keeps finished_at NULL and says why.
CREATE TABLE IF NOT EXISTS aml_runs (
    run_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period          text NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),
    kind            text NOT NULL CHECK (kind IN ('month_to_date', 'final', 'manual')),
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz CHECK (finished_at >= started_at),
    alerts          integer CHECK (alerts >= 0),
    cases_opened    integer CHECK (cases_opened >= 0),
    already_raised  integer CHECK (already_raised >= 0),
    problems        jsonb NOT NULL DEFAULT '[]'::jsonb,
    error           text
);
CREATE INDEX IF NOT EXISTS aml_runs_period_kind ON aml_runs (period, kind, started_at);
