"""The handbook's evaluation protocol: time-ordered split with a delay, metrics, and the report.

Protocol (Le Borgne et al., chapters 3–4).  Days are local calendar days in ``timezone``.

* Training window: ``train_days`` days from ``train_start``.
* Delay: the next ``delay_days`` days are skipped — their labels would not be known yet when the
  model is trained, so they are used neither for training nor for testing.
* Test window: the following ``test_days`` days.  On test day ``t`` a customer is *known
  compromised* if they had a fraud on a day in ``[train_start, t - delay_days)``; their
  transactions are removed from day ``t`` (an analyst has already blocked the card).

Metrics on the test window: AUC ROC and average precision over all test transactions, and card
precision@k: each test day, customers are ranked by their highest score that day, the top ``k``
are "reviewed", and the share of them that had a fraud that day is the day's precision (the
denominator is always ``k``); customers found this way are left out of later days; the metric is
the mean over test days.
"""

from __future__ import annotations

import datetime as dt
import importlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from fraud.dataset import DatasetError, publish_folder, staging_folder
from fraud.features import DEFAULT_TIMEZONE

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

SCENARIO_NAMES: dict[int, str] = {
    1: "1 · amount above ₹220",
    2: "2 · compromised terminal",
    3: "3 · compromised customer (×5 amounts)",
}


@dataclass(frozen=True)
class Protocol:
    """Split parameters.  ``train_start=None`` picks the latest start whose test window fits."""

    train_start: dt.date | None = None
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7
    timezone: str = DEFAULT_TIMEZONE
    top_k: int = 100

    def __post_init__(self) -> None:
        if self.train_days < 1 or self.test_days < 1 or self.delay_days < 0 or self.top_k < 1:
            raise ValueError("train_days, test_days and top_k must be >= 1, delay_days >= 0")


@dataclass(frozen=True)
class Split:
    """Row positions of the training and test sets in the (validated, time-sorted) frame."""

    protocol: Protocol
    train_start: dt.date
    train_rows: IntArray
    test_rows: IntArray
    test_days: IntArray  # local day number (days since 1970-01-01) of each test row
    removed_rows: int  # test-window rows dropped because the customer was known compromised
    removed_customers: int

    @property
    def train_end(self) -> dt.date:
        """Last day of the training window (inclusive)."""
        return self.train_start + dt.timedelta(days=self.protocol.train_days - 1)

    @property
    def test_start(self) -> dt.date:
        return self.train_end + dt.timedelta(days=self.protocol.delay_days + 1)

    @property
    def test_end(self) -> dt.date:
        """Last day of the test window (inclusive)."""
        return self.test_start + dt.timedelta(days=self.protocol.test_days - 1)


_EPOCH = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01."""
    return (day - _EPOCH).days


def from_day_number(number: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=int(number))


def local_days(frame: pd.DataFrame, timezone: str) -> IntArray:
    """Local calendar day (days since 1970-01-01) of each row's ``tx_datetime`` in ``timezone``."""
    local = frame["tx_datetime"].dt.tz_convert(timezone).dt.tz_localize(None).dt.floor("D")
    days: IntArray = local.to_numpy(dtype="datetime64[D]").astype(np.int64)
    return days


