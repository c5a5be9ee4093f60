"""Model registry: atomic registration, checksums, champion/challenger, audit, shadow scoring."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import fraud.registry as registry_module
from cli import fraud as fraud_cli
from fraud.features import HANDBOOK_FEATURES, describe
from fraud.registry import (
    ModelRegistry,
    RegistryError,
    feature_fingerprint,
    shadow_score,
)
from fraud.training import load_artifact

FEATURES_A = list(HANDBOOK_FEATURES)
FEATURES_B = ["amount", "is_night", "customer_nb_tx_1d", "device_nb_tx_1h"]


def fitted(features: list[str], seed: int) -> Pipeline:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, len(features)))
    y = (x[:, 0] + rng.normal(scale=0.5, size=200) > 0.8).astype(int)
    model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    model.fit(x, y)
    return model


def metadata(features: list[str], auc: float) -> dict[str, Any]:
    return {
        "format_version": 1,
        "model": {"family": "logreg", "label": "Logistic regression", "seed": 0},
        "features": features,
        "feature_definitions": describe(features),
        "training_window": {"start": "2018-05-10", "end": "2018-05-16", "days": 7},
        "metrics": {"auc_roc": auc, "average_precision": auc / 2, "card_precision_at_100": 0.25},
        "data": {"sha256": hashlib.sha256(b"transactions").hexdigest(), "rows": 200},
    }


class Clock:
    """A UTC clock that advances one minute per reading."""

    def __init__(self) -> None:
        self.now = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(minutes=1)
        return self.now


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry", clock=Clock())


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (except the lock) with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def frame(features: list[str], n: int = 50, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = sorted(set(FEATURES_A) | set(FEATURES_B))
    return pd.DataFrame(rng.normal(size=(n, len(names))), columns=names)


# --- register, list, load ------------------------------------------------------------------


def test_register_records_metadata_and_loads_the_same_model(reg: ModelRegistry) -> None:
    model = fitted(FEATURES_A, 1)
    info = reg.register(model, metadata(FEATURES_A, 0.81), who="asha", why="first model")
    assert info.version == "v0001"
    assert info.created_at == dt.datetime(2025, 1, 2, 3, 5, 5, tzinfo=dt.UTC)
    assert info.features == tuple(FEATURES_A)
    assert info.feature_fingerprint == feature_fingerprint(FEATURES_A)
    assert (info.train_start, info.train_end) == (dt.date(2018, 5, 10), dt.date(2018, 5, 16))
    assert info.metrics["auc_roc"] == 0.81
    assert info.data_sha256 == hashlib.sha256(b"transactions").hexdigest()
    assert info.sklearn_version == sklearn.__version__
    assert info.artifact_sha256 == hashlib.sha256(info.model_path.read_bytes()).hexdigest()
    assert info.artifact_bytes == info.model_path.stat().st_size
    assert info.registered_by == "asha"
    # the first model becomes champion; the folder is also a plain training artifact
    assert reg.aliases().champion == "v0001"
    _pipeline, meta = load_artifact(info.path)
    assert meta["registry"]["version"] == "v0001"

    second = reg.register(fitted(FEATURES_B, 2), metadata(FEATURES_B, 0.84), who="ravi")
    assert second.version == "v0002"
    assert [v.version for v in reg.versions()] == ["v0001", "v0002"]
    assert reg.aliases().challenger == "v0002"

    loaded = reg.load("champion")
    rows = frame(FEATURES_A)
    expected = model.predict_proba(rows[FEATURES_A].to_numpy())[:, 1]
    np.testing.assert_allclose(loaded.score(rows), expected)
    assert reg.load("challenger").version == "v0002"


def test_fingerprint_ignores_descriptions_but_not_definitions() -> None:
    assert feature_fingerprint(FEATURES_A) == feature_fingerprint(list(FEATURES_A))
    assert feature_fingerprint(FEATURES_A) != feature_fingerprint(FEATURES_A[::-1])
    assert feature_fingerprint(["amount"]) != feature_fingerprint(["is_night"])


@pytest.mark.parametrize("step", ["_write_json", "_publish", "_fsync_path"])
def test_a_crash_mid_register_leaves_nothing(
    reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    reg.register(fitted(FEATURES_A, 1), metadata(FEATURES_A, 0.81), who="asha")
    before = snapshot(reg.root)
    aliases = reg.aliases()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError(f"disk full during {step}")

    monkeypatch.setattr(registry_module, step, crash)
    with pytest.raises(OSError, match="disk full"):
        reg.register(fitted(FEATURES_B, 2), metadata(FEATURES_B, 0.84), who="ravi")
    monkeypatch.undo()

    assert [v.version for v in reg.versions()] == ["v0001"]
    assert sorted(p.name for p in reg.versions_dir.iterdir()) == ["v0001"]
    assert list((reg.root / ".staging").iterdir()) == []  # no partial folder
    assert snapshot(reg.root) == before  # audit log and v0001 untouched
    assert reg.aliases() == aliases
    # and the next registration takes the next number as if nothing happened
    assert reg.register(fitted(FEATURES_B, 2), metadata(FEATURES_B, 0.8), who="r").version == (
        "v0002"
    )


def test_leftovers_of_a_killed_registration_are_never_listed(reg: ModelRegistry) -> None:
    reg.register(fitted(FEATURES_A, 1), metadata(FEATURES_A, 0.81), who="asha")
    partial = reg.root / ".staging" / "register-killed"
    partial.mkdir(parents=True)
    (partial / "model.joblib").write_bytes(b"half a pickle")
    (reg.versions_dir / "not-a-version").mkdir()
    assert [v.version for v in reg.versions()] == ["v0001"]
    reg.register(fitted(FEATURES_B, 2), metadata(FEATURES_B, 0.84), who="ravi")
    assert not partial.exists()  # cleaned by the next registration


def test_concurrent_registrations_get_distinct_versions(reg: ModelRegistry) -> None:
    model = fitted(FEATURES_B, 2)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(reg.register, model, metadata(FEATURES_B, 0.8), who=f"w{i}")
            for i in range(4)
        ]
        versions = sorted(f.result().version for f in futures)
    assert versions == ["v0001", "v0002", "v0003", "v0004"]
    records = reg.audit_log()
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert sum(r.champion_after != r.champion_before for r in records) == 1  # one champion


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": ["amount", "no_such_feature"]}, "unknown feature(s) no_such_feature"),
        ({"features": []}, "'features' must be a non-empty list"),
        ({"training_window": {"start": "2018-05-10"}}, "lacks 'training_window.end'"),
        ({"training_window": {"start": "May", "end": "2018-05-16"}}, "is not a date"),
        ({"metrics": {"auc_roc": "good"}}, "'metrics' must map names to numbers"),
        ({"data": {"sha256": "abc"}}, "must be a hex SHA-256"),
        ({"format_version": 9}, "format_version 9"),
        (
            {"feature_definitions": [{"name": "amount", "type": "AmountFeature", "scale": 1.0}]},
            "definitions in fraud/features.py changed",
        ),
    ],
)
def test_bad_metadata_is_refused_before_anything_is_written(
    reg: ModelRegistry, change: dict[str, Any], message: str
) -> None:
    meta = metadata(["amount"], 0.8) | change
    with pytest.raises(RegistryError) as info:
        reg.register(fitted(["amount"], 1), meta, who="asha")
    assert message in str(info.value)
    assert reg.versions() == []
    assert reg.audit_log() == []


def test_unknown_versions_and_bad_names_are_clear_errors(reg: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="there is no champion"):
        reg.load("champion")
    reg.register(fitted(FEATURES_A, 1), metadata(FEATURES_A, 0.81), who="asha")
    with pytest.raises(RegistryError, match=r"unknown model version 'v0042' \(registered: v0001\)"):
        reg.get("v0042")
    with pytest.raises(RegistryError, match="not a version id"):
        reg.get("../../etc/passwd")
    with pytest.raises(RegistryError, match="there is no challenger"):
        reg.load("challenger")


# --- checksums and environment -------------------------------------------------------------


def test_a_changed_artifact_is_refused(reg: ModelRegistry) -> None:
    info = reg.register(fitted(FEATURES_A, 1), metadata(FEATURES_A, 0.81), who="asha")
    reg.register(fitted(FEATURES_B, 2), metadata(FEATURES_B, 0.84), who="ravi")
    challenger = reg.get("challenger")
    with challenger.model_path.open("ab") as handle:
        handle.write(b"\0")  # one byte of corruption
    with pytest.raises(RegistryError, match="v0002: checksum mismatch") as err:
        reg.load("v0002")
    assert "refusing to load" in str(err.value)
    with pytest.raises(RegistryError, match="checksum mismatch"):
        reg.verify("v0002")
    # promoting a corrupted challenger is refused, and nothing changes
    before = snapshot(reg.root)
    with pytest.raises(RegistryError, match="checksum mismatch"):
        reg.promote(who="asha", why="better AUC")
    assert snapshot(reg.root) == before
    assert reg.aliases().champion == info.version
    assert reg.load("v0001").version == "v0001"  # the others still load


def test_load_refuses_another_environment_unless_told(reg: ModelRegistry) -> None:
    info = reg.register(fitted(FEATURES_A, 1), metadata(FEATURES_A, 0.81), who="asha")
    meta_path = info.path / "metadata.json"
    original = json.loads(meta_path.read_text())

    meta = json.loads(json.dumps(original))
    meta["registry"]["sklearn_version"] = "0.24.2"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(RegistryError, match=r"pickled by scikit-learn 0\.24\.2"):
        reg.load("v0001")
    assert reg.load("v0001", check_environment=False).version == "v0001"

    meta = json.loads(json.dumps(original))
    meta["registry"]["feature_fingerprint"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(RegistryError, match=r"defined differently in fraud/features\.py"):
        reg.load("v0001")


# --- champion, challenger, audit -----------------------------------------------------------


def test_promote_and_rollback_leave_an_append_only_audit_trail(reg: ModelRegistry) -> None:
    reg.register(fitted(FEATURES_A, 1), metadata(FEATURES_A, 0.81), who="asha", why="first")
    reg.register(fitted(FEATURES_B, 2), metadata(FEATURES_B, 0.84), who="ravi", why="new feats")
    log_before = reg.audit_path.read_bytes()

    promoted = reg.promote(who="meera", why="AP up 3 points on the May test week")
    assert reg.aliases() == registry_module.Aliases("v0002", None, ("v0001", "v0002"))
    assert (promoted.action, promoted.who, promoted.why) == (
        "promote",
        "meera",
        "AP up 3 points on the May test week",
    )
    assert (promoted.champion_before, promoted.champion_after) == ("v0001", "v0002")
    assert (promoted.challenger_before, promoted.challenger_after) == ("v0002", None)
    assert promoted.metrics["v0001"]["auc_roc"] == 0.81  # both models' metrics are recorded
    assert promoted.metrics["v0002"]["auc_roc"] == 0.84
    assert promoted.at.tzinfo is not None and promoted.at.utcoffset() == dt.timedelta(0)

    with pytest.raises(RegistryError, match="no challenger to promote"):
        reg.promote(who="meera", why="again")

    reg.register(fitted(FEATURES_A, 3), metadata(FEATURES_A, 0.79), who="ravi")  # v0003
    reg.promote(who="meera", why="try v0003")
    assert reg.aliases().lineage == ("v0001", "v0002", "v0003")

    back = reg.rollback(who="ops", why="false positives doubled")
    assert (back.action, back.champion_before, back.champion_after) == (
        "rollback",
        "v0003",
        "v0002",
    )
    assert back.metrics["v0003"]["auc_roc"] == 0.79
    reg.rollback(who="ops", why="v0002 too")
    assert reg.aliases().champion == "v0001"
    with pytest.raises(RegistryError, match=r"no earlier champion.*v0001 is the first"):
        reg.rollback(who="ops", why="once more")

    records = reg.audit_log()
    assert [r.action for r in records] == [
        "register",
        "register",
        "promote",
        "register",
        "promote",
        "rollback",
        "rollback",
    ]
    assert [r.seq for r in records] == list(range(1, 8))
    assert [r.who for r in records][:3] == ["asha", "ravi", "meera"]
    assert reg.audit_path.read_bytes().startswith(log_before)  # only ever appended to
    assert all(json.loads(line) for line in reg.audit_path.read_text().splitlines())


def test_challenge_sets_a_version_and_refuses_the_champion(reg: ModelRegistry) -> None:
    reg.register(fitted(FEATURES_A, 1), metadata(FEATURES_A, 0.81), who="asha")
    reg.register(fitted(FEATURES_B, 2), metadata(FEATURES_B, 0.84), who="ravi", alias="none")
    assert reg.aliases().challenger is None
    record = reg.challenge("v0002", who="asha", why="shadow it for a week")
    assert (record.challenger_before, record.challenger_after) == (None, "v0002")
    with pytest.raises(RegistryError, match="is the champion"):
        reg.challenge("champion", who="asha", why="no")
    with pytest.raises(RegistryError, match="say why"):
        reg.promote(who="asha", why=" ")


def test_a_torn_last_audit_line_is_ignored_and_the_log_stays_readable(
    reg: ModelRegistry,
) -> None:
    reg.register(fitted(FEATURES_A, 1), metadata(FEATURES_A, 0.81), who="asha")
    reg.register(fitted(FEATURES_B, 2), metadata(FEATURES_B, 0.84), who="ravi")
    with reg.audit_path.open("a") as handle:
        handle.write('{"seq": 3, "action": "promote", "champion_af')  # crash mid-write
    assert reg.aliases().champion == "v0001"  # the torn promotion did not happen
    reg.promote(who="asha", why="really promote")
    assert reg.aliases().champion == "v0002"
    assert [r.seq for r in reg.audit_log()] == [1, 2, 3]


# --- shadow scoring ------------------------------------------------------------------------


def test_shadow_scoring_acts_on_the_champion_and_only_logs_the_challenger(
    reg: ModelRegistry,
) -> None:
    reg.register(fitted(FEATURES_A, 1), metadata(FEATURES_A, 0.81), who="asha")
    reg.register(fitted(FEATURES_B, 2), metadata(FEATURES_B, 0.84), who="ravi")
    champion, challenger = reg.load_live()
    assert challenger is not None
    rows = frame(FEATURES_A)
    result = shadow_score(champion, challenger, rows)
    np.testing.assert_array_equal(result.scores, champion.score(rows))
    assert result.challenger_scores is not None
    np.testing.assert_array_equal(result.challenger_scores, challenger.score(rows))
    assert not np.array_equal(result.scores, result.challenger_scores)
    assert (result.champion_version, result.challenger_version) == ("v0001", "v0002")

    # a challenger that cannot score never affects the champion's scores
    without = rows.drop(columns=["device_nb_tx_1h"])
    broken = shadow_score(champion, challenger, without)
    np.testing.assert_array_equal(broken.scores, result.scores)
    assert broken.challenger_scores is None
    assert broken.challenger_error is not None and "device_nb_tx_1h" in broken.challenger_error

    alone = shadow_score(champion, None, rows)
    assert alone.challenger_version is None and alone.challenger_scores is None
    with pytest.raises(ValueError, match="needs feature column"):
        shadow_score(challenger, champion, without)  # the acting model's errors propagate


# --- CLI -----------------------------------------------------------------------------------


def run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="rizzpay")
    fraud_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    code: int = args.handler(args)
    return code


EXAMPLE = Path(__file__).resolve().parents[3] / "fraud" / "rulesets" / "example.yaml"


def test_cli_train_register_promote_rollback_and_backtest(
    small_frame: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "tx.parquet"
    small_frame.to_parquet(data)
    root = tmp_path / "registry"
    r = ("--registry", root)

    assert run("fraud", "registry", "promote", "--why", "x", *r) == 2
    assert "there is no challenger to promote" in capsys.readouterr().err

    train = ("fraud", "train", "--data", data, "--model", "logreg", "--register", *r)
    assert run(*train, "--out", tmp_path / "artifact", "--who", "asha") == 0
    assert "registered as v0001 (champion)" in capsys.readouterr().out
    assert (tmp_path / "artifact" / "model.joblib").exists()
    assert run("fraud", "registry", "add", tmp_path / "artifact", *r) == 0
    assert "as v0002 (challenger)" in capsys.readouterr().out

    assert run("fraud", "registry", "list", *r) == 0
    listing = capsys.readouterr().out
    assert "v0001" in listing and "champion" in listing and "challenger" in listing
    assert run("fraud", "registry", "show", "challenger", *r) == 0
    assert "(verified)" in capsys.readouterr().out
    assert run("fraud", "registry", "show", "v0009", *r) == 2
    assert "unknown model version 'v0009'" in capsys.readouterr().err

    assert run("fraud", "registry", "promote", "--why", "same model, test", "--who", "m", *r) == 0
    assert "promote v0002 by m" in capsys.readouterr().out
    assert run("fraud", "registry", "rollback", "--why", "test", *r) == 0
    assert "rollback v0001" in capsys.readouterr().out
    assert run("fraud", "registry", "audit", *r) == 0
    audit = capsys.readouterr().out
    assert audit.count("\n") == 4 and "rollback v0001" in audit

    # a corrupted artifact: show reports it, load-based commands refuse with exit 2
    with (root / "versions" / "v0001" / "model.joblib").open("ab") as handle:
        handle.write(b"\0")
    assert run("fraud", "registry", "show", "v0001", *r) == 0
    assert "MISMATCH" in capsys.readouterr().out
    out = tmp_path / "bt.md"
    backtest = ("fraud", "backtest", "--rules", EXAMPLE, "--data", data, "--out", out, *r)
    assert run(*backtest) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert not out.exists()

    assert run(*backtest, "--model", "v0002", "--since", "2018-05-24") == 0
    report = out.read_text()
    assert "Scores: model v0002 (Logistic regression)." in report
    assert "in-sample" not in report  # 2018-05-24 onwards is after the training window
    assert run(*backtest, "--model", "v0002") == 0
    assert "in-sample" in out.read_text()
