"""Real-time balances and the live settlement view, in Faust tables fed by the lifecycle stream.

Two agents and one repartition hop::

    payments.lifecycle ──(route_postings, keyed by payment)──▶ ledger.postings
        (keyed by account) ──(apply_postings)──▶ tables ``balances`` and ``settlement_view``

1. ``route_postings`` reads ``payments.lifecycle`` in batches.  For each money-moving event it
   takes the event's journal entry *as posted* in PostgreSQL (entry id = event id) and checks
   that the legs the event itself determines (:func:`streams.ledger.entry_for` without fees:
   holds, receivable, pending, refunds, disputes) are exactly the first postings of that
   entry.  Fee and GST legs come from the posted entry because they depend on what the event
   does not carry: the merchant's MDR schedule and refund policy at posting time, and, for a
   refund's fee reversal, the payment's earlier captures and refunds.  Recomputing them from
   today's configuration would drift from the book whenever a merchant's terms change.  Each
   posting goes to ``ledger.postings`` keyed by its account (the one hop: a payment's events are
   keyed by payment, balances by account).
2. ``apply_postings`` folds each posting into ``balances[account]`` and, for a merchant's
   settled accounts, into its one-day tumbling window ``settlement_day_view["<account>|<IST
   date>"]`` (IST days, by the event's time), and projects the touched windows to PostgreSQL
   (``settlement_live``) for the API.

Exactly-once effect over at-least-once delivery, without Faust's ``exactly_once``:

* ``route_postings`` remembers, per payment (table ``lifecycle_seen``, co-partitioned with the
  lifecycle topic), the event ids it has routed, so a lifecycle event re-emitted by the payments
  agent (a replayed request) or re-read after a crash is routed once.  It records an event only
  after the broker acknowledged its postings.
* Every posting carries its source (lifecycle partition, offset, posting index).  Per account,
  ``balances`` keeps the highest source position applied from each lifecycle partition; a
  lifecycle partition's postings reach an account's ``ledger.postings`` partition in source
  order (one producer, ordered sends), so anything at or below that mark is a re-send and is
  skipped.  The window update happens under the same decision.

Tables live in memory and recover from their changelog topics (compacted) when the worker
starts.  ``rizzpay ledger reconcile`` reads the ``balances`` changelog itself, so it checks the
durable state a restarted worker would recover, not the memory of a running one.

Scope: payment accounts only.  Wallet operations (``streams.wallets``) and settlement and payout
entries are posted straight to PostgreSQL by the API and the settlement command; they do not
flow through Kafka, so these tables do not hold them and the reconciliation compares the ledger
over the entry kinds the lifecycle stream produces (:data:`LIFECYCLE_ENTRY_KINDS`).

Units: balances are signed paise as in the ledger (debit positive, ``sum(amount_minor)``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import faust
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from faust.streams import _current_event
from faust.types import EventT
from pydantic import BaseModel

from models.events import DecodeError, LedgerPosted, encode
from models.topics import LEDGER_POSTINGS, PAYMENTS_DEADLETTER, PAYMENTS_LIFECYCLE
from streams.app import batch_agent, raw_topic
from streams.deadletters import dead_letter_key, dead_letter_of
from streams.ledger import JournalEntry, account_owner_kind, entry_for
from streams.retry import LazyPool, retry_transient
from streams.settings import WorkerSettings
from streams.settlement import IST, SETTLED_KINDS, Totals, add_totals, posting_totals
from warehouse.balances_store import LiveRow, posted_entries, upsert_live_rows

log = logging.getLogger("rizzpay.streams.balances")

ROUTE_CONSUMER = "balances.route_postings"
APPLY_CONSUMER = "balances.apply_postings"
SEEN_TABLE = "lifecycle_seen"
BALANCES_TABLE = "balances"
VIEW_TABLE = "settlement_day_view"

LIFECYCLE_ENTRY_KINDS: tuple[str, ...] = (
    "authorization",
    "capture",
    "release",
    "refund",
    "dispute_hold",
    "dispute_release",
    "chargeback",
)
"""Journal entry kinds posted for lifecycle events (``streams.ledger``): what the balances
tables hold.  Settlement, payout and wallet entries are not in the stream."""

# A money event whose entry is not (yet) in PostgreSQL: the payments agent emits events only
# after its transaction committed, so this is retried a few times and then dead-lettered.
ENTRY_LOOKUP_ATTEMPTS = 5

Event = EventT[bytes]


class EntryMismatch(ValueError):
    """The posted entry of a lifecycle event is missing or disagrees with the legs the event
    determines; ``code`` is ``entry_not_posted`` or ``entry_mismatch``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Pure: from a lifecycle event and its posted entry to postings, and postings to balances