def make_split(frame: pd.DataFrame, protocol: Protocol) -> Split:
    """Split a validated transaction frame by :class:`Protocol`.

    Raises :class:`~fraud.dataset.DatasetError` naming the window if the training window is empty
    or has one class only, if the test window is empty or (after removing known compromised
    customers) has no fraud or no legitimate transaction, or if no window fits in the data.
    """
    p = protocol
    days = local_days(frame, p.timezone)
    first, last = int(days.min()), int(days.max())
    span = p.train_days + p.delay_days + p.test_days
    if p.train_start is None:
        start = last - span + 1
        if start < first:
            raise DatasetError(
                f"the data covers {last - first + 1} day(s) ({from_day_number(first)} to "
                f"{from_day_number(last)}), fewer than the {span} the protocol needs"
            )
    else:
        start = day_number(p.train_start)
    train_start = from_day_number(start)
    labels = frame["is_fraud"].to_numpy(dtype=np.int8)

    in_train = (days >= start) & (days < start + p.train_days)
    train_rows = np.flatnonzero(in_train).astype(np.int64)
    window = f"training window {train_start} to {from_day_number(start + p.train_days - 1)}"
    if len(train_rows) == 0:
        raise DatasetError(
            f"{window} has no transactions (the data covers {from_day_number(first)} to "
            f"{from_day_number(last)})"
        )
    n_fraud = int(labels[train_rows].sum())
    if n_fraud == 0 or n_fraud == len(train_rows):
        only = "legitimate" if n_fraud == 0 else "fraudulent"
        raise DatasetError(
            f"{window} has a single class: all {len(train_rows)} transactions are {only} "
            "(column is_fraud); a model needs both"
        )

    test_first = start + p.train_days + p.delay_days
    in_test = (days >= test_first) & (days < test_first + p.test_days)
    test_window = (
        f"test window {from_day_number(test_first)} to "
        f"{from_day_number(test_first + p.test_days - 1)}"
    )
    if not in_test.any():
        raise DatasetError(
            f"{test_window} has no transactions (the data ends {from_day_number(last)})"
        )

    # First fraud day per customer since the training start: known from day first + delay + 1 on.
    customers = pd.factorize(frame["customer_id"])[0]
    fraud_since_start = (labels == 1) & (days >= start)
    first_fraud = np.full(customers.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_fraud, customers[fraud_since_start], days[fraud_since_start])
    known = first_fraud[customers] < days - p.delay_days
    removed = in_test & known
    test_mask = in_test & ~known
    test_rows = np.flatnonzero(test_mask).astype(np.int64)
    test_labels = labels[test_rows]
    if len(test_rows) == 0 or test_labels.min() == test_labels.max():
        what = (
            "no transactions"
            if len(test_rows) == 0
            else ("no fraud" if test_labels.max() == 0 else "no legitimate transaction")
        )
        raise DatasetError(
            f"{test_window} has {what} left after removing known compromised customers "
            "(column is_fraud); AUC and precision need both classes"
        )
    return Split(
        protocol=replace(p, train_start=train_start),
        train_start=train_start,
        train_rows=train_rows,
        test_rows=test_rows,
        test_days=days[test_rows],
        removed_rows=int(removed.sum()),
        removed_customers=len(np.unique(customers[removed])),
    )


@dataclass(frozen=True)
class CardPrecision:
    """Card precision@k with its per-day detail (days in ascending order)."""

    k: int
    mean: float
    days: list[int]  # day numbers
    precision_per_day: list[float]
    compromised_per_day: list[int]  # customers with a fraud that day (not yet detected)
    detected_per_day: list[int]  # of them, in the day's top k
    detected_customers: list[list[object]]  # the detected customer ids, per day


def card_precision_at_k(
    days: Sequence[int] | IntArray,
    customers: Sequence[object] | npt.NDArray[Any],
    labels: Sequence[int] | npt.NDArray[Any],
    scores: Sequence[float] | FloatArray,
    k: int = 100,
) -> CardPrecision:
    """Card precision@k (see the module docstring); ties in score rank lower customer ids first.

    Each day's precision is ``detected / k`` even when fewer than ``k`` customers were active.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    frame = pd.DataFrame(
        {
            "day": np.asarray(days, dtype=np.int64),
            "customer": np.asarray(customers),
            "label": np.asarray(labels, dtype=np.int64),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )
    detected: set[object] = set()
    out_days: list[int] = []
    precision: list[float] = []
    compromised: list[int] = []
    found: list[int] = []
    found_ids: list[list[object]] = []
    for day, day_rows in frame.groupby("day", sort=True):
        rows = day_rows[~day_rows["customer"].isin(detected)]
        per_customer = rows.groupby("customer", sort=True).agg(
            score=("score", "max"), label=("label", "max")
        )
        ranked = per_customer.sort_values("score", ascending=False, kind="stable")
        top = ranked.head(k)
        hits = [c for c in top.index[top["label"].to_numpy() == 1]]
        out_days.append(int(day))
        precision.append(len(hits) / k)
        compromised.append(int((per_customer["label"] == 1).sum()))
        found.append(len(hits))
        found_ids.append(hits)
        detected.update(hits)
    mean = float(np.mean(precision)) if precision else 0.0
    return CardPrecision(k, mean, out_days, precision, compromised, found, found_ids)


def card_precision_ceiling(test: pd.DataFrame, test_days: IntArray, k: int) -> CardPrecision:
    """Card precision@k of a perfect model (the labels as scores): the most any model can reach
    when fewer than ``k`` cards are compromised on a day."""
    labels = test["is_fraud"].to_numpy(dtype=np.int64)
    return card_precision_at_k(
        test_days, test["customer_id"].to_numpy(), labels, labels.astype(np.float64), k
    )


@dataclass(frozen=True)
class Metrics:
    """Quality of one model's scores on the test window."""

    auc_roc: float
    average_precision: float
    card_precision: CardPrecision

    def summary(self) -> dict[str, float]:
        """JSON-ready headline numbers."""
        return {
            "auc_roc": round(self.auc_roc, 6),
            "average_precision": round(self.average_precision, 6),
            f"card_precision_at_{self.card_precision.k}": round(self.card_precision.mean, 6),
        }


