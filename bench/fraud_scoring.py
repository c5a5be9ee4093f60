"""Fraud scoring cost: µs per payment of the batch scorer against raw ``predict_proba``.

The streaming scorer (``streams/scoring.py``) runs :func:`fraud.scoring.score_batch` on every
batch of ``payments.requested``.  This measures, in one run and on the same batches of simulated
payments (RizzPay's simulator, 500 per batch as the worker's ``batch_size_max``):

* ``predict_proba`` — the champion pipeline alone on the batch's feature matrix (the floor);
* ``model + rules`` — :func:`fraud.scoring.score_features`: the champion, the challenger in
  shadow, and the example rule set, on features already computed;
* ``score_batch`` — everything the agent does per batch in memory: online features for every
  payment (31 features, exact windows), then the above.

and reports µs per payment (median of the batches) and each row's ratio to ``predict_proba``.
Per model family: logistic regression and random forest (trained on a small simulation by
:func:`fraud.bootstrap.train_on_simulation`).  Results go to
``bench/results/<YYYY-MM-DD>-fraud-scoring.md`` (UTC date).  ``make bench`` runs it after the
foundation benchmark; alone::

    .venv/bin/python bench/fraud_scoring.py [--batches 20] [--batch-size 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # type: ignore[import-untyped]  # noqa: E402
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # noqa: E402

from fraud.bootstrap import train_on_simulation  # noqa: E402
from fraud.registry import LoadedModel, ModelRegistry  # noqa: E402
from fraud.rules import load_rule_set  # noqa: E402
from fraud.scoring import (  # noqa: E402
    STRING_FIELDS,
    FeatureState,
    Models,
    batch_columns,
    score_batch,
    score_features,
)
from fraud.simulator import SimulationConfig, simulate  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RULES = REPO / "fraud" / "rulesets" / "example.yaml"
# Payments scored: two simulated weeks of a mid-size merchant base, the first week only feeds
# the state (so windows hold history), the second is measured.
LOAD = SimulationConfig(n_customers=2_000, n_terminals=4_000, n_days=14, seed=3)
FAMILIES = ("logreg", "forest")


def _transactions(frame: pd.DataFrame) -> list[tuple[dict[str, Any], dt.datetime]]:
    columns = ["customer_id", "terminal_id", "amount_minor", "currency", *STRING_FIELDS]
    columns = list(dict.fromkeys(c for c in columns if c in frame.columns))
    records = frame[columns].astype(object).where(frame[columns].notna(), None)
    out = []
    for i, (record, when) in enumerate(
        zip(records.to_dict("records"), frame["tx_datetime"], strict=True)
    ):
        record["transaction_id"] = f"pay_{i}"
        out.append((record, when.to_pydatetime()))
    return out


def _models(tmp: Path, family: str) -> tuple[Models, LoadedModel]:
    registry = ModelRegistry(tmp / family)
    model, metadata = train_on_simulation(model=family)
    registry.register(model, metadata, who="bench", alias="auto")
    registry.register(model, metadata, who="bench", alias="challenger")
    champion, challenger = registry.load_live()
    return Models(champion, challenger), champion


def measure(family: str, batches: int, batch_size: int, tmp: Path) -> dict[str, float]:
    """Median µs per payment of each stage over ``batches`` batches (one thread)."""
    models, champion = _models(tmp, family)
    rules = load_rule_set(RULES)
    frame = simulate(LOAD)
    warm_until = frame["tx_datetime"].min() + pd.Timedelta(days=7)
    transactions = _transactions(frame)
    n_warm = int((frame["tx_datetime"] < warm_until).sum())
    state = FeatureState()
    score_batch(state, transactions[:n_warm], rules, Models())  # history for the windows
    stream = transactions[n_warm:]
    per: dict[str, list[float]] = {"predict_proba": [], "model_rules": [], "score_batch": []}
    columns = list(champion.info.features)
    for b in range(batches):
        batch = stream[b * batch_size : (b + 1) * batch_size]
        if len(batch) < batch_size:
            break
        started = time.perf_counter()
        scored = score_batch(state, batch, rules, models)
        per["score_batch"].append(time.perf_counter() - started)
        table = batch_columns([s.features for s in scored], [t for t, _ in batch])
        started = time.perf_counter()
        score_features(table, len(batch), rules, models)
        per["model_rules"].append(time.perf_counter() - started)
        matrix = np.column_stack([table[name] for name in columns])
        started = time.perf_counter()
        champion.pipeline.predict_proba(matrix)
        per["predict_proba"].append(time.perf_counter() - started)
    return {k: statistics.median(v) / batch_size * 1e6 for k, v in per.items()}


def render(results: dict[str, dict[str, float]], args: argparse.Namespace, wall_s: float) -> str:
    now = dt.datetime.now(dt.UTC)
    lines = [
        f"# Fraud scoring cost — {now:%Y-%m-%d}",
        "",
        f"Command: `.venv/bin/python bench/fraud_scoring.py --batches {args.batches} "
        f"--batch-size {args.batch_size}`; {wall_s:.0f} s wall, one thread "
        f"({os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}), machine shared with other work.",
        "",
        f"Median µs per payment over batches of {args.batch_size} simulated payments "
        f"({LOAD.n_customers:,} customers, {LOAD.n_terminals:,} terminals; state warmed with a "
        "week of history). Ratio = row / raw `predict_proba` on the same batch, same run.",
        "",
        "| model | raw predict_proba | model + shadow + rules | ratio | score_batch (features "
        "+ model + shadow + rules) | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for family, r in results.items():
        base = r["predict_proba"]
        lines.append(
            f"| {family} | {base:.1f} | {r['model_rules']:.1f} | {r['model_rules'] / base:.1f}× "
            f"| {r['score_batch']:.1f} | {r['score_batch'] / base:.1f}× |"
        )
    lines += [
        "",
        "`model + shadow + rules` is what batching buys on top of `predict_proba`: the champion "
        "and the challenger each score the batch (two model calls, so ≥ 2× by construction), "
        "then the rule set is evaluated with numpy over the batch. `score_batch` adds the online "
        "features, computed one payment at a time in pure Python (docs/fraud.md: about 75 µs "
        "per payment for all 31 features); that, not the model, is the scorer's main cost.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    import tempfile  # noqa: PLC0415

    results: dict[str, dict[str, float]] = {}
    with threadpool_limits(1), tempfile.TemporaryDirectory(prefix="rizzpay-fraud-bench-") as tmp:
        for family in FAMILIES:
            print(f"fraud scoring bench: {family}", flush=True)
            results[family] = measure(family, args.batches, args.batch_size, Path(tmp))
    text = render(results, args, time.perf_counter() - started)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"{dt.datetime.now(dt.UTC):%Y-%m-%d}-fraud-scoring.md"
    path.write_text(text)
    print(text)
    print(f"fraud scoring bench: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
