"""Model families, fitting, and model artifacts (a joblib pipeline plus JSON metadata).

An artifact is a folder holding ``model.joblib`` (the fitted scikit-learn pipeline, which takes
the feature columns named in the metadata, in that order) and ``metadata.json`` (features and
their definitions, training window, metrics, data hash, library versions).  It is written to a
temporary sibling folder and renamed into place, so a reader never sees half an artifact.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
import sklearn
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from fraud.dataset import publish_folder, require_columns, staging_folder
from fraud.evaluation import Metrics, ModelResult, Protocol, Split, make_split, score_metrics
from fraud.features import FEATURES, compute_features, required_columns

ARTIFACT_FORMAT_VERSION = 1
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class ModelSpec:
    """A model family: a short CLI name, a label for reports, and a factory."""

    name: str
    label: str
    build: Callable[[int, int], Pipeline]  # (seed, n_jobs) -> unfitted pipeline


def _logreg(seed: int, n_jobs: int) -> Pipeline:
    del n_jobs
    model = LogisticRegression(max_iter=1000, random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("model", model)])


def _tree(seed: int, n_jobs: int) -> Pipeline:
    del n_jobs
    return Pipeline([("model", DecisionTreeClassifier(max_depth=2, random_state=seed))])


def _forest(seed: int, n_jobs: int) -> Pipeline:
    """The handbook's 100 trees, with leaves of at least 5 payments (the handbook grows them to
    1): chosen on the validation weeks before the training window (fraud/selection.py), where it
    ranked the daily review queue slightly better; its scores are also less coarse."""
    model = RandomForestClassifier(
        n_estimators=100, min_samples_leaf=5, random_state=seed, n_jobs=n_jobs
    )
    return Pipeline([("model", model)])


def _boosting(seed: int, n_jobs: int) -> Pipeline:
    """Gradient boosting: slow learning, small trees and no early stopping, because the default
    early stopping holds out 10% of a week — about 50 frauds — and stops too soon.  Chosen on the
    validation weeks before the training window (fraud/selection.py), never on a test week:
    7 leaves and 200 rounds did as well as 15 leaves and 300 rounds, at half the cost."""
    del n_jobs  # HistGradientBoosting uses OpenMP threads; limited by the caller (threadpoolctl)
    model = HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=200,
        max_leaf_nodes=7,
        min_samples_leaf=50,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    return Pipeline([("model", model)])


def _blend(seed: int, n_jobs: int) -> Pipeline:
    """The mean of the random forest's and the boosting's fraud probabilities (soft voting).

    The two err differently — the forest's scores are coarse (shares of 100 trees), the boosting's
    smooth — and the mean ranked the daily review queue slightly better than either on the
    validation weeks (docs/fraud.md, Quality).  A probability mean, not a rank mean, so one
    payment scores the same alone or in a batch.  Settings are addressed as ``forest__…`` and
    ``hgb__…``.
    """
    forest = _forest(seed, n_jobs).named_steps["model"]
    boosting = _boosting(seed, n_jobs).named_steps["model"]
    model = VotingClassifier([("forest", forest), ("hgb", boosting)], voting="soft")
    return Pipeline([("model", model)])


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("logreg", "Logistic regression", _logreg),
        ModelSpec("tree", "Decision tree (depth 2)", _tree),
        ModelSpec("forest", "Random forest (100 trees)", _forest),
        ModelSpec("hgb", "Gradient boosting (HistGradientBoosting)", _boosting),
        ModelSpec("blend", "Forest + boosting (mean probability)", _blend),
    )
}


def build_model(
    name: str, *, seed: int = 0, n_jobs: int = 1, params: Mapping[str, Any] | None = None
) -> Pipeline:
    """An unfitted pipeline of the named family, with ``params`` overriding the family's settings.

    ``params`` are the estimator's own parameter names (``min_samples_leaf``, ``C``…), applied to
    the pipeline's ``model`` step.  ``KeyError`` names an unknown family; ``ValueError`` names a
    setting the family's estimator does not have.
    """
    spec = MODELS.get(name)
    if spec is None:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    pipeline = spec.build(seed, n_jobs)
    if params:
        known = pipeline.named_steps["model"].get_params(deep=True)
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)} for model {name!r}; "
                f"known: {', '.join(sorted(known))}"
            )
        pipeline.set_params(**{f"model__{k}": v for k, v in params.items()})
    return pipeline


def fraud_scores(model: Pipeline, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Probability of fraud (class 1) for each row of the feature matrix."""
    proba = np.asarray(model.predict_proba(features), dtype=np.float64)
    classes = list(model.classes_)
    return proba[:, classes.index(1)]


class ArtifactError(ValueError):
    """An artifact folder that cannot be written or read; the message says why."""


