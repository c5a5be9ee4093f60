"""Model selection by prequential validation (handbook chapter 5), never on the test week.

The handbook chooses hyperparameters on *validation* folds that lie wholly before the end of the
training window, and reports test performance as the mean over several test weeks:

* **Validation folds** (``n_folds``, default 4).  Fold 0 trains on the ``train_days`` that start
  ``delay_days + test_days`` before the protocol's training start, skips the delay, and validates
  on the following ``test_days`` — which end on the last training day.  Each further fold moves
  back ``test_days``.  So every label a validation fold reads was known when the protocol's model
  is trained (for the handbook's 2018-07-25 start: validation weeks from 2018-07-25, 07-18, 07-11
  and 07-04; the test week 2018-08-08.. is never read).
* **Test folds** (:func:`protocol_test_starts`): the protocol's own split and the next
  ``n_folds - 1`` ones, each moved forward ``test_days`` (the handbook's 2018-07-25, 08-01,
  08-08 and 08-15 training starts).  Their mean is what the handbook's chapter 5 tables report;
  the first fold alone is the protocol of chapters 3–4.

Candidates are (model family, settings) pairs; :func:`select` fits each on every validation fold,
averages the metrics and ranks the candidates by one of them.  The work is ``candidates × folds``
fits, so keep grids small (see :data:`SEARCH_SPACES`).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from fraud.evaluation import Protocol, Split, make_split, score_metrics
from fraud.training import build_model, fraud_scores

Metric = Literal["auc_roc", "average_precision", "card_precision"]
METRICS: tuple[Metric, ...] = ("auc_roc", "average_precision", "card_precision")
DEFAULT_FOLDS = 4

# Settings tried per family (an empty mapping is the family's defaults in fraud/training.py).
# Small on purpose — each costs one fit per fold — and each holds the handbook's or the previous
# setting next to the current default, so the search shows the default still wins on validation.
# A wider search on the same validation weeks (forest: depth 10/20/none × leaf 1/5/20, 300 trees,
# balanced class weights; boosting: learning rate 0.05–0.1, 7–31 leaves, balanced class weights)
# found nothing better by more than 0.002 in validation card precision (docs/fraud.md, Quality).
SEARCH_SPACES: dict[str, tuple[Mapping[str, Any], ...]] = {
    "logreg": ({"C": 0.1}, {}, {"C": 10.0}),
    "forest": ({"min_samples_leaf": 1}, {}),
    "hgb": ({}, {"max_leaf_nodes": 15, "max_iter": 300}),
    "blend": ({},),
}


@dataclass(frozen=True)
class Candidate:
    """A model family with settings overriding its defaults."""

    family: str
    params: Mapping[str, Any]

    def __post_init__(self) -> None:
        build_model(self.family, params=self.params)  # refuses an unknown family or setting now

    @property
    def label(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.family} ({settings or 'defaults'})"


def candidates(families: Sequence[str]) -> list[Candidate]:
    """The :data:`SEARCH_SPACES` candidates of ``families`` (a family without a search space is
    tried with its defaults only)."""
    out: list[Candidate] = []
    for family in families:
        for params in SEARCH_SPACES.get(family, ({},)):
            out.append(Candidate(family, dict(params)))
    return out


def _start(protocol: Protocol) -> dt.date:
    if protocol.train_start is None:
        raise ValueError("the protocol needs a train_start (see make_split for the default)")
    return protocol.train_start


def validation_starts(protocol: Protocol, n_folds: int = DEFAULT_FOLDS) -> list[dt.date]:
    """Training starts of the validation folds, latest first; the latest fold's validation window
    ends on the protocol's last training day."""
    if n_folds < 1:
        raise ValueError("n_folds must be >= 1")
    p, start = protocol, _start(protocol)
    first = start - dt.timedelta(days=p.delay_days + p.test_days)
    return [first - dt.timedelta(days=p.test_days * i) for i in range(n_folds)]


def protocol_test_starts(protocol: Protocol, n_folds: int = DEFAULT_FOLDS) -> list[dt.date]:
    """Training starts of the test folds: the protocol's own, then ``n_folds - 1`` later ones."""
    if n_folds < 1:
        raise ValueError("n_folds must be >= 1")
    start = _start(protocol)
    return [start + dt.timedelta(days=protocol.test_days * i) for i in range(n_folds)]


@dataclass(frozen=True)
class FoldMetrics:
    """One fold's windows and metrics."""

    train_start: dt.date
    test_start: dt.date
    test_end: dt.date
    frauds: int
    auc_roc: float
    average_precision: float
    card_precision: float

    def value(self, metric: Metric) -> float:
        return float(getattr(self, metric))


