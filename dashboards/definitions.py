"""The four RizzPay dashboards: finance settlement, fraud operations, AML cases, platform health.

Every table, event type and data source name comes from the constants below (which themselves
come from the modules that own the schemas where such constants exist); no panel spells one.

Money: amounts are stored as integer paise.  Panels that show rupees divide in the query, for
display only: PostgreSQL ``numeric`` (exact decimal, ``sum(x_minor) / 100.0``), ClickHouse
``Decimal`` (``toDecimal128(sum(amount_minor), 0) / 100``); sums are taken over the integers
first.  Rates (decline rate, refund ratio) are plain ``Float64``: they are not money.

ClickHouse tables are ReplacingMergeTree: every query reads them with ``FINAL``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboards.model import (
    Dashboard,
    DataSource,
    Engine,
    Panel,
    PanelKind,
    Query,
    Shape,
)
from models.events import (
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
)
from warehouse.migrate import CLICKHOUSE_DATABASE
from warehouse.timeseries import EVENT_LOG, LAG_SAMPLES, ROLLUP

FOLDER_UID = "rizzpay"
FOLDER_TITLE = "RizzPay"

POSTGRES_SOURCE = DataSource("rizzpay-postgres", "RizzPay PostgreSQL", Engine.POSTGRES)
CLICKHOUSE_SOURCE = DataSource("rizzpay-clickhouse", "RizzPay ClickHouse", Engine.CLICKHOUSE)
SOURCES: dict[Engine, DataSource] = {
    Engine.POSTGRES: POSTGRES_SOURCE,
    Engine.CLICKHOUSE: CLICKHOUSE_SOURCE,
}


def _event_type(model: type[PaymentDeclined | PaymentAuthorized | PaymentCaptured]) -> str:
    value = model.model_fields["event_type"].default
    assert isinstance(value, str)
    return value


EV_AUTHORIZED = _event_type(PaymentAuthorized)
EV_DECLINED = _event_type(PaymentDeclined)
EV_CAPTURED = _event_type(PaymentCaptured)
EV_REFUNDED = str(PaymentRefunded.model_fields["event_type"].default)


class PG:
    """PostgreSQL tables the dashboards read (``warehouse/migrations/postgres``)."""

    SETTLEMENT_BATCHES = "settlement_batches"
    SETTLEMENT_PAYOUTS = "settlement_payouts"
    EVENT_LOG = EVENT_LOG.name
    METRICS_MINUTE = ROLLUP
    LAG_SAMPLES = LAG_SAMPLES.name
    LAG_CURRENT = "sink_lag_current"
    AML_ALERTS = "aml_alerts"
    AML_CASES = "aml_cases"
    AML_STR_DRAFTS = "aml_str_drafts"


@dataclass(frozen=True)
class CH:
    """ClickHouse tables the dashboards read (``warehouse/migrations/clickhouse``), qualified
    with the database they live in."""

    database: str = CLICKHOUSE_DATABASE

    @property
    def payments(self) -> str:
        return f"{self.database}.payments"

    @property
    def payment_events(self) -> str:
        return f"{self.database}.payment_events"


# AML objects still to come: none (migration 0011 created aml_alerts, aml_cases and
# aml_str_drafts, which the AML panels read).
PENDING_AML_TABLES: tuple[str, ...] = ()
# Thresholds the AML watch panels show (paise): ₹10 lakh a month per customer.
AML_CUSTOMER_MONTHLY_MINOR = 10_00_000 * 100

# Settlement statuses whose money has left (or is leaving) for the merchant.
_RELEASED = "('settled', 'payout_pending', 'paid')"


def finance_settlement() -> Dashboard:
    b, p = PG.SETTLEMENT_BATCHES, PG.SETTLEMENT_PAYOUTS
    panels = (
        Panel(
            "Net settled per interval (₹)",
            PanelKind.TIMESERIES,
            Query(
                Engine.POSTGRES,
                f"""SELECT $__timeGroupAlias(cutoff, $__interval),
       sum(net_minor) / 100.0 AS net_rupees
  FROM {b}
 WHERE $__timeFilter(cutoff) AND currency = 'INR' AND status IN {_RELEASED}
 GROUP BY 1 ORDER BY 1""",  # noqa: S608 -- names are constants
                ("time", "net_rupees"),
                Shape.TIME_SERIES,
            ),
            description="Net of released INR batches by cutoff; numeric rupees from paise.",
            unit="currencyINR",
        ),
        Panel(
            "Batches by status",
            PanelKind.TABLE,
            Query(
                Engine.POSTGRES,
                f"""SELECT status, currency, count(*) AS batches,
       sum(net_minor) / 100.0 AS net_rupees
  FROM {b}
 WHERE $__timeFilter(cutoff)
 GROUP BY status, currency ORDER BY status, currency""",  # noqa: S608 -- names are constants
                ("status", "currency", "batches", "net_rupees"),
            ),
        ),
        Panel(
            "Captured, fees, GST and net (₹)",
            PanelKind.STAT,
            Query(
                Engine.POSTGRES,
                f"""SELECT coalesce(sum(captured_minor), 0) / 100.0 AS captured_rupees,
       coalesce(sum(refunds_minor + disputes_minor), 0) / 100.0 AS refunds_disputes_rupees,
       coalesce(sum(fees_minor + instant_fee_minor), 0) / 100.0 AS fees_rupees,
       coalesce(sum(gst_minor + instant_fee_gst_minor), 0) / 100.0 AS gst_rupees,
       coalesce(sum(net_minor), 0) / 100.0 AS net_rupees
  FROM {b}
 WHERE $__timeFilter(cutoff) AND currency = 'INR' AND status IN {_RELEASED}""",  # noqa: S608 -- names are constants
                (
                    "captured_rupees",
                    "refunds_disputes_rupees",
                    "fees_rupees",
                    "gst_rupees",
                    "net_rupees",
                ),
            ),
            unit="currencyINR",
            width=24,
            height=5,
        ),
        Panel(
            "Held and carried-forward batches",
            PanelKind.TABLE,
            Query(
                Engine.POSTGRES,
                f"""SELECT batch_id, merchant_id, currency, cutoff, status,
       coalesce(hold_reason, '') AS hold_reason, net_minor / 100.0 AS net_rupees
  FROM {b}
 WHERE $__timeFilter(cutoff) AND status IN ('held', 'carried_forward')
 ORDER BY cutoff DESC LIMIT 200""",  # noqa: S608 -- names are constants
                (
                    "batch_id",
                    "merchant_id",
                    "currency",
                    "cutoff",
                    "status",
                    "hold_reason",
                    "net_rupees",
                ),
            ),
        ),
        Panel(
            "Payouts awaiting UTR",
            PanelKind.TABLE,
            Query(
                Engine.POSTGRES,
                f"""SELECT batch_id, currency, amount_minor / 100.0 AS amount_rupees, ifsc,
       instructed_at,
       round(extract(epoch from (now() - instructed_at)) / 3600.0, 1) AS age_hours
  FROM {p}
 WHERE utr IS NULL AND $__timeFilter(instructed_at)
 ORDER BY instructed_at LIMIT 200""",  # noqa: S608 -- names are constants
                ("batch_id", "currency", "amount_rupees", "ifsc", "instructed_at", "age_hours"),
            ),
            description="Payout instructions the bank has not confirmed yet (no UTR).",
        ),
    )
    return Dashboard(
        "rizzpay-finance-settlement",
        "Finance: settlement",
        panels,
        tags=("rizzpay", "finance"),
        time_from="now-30d",
        refresh="5m",
    )


def fraud_operations(ch: CH) -> Dashboard:
    e = ch.payment_events
    decided = f"('{EV_AUTHORIZED}', '{EV_DECLINED}')"
    panels = (
        Panel(
            "Declines by code",
            PanelKind.BARCHART,
            Query(
                Engine.CLICKHOUSE,
                f"""SELECT decline_code, count() AS declines
