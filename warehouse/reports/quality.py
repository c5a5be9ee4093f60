"""Data-quality suites run with great-expectations before a report is published.

A report's loader hands over its inputs as named tables (rows of plain values: ``int`` paise,
strings, instants as integer microseconds since the epoch, so no float or naive time enters).
A :class:`Suite` declares, per table, the column that identifies a row and the expectations;
:func:`validate` runs them through great-expectations on pandas and answers which expectation
failed on which rows, by id (``unexpected_index_column_names``).  A failed suite blocks
publication (warehouse/reports/framework.py).

Startup cost.  Importing great-expectations 1.24 costs seconds (measured with ``rizzpay reports
quality-startup``; see docs/reports.md), so the import is deferred until the first validation,
and one *ephemeral* context (in-memory stores, analytics and progress bars off: no file, no
network) is built once per process and reused by every suite.  The report scheduler pays it
once at its first run, not at every tick.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "FAILED_IDS_MAX",
    "Expectation",
    "Failure",
    "QualityResult",
    "Suite",
    "TableSpec",
    "epoch_us",
    "startup_seconds",
    "validate",
]

FAILED_IDS_MAX = 50
"""At most this many row ids are named per failed expectation (the count is always exact), so
a wholly corrupt table gives a readable message, not megabytes."""

Check = Literal["not_null", "between", "in_set", "unique", "regex", "pair_equal"]


def epoch_us(instant: datetime) -> int:
    """A timezone-aware instant as integer microseconds since 1970-01-01T00:00Z (the form the
    suites compare timestamps in).  Raises ``ValueError`` for a naive datetime."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    delta = instant.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class Expectation:
    """One check on one column of one table.  ``why`` is shown when it fails.

    * ``between``: ``min_value <= value <= max_value`` (either bound may be ``None``);
    * ``in_set``: value in ``value_set``; ``regex``: value matches ``regex`` (full match is up
      to the pattern's anchors); ``unique``; ``not_null``;
    * ``pair_equal``: ``column`` equals ``column_b`` on every row (ledger vs warehouse)."""

    table: str
    check: Check
    column: str
    why: str
    column_b: str | None = None
    min_value: int | None = None
    max_value: int | None = None
    value_set: tuple[str, ...] = ()
    regex: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """A table's columns and the one that names a row in failure messages."""

    columns: tuple[str, ...]
    id_column: str


@dataclass(frozen=True)
class Suite:
    name: str
    tables: Mapping[str, TableSpec]
    expectations: tuple[Expectation, ...]


@dataclass(frozen=True)
class Failure:
    """An expectation that failed: on which table and column, why it exists, how many rows
    broke it and the first :data:`FAILED_IDS_MAX` of their distinct ids (sorted; a duplicate id
    counts once among the ids, twice in the count)."""

    suite: str
    table: str
    expectation: str
    column: str
    why: str
    unexpected_count: int
    ids: tuple[str, ...]

    def message(self) -> str:
        shown = ", ".join(self.ids)
        more = " (first ids only)" if len(self.ids) == FAILED_IDS_MAX else ""
        return (
            f"{self.suite}: {self.expectation} on {self.table}.{self.column} failed for "
            f"{self.unexpected_count} row(s): {shown}{more} — {self.why}"
        )


@dataclass(frozen=True)
class QualityResult:
    suite: str
    rows_checked: int
    failures: tuple[Failure, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "passed": self.passed,
            "rows_checked": self.rows_checked,
            "failures": [
                {
                    "table": f.table,
                    "expectation": f.expectation,
                    "column": f.column,
                    "why": f.why,
                    "unexpected_count": f.unexpected_count,
                    "ids": list(f.ids),
                    "message": f.message(),
                }
                for f in self.failures
            ],
        }


# --------------------------------------------------------------------------------------------
# great-expectations, loaded once
# --------------------------------------------------------------------------------------------

_lock = threading.Lock()
_startup_s: list[float] = []


