"""A first fraud model for a registry that has none: trained on simulated payments.

``rizzpay fraud bootstrap`` (and ``make run``, through ``rizzpay demo``) uses it so that the
streaming scorer has a champion on a fresh machine.  The model is honest about what it is: its
metadata names the simulation it learned from, and it is replaced by promoting a model trained on
real, labelled payments (``rizzpay fraud labels export`` then ``rizzpay fraud train --register``).

It uses the handbook features (customer spend, terminal risk, amount, time of day): RizzPay's live
requests carry no device or IP yet, so a model leaning on those would see zeros online.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from fraud import training
from fraud.evaluation import Protocol
from fraud.features import HANDBOOK_FEATURES, describe
from fraud.registry import AliasChoice, ModelRegistry, ModelVersion
from fraud.simulator import SimulationConfig, simulate

#: Small enough to train in a few seconds, large enough for a 7 + 7 + 7-day protocol.
BOOTSTRAP_SIMULATION = SimulationConfig(n_customers=600, n_terminals=1_200, n_days=35, seed=0)


def _frame_sha256(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(np.ascontiguousarray(hashed).tobytes()).hexdigest()


def train_on_simulation(
    config: SimulationConfig = BOOTSTRAP_SIMULATION,
    *,
    model: str = "logreg",
) -> tuple[Any, dict[str, Any]]:
    """Simulate ``config``, train ``model`` on the handbook protocol (7 days, 7-day delay, 7 test
    days, the latest window that fits) and return the pipeline and its registry metadata."""
    frame = simulate(config)
    features = list(HANDBOOK_FEATURES)
    prepared = training.prepare(frame, features, Protocol())
    fitted, seconds = training.fit(model, prepared, seed=config.seed)
    label = training.MODELS[model].label
    result = training.assess(fitted, prepared, name=model, label=label, fit_seconds=seconds)
    split = prepared.split
    metadata: dict[str, Any] = {
        "format_version": training.ARTIFACT_FORMAT_VERSION,
        "model": {"family": model, "label": label, "seed": config.seed},
        "features": features,
        "feature_set": "handbook",
        "feature_definitions": describe(features),
        "timezone": split.protocol.timezone,
        "training_window": {
            "start": split.train_start.isoformat(),
            "end": split.train_end.isoformat(),
            "days": split.protocol.train_days,
            "rows": len(split.train_rows),
            "frauds": int(prepared.y_train.sum()),
        },
        "delay_days": split.protocol.delay_days,
        "metrics": result.metrics.summary(),
        "fit_seconds": round(seconds, 3),
        "data": {
            "source": (
                f"simulation: {config.n_customers} customers, {config.n_terminals} terminals, "
                f"{config.n_days} days, seed {config.seed}"
            ),
            "sha256": _frame_sha256(frame),
            "rows": len(frame),
            "frauds": int(frame["is_fraud"].sum()),
        },
        "environment": training.environment(dt.datetime.now(dt.UTC)),
    }
    return fitted, metadata


def bootstrap(
    registry: ModelRegistry, *, who: str, model: str = "logreg", alias: AliasChoice = "auto"
) -> ModelVersion | None:
    """Register a simulation-trained model when the registry has no champion; None when it
    already has one (nothing is changed then)."""
    if alias == "auto" and registry.aliases().champion is not None:
        return None
    fitted, metadata = train_on_simulation(model=model)
    return registry.register(
        fitted,
        metadata,
        who=who,
        why="bootstrap: trained on simulated payments until real labels exist",
        alias=alias,
    )