# --------------------------------------------------------------------------------------------


def check_posted(event: BaseModel, posted: JournalEntry | None) -> JournalEntry:
    """``posted`` if it is the entry of lifecycle ``event``: same id and kind, and the postings
    :func:`streams.ledger.entry_for` derives from the event alone are its first postings
    (fee, GST and fee-reversal legs follow them).  Raises :class:`EntryMismatch`."""
    derived = entry_for(event)
    if derived is None:
        raise EntryMismatch("entry_mismatch", f"{type(event).__name__} moves no money")
    if posted is None:
        raise EntryMismatch("entry_not_posted", f"entry {derived.entry_id} is not in the ledger")
    head = posted.postings[: len(derived.postings)]
    if posted.kind != derived.kind or head != derived.postings:
        raise EntryMismatch(
            "entry_mismatch",
            f"entry {posted.entry_id} ({posted.kind}) does not start with the legs its event "
            f"determines ({derived.kind})",
        )
    return posted


def postings_for(
    event: BaseModel, posted: JournalEntry, *, partition: int, offset: int
) -> tuple[LedgerPosted, ...]:
    """The ``ledger.postings`` messages of lifecycle ``event`` (read from ``partition`` at
    ``offset``) whose entry is ``posted``: one per posting, in posting order."""
    data = event.model_dump()
    return tuple(
        LedgerPosted(
            event_id=posted.entry_id,
            payment_id=posted.payment_id,
            merchant_id=posted.merchant_id,
            occurred_at=data["occurred_at"],
            entry_kind=posted.kind,
            posting_id=p.posting_id,
            account_id=p.account_id,
            amount_minor=p.amount_minor,
            currency=posted.currency,
            source_partition=partition,
            source_offset=offset,
            posting_index=n,
        )
        for n, p in enumerate(posted.postings)
    )


@dataclass(frozen=True)
class BalanceDelta:
    """One posting's effect on its account's balance (signed paise), with its source position
    (lifecycle partition, offset, posting index) for deduplication."""

    payment_id: str
    account_id: str
    amount_minor: int
    source_partition: int
    position: tuple[int, int]


def posting_delta(posted: LedgerPosted) -> BalanceDelta:
    """What ``apply_postings`` folds into the ``balances`` table for one ``ledger.postings``
    message (the topic's registered consumer)."""
    return BalanceDelta(
        payment_id=posted.payment_id,
        account_id=posted.account_id,
        amount_minor=posted.amount_minor,
        source_partition=posted.source_partition,
        position=(posted.source_offset, posted.posting_index),
    )


def apply_delta(state: Mapping[str, Any] | None, delta: BalanceDelta) -> dict[str, Any] | None:
    """The account's new table value after ``delta``, or ``None`` when ``delta`` was already
    applied (its source position is at or below the account's mark for that partition).

    A value is ``{"balance_minor": int, "postings": int, "marks": {"<partition>": [offset,
    index]}}`` (JSON, as the changelog stores it)."""
    state = state or {}
    marks: dict[str, list[int]] = dict(state.get("marks", {}))
    key = str(delta.source_partition)
    mark = marks.get(key)
    if mark is not None and tuple(mark) >= delta.position:
        return None
    marks[key] = list(delta.position)
    return {
        "balance_minor": int(state.get("balance_minor", 0)) + delta.amount_minor,
        "postings": int(state.get("postings", 0)) + 1,
        "marks": marks,
    }


def view_contribution(posted: LedgerPosted) -> Totals | None:
    """What a posting adds to its merchant's live settlement totals, or ``None`` for a posting
    no settlement batch covers (platform accounts, a merchant's hold or dispute reserve)."""
    owner, kind = account_owner_kind(posted.account_id)
    if owner == "platform" or owner.startswith("customer:") or kind not in SETTLED_KINDS:
        return None
    return posting_totals(posted.entry_kind, kind, posted.amount_minor)