FROM {e} FINAL
WHERE $__timeFilter(occurred_at) AND event_type = '{EV_DECLINED}'
GROUP BY decline_code ORDER BY declines DESC, decline_code LIMIT 20""",  # noqa: S608 -- names are constants
                ("decline_code", "declines"),
            ),
        ),
        Panel(
            "Decline rate by method",
            PanelKind.TIMESERIES,
            Query(
                Engine.CLICKHOUSE,
                f"""SELECT toStartOfInterval(occurred_at, INTERVAL $__interval_s second) AS time,
       method,
       countIf(event_type = '{EV_DECLINED}') / count() AS decline_rate
FROM {e} FINAL
WHERE $__timeFilter(occurred_at) AND event_type IN {decided}
GROUP BY time, method ORDER BY time, method""",  # noqa: S608 -- names are constants
                ("time", "method", "decline_rate"),
                Shape.TIME_SERIES,
            ),
            description="Declined / (authorized + declined) per method; a rate, not money.",
            unit="percentunit",
        ),
        Panel(
            "Decisions by method",
            PanelKind.TABLE,
            Query(
                Engine.CLICKHOUSE,
                f"""SELECT method,
       countIf(event_type = '{EV_AUTHORIZED}') AS authorized,
       countIf(event_type = '{EV_DECLINED}') AS declined,
       countIf(event_type = '{EV_DECLINED}') / count() AS decline_rate,
       toDecimal128(sumIf(amount_minor, event_type = '{EV_DECLINED}'), 0) / 100
           AS declined_rupees
