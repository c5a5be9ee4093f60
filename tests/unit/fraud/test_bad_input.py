"""Bad input to ``rizzpay fraud train --register`` / ``evaluate`` / ``rules`` / ``backtest``.

Issue 5 asks for a clear error naming the problem and nothing half-written to the registry.  Each
case runs the real command on a CSV and on a Parquet file next to a registry that already holds a
champion, and requires exit code 2, the problem named on stderr, no output folder, no temporary
leftovers, and the registry's files byte-for-byte as they were.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest

from cli import fraud as fraud_cli
from fraud.dataset import DatasetError
from fraud.evaluation import Protocol
from fraud.registry import ModelRegistry
from fraud.selection import Candidate, select, validation_starts


def run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="rizzpay")
    fraud_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    code: int = args.handler(args)
    return code


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (the lock file aside) with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def registry_with_champion(
    small_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(good data file, registry root) with v0001 registered as champion."""
    folder = tmp_path_factory.mktemp("bad-input")
    data = folder / "good.parquet"
    small_frame.to_parquet(data)
    root = folder / "registry"
    code = run("fraud", "train", "--data", data, "--model", "logreg", "--register",
               "--registry", root, "--who", "asha")  # fmt: skip
    assert code == 0
    assert [v.version for v in ModelRegistry(root).versions()] == ["v0001"]
    return data, root


def _local_day(frame: pd.DataFrame) -> pd.Series:
    return frame["tx_datetime"].dt.tz_convert("Asia/Kolkata").dt.strftime("%Y-%m-%d")


def _drop_terminal(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["terminal_id"])