@dataclass(frozen=True)
class CandidateScore:
    """A candidate's metrics on each fold, with their means and standard deviations."""

    candidate: Candidate
    folds: tuple[FoldMetrics, ...]
    fit_seconds: float

    def mean(self, metric: Metric) -> float:
        return float(np.mean([f.value(metric) for f in self.folds]))

    def std(self, metric: Metric) -> float:
        """Population standard deviation over folds (0 for one fold), as the handbook reports."""
        return float(np.std([f.value(metric) for f in self.folds]))

    def summary(self) -> dict[str, Any]:
        """JSON-ready: settings, per-metric mean/std and the folds."""
        return {
            "family": self.candidate.family,
            "params": dict(self.candidate.params),
            "mean": {m: round(self.mean(m), 6) for m in METRICS},
            "std": {m: round(self.std(m), 6) for m in METRICS},
            "folds": [
                {
                    "train_start": f.train_start.isoformat(),
                    "test_start": f.test_start.isoformat(),
                    "test_end": f.test_end.isoformat(),
                    "frauds": f.frauds,
                    "auc_roc": round(f.auc_roc, 6),
                    "average_precision": round(f.average_precision, 6),
                    "card_precision": round(f.card_precision, 6),
                }
                for f in self.folds
            ],
            "fit_seconds": round(self.fit_seconds, 2),
        }


def fold_splits(frame: pd.DataFrame, protocol: Protocol, starts: Sequence[dt.date]) -> list[Split]:
    """The protocol's split for each training start.

    Raises :class:`~fraud.dataset.DatasetError` naming the fold's window when a fold does not fit
    the data (an empty window, one class in training, a test window without fraud).
    """
    return [make_split(frame, replace(protocol, train_start=start)) for start in starts]


def score_candidate(
    candidate: Candidate,
    frame: pd.DataFrame,
    matrix: npt.NDArray[np.float64],
    splits: Sequence[Split],
    *,
    seed: int = 0,
    n_jobs: int = 1,
) -> CandidateScore:
    """Fit ``candidate`` on each split's training rows of ``matrix`` (the feature matrix of every
    row of ``frame``) and measure it on the split's test rows."""
    labels = frame["is_fraud"].to_numpy(dtype=np.int8)
    folds: list[FoldMetrics] = []
    seconds = 0.0
    for split in splits:
        model = build_model(candidate.family, seed=seed, n_jobs=n_jobs, params=candidate.params)
        started = time.perf_counter()
        model.fit(matrix[split.train_rows], labels[split.train_rows])
        seconds += time.perf_counter() - started
        scores = fraud_scores(model, matrix[split.test_rows])
        test = frame.iloc[split.test_rows]
        m = score_metrics(test, split.test_days, scores, split.protocol.top_k)
        folds.append(
            FoldMetrics(
                train_start=split.train_start,
                test_start=split.test_start,
                test_end=split.test_end,
                frauds=int(test["is_fraud"].sum()),
                auc_roc=m.auc_roc,
                average_precision=m.average_precision,
                card_precision=m.card_precision.mean,
            )
        )
    return CandidateScore(candidate, tuple(folds), seconds)


@dataclass(frozen=True)
class Selection:
    """Candidates ranked by their mean validation ``metric`` (best first)."""

    metric: Metric
    validation_starts: tuple[dt.date, ...]
    ranked: tuple[CandidateScore, ...]

    @property
    def best(self) -> CandidateScore:
        return self.ranked[0]

    def best_of(self, family: str) -> CandidateScore:
        """The best-ranked candidate of one family (``KeyError`` if it was not tried)."""
        for score in self.ranked:
            if score.candidate.family == family:
                return score
        raise KeyError(f"no candidate of family {family!r} was validated")


def select(
    frame: pd.DataFrame,
    matrix: npt.NDArray[np.float64],
    protocol: Protocol,
    tried: Sequence[Candidate],
    *,
    metric: Metric = "average_precision",
    n_folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    n_jobs: int = 1,
) -> Selection:
    """Rank ``tried`` by their mean ``metric`` over the validation folds of ``protocol``.

    Ties (equal to 1e-9) keep the order of ``tried``, so list the simpler candidate first.  Raises
    ``ValueError`` for no candidates or an unknown metric, and
    :class:`~fraud.dataset.DatasetError` when a validation fold does not fit the data (for
    example a training start too close to the beginning of the file).
    """
    if not tried:
        raise ValueError("no candidates to select from")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    starts = validation_starts(protocol, n_folds)
    splits = fold_splits(frame, protocol, starts)
    scored = [score_candidate(c, frame, matrix, splits, seed=seed, n_jobs=n_jobs) for c in tried]
    order = sorted(range(len(scored)), key=lambda i: (-_rounded(scored[i].mean(metric)), i))
    return Selection(metric, tuple(starts), tuple(scored[i] for i in order))


def _rounded(value: float) -> float:
    return math.floor(value * 1e9) / 1e9


__all__ = [
    "METRICS",
    "SEARCH_SPACES",
    "Candidate",
    "CandidateScore",
    "FoldMetrics",
    "Selection",
    "candidates",
    "fold_splits",
    "protocol_test_starts",
    "score_candidate",
    "select",
    "validation_starts",
]