FROM {e} FINAL
WHERE $__timeFilter(occurred_at) AND event_type IN {decided}
GROUP BY method ORDER BY method""",  # noqa: S608 -- names are constants
                ("method", "authorized", "declined", "decline_rate", "declined_rupees"),
            ),
        ),
        Panel(
            "Pending: fraud scores and review queue",
            PanelKind.TEXT,
            note=(
                "Placeholder. Fraud scores and the review queue are not in the warehouse yet; "
                "panels for score distributions, review/block rates and rule hits will read "
                "them once the sink writes them."
            ),
        ),
    )
    return Dashboard(
        "rizzpay-fraud-operations",
        "Fraud operations",
        panels,
        tags=("rizzpay", "fraud"),
        pending=("fraud scores", "review queue"),
    )


def aml_cases(ch: CH) -> Dashboard:
    pay, e = ch.payments, ch.payment_events
    alerts, cases, strs = PG.AML_ALERTS, PG.AML_CASES, PG.AML_STR_DRAFTS
    panels = (
        Panel(
            "AML cases by rule and status",
            PanelKind.TABLE,
            Query(
                Engine.POSTGRES,
                f"""SELECT a.rule, c.status, count(*) AS cases,
       sum(a.amount_minor) / 100.0 AS amount_rupees
  FROM {cases} c JOIN {alerts} a ON a.alert_id = c.alert_id
 WHERE $__timeFilter(c.opened_at) AND a.currency = 'INR'
 GROUP BY a.rule, c.status ORDER BY a.rule, c.status""",  # noqa: S608 -- names are constants
                ("rule", "status", "cases", "amount_rupees"),
            ),
            description="Cases the AML rules opened in the range (docs/aml.md).",
        ),
        Panel(
            "Open AML cases, oldest first",
            PanelKind.TABLE,
            Query(
                Engine.POSTGRES,
                f"""SELECT c.case_id, a.rule, a.period, a.subject_id,
       a.amount_minor / 100.0 AS amount_rupees, c.opened_at
  FROM {cases} c JOIN {alerts} a ON a.alert_id = c.alert_id
 WHERE c.status = 'open' AND a.currency = 'INR'
 ORDER BY c.opened_at, c.case_id LIMIT 100""",  # noqa: S608 -- names are constants
                ("case_id", "rule", "period", "subject_id", "amount_rupees", "opened_at"),
            ),
        ),
        Panel(
            "STR drafts: deadlines",
            PanelKind.TABLE,
            Query(
                Engine.POSTGRES,
                f"""SELECT s.str_id, s.case_id, s.suspicion_determined_on, s.due_on, s.status,
       (s.status = 'draft' AND s.due_on < (now() AT TIME ZONE 'Asia/Kolkata')::date)
           AS overdue
  FROM {strs} s
 WHERE s.status = 'draft' OR s.filed_on >= (now() AT TIME ZONE 'Asia/Kolkata')::date - 30
 ORDER BY s.due_on, s.str_id""",  # noqa: S608 -- names are constants
                (
                    "str_id",
                    "case_id",
                    "suspicion_determined_on",
                    "due_on",
                    "status",
                    "overdue",
                ),
            ),
            description=(
                "Unfiled drafts (due 7 working days after suspicion was determined) and those "
                "filed in the last 30 days; overdue = past due_on (IST) and not filed."
            ),
            width=24,
        ),
        Panel(
            "Customers over ₹10 lakh in the range",
            PanelKind.TABLE,
            Query(
                Engine.CLICKHOUSE,
                f"""SELECT customer_id, count() AS payments,
       toDecimal128(sum(amount_minor), 0) / 100 AS total_rupees