def _text_amount(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.assign(amount_minor=frame["amount_minor"].astype(str))
    out.loc[5, "amount_minor"] = "12.5 rupees"
    return out


def _fractional_paise(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.assign(amount_minor=frame["amount_minor"].astype(np.float64))
    out.loc[5, "amount_minor"] = 1050.5
    return out


def _bad_timestamp(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.assign(tx_datetime=frame["tx_datetime"].astype(str))
    out.loc[7, "tx_datetime"] = "yesterday"
    return out


def _numeric_timestamp(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(tx_datetime=np.arange(len(frame), dtype=np.int64))


def _word_labels(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(is_fraud=np.where(frame["is_fraud"] == 1, "yes", "no"))


def _no_fraud_in_training(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.loc[_local_day(frame).between("2018-05-01", "2018-05-07"), "is_fraud"] = 0
    return out


def _no_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.head(0)


# (case id, how to spoil the good frame, extra arguments, what stderr must say)
CASES: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame], tuple[str, ...], str]] = [
    ("missing-column", _drop_terminal, (), "missing required column(s): terminal_id"),
    ("amount-as-text", _text_amount, (), "column 'amount_minor' must be integer minor units"),
    ("fractional-paise", _fractional_paise, (), "'amount_minor' must be whole minor units"),
    ("bad-timestamp", _bad_timestamp, (), "'tx_datetime' has 1 value(s) that are not timestamps"),
    ("numeric-timestamp", _numeric_timestamp, (), "'tx_datetime' must hold timestamps"),
    ("word-labels", _word_labels, (), "column 'is_fraud' must be 0/1"),
    ("no-rows", _no_rows, (), "the file has no rows"),
    (
        "empty-training-window",
        lambda f: f,
        ("--train-start", "2019-01-01"),
        "training window 2019-01-01 to 2019-01-07 has no transactions",
    ),
    (
        "empty-test-window",
        lambda f: f,
        ("--train-start", "2018-05-20"),
        "test window 2018-06-03 to 2018-06-09 has no transactions",
    ),
    (
        "single-class",
        _no_fraud_in_training,
        ("--train-start", "2018-05-01"),
        "training window 2018-05-01 to 2018-05-07 has a single class",
    ),
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize(
    ("spoil", "extra", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_train_register_refuses_bad_files_and_leaves_the_registry_untouched(
    small_frame: pd.DataFrame,
    registry_with_champion: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    suffix: str,
    spoil: Callable[[pd.DataFrame], pd.DataFrame],
    extra: tuple[str, ...],
    expected: str,
) -> None:
    _, root = registry_with_champion
    before = snapshot(root)
    bad = tmp_path / f"bad{suffix}"
    spoiled = spoil(small_frame)
    if suffix == ".csv":
        spoiled.to_csv(bad, index=False)
    else:
        spoiled.to_parquet(bad, index=False)
    out = tmp_path / "artifact"
    code = run("fraud", "train", "--data", bad, "--model", "logreg", "--register",
               "--registry", root, "--out", out, *extra)  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.startswith("rizzpay fraud: error: ")
    assert snapshot(root) == before, "a refused file must not change the registry"
    assert not out.exists()
    assert leftovers(tmp_path) == []

    report = tmp_path / "report"
    assert run("fraud", "evaluate", "--data", bad, "--models", "logreg", "--out", report,
               *extra) == 2  # fmt: skip
    assert expected in capsys.readouterr().err
    assert not report.exists()
    assert leftovers(tmp_path) == []


UNPARSABLE = """\
thresholds: {review: 0.5, block: 0.9}
rules:
  - name: big_and_fast
    expression: amount_minor > 10_000 and (device_nb_tx_1h >> 3)
    action: block
"""

UNKNOWN_FEATURE = """\
rules:
  - name: spend_jump
    expression: amount_minor > 3 * customer_avg_amount_90d
    action: review
"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (UNPARSABLE, "rule 'big_and_fast', line 3: column 45: expected a value, found '>'"),
        (UNKNOWN_FEATURE, "unknown field 'customer_avg_amount_90d'"),
    ],
    ids=["does-not-parse", "unknown-feature"],
)
def test_bad_rules_are_refused_by_check_and_backtest(
    registry_with_champion: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: str,
    expected: str,
) -> None:
    data, root = registry_with_champion
    before = snapshot(root)
    rules = tmp_path / "rules.yaml"
    rules.write_text(body)
    assert run("fraud", "rules", "check", rules) == 2
    assert expected in capsys.readouterr().err
    out = tmp_path / "backtest.md"
    code = run("fraud", "backtest", "--rules", rules, "--data", data, "--registry", root,
               "--out", out)  # fmt: skip
    assert code == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()
    assert snapshot(root) == before


def test_backtest_names_a_column_the_rules_need_but_the_file_lacks(
    small_frame: pd.DataFrame,
    registry_with_champion: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, root = registry_with_champion
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - {name: busy_device, expression: device_nb_tx_1h > 5, action: review}\n"
    )
    data = tmp_path / "no-devices.csv"
    small_frame.drop(columns=["device_id"]).to_csv(data, index=False)
    out = tmp_path / "backtest.md"
    code = run("fraud", "backtest", "--rules", rules, "--data", data, "--registry", root,
               "--out", out)  # fmt: skip
    assert code == 2
    assert "missing column(s) device_id" in capsys.readouterr().err
    assert not out.exists()


def test_selection_names_a_validation_fold_outside_the_data(small_frame: pd.DataFrame) -> None:
    from fraud.dataset import validate_transactions  # noqa: PLC0415

    frame = validate_transactions(small_frame)
    # Training from 2018-04-22: the validation folds train from 2018-04-08, 04-01, 03-25 and 03-18;
    # the data begin on 2018-04-01, so the third fold is the first that cannot be built.
    protocol = Protocol(train_start=dt.date(2018, 4, 22))
    assert validation_starts(protocol)[-1] == dt.date(2018, 3, 18)
    matrix = np.zeros((len(frame), 1))
    with pytest.raises(
        DatasetError, match="training window 2018-03-25 to 2018-03-31 has no transactions"
    ):
        select(frame, matrix, protocol, [Candidate("tree", {})])


def test_unknown_model_settings_are_named() -> None:
    with pytest.raises(ValueError, match="unknown setting\\(s\\) min_leaf for model 'forest'"):
        Candidate("forest", {"min_leaf": 5})
    with pytest.raises(KeyError, match="unknown model 'svm'"):
        Candidate("svm", {})