def save_artifact(
    out_dir: Path, model: Pipeline, metadata: Mapping[str, Any], *, overwrite: bool = False
) -> None:
    """Write ``model.joblib`` and ``metadata.json`` into ``out_dir`` atomically.

    Both files go to a temporary sibling folder which is then renamed to ``out_dir``.  Raises
    :class:`ArtifactError` if ``out_dir`` exists and ``overwrite`` is false; with ``overwrite``
    the old folder is moved aside first and removed only after the new one is in place.
    """
    out_dir = out_dir.resolve()
    if out_dir.exists() and not overwrite:
        raise ArtifactError(f"{out_dir} already exists; choose another folder or pass --force")
    tmp = staging_folder(out_dir)
    try:
        joblib.dump(model, tmp / MODEL_FILE)
        body = json.dumps(dict(metadata), indent=2, sort_keys=False, default=str)
        (tmp / METADATA_FILE).write_text(body + "\n", encoding="utf-8")
        publish_folder(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_artifact(folder: Path) -> tuple[Pipeline, dict[str, Any]]:
    """Read an artifact folder; returns the fitted pipeline and its metadata.

    Raises :class:`ArtifactError` if a file is missing, the format version is unknown, or the
    metadata names a feature that this code base does not define.
    """
    model_path, meta_path = folder / MODEL_FILE, folder / METADATA_FILE
    for p in (model_path, meta_path):
        if not p.is_file():
            raise ArtifactError(f"{folder}: not a model artifact ({p.name} is missing)")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{meta_path}: not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{meta_path}: expected a JSON object")
    if metadata.get("format_version") != ARTIFACT_FORMAT_VERSION:
        raise ArtifactError(
            f"{meta_path}: format_version {metadata.get('format_version')!r} is not "
            f"{ARTIFACT_FORMAT_VERSION}"
        )
    features = metadata.get("features")
    if not isinstance(features, list) or not features:
        raise ArtifactError(f"{meta_path}: 'features' must be a non-empty list")
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ArtifactError(f"{meta_path}: unknown feature(s) {', '.join(map(str, unknown))}")
    model = joblib.load(model_path)
    return model, metadata


def environment(now: dt.datetime) -> dict[str, str]:
    """Library versions recorded with an artifact (a pickle loads reliably only on the same),
    and ``now`` (tz-aware) as the creation time."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return {
        "python": platform.python_version(),
        "scikit_learn": str(sklearn.__version__),
        "numpy": np.__version__,
        "created_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class Prepared:
    """A validated frame with its feature matrix (all rows) and its protocol split."""

    frame: pd.DataFrame
    features: list[str]
    matrix: npt.NDArray[np.float64]
    split: Split

    @property
    def x_train(self) -> npt.NDArray[np.float64]:
        return self.matrix[self.split.train_rows]

    @property
    def y_train(self) -> npt.NDArray[np.int8]:
        labels: npt.NDArray[np.int8] = self.frame["is_fraud"].to_numpy(dtype=np.int8)
        return labels[self.split.train_rows]

    @property
    def x_test(self) -> npt.NDArray[np.float64]:
        return self.matrix[self.split.test_rows]

    @property
    def test(self) -> pd.DataFrame:
        return self.frame.iloc[self.split.test_rows]


def prepare(frame: pd.DataFrame, features: list[str], protocol: Protocol) -> Prepared:
    """Split ``frame`` (validated) and compute ``features`` for every row.

    Features are computed on the whole frame, so windows before the training start see their
    history.  Raises :class:`~fraud.dataset.DatasetError` for missing feature columns or a bad
    window (see :func:`~fraud.evaluation.make_split`).
    """
    require_columns(frame, required_columns(features), why="the chosen features")
    split = make_split(frame, protocol)
    table = compute_features(frame, features, timezone=split.protocol.timezone)
    return Prepared(frame, list(features), table.to_numpy(dtype=np.float64), split)


def fit(
    name: str,
    prepared: Prepared,
    *,
    seed: int = 0,
    n_jobs: int = 1,
    params: Mapping[str, Any] | None = None,
) -> tuple[Pipeline, float]:
    """Fit the named model family (``params`` as in :func:`build_model`) on the training window;
    returns it and the fit time (s)."""
    model = build_model(name, seed=seed, n_jobs=n_jobs, params=params)
    started = time.perf_counter()
    model.fit(prepared.x_train, prepared.y_train)
    return model, time.perf_counter() - started


def assess(
    model: Pipeline, prepared: Prepared, *, name: str, label: str, fit_seconds: float | None
) -> ModelResult:
    """Score the test window and compute the protocol's metrics."""
    x_test = prepared.x_test
    started = time.perf_counter()
    scores = fraud_scores(model, x_test)
    per_row_us = (time.perf_counter() - started) / max(len(x_test), 1) * 1e6
    metrics: Metrics = score_metrics(
        prepared.test, prepared.split.test_days, scores, prepared.split.protocol.top_k
    )
    return ModelResult(name, label, metrics, scores, fit_seconds, per_row_us)


def compare(
    prepared: Prepared, names: list[str], *, seed: int = 0, n_jobs: int = 1
) -> list[tuple[ModelResult, Pipeline]]:
    """Fit and assess each named model family on the same split."""
    out: list[tuple[ModelResult, Pipeline]] = []
    for name in names:
        model, seconds = fit(name, prepared, seed=seed, n_jobs=n_jobs)
        result = assess(model, prepared, name=name, label=MODELS[name].label, fit_seconds=seconds)
        out.append((result, model))
    return out