def totals_to_json(t: Totals) -> dict[str, int]:
    return {
        "captured_minor": t.captured_minor,
        "refunds_minor": t.refunds_minor,
        "disputes_minor": t.disputes_minor,
        "adjustments_minor": t.adjustments_minor,
        "fees_minor": t.fees_minor,
        "gst_minor": t.gst_minor,
    }


def totals_from_json(value: Mapping[str, Any] | None) -> Totals:
    value = value or {}
    return Totals(
        int(value.get("captured_minor", 0)),
        int(value.get("refunds_minor", 0)),
        int(value.get("disputes_minor", 0)),
        int(value.get("adjustments_minor", 0)),
        int(value.get("fees_minor", 0)),
        int(value.get("gst_minor", 0)),
    )


def ist_day(occurred_at: datetime) -> date:
    """The IST calendar day of an event (its settlement view window)."""
    return occurred_at.astimezone(IST).date()


# --------------------------------------------------------------------------------------------
# Pure: decisions and the reconciliation
# --------------------------------------------------------------------------------------------

CREDIT_NORMAL_KINDS = frozenset(
    {"authorized", "pending", "reserve", "rolling_reserve", "available", "wallet", "wallet_held"}
)


@dataclass(frozen=True)
class DebitCheck:
    """Whether ``amount_minor`` may leave an account whose available balance is
    ``available_minor`` (normal side positive) with ``overdraft_limit_minor`` of overdraft."""

    allowed: bool
    available_minor: int
    amount_minor: int
    overdraft_limit_minor: int

    @property
    def shortfall_minor(self) -> int:
        """How much is missing (0 when allowed)."""
        return max(0, self.amount_minor - self.available_minor - self.overdraft_limit_minor)


def available_minor(account_id: str, balance_minor: int) -> int:
    """An account's balance with its normal side positive: what is owed to the holder on a
    credit-normal account (``-balance``), the balance itself on a debit-normal one."""
    _, kind = account_owner_kind(account_id)
    return -balance_minor if kind in CREDIT_NORMAL_KINDS else balance_minor


def debit_check(available: int, amount_minor: int, *, overdraft_limit_minor: int = 0) -> DebitCheck:
    """A transfer or payout of ``amount_minor`` (> 0) may take the available balance down to
    ``-overdraft_limit_minor`` and no further (0: never below zero)."""
    if amount_minor <= 0:
        raise ValueError(f"a debit must be positive, got {amount_minor}")
    if overdraft_limit_minor < 0:
        raise ValueError(f"overdraft limit must be >= 0, got {overdraft_limit_minor}")
    allowed = available - amount_minor >= -overdraft_limit_minor
    return DebitCheck(allowed, available, amount_minor, overdraft_limit_minor)


@dataclass(frozen=True)
class Difference:
    """An account whose real-time table balance differs from the ledger (signed paise);
    ``delta = table − ledger``."""

    account_id: str
    table_minor: int
    ledger_minor: int

    @property
    def delta_minor(self) -> int:
        return self.table_minor - self.ledger_minor


def differences(table: Mapping[str, int], ledger: Mapping[str, int]) -> list[Difference]:
    """Every account whose balance differs between ``table`` and ``ledger`` (an account
    missing on one side counts as 0 there), sorted by account id; empty: they agree."""
    out = []
    for account in sorted(set(table) | set(ledger)):
        t, g = table.get(account, 0), ledger.get(account, 0)
        if t != g:
            out.append(Difference(account, t, g))
    return out


@dataclass(frozen=True)
class ChangelogRecord:
    """The latest record of one key in a table's changelog."""

    partition: int
    offset: int
    value: bytes | None


def changelog_key(account_id: str) -> bytes:
    """How the ``balances`` table's changelog spells an account key (JSON, Faust's key codec)."""
    return orjson.dumps(account_id)


