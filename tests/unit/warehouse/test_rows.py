"""Row builders, fed with the registry's example payloads of every schema."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from models.events import PaymentRequested, PaymentScored
from models.money import Money
from models.topics import (
    PAYMENTS_DEADLETTER,
    PAYMENTS_LIFECYCLE,
    PAYMENTS_REQUESTED,
    PAYMENTS_SCORED,
)
from warehouse.migrate import MIGRATIONS_DIR
from warehouse.sinks.rows import (
    COMMAND_MODELS,
    LIFECYCLE_MODELS,
    EventLogRow,
    FraudScoreRow,
    PaymentEventRow,
    PaymentRow,
    is_fact,
    payment_event_log_row,
    payment_events_row,
    payments_row,
    rows_for,
)
from warehouse.timeseries import EVENT_LOG_COLUMNS

ON_REQUESTED = [
    (p.name, PAYMENTS_REQUESTED.decode(p.read_bytes())) for p in PAYMENTS_REQUESTED.examples()
]
REQUESTED = [(n, e) for n, e in ON_REQUESTED if isinstance(e, PaymentRequested)]
COMMANDS = [(n, e) for n, e in ON_REQUESTED if not isinstance(e, PaymentRequested)]
LIFECYCLE = [
    (p.name, PAYMENTS_LIFECYCLE.decode(p.read_bytes())) for p in PAYMENTS_LIFECYCLE.examples()
]
FACTS = LIFECYCLE + COMMANDS
ALL = ON_REQUESTED + LIFECYCLE
AMOUNT_MINOR = {  # from the example files
    "payment.authorized.v1.json": 149900,
    "payment.declined.v1.json": 149900,
    "payment.refunded.v1.json": 50000,
    "payment.authorization_released.v1.json": 49900,
    "payment.capture_requested.v1.json": 100000,
    "payment.refund_requested.v1.json": 50000,
}


def _example(name: str) -> BaseModel:
    return next(e for n, e in ALL if n == name)


def _assert_no_float(values: tuple[Any, ...]) -> None:
    assert not any(isinstance(v, float) for v in values), values


def test_the_builders_cover_every_schema_of_the_topics_they_read() -> None:
    assert set(LIFECYCLE_MODELS) == set(PAYMENTS_LIFECYCLE.schemas)
    assert {PaymentRequested, *COMMAND_MODELS} == set(PAYMENTS_REQUESTED.schemas)
    assert {type(e) for _, e in LIFECYCLE} == set(PAYMENTS_LIFECYCLE.schemas)
    assert {type(e) for _, e in COMMANDS} == set(COMMAND_MODELS)


@pytest.mark.parametrize(("name", "event"), REQUESTED, ids=[n for n, _ in REQUESTED])
def test_a_requested_event_is_a_payment_row_and_a_log_row(name: str, event: BaseModel) -> None:
    rows = rows_for(event)
    assert isinstance(event, PaymentRequested)
    assert rows.payments == payments_row(event)
    assert rows.payment_events is None
    assert rows.payment_event_log == payment_event_log_row(event)
    payment = rows.payments
    assert payment.event_id == event.event_id and payment.payment_id == event.payment_id
    assert payment.amount_minor == event.amount.minor
    assert type(payment.amount_minor) is int
    assert payment.currency == "INR"
    assert payment.requested_at == event.occurred_at and payment.requested_at.tzinfo is not None
    _assert_no_float(payment.values())


def test_payment_rows_carry_method_details_analysts_group_by() -> None:
    upi = payments_row(_example("payment.requested.v1.json"))  # type: ignore[arg-type]
    assert (upi.method, upi.upi_flow, upi.card_network, upi.card_bin) == ("upi", "collect", "", "")
    assert upi.customer_id == "cust_42"
    assert upi.amount_minor == 149900
    card = payments_row(_example("payment.requested.v1.card.json"))  # type: ignore[arg-type]
    assert (card.method, card.card_network, card.card_bin, card.upi_flow) == (
        "card",
        "visa",
        "411111",
        "",
    )
    assert card.customer_id == ""  # none sent: '' in ClickHouse, never NULL
    assert card.amount_minor == 25000000
    assert card.capture == "automatic"
    assert (upi.device_id, card.device_id) == ("", "")  # none sent
    # The device token links customers for the AML rules (warehouse/aml/rules.py).
    device = _example("payment.requested.v1.device.json")
    assert isinstance(device, PaymentRequested) and device.device_id is not None
    assert payments_row(device).device_id == device.device_id


@pytest.mark.parametrize(("name", "event"), FACTS, ids=[n for n, _ in FACTS])
def test_lifecycle_events_and_commands_are_fact_rows_and_log_rows(
    name: str, event: BaseModel
) -> None:
    rows = rows_for(event)
    assert is_fact(event)
    assert rows.payments is None
    assert rows.payment_events == payment_events_row(event)
    fact, log = rows.payment_events, rows.payment_event_log
    assert fact.event_type == event.event_type == log.event_type
    assert fact.occurred_at == event.occurred_at == log.occurred_at
    amount = getattr(event, "amount", None)
    expected = amount.minor if isinstance(amount, Money) else None
    assert expected == AMOUNT_MINOR.get(name, expected)
    if expected is None:  # the event moves no money
        assert (fact.amount_minor, fact.currency) == (0, "")
        assert (log.amount_minor, log.currency) == (None, None)
    else:
        assert (fact.amount_minor, fact.currency) == (expected, "INR")
        assert (log.amount_minor, log.currency) == (expected, "INR")
        assert type(fact.amount_minor) is int and type(log.amount_minor) is int
    _assert_no_float(fact.values())
    _assert_no_float(log.values())


@pytest.mark.parametrize(
    ("name", "method", "decline_code", "ref_id", "reason"),
    [
        ("payment.declined.v1.json", "card", "insufficient_funds", "", ""),
        ("payment.authorized.v1.json", None, "", "", ""),
        ("payment.refunded.v1.json", "", "", "rfd_000000000001", ""),
        ("payment.failed.v1.json", "", "", "", "processor timeout after 3 attempts"),
        ("payment.authorization_released.v1.json", "", "", "", "final_capture"),
        ("payment.action_required.v1.json", "", "", "act_0000000001", ""),
        ("payment.expired.v1.json", "", "", "", ""),
        (
            "payment.refund_requested.v1.json",
            "",
            "",
            "rfd_o7k2xtqnxeemwyvs7oviozl27g",
            "customer returned one item",
        ),
        ("payment.capture_requested.v1.json", "", "", "cap_kkqpfdea4n66edg4le7mdmjd7l", ""),
        ("payment.void_requested.v1.json", "", "", "", ""),
    ],
)
def test_lifecycle_fact_columns(
    name: str, method: str | None, decline_code: str, ref_id: str, reason: str
) -> None:
    event = _example(name)
    fact = payment_events_row(event)  # type: ignore[arg-type]
    if method is not None:
        assert fact.method == method
    else:
        assert fact.method == getattr(event, "method_type")  # noqa: B009
    assert (fact.decline_code, fact.ref_id, fact.reason) == (decline_code, ref_id, reason)
    log = payment_event_log_row(event)  # type: ignore[arg-type]
    assert log.decline_code == (decline_code or None)
    assert log.method == (fact.method or None)


@pytest.mark.parametrize(("name", "event"), ALL, ids=[n for n, _ in ALL])
def test_the_log_payload_is_the_event_itself(name: str, event: BaseModel) -> None:
    log = payment_event_log_row(event)  # type: ignore[arg-type]
    spec = PAYMENTS_LIFECYCLE if isinstance(event, LIFECYCLE_MODELS) else PAYMENTS_REQUESTED
    assert spec.decode(log.payload.encode()) == event
    assert orjson.loads(log.payload)["event_id"] == log.event_id
    assert log.schema_version == 1


def test_a_dead_letter_is_not_a_payment_event() -> None:
    letter = PAYMENTS_DEADLETTER.decode(PAYMENTS_DEADLETTER.examples()[0].read_bytes())
    with pytest.raises(TypeError, match="DeadLetter"):
        rows_for(letter)


def test_builders_are_pure_and_timezone_aware() -> None:
    event = _example("payment.captured.v1.json")
    assert rows_for(event) == rows_for(event)
    assert rows_for(event).payment_event_log.occurred_at == datetime(
        2026, 11, 26, 9, 30, tzinfo=UTC
    )


def _create_table_columns(sql: str, table: str) -> list[str]:
    body = sql.split(f"CREATE TABLE IF NOT EXISTS {{db}}.{table}", 1)[1].split("ENGINE", 1)[0]
    return re.findall(r"^\s{4}([a-z_]+)\s", body, flags=re.MULTILINE)


def test_row_columns_match_the_tables_they_are_inserted_into() -> None:
    ch = MIGRATIONS_DIR / "clickhouse"
    payments_sql = (ch / "0002_payments_and_event_details.sql").read_text()
    payment_columns = _create_table_columns(payments_sql, "payments")
    aml_sql = (ch / "0003_aml_payment_attributes.sql").read_text()
    payment_columns += re.findall(r"payments ADD COLUMN IF NOT EXISTS ([a-z_]+)", aml_sql)
    # device_id and payer_country are filled by loaders that know them (docs/aml.md).
    assert {*PaymentRow.columns(), "loaded_at", "device_id", "payer_country"} == set(
        payment_columns
    )
    events_sql = "\n".join(p.read_text() for p in sorted(Path(ch).glob("*.sql")))
    event_columns = _create_table_columns(events_sql, "payment_events")
    event_columns += re.findall(r"ADD COLUMN IF NOT EXISTS ([a-z_]+)", events_sql)
    assert set(PaymentEventRow.columns()) <= set(event_columns)
    assert EventLogRow.columns() == EVENT_LOG_COLUMNS


def test_a_scored_payment_is_a_fraud_score_row_and_a_log_row() -> None:
    (path,) = [p for p in PAYMENTS_SCORED.examples() if p.name.startswith("payment.scored")]
    event = PAYMENTS_SCORED.decode(path.read_bytes())
    assert isinstance(event, PaymentScored)
    rows = rows_for(event)
    assert rows.payments is None and rows.payment_events is None
    score = rows.fraud_scores
    assert score is not None
    assert (score.payment_id, score.decision) == (event.payment_id, event.decision)
    assert score.amount_minor == event.request.amount.minor
    assert isinstance(score.amount_minor, int)
    assert orjson.loads(score.features_json) == event.features
    assert rows.payment_event_log.event_type == "payment.scored"
    ddl = (MIGRATIONS_DIR / "clickhouse" / "0004_ledger_and_settlement_facts.sql").read_text()
    body = ddl.split("CREATE TABLE IF NOT EXISTS {db}.fraud_scores", 1)[1].split("ENGINE", 1)[0]
    columns = re.findall(r"^\s{4}([a-z_0-9]+)\s", body, flags=re.MULTILINE)
    assert [*FraudScoreRow.columns(), "loaded_at"] == columns


def test_commands_passed_on_to_payments_scored_make_the_same_rows() -> None:
    for path in PAYMENTS_SCORED.examples():
        event = PAYMENTS_SCORED.decode(path.read_bytes())
        if isinstance(event, PaymentScored):
            continue
        twin = PAYMENTS_REQUESTED.decode(path.read_bytes())
        assert rows_for(event) == rows_for(twin)