@functools.cache
def _context() -> Any:
    """The process's one ephemeral context and its pandas data source (built on first use)."""
    started = time.perf_counter()
    import great_expectations as gx  # noqa: PLC0415  (deferred: seconds to import)
    from great_expectations.data_context.types.base import (  # noqa: PLC0415
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,  # no network calls from a payment platform's report job
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    source = context.data_sources.add_pandas("rizzpay_reports")
    _startup_s.append(time.perf_counter() - started)
    return gx, source


def startup_seconds() -> float:
    """Seconds it took to import great-expectations and build the context (building it now if
    it was not yet built).  The figure docs/reports.md quotes."""
    _context()
    return _startup_s[0]


def _expectation(gxe: Any, e: Expectation, index: int) -> Any:
    # meta carries the position, so a result is matched to its Expectation whatever order
    # great-expectations reports results in.
    meta = {"rizzpay_index": index}
    if e.check == "between":
        return gxe.ExpectColumnValuesToBeBetween(
            column=e.column, min_value=e.min_value, max_value=e.max_value, meta=meta
        )
    if e.check == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(
            column=e.column, value_set=list(e.value_set), meta=meta
        )
    if e.check == "unique":
        return gxe.ExpectColumnValuesToBeUnique(column=e.column, meta=meta)
    if e.check == "regex":
        return gxe.ExpectColumnValuesToMatchRegex(column=e.column, regex=e.regex, meta=meta)
    if e.check == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=e.column, meta=meta)
    return gxe.ExpectColumnPairValuesToBeEqual(column_A=e.column, column_B=e.column_b, meta=meta)


def validate(suite: Suite, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> QualityResult:
    """Run ``suite`` over ``tables`` (name → rows).  A table the suite names but ``tables`` lacks
    is an error (``KeyError``); an empty table passes (nothing to contradict)."""
    import pandas as pd  # type: ignore[import-untyped]  # noqa: PLC0415  (deferred too)

    with _lock:  # the context is not thread-safe; reports run one at a time anyway
        gx, source = _context()
        import great_expectations.expectations as gxe  # noqa: PLC0415

        failures: list[Failure] = []
        rows_checked = 0
        for table, spec in sorted(suite.tables.items()):
            rows = tables[table]
            rows_checked += len(rows)
            wanted = [e for e in suite.expectations if e.table == table]
            if not rows or not wanted:
                continue
            frame = pd.DataFrame(
                [[row.get(c) for c in spec.columns] for row in rows], columns=list(spec.columns)
            ).astype(object)
            asset_name = f"{suite.name}.{table}"
            try:
                asset = source.get_asset(asset_name)
            except LookupError:
                asset = source.add_dataframe_asset(asset_name)
                asset.add_batch_definition_whole_dataframe("whole")
            batch = asset.get_batch_definition("whole").get_batch(
                batch_parameters={"dataframe": frame}
            )
            gx_suite = gx.ExpectationSuite(name=asset_name)
            for i, e in enumerate(wanted):
                gx_suite.add_expectation(_expectation(gxe, e, i))
            result = batch.validate(
                gx_suite,
                result_format={
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": [spec.id_column],
                },
            )
            for outcome in result.results:
                if outcome.success:
                    continue
                e = wanted[int(outcome.expectation_config.meta["rizzpay_index"])]
                info = outcome.result or {}
                index = info.get("unexpected_index_list") or []
                ids = sorted(
                    {str(item[spec.id_column]) for item in index if spec.id_column in item}
                )
                count = int(info.get("unexpected_count") or len(ids))
                if outcome.exception_info and outcome.exception_info.get("raised_exception"):
                    ids, count = [], max(count, 1)
                failures.append(
                    Failure(
                        suite=suite.name,
                        table=table,
                        expectation=outcome.expectation_config.type,
                        column=e.column if e.column_b is None else f"{e.column}={e.column_b}",
                        why=e.why,
                        unexpected_count=count,
                        ids=tuple(ids[:FAILED_IDS_MAX]),
                    )
                )
        return QualityResult(suite.name, rows_checked, tuple(failures))