def table_balances(changelog: Mapping[bytes, ChangelogRecord]) -> dict[str, int]:
    """Balances from the latest changelog record per key (a tombstone deletes the key)."""
    out: dict[str, int] = {}
    for key, record in changelog.items():
        if record.value is None:
            continue
        account = orjson.loads(key)
        out[str(account)] = int(orjson.loads(record.value)["balance_minor"])
    return out


def read_changelog(
    bootstrap: str, topic: str, *, timeout_s: float = 30.0
) -> dict[bytes, ChangelogRecord]:
    """The latest record per key of every partition of ``topic``, read from the beginning up to
    each partition's end as of now (a table's durable state, as a restarted worker recovers
    it).  Raises ``TimeoutError`` when the end is not reached within ``timeout_s``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"rizzpay-reconcile-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "log_level": 4,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return {}
        ends: dict[int, int] = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        latest: dict[bytes, ChangelogRecord] = {}
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {sorted(ends)} not finished")
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            key, partition, offset = msg.key(), msg.partition(), msg.offset()
            if key is not None and partition is not None and offset is not None:
                latest[key] = ChangelogRecord(partition, offset, msg.value())
            if partition in ends and offset is not None and offset + 1 >= ends[partition]:
                ends.pop(partition, None)
        return latest
    finally:
        consumer.close()


def changelog_topic(settings: WorkerSettings, table: str = BALANCES_TABLE) -> str:
    """The changelog topic of one of this module's tables (Faust: ``<app id>-<table>-changelog``;
    the app id carries the topic prefix)."""
    return f"{settings.topic_prefix}{settings.app_id}-{table}-changelog"


# --------------------------------------------------------------------------------------------
# The agents
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Routed:
    event: Event
    lifecycle: BaseModel
    derived: JournalEntry


class BalancesProcessor:
    """The two agents' state: tables, topics and the PostgreSQL pool."""

    def __init__(self, app: faust.App, settings: WorkerSettings) -> None:
        self.settings = settings
        prefix = settings.topic_prefix
        self.lifecycle = raw_topic(app, PAYMENTS_LIFECYCLE, prefix)
        self.postings = raw_topic(app, LEDGER_POSTINGS, prefix)
        self.deadletter = raw_topic(app, PAYMENTS_DEADLETTER, prefix)
        self.seen = app.Table(
            SEEN_TABLE,
            default=list,
            schema=faust.Schema(key_type=str, key_serializer="json", value_serializer="json"),
            partitions=PAYMENTS_LIFECYCLE.partitions,
            help="lifecycle event ids already routed, per payment",
        )
        self.balances = app.Table(
            BALANCES_TABLE,
            default=dict,
            schema=faust.Schema(key_type=str, key_serializer="json", value_serializer="json"),
            partitions=LEDGER_POSTINGS.partitions,
            help="signed ledger balance per account, with the source marks applied",
        )
        # One tumbling day per key: ``<account>|<IST date>``.  The day is computed here from the
        # posting's event time (IST calendar days, as settlement counts them) rather than by
        # Faust's windowing, whose epoch-aligned windows cannot be shifted to IST reliably.
        self.view = app.Table(
            VIEW_TABLE,
            default=dict,
            partitions=LEDGER_POSTINGS.partitions,
            schema=faust.Schema(key_type=str, key_serializer="json", value_serializer="json"),
            help="live settlement totals per merchant account and IST day",
        )

        self._pg = LazyPool(
            self.settings.pg_dsn,
            max_size=2,
            backoff_s_max=self.settings.retry_backoff_s_max,
        )

    async def pool(self) -> asyncpg.Pool:
        return await self._pg.get()

    async def close(self) -> None:
        await self._pg.close()

    # -- route_postings ------------------------------------------------------------------------

    async def route(self, events: Sequence[Event]) -> int:
        """Route one batch of lifecycle messages; returns how many events were routed."""
        todo, rejected = self._select(events)
        posted = await self._posted(todo)
        pending: list[Awaitable[Any]] = []
        routed: list[_Routed] = []
        for item in todo:
            try:
                entry = check_posted(item.lifecycle, posted.get(item.derived.entry_id))
            except EntryMismatch as exc:
                rejected.append((item.event, exc.code, exc.reason))
                continue
            message = item.event.message
            for out in postings_for(
                item.lifecycle, entry, partition=message.partition, offset=message.offset
            ):
                pending.append(
                    await self.postings.send(
                        key=out.account_id.encode(),
                        value=encode(out),
                        timestamp=out.occurred_at.timestamp(),
                    )
                )
            routed.append(item)
        for e, code, reason in rejected:
            pending.append(await self._dead_letter(e, code, reason, ROUTE_CONSUMER))
        if pending:
            await asyncio.gather(*pending)
        # Only now, with the postings acknowledged, is each event remembered as routed.  The
        # table's changelog record goes to the event's own partition (Faust takes it from the
        # stream's current event, which a batch does not set per event).
        for item in routed:
            with _as_current(item.event):
                payment_id = item.lifecycle.model_dump()["payment_id"]
                self.seen[payment_id] = [*self.seen[payment_id], item.derived.entry_id]
        return len(routed)

    def _select(
        self, events: Sequence[Event]
    ) -> tuple[list[_Routed], list[tuple[Event, str, str]]]:
        """The batch's money events not routed before, and the undecodable messages."""
        todo: list[_Routed] = []
        rejected: list[tuple[Event, str, str]] = []
        for event in events:
            try:
                lifecycle = _decode_lifecycle(event)
            except DecodeError as exc:
                rejected.append((event, exc.code, exc.reason))
                continue
            derived = entry_for(lifecycle)
            if derived is None:
                continue
            payment_id = lifecycle.model_dump()["payment_id"]
            if derived.entry_id in self.seen[payment_id]:
                continue
            if any(r.derived.entry_id == derived.entry_id for r in todo):
                continue  # the same event twice in one batch
            todo.append(_Routed(event, lifecycle, derived))
        return todo, rejected

    async def _posted(self, todo: Sequence[_Routed]) -> dict[str, JournalEntry]:
        """The posted entries of ``todo``'s events; a missing one is looked for again a few
        times before the caller dead-letters it."""
        posted: dict[str, JournalEntry] = {}
        pool = await self.pool()
        for attempt in range(ENTRY_LOOKUP_ATTEMPTS):
            missing = [r.derived.entry_id for r in todo if r.derived.entry_id not in posted]
            if not missing:
                break
            if attempt:
                await asyncio.sleep(0.2 * 2**attempt)

            async def lookup(ids: list[str] = missing) -> dict[str, JournalEntry]:
                return await posted_entries(pool, ids)

            posted.update(
                await retry_transient(
                    lookup,
                    backoff_s_max=self.settings.retry_backoff_s_max,
                    what="reading posted entries",
                )
            )
        return posted

    async def _dead_letter(
        self, event: Event, code: str, reason: str, consumer: str
    ) -> Awaitable[Any]:
        letter = dead_letter_of(event, code, reason, consumer=consumer, failed_at=datetime.now(UTC))
        log.warning("dead-lettering %s: %s", code, reason)
        return await self.deadletter.send(key=dead_letter_key(letter), value=encode(letter))

    # -- apply_postings ------------------------------------------------------------------------

    async def apply(self, events: Sequence[Event]) -> int:
        """Fold one batch of postings into the tables; returns how many were new."""
        applied = 0
        touched: dict[tuple[str, date], LiveRow] = {}
        rejected: list[tuple[Event, str, str]] = []
        for event in events:
            try:
                raw = event.value
                if not isinstance(raw, bytes):
                    raise DecodeError("invalid_json", "message has no value")
                posted = LEDGER_POSTINGS.decode_as(raw, LedgerPosted)
            except DecodeError as exc:
                rejected.append((event, exc.code, exc.reason))
                continue
            with _as_current(event):
                new, row = self._apply_one(posted)
            applied += new
            if row is not None:
                touched[(row.account_id, row.day)] = row
        if rejected:
            await asyncio.gather(
                *[
                    await self._dead_letter(e, code, reason, APPLY_CONSUMER)
                    for e, code, reason in rejected
                ]
            )
        if touched:
            pool = await self.pool()
            rows = list(touched.values())
            await retry_transient(
                lambda: upsert_live_rows(pool, rows),
                backoff_s_max=self.settings.retry_backoff_s_max,
                what="projecting the live settlement view",
            )
        return applied

    def _apply_one(self, posted: LedgerPosted) -> tuple[int, LiveRow | None]:
        """Fold one posting into the tables (the current event must be its message); returns
        1 if it was new (0 for a re-send) and its live-view row, if it has one.  The row is
        returned for re-sends too: a crash may have come between the table's update and the
        projection's."""
        account = posted.account_id
        new = apply_delta(self.balances[account], posting_delta(posted))
        contribution = view_contribution(posted)
        day = ist_day(posted.occurred_at)
        view_key = f"{account}|{day.isoformat()}"
        if new is not None:
            self.balances[account] = new
            if contribution is not None:
                current = self.view[view_key]
                total = add_totals(totals_from_json(current), contribution)
                self.view[view_key] = totals_to_json(total) | {
                    "postings": int(current.get("postings", 0)) + 1
                }
        if contribution is None:
            return (0 if new is None else 1), None
        value = self.view[view_key]
        owner, _ = account_owner_kind(account)
        row = LiveRow(
            account_id=account,
            merchant_id=owner,
            currency=posted.currency,
            day=day,
            totals=totals_from_json(value),
            postings=int(value.get("postings", 0)),
        )
        return (0 if new is None else 1), row