FROM {pay} FINAL
WHERE $__timeFilter(requested_at) AND customer_id != '' AND currency = 'INR'
GROUP BY customer_id
HAVING sum(amount_minor) > {AML_CUSTOMER_MONTHLY_MINOR}
ORDER BY sum(amount_minor) DESC LIMIT 100""",  # noqa: S608 -- names are constants
                ("customer_id", "payments", "total_rupees"),
            ),
            description="Requested INR payments per customer over the threshold (exact decimal).",
        ),
        Panel(
            "Refunds to captures by merchant",
            PanelKind.TABLE,
            Query(
                Engine.CLICKHOUSE,
                f"""SELECT merchant_id,
       countIf(event_type = '{EV_CAPTURED}') AS captures,
       countIf(event_type = '{EV_REFUNDED}') AS refunds,
       if(captures = 0, 0, refunds / captures) AS refund_ratio
FROM {e} FINAL
WHERE $__timeFilter(occurred_at) AND event_type IN ('{EV_CAPTURED}', '{EV_REFUNDED}')
GROUP BY merchant_id ORDER BY refund_ratio DESC, merchant_id LIMIT 100""",  # noqa: S608 -- names are constants
                ("merchant_id", "captures", "refunds", "refund_ratio"),
            ),
        ),
    )
    return Dashboard(
        "rizzpay-aml-cases",
        "AML cases",
        panels,
        tags=("rizzpay", "aml", "compliance"),
        time_from="now-30d",
        refresh="15m",
    )


def platform_health(ch: CH) -> Dashboard:
    panels = (
        Panel(
            "Sink lag per partition (latest)",
            PanelKind.TABLE,
            Query(
                Engine.POSTGRES,
                f"""SELECT consumer_group, topic, partition, lag, sampled_at,
       round(extract(epoch from (now() - sampled_at))::numeric, 0) AS sample_age_s
  FROM {PG.LAG_CURRENT}
 ORDER BY lag DESC, consumer_group, topic, partition""",  # noqa: S608 -- names are constants
                ("consumer_group", "topic", "partition", "lag", "sampled_at", "sample_age_s"),
            ),
        ),
        Panel(
            "Sink lag over time",
            PanelKind.TIMESERIES,
            Query(
                Engine.POSTGRES,
                f"""SELECT $__timeGroupAlias(sampled_at, $__interval), topic AS metric,
       max(lag) AS lag
  FROM {PG.LAG_SAMPLES}
 WHERE $__timeFilter(sampled_at)
 GROUP BY 1, 2 ORDER BY 1, 2""",  # noqa: S608 -- names are constants
                ("time", "metric", "lag"),
                Shape.TIME_SERIES,
            ),
        ),
        Panel(
            "Events per minute by type",
            PanelKind.TIMESERIES,
            Query(
                Engine.POSTGRES,
                f"""SELECT $__timeGroupAlias(bucket, $__interval), event_type AS metric,
       sum(events)::bigint AS events
  FROM {PG.METRICS_MINUTE}
 WHERE $__timeFilter(bucket)
 GROUP BY 1, 2 ORDER BY 1, 2""",  # noqa: S608 -- names are constants
                ("time", "metric", "events"),
                Shape.TIME_SERIES,
            ),
            description="From the per-minute rollup of the PostgreSQL event log.",
        ),
        Panel(
            "ClickHouse facts: freshness",
            PanelKind.STAT,
            Query(
                Engine.CLICKHOUSE,
                f"""SELECT count() AS events, max(occurred_at) AS last_occurred_at,
       max(loaded_at) AS last_loaded_at
FROM {ch.payment_events} FINAL
WHERE $__timeFilter(occurred_at)""",  # noqa: S608 -- names are constants
                ("events", "last_occurred_at", "last_loaded_at"),
            ),
        ),
        Panel(
            "Pending: dead letters",
            PanelKind.TEXT,
            note=(
                "Dead letters are published to the dead-letter topic only; no table holds them, "
                "so they cannot be queried here yet. Use `rizzpay warehouse lag` and the topic."
            ),
        ),
    )
    return Dashboard(
        "rizzpay-platform-health",
        "Platform health",
        panels,
        tags=("rizzpay", "platform"),
        time_from="now-6h",
        refresh="30s",
        pending=("dead letters",),
    )


def all_dashboards(clickhouse_database: str = CLICKHOUSE_DATABASE) -> tuple[Dashboard, ...]:
    """Every dashboard, with ClickHouse tables qualified by ``clickhouse_database``."""
    ch = CH(clickhouse_database)
    return (finance_settlement(), fraud_operations(ch), aml_cases(ch), platform_health(ch))
