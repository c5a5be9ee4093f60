"""``rizzpay fraud simulate / train / evaluate`` end to end on a small simulation."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

from cli import fraud as fraud_cli
from fraud.dataset import file_sha256, read_transactions


def run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="rizzpay")
    fraud_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    code: int = args.handler(args)
    return code


SMALL_ARGS = ("--customers", "300", "--terminals", "600", "--days", "60", "--seed", "3")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fraud-cli")
    assert run("fraud", "simulate", "--out", folder / "tx.parquet", *SMALL_ARGS) == 0
    return folder


@pytest.fixture(scope="module")
def parquet(data_dir: Path) -> Path:
    return data_dir / "tx.parquet"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_csv_and_parquet_hold_the_same_payments(data_dir: Path, parquet: Path) -> None:
    csv = data_dir / "tx.csv"
    assert run("fraud", "simulate", "--out", csv, *SMALL_ARGS) == 0
    a, b = read_transactions(parquet), read_transactions(csv)
    assert len(a) == len(b) > 20_000
    for column in ("transaction_id", "customer_id", "amount_minor", "is_fraud"):
        assert a[column].tolist() == b[column].tolist(), column
    assert (a["tx_datetime"] == b["tx_datetime"]).all()
    # Card digits are strings: leading zeros survive the CSV.
    assert b["card_last4"].dropna().str.fullmatch(r"\d{4}").all()
    assert b["card_last4"].dropna().str.startswith("0").any()
    assert b["amount_minor"].dtype == "int64"


def test_missing_column_is_named_and_nothing_is_written(
    parquet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    pd.read_parquet(parquet).drop(columns=["customer_id"]).to_csv(bad, index=False)
    out = tmp_path / "model"
    assert run("fraud", "train", "--data", bad, "--out", out, "--model", "logreg") == 2
    err = capsys.readouterr().err
    assert "missing required column(s): customer_id" in err
    assert not out.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("amount_minor", "12.5 rupees", "'amount_minor' must be integer minor units"),
        ("amount_minor", "-100", "'amount_minor' must be > 0"),
        ("tx_datetime", "yesterday", "'tx_datetime' has 1 value(s) that are not timestamps"),
        ("is_fraud", "2", "'is_fraud' must be 0 or 1"),
    ],
)
def test_mistyped_values_are_named(
    parquet: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    column: str,
    value: str,
    expected: str,
) -> None:
    frame = pd.read_parquet(parquet).head(2_000)
    frame[column] = frame[column].astype(str)  # a CSV is text anyway
    frame.loc[5, column] = value
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / "report"
    assert run("fraud", "evaluate", "--data", bad, "--out", out) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_single_class_training_window_is_refused(
    parquet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_parquet(parquet)
    local_day = frame["tx_datetime"].dt.tz_convert("Asia/Kolkata").dt.strftime("%Y-%m-%d")
    in_training = local_day.between("2018-05-01", "2018-05-07")
    frame.loc[in_training, "is_fraud"] = 0
    bad = tmp_path / "no-fraud-in-training.parquet"
    frame.to_parquet(bad)
    out = tmp_path / "model"
    code = run("fraud", "train", "--data", bad, "--out", out, "--train-start", "2018-05-01")
    assert code == 2
    err = capsys.readouterr().err
    assert "training window 2018-05-01 to 2018-05-07 has a single class" in err
    assert "is_fraud" in err
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_train_saves_artifact_and_evaluate_reads_it(
    parquet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = tmp_path / "fraud-v1"
    assert run("fraud", "train", "--data", parquet, "--out", model_dir, "--model", "hgb") == 0
    assert sorted(p.name for p in model_dir.iterdir()) == ["metadata.json", "model.joblib"]
    assert leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert model_dir.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["model"]["family"] == "hgb"
    assert meta["features"][:3] == ["amount", "is_weekend", "is_night"]
    assert len(meta["feature_definitions"]) == 15
    assert meta["data"]["sha256"] == file_sha256(parquet)
    # 60 days: the latest 7 + 7 + 7 days that fit end on the last day.
    assert meta["training_window"] == {
        "start": "2018-05-10",
        "end": "2018-05-16",
        "days": 7,
        "rows": meta["training_window"]["rows"],
        "frauds": meta["training_window"]["frauds"],
    }
    assert meta["test_window"]["end"] == "2018-05-30"
    auc = meta["metrics"]["auc_roc"]
    # Tiny, fraud-heavy data (11% fraud); a broken pipeline would sit at 0.5.
    assert auc > 0.65, "the model should rank frauds well above legitimate payments"
    capsys.readouterr()

    # The same model refuses to overwrite, unless told to.
    assert run("fraud", "train", "--data", parquet, "--out", model_dir, "--model", "tree") == 2
    assert "already exists" in capsys.readouterr().err
    assert json.loads((model_dir / "metadata.json").read_text())["model"]["family"] == "hgb"

    report_dir = tmp_path / "report"
    code = run("fraud", "evaluate", "--data", parquet, "--model", model_dir, "--out", report_dir)
    assert code == 0
    report = (report_dir / "report.md").read_text()
    # Same data, same window: the report reproduces the metrics recorded at training time.
    assert f"| {auc:.3f} |" in report
    assert "(saved, fraud-v1)" in report
    assert "Training: 2018-05-10 to 2018-05-16" in report


def test_evaluate_compares_models_with_rizzpay_features(parquet: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ("--features", "rizzpay", "--models", "logreg,tree", "--top-k", "20")
    assert run("fraud", "evaluate", "--data", parquet, "--out", out, *args) == 0
    report = (out / "report.md").read_text()
    assert "| Logistic regression |" in report
    assert "| Decision tree (depth 2) |" in report
    assert "`card_nb_tx_1h`" in report
    assert "Card precision@20" in report
    assert "3 · compromised customer" in report
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert (out / "roc.png").exists() == has_matplotlib
    assert (out / "pr.png").exists() == has_matplotlib


def test_unknown_model_family_is_refused(
    parquet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert run("fraud", "evaluate", "--data", parquet, "--out", out, "--models", "svm") == 2
    assert "unknown model(s) svm" in capsys.readouterr().err
    assert not out.exists()