@contextmanager
def _as_current(event: Event) -> Iterator[None]:
    """Make ``event`` Faust's current event in this task while a table is written, so the
    changelog record goes to the event's own partition (Faust reads the partition from the
    current event; a ``take_events`` batch does not set it per event).  Only the task's context
    variable is set: the stream's shared ``current_event`` attribute, which its buffer reads
    concurrently, is left alone."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _decode_lifecycle(event: Event) -> BaseModel:
    raw = event.value
    if not isinstance(raw, bytes):
        raise DecodeError("invalid_json", "message has no value")
    lifecycle = PAYMENTS_LIFECYCLE.decode(raw)
    key = event.message.key
    if key is not None and key != lifecycle.model_dump()["payment_id"].encode():
        raise DecodeError("key_mismatch", "message key is not its payment_id")
    return lifecycle


class BalanceReader:
    """Real-time balances for decisions inside the worker (the table of this worker's
    partitions): ``available(account)`` and ``check_debit(account, amount, overdraft)``.

    Only the worker that owns an account's ``ledger.postings`` partition holds its balance.
    Money-moving decisions that must be exact (wallet transfers and payouts) are taken under
    row locks in PostgreSQL (``warehouse.wallet_store``); this is the fast pre-check."""

    def __init__(self, balances: Mapping[str, Any]) -> None:
        self._balances = balances

    def balance_minor(self, account_id: str) -> int:
        """Signed ledger balance (debit positive), 0 for an account never posted to."""
        value = self._balances.get(account_id) or {}
        return int(value.get("balance_minor", 0))

    def available(self, account_id: str) -> int:
        return available_minor(account_id, self.balance_minor(account_id))

    def check_debit(
        self, account_id: str, amount_minor: int, *, overdraft_limit_minor: int = 0
    ) -> DebitCheck:
        return debit_check(
            self.available(account_id), amount_minor, overdraft_limit_minor=overdraft_limit_minor
        )


def install(app: faust.App, settings: WorkerSettings) -> BalancesProcessor:
    """Register the two balance agents and their tables on ``app``."""
    processor = BalancesProcessor(app, settings)

    async def route_postings(events: Sequence[Event]) -> None:
        await processor.route(events)

    batch_agent(
        app,
        processor.lifecycle,
        name=ROUTE_CONSUMER,
        batch_size_max=settings.batch_size_max,
        batch_wait_s=settings.batch_wait_s,
        handle=route_postings,
    )

    async def apply_postings(events: Sequence[Event]) -> None:
        await processor.apply(events)

    batch_agent(
        app,
        processor.postings,
        name=APPLY_CONSUMER,
        batch_size_max=settings.batch_size_max,
        batch_wait_s=settings.batch_wait_s,
        handle=apply_postings,
    )

    return processor


def merge_live(rows: Iterable[Totals]) -> Totals:
    """The merchant's totals for a day: the sum over its settled accounts' windows."""
    total = Totals()
    for row in rows:
        total = add_totals(total, row)
    return total
