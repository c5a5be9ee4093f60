"""Model selection by prequential validation: fold dates; no test-week row is ever read."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest

from cli import fraud as fraud_cli
from fraud.dataset import validate_transactions
from fraud.evaluation import Protocol, local_days
from fraud.features import HANDBOOK_FEATURES, compute_features
from fraud.registry import ModelRegistry
from fraud.selection import (
    Candidate,
    candidates,
    fold_splits,
    protocol_test_starts,
    select,
    validation_starts,
)
from fraud.training import build_model, prepare


def test_folds_follow_the_handbook_and_validation_ends_with_training() -> None:
    handbook = Protocol(train_start=dt.date(2018, 7, 25))
    assert validation_starts(handbook) == [
        dt.date(2018, 7, 11),
        dt.date(2018, 7, 4),
        dt.date(2018, 6, 27),
        dt.date(2018, 6, 20),
    ]
    assert protocol_test_starts(handbook) == [
        dt.date(2018, 7, 25),
        dt.date(2018, 8, 1),
        dt.date(2018, 8, 8),
        dt.date(2018, 8, 15),
    ]
    # Whatever the window lengths, the latest validation week ends on the last training day.
    for train_days, delay_days, test_days in ((7, 7, 7), (14, 7, 7), (7, 3, 5), (28, 0, 7)):
        p = Protocol(dt.date(2018, 7, 25), train_days, delay_days, test_days)
        train_end = dt.date(2018, 7, 25) + dt.timedelta(days=train_days - 1)
        ends = [
            s + dt.timedelta(days=train_days + delay_days + test_days - 1)
            for s in validation_starts(p, n_folds=3)
        ]
        assert max(ends) == train_end
        assert ends == sorted(ends, reverse=True)


@pytest.fixture(scope="module")
def prepared(small_frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, Protocol]:
    frame = validate_transactions(small_frame)
    protocol = Protocol(train_start=dt.date(2018, 5, 10))  # training 05-10..16, data to 05-30
    p = prepare(frame, list(HANDBOOK_FEATURES), protocol)
    return p.frame, p.matrix, p.split.protocol


def test_selection_never_reads_a_row_after_the_training_window(
    prepared: tuple[pd.DataFrame, np.ndarray, Protocol],
) -> None:
    frame, matrix, protocol = prepared
    days = local_days(frame, protocol.timezone)
    train_end = dt.date(2018, 5, 16)
    later = days > (train_end - dt.date(1970, 1, 1)).days
    assert later.sum() > 5_000
    # Logistic regression refuses NaN in fit and predict: any read of a later row would raise.
    poisoned = matrix.copy()
    poisoned[later] = np.nan
    tried = candidates(["logreg"])
    selection = select(frame, poisoned, protocol, tried, metric="average_precision")

    assert {s.candidate.label for s in selection.ranked} == {c.label for c in tried}
    means = [s.mean("average_precision") for s in selection.ranked]
    assert means == sorted(means, reverse=True)
    assert selection.best.mean("average_precision") > 0.2  # ~11% fraud: better than guessing
    for score in selection.ranked:
        assert [f.train_start for f in score.folds] == validation_starts(protocol)
        assert max(f.test_end for f in score.folds) == train_end
        assert all(f.frauds > 0 for f in score.folds)

    # The poison is live: a NaN inside the latest validation week is read and refused.
    in_validation = fold_splits(frame, protocol, validation_starts(protocol))[0].test_rows
    poisoned[in_validation[:1]] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        select(frame, poisoned, protocol, tried, metric="average_precision")


def test_selection_scores_the_test_folds_it_is_given(
    prepared: tuple[pd.DataFrame, np.ndarray, Protocol],
) -> None:
    frame, matrix, protocol = prepared
    early = Protocol(train_start=dt.date(2018, 4, 26))
    selection = select(frame, matrix, early, [Candidate("tree", {})], n_folds=2)
    assert selection.validation_starts == (dt.date(2018, 4, 12), dt.date(2018, 4, 5))
    with pytest.raises(ValueError, match="unknown metric 'recall'"):
        select(frame, matrix, protocol, [Candidate("tree", {})], metric="recall")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no candidates"):
        select(frame, matrix, protocol, [])


def test_settings_reach_the_estimator_including_the_blend() -> None:
    forest = build_model("forest", params={"min_samples_leaf": 9}).named_steps["model"]
    assert forest.min_samples_leaf == 9
    blend = build_model("blend", params={"forest__n_estimators": 7, "hgb__max_iter": 3})
    voting = blend.named_steps["model"]
    assert voting.voting == "soft"
    assert voting.named_estimators["forest"].n_estimators == 7
    assert voting.named_estimators["hgb"].max_iter == 3


def test_the_blend_trains_registers_and_scores_one_row_as_in_a_batch(
    small_frame: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "tx.parquet"
    small_frame.to_parquet(data)
    root = tmp_path / "registry"
    parser = argparse.ArgumentParser(prog="rizzpay")
    fraud_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "fraud",
            "train",
            "--data",
            str(data),
            "--model",
            "blend",
            "--register",
            "--registry",
            str(root),
        ]
    )
    assert args.handler(args) == 0
    assert "registered as v0001 (champion)" in capsys.readouterr().out
    model = ModelRegistry(root).load("champion")
    assert model.info.family == "blend"
    assert model.info.metrics["auc_roc"] > 0.65  # tiny fraud-heavy data; guessing is 0.5
    frame = validate_transactions(small_frame)
    rows = compute_features(frame, model.info.features).tail(50)
    batch = model.score(rows)
    alone = np.array([model.score(rows.iloc[[i]])[0] for i in range(len(rows))])
    np.testing.assert_allclose(alone, batch, rtol=0, atol=1e-12)
    assert ((batch >= 0) & (batch <= 1)).all()
