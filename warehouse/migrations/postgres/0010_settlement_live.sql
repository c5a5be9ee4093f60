-- The live settlement view: the streaming balances agent's one-day tumbling windows
-- (streams/balances.py, Faust table settlement_view) projected here for the API and dashboards.
-- One row per merchant settled account (pending, refunds, fees, gst_payable) and IST day the
-- postings' events occurred; a merchant's day is the sum of its rows.  Amounts are bigint paise
-- with the meaning of streams.settlement.Totals.  Rows are rewritten with absolute values;
-- `postings` (how many postings the window holds) only grows, so a stale write never replaces
-- a newer one.

CREATE TABLE IF NOT EXISTS settlement_live (
    account_id          text NOT NULL,
    merchant_id         text NOT NULL,
    currency            char(3) NOT NULL,
    booked_day          date NOT NULL,
    captured_minor      bigint NOT NULL DEFAULT 0,
    refunds_minor       bigint NOT NULL DEFAULT 0,
    disputes_minor      bigint NOT NULL DEFAULT 0,
    adjustments_minor   bigint NOT NULL DEFAULT 0,
    fees_minor          bigint NOT NULL DEFAULT 0,
    gst_minor           bigint NOT NULL DEFAULT 0,
    postings            bigint NOT NULL CHECK (postings >= 0),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, booked_day)
);

CREATE INDEX IF NOT EXISTS settlement_live_merchant_day
    ON settlement_live (merchant_id, booked_day);