def score_metrics(test: pd.DataFrame, test_days: IntArray, scores: FloatArray, k: int) -> Metrics:
    """AUC ROC, average precision and card precision@k of ``scores`` for the rows of ``test``."""
    labels = test["is_fraud"].to_numpy(dtype=np.int64)
    return Metrics(
        auc_roc=float(roc_auc_score(labels, scores)),
        average_precision=float(average_precision_score(labels, scores)),
        card_precision=card_precision_at_k(
            test_days, test["customer_id"].to_numpy(), labels, scores, k
        ),
    )


@dataclass(frozen=True)
class ModelResult:
    """One model's outcome in an evaluation."""

    name: str
    label: str
    metrics: Metrics
    scores: FloatArray
    fit_seconds: float | None = None  # None for a model loaded from an artifact
    score_us_per_row: float = 0.0


@dataclass(frozen=True)
class EvaluationReport:
    """Everything the markdown report shows."""

    source: str
    data_sha256: str
    frame: pd.DataFrame  # the validated transactions
    split: Split
    feature_set: str
    features: list[str]
    results: list[ModelResult]
    command: str
    generated_at: dt.datetime
    notes: list[str] = field(default_factory=list)


def _money(paise: int) -> str:
    return f"₹{paise / 100:,.2f}"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def render_markdown(report: EvaluationReport, *, plots: Sequence[str] = ()) -> str:
    """The analyst-facing markdown report."""
    frame, split, p = report.frame, report.split, report.split.protocol
    k = p.top_k
    days = local_days(frame, p.timezone)
    labels = frame["is_fraud"].to_numpy(dtype=np.int64)
    train, test = frame.iloc[split.train_rows], frame.iloc[split.test_rows]
    lines: list[str] = [
        "# Fraud model evaluation",
        "",
        f"Generated {report.generated_at.isoformat(timespec='seconds')} by `{report.command}`.",
        "",
        "## Data",
        "",
        f"- File: `{report.source}` (SHA-256 `{report.data_sha256[:16]}…`).",
        f"- {len(frame):,} transactions from {from_day_number(int(days.min()))} to "
        f"{from_day_number(int(days.max()))} (days in {p.timezone}); "
        f"{int(labels.sum()):,} frauds ({_pct(labels.mean())}); "
        f"{frame['customer_id'].nunique():,} customers, {frame['terminal_id'].nunique():,} "
        "terminals.",
        "",
        "## Protocol",
        "",
        f"- Training: {split.train_start} to {split.train_end} — {len(train):,} transactions, "
        f"{int(train['is_fraud'].sum()):,} frauds ({_pct(train['is_fraud'].mean())}).",
        f"- Delay: {p.delay_days} days skipped ({split.train_end + dt.timedelta(days=1)} onwards): "
        "their labels would not be known yet when the model is trained.",
        f"- Test: {split.test_start} to {split.test_end} — {len(test):,} transactions, "
        f"{int(test['is_fraud'].sum()):,} frauds ({_pct(test['is_fraud'].mean())}), after "
        f"removing {split.removed_rows:,} transactions of {split.removed_customers:,} customers "
        "already known to be compromised before the test day.",
        f"- Features ({report.feature_set}, {len(report.features)}): "
        + ", ".join(f"`{f}`" for f in report.features)
        + ".",
        "",
        "## Results",
        "",
        f"| Model | AUC ROC | Average precision | Card precision@{k} | Fit (s) "
        "| Scoring (µs/row) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report.results:
        m = r.metrics
        fit = "loaded" if r.fit_seconds is None else f"{r.fit_seconds:.1f}"
        lines.append(
            f"| {r.label} | {m.auc_roc:.3f} | {m.average_precision:.3f} | "
            f"{m.card_precision.mean:.3f} | {fit} | {r.score_us_per_row:.1f} |"
        )
    lines += [
        "",
        "- **AUC ROC**: chance that a random fraud scores above a random legitimate payment "
        "(0.5 is guessing).",
        "- **Average precision**: area under the precision–recall curve; the share of fraud among "
        f"all test payments ({_pct(test['is_fraud'].mean())}) is what guessing gets.",
        f"- **Card precision@{k}**: if analysts review the {k} highest-scoring cards (customers) "
        f"each day, the share of them that really had a fraud that day (mean over "
        f"{p.test_days} days; cards already caught are not counted again). A perfect model "
        f"would reach {card_precision_ceiling(test, split.test_days, k).mean:.3f} here: on "
        f"days with fewer than {k} compromised cards, even a perfect queue reviews clean ones.",
    ]
    best = max(
        report.results,
        key=lambda r: (r.metrics.card_precision.mean, r.metrics.average_precision),
    )
    cp = best.metrics.card_precision
    lines += [
        "",
        f"## A daily review queue of {k} cards — {best.label}",
        "",
        f"| Day | Compromised cards that day | Found in the top {k} | Card precision@{k} |",
        "|---|---:|---:|---:|",
    ]
    for d, comp, hit, prec in zip(
        cp.days, cp.compromised_per_day, cp.detected_per_day, cp.precision_per_day, strict=True
    ):
        lines.append(f"| {from_day_number(d)} | {comp} | {hit} | {prec:.2f} |")
    total_comp, total_hit = sum(cp.compromised_per_day), sum(cp.detected_per_day)
    lines += [
        "",
        f"Over the test week the queue found {total_hit} compromised cards in "
        f"{k * len(cp.days):,} reviews; {total_comp} card-days had a fraud.",
    ]
    lines += _scenario_section(test, split.test_days, cp, k)
    if plots:
        lines += ["", "## Curves", ""]
        lines += [f"![{name}]({name})" for name in plots]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def _scenario_section(
    test: pd.DataFrame, test_days: IntArray, cp: CardPrecision, k: int
) -> list[str]:
    if "fraud_scenario" not in test.columns:
        return []
    found_on: dict[object, int] = {}  # customer -> first test day the queue found them
    for d, ids in zip(cp.days, cp.detected_customers, strict=True):
        for c in ids:
            found_on.setdefault(c, d)
    customer = test["customer_id"].to_numpy()
    never = np.iinfo(np.int64).max
    first_found = np.array([found_on.get(c, never) for c in customer], dtype=np.int64)
    caught = first_found <= test_days
    scenario = test["fraud_scenario"].to_numpy(dtype=np.int64)
    amount = test["amount_minor"].to_numpy(dtype=np.int64)
    lines = [
        "",
        "## Frauds by scenario (simulated data)",
        "",
        f"A fraud counts as caught when its card was found by the top-{k} queue that day or an "
        "earlier test day (an analyst would have blocked it).",
        "",
        "| Scenario | Frauds | Caught | Fraud amount | Caught amount |",
        "|---|---:|---:|---:|---:|",
    ]
    for s, name in SCENARIO_NAMES.items():
        rows = scenario == s
        lines.append(
            f"| {name} | {int(rows.sum()):,} | {int((rows & caught).sum()):,} | "
            f"{_money(int(amount[rows].sum()))} | {_money(int(amount[rows & caught].sum()))} |"
        )
    return lines


def plot_curves(report: EvaluationReport, out_dir: Path) -> list[str]:
    """Write ``roc.png`` and ``pr.png`` if matplotlib is installed; returns the files written."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
    except ImportError:
        return []
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    labels = report.frame.iloc[report.split.test_rows]["is_fraud"].to_numpy(dtype=np.int64)
    written: list[str] = []
    for name, title in (("roc.png", "ROC curve"), ("pr.png", "Precision–recall curve")):
        fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
        for r in report.results:
            if name == "roc.png":
                x, y, _ = roc_curve(labels, r.scores)
                ax.plot(x, y, label=f"{r.label} (AUC {r.metrics.auc_roc:.3f})")
            else:
                y, x, _ = precision_recall_curve(labels, r.scores)
                ax.plot(x, y, label=f"{r.label} (AP {r.metrics.average_precision:.3f})")
        if name == "roc.png":
            ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="guessing")
            ax.set_xlabel("False positive rate (legitimate payments flagged)")
            ax.set_ylabel("True positive rate (frauds flagged)")
        else:
            ax.axhline(labels.mean(), color="grey", linestyle=":", label="guessing")
            ax.set_xlabel("Recall (share of frauds flagged)")
            ax.set_ylabel("Precision (share of flags that are fraud)")
        ax.set_title(f"{title}, test {report.split.test_start} to {report.split.test_end}")
        ax.legend(loc="lower right" if name == "roc.png" else "lower left", fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / name)
        plt.close(fig)
        written.append(name)
    return written


REPORT_FILE = "report.md"


def write_report(out_dir: Path, report: EvaluationReport, *, overwrite: bool = False) -> Path:
    """Write ``report.md`` (and ``roc.png``/``pr.png`` when matplotlib is installed) into
    ``out_dir`` atomically: a temporary sibling folder renamed into place.

    Raises ``FileExistsError`` if ``out_dir`` exists and ``overwrite`` is false.  Returns the
    path of the markdown file.
    """
    out_dir = out_dir.resolve()
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; choose another folder or pass --force")
    tmp = staging_folder(out_dir)
    try:
        plots = plot_curves(report, tmp)
        (tmp / REPORT_FILE).write_text(render_markdown(report, plots=plots), encoding="utf-8")
        publish_folder(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / REPORT_FILE
