"""Fraud model quality on the handbook protocol, at the simulator's default size.

Simulates the default data set (5,000 customers, 10,000 terminals, 183 days from 2018-04-01) and,
with the handbook's 15 features:

1. **selects** each model family's settings and the best model by prequential validation
   (handbook chapter 5): four validation weeks that end on the last training day (2018-07-31),
   never the test weeks (``fraud/selection.py``);
2. **tests** the selected settings on the protocol's week — train 2018-07-25..31, 7-day delay,
   test 2018-08-08..14 (chapters 3–4) — and on the handbook's four test weeks (training starts
   2018-07-25, 08-01, 08-08, 08-15), whose mean ± std is what chapter 5 publishes;

then runs every family at its defaults with RizzPay's 31 features on the protocol's week.  Writes
``bench/results/<YYYY-MM-DD>-fraud-quality.md`` (the table a person reads) and ``.json`` beside it
(every number, per fold), date in UTC.

Run from the repository root::

    .venv/bin/python bench/fraud_quality.py            # seed 0, 2 threads

It fits about 60 models (16 minutes on 2 shared, busy cores) and uses at most ``--jobs`` threads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # noqa: E402

from fraud.dataset import validate_transactions  # noqa: E402
from fraud.evaluation import Protocol, card_precision_ceiling  # noqa: E402
from fraud.features import FEATURE_SETS  # noqa: E402
from fraud.selection import (  # noqa: E402
    METRICS,
    Candidate,
    CandidateScore,
    Metric,
    candidates,
    fold_splits,
    protocol_test_starts,
    score_candidate,
    select,
)
from fraud.simulator import SimulationConfig, simulate  # noqa: E402
from fraud.training import MODELS, compare, prepare  # noqa: E402

HANDBOOK_DATA = {"transactions": 1_754_155, "frauds": 14_681}
# Published baselines (AUC ROC, AP, CP@100): chapter 3 on its one test week; the tuned model of
# chapter 5 is a mean over its four test weeks.
PUBLISHED: list[tuple[str, float, float, float]] = [
    ("Logistic regression", 0.871, 0.606, 0.291),
    ("Decision tree (depth 2)", 0.763, 0.496, 0.241),
    ("Random forest", 0.867, 0.658, 0.287),
    ("XGBoost", 0.862, 0.639, 0.273),
    ("XGBoost, tuned (chapter 5, mean of 4 test weeks)", 0.869, 0.687, 0.303),
]
GOALS: dict[Metric, float] = {
    "auc_roc": 0.871,
    "average_precision": 0.658,
    "card_precision": 0.291,
}
METRIC_LABELS: dict[Metric, str] = {
    "auc_roc": "AUC ROC",
    "average_precision": "AP",
    "card_precision": "CP@100",
}
# The selection criterion, fixed before any test week was scored: card precision@100 is the
# daily review queue analysts work from and the goal that was not met; AUC and AP are reported.
SELECTION_METRIC: Metric = "card_precision"
# Families searched, simplest first (ties keep this order); the depth-2 tree is the handbook's
# fixed baseline and is tested as it is.
SEARCHED = ("logreg", "forest", "hgb", "blend")


def _cells(score: CandidateScore, *, spread: bool) -> str:
    parts = []
    for metric in METRICS:
        mean, std = score.mean(metric), score.std(metric)
        parts.append(f"{mean:.3f} ± {std:.3f}" if spread else f"{mean:.3f}")
    return " | ".join(parts)


def _goal_line(what: str, score: CandidateScore, fold: int | None) -> str:
    checks = []
    for metric, goal in GOALS.items():
        value = score.mean(metric) if fold is None else score.folds[fold].value(metric)
        verdict = "met" if value >= goal else "NOT met"
        sign = "≥" if value >= goal else "<"
        checks.append(f"{METRIC_LABELS[metric]} {value:.3f} {sign} {goal:.3f} {verdict}")
    return f"- {what}: " + "; ".join(checks) + "."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=0, help="simulation and model seed")
    parser.add_argument("--jobs", type=int, default=2, help="CPU threads")
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--customers", type=int, default=5_000, help="smaller only for a quick smoke run"
    )
    parser.add_argument(
        "--terminals", type=int, default=10_000, help="smaller only for a quick smoke run"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    timings: dict[str, float] = {}
    config = SimulationConfig(
        n_customers=args.customers, n_terminals=args.terminals, seed=args.seed
    )
    raw = simulate(config)
    timings["simulation"] = time.perf_counter() - started
    frame = validate_transactions(raw, source="simulation")
    protocol = Protocol(train_start=dt.date(2018, 7, 25))

    with threadpool_limits(limits=args.jobs):
        t0 = time.perf_counter()
        handbook = prepare(frame, list(FEATURE_SETS["handbook"]), protocol)
        timings["features (handbook)"] = time.perf_counter() - t0
        fixed = handbook.split.protocol

        t0 = time.perf_counter()
        selection = select(
            handbook.frame,
            handbook.matrix,
            fixed,
            candidates(SEARCHED),
            metric=SELECTION_METRIC,
            seed=args.seed,
            n_jobs=args.jobs,
        )
        timings["selection (validation weeks)"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        test_folds = fold_splits(handbook.frame, fixed, protocol_test_starts(fixed))
        chosen: list[Candidate] = [selection.best_of(f).candidate for f in SEARCHED]
        chosen.insert(1, Candidate("tree", {}))
        tested = [
            score_candidate(
                c, handbook.frame, handbook.matrix, test_folds, seed=args.seed, n_jobs=args.jobs
            )
            for c in chosen
        ]
        timings["test weeks (handbook features)"] = time.perf_counter() - t0
        best = next(t for t in tested if t.candidate == selection.best.candidate)

        t0 = time.perf_counter()
        rizzpay = prepare(frame, list(FEATURE_SETS["rizzpay"]), protocol)
        timings["features (rizzpay)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        compared = compare(rizzpay, list(MODELS), seed=args.seed, n_jobs=args.jobs)
        rizzpay_rows = [r for r, _ in compared]
        timings["rizzpay features, defaults, protocol week"] = time.perf_counter() - t0

    ceilings = [
        card_precision_ceiling(handbook.frame.iloc[s.test_rows], s.test_days, fixed.top_k)
        for s in test_folds
    ]
    split, test = handbook.split, handbook.test
    today = dt.datetime.now(dt.UTC).date()
    stem = f"{today.isoformat()}-fraud-quality"
    frauds = int(raw["is_fraud"].sum())
    scenario_counts = raw["fraud_scenario"].value_counts().to_dict()
    command = shlex.join([".venv/bin/python", "bench/fraud_quality.py", *(argv or sys.argv[1:])])
    total_s = time.perf_counter() - started
    val_weeks = ", ".join(
        f"{s + dt.timedelta(days=fixed.train_days + fixed.delay_days)}"
        for s in selection.validation_starts
    )
    lines = [
        f"# Fraud model quality — {today.isoformat()}",
        "",
        f"Command: `{command}` (total {total_s:.0f} s on {os.cpu_count()} shared cores, "
        f"{args.jobs} threads; Python {platform.python_version()}).",
        "",
        f"## Data (simulator, seed {args.seed}, {args.customers:,} customers, "
        f"{args.terminals:,} terminals, {config.n_days} days)",
        "",
        "| | RizzPay simulator | Handbook |",
        "|---|---:|---:|",
        f"| Transactions | {len(raw):,} | {HANDBOOK_DATA['transactions']:,} |",
        f"| Frauds | {frauds:,} | {HANDBOOK_DATA['frauds']:,} |",
        f"| Fraud rate | {100 * frauds / len(raw):.3f}% | "
        f"{100 * HANDBOOK_DATA['frauds'] / HANDBOOK_DATA['transactions']:.3f}% |",
        f"| Frauds by scenario 1 / 2 / 3 | {scenario_counts.get(1, 0):,} / "
        f"{scenario_counts.get(2, 0):,} / {scenario_counts.get(3, 0):,} | |",
        "",
        "## Protocol",
        "",
        f"- **Protocol week** (chapters 3–4, the issue's goal): train {split.train_start}.."
        f"{split.train_end} ({len(split.train_rows):,} transactions), delay {fixed.delay_days} "
        f"days, test {split.test_start}..{split.test_end} ({len(split.test_rows):,} transactions, "
        f"{int(test['is_fraud'].sum()):,} frauds, after removing {split.removed_rows:,} "
        "transactions of known compromised customers).",
        "- **Four test weeks** (chapter 5): the same with training starting "
        + ", ".join(str(s.train_start) for s in test_folds)
        + "; mean ± standard deviation over the weeks.",
        "- **Validation** (chapter 5, for choosing settings and the model): training starts "
        + ", ".join(str(s) for s in selection.validation_starts)
        + f", validation weeks from {val_weeks}: all end by {split.train_end}, so no test-week "
        "label is read. Criterion: mean validation card precision@100 (ties: simpler first).",
        "- Days are India Standard Time calendar days; handbook features (15) unless noted.",
        "",
        "## Selection on the validation weeks",
        "",
        "| Candidate | AUC ROC | Average precision | Card precision@100 | Fit (s, 4 weeks) |",
        "|---|---:|---:|---:|---:|",
    ]
    chosen_labels = {c.label for c in chosen}
    for s in selection.ranked:
        mark = " **(chosen)**" if s.candidate.label in chosen_labels else ""
        lines.append(
            f"| {s.candidate.label}{mark} | {_cells(s, spread=True)} | {s.fit_seconds:.0f} |"
        )
    lines += [
        "",
        f"Best model on validation: **{selection.best.candidate.label}**.",
        "",
        "## Test: the protocol week",
        "",
        "| Model (settings chosen on validation) | AUC ROC | Average precision "
        "| Card precision@100 |",
        "|---|---:|---:|---:|",
    ]
    for t in tested:
        f0 = t.folds[0]
        lines.append(
            f"| {MODELS[t.candidate.family].label} — {t.candidate.label} | {f0.auc_roc:.3f} | "
            f"{f0.average_precision:.3f} | {f0.card_precision:.3f} |"
        )
    lines.append(f"| Perfect model (labels as scores) | 1.000 | 1.000 | {ceilings[0].mean:.3f} |")
    for label, auc, ap, cp in PUBLISHED[:4]:
        lines.append(f"| *published: {label}* | {auc:.3f} | {ap:.3f} | {cp:.3f} |")
    lines += [
        "",
        "## Test: mean of the four test weeks",
        "",
        "| Model (settings chosen on validation) | AUC ROC | Average precision "
        "| Card precision@100 |",
        "|---|---:|---:|---:|",
    ]
    for t in tested:
        lines.append(
            f"| {MODELS[t.candidate.family].label} — {t.candidate.label} | "
            f"{_cells(t, spread=True)} |"
        )
    ceiling_mean = sum(c.mean for c in ceilings) / len(ceilings)
    lines.append(f"| Perfect model (labels as scores) | 1 | 1 | {ceiling_mean:.3f} |")
    label, auc, ap, cp = PUBLISHED[4]
    lines.append(f"| *published: {label}* | {auc:.3f} | {ap:.3f} | {cp:.3f} |")
    lines += [
        "",
        "Per week (card precision@100 of the chosen model / ceiling): "
        + "; ".join(
            f"{f.test_start}: {f.card_precision:.3f} / {c.mean:.3f}"
            for f, c in zip(best.folds, ceilings, strict=True)
        )
        + ".",
        "",
        "## Goals (issue 5), for the model chosen on validation",
        "",
        _goal_line(f"protocol week, {best.candidate.label}", best, 0),
        _goal_line(f"mean of the four test weeks, {best.candidate.label}", best, None),
        "",
        "## RizzPay features (31), defaults, protocol week",
        "",
        "| Model | AUC ROC | Average precision | Card precision@100 | Fit (s) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rizzpay_rows:
        m = r.metrics
        lines.append(
            f"| {r.label} | {m.auc_roc:.3f} | {m.average_precision:.3f} | "
            f"{m.card_precision.mean:.3f} | {r.fit_seconds or 0:.1f} |"
        )
    lines += [
        "",
        "The `rizzpay` rows add amount-to-customer-mean ratios, velocity per card/device/IP/VPA "
        "and device/IP novelty; the device and IP signals exist because the simulator plants "
        "them (scenario-3 frauds come from a fraudster device or IP half the time), so those rows "
        "measure the pipeline, not a claim about real traffic.",
        "",
        "Card precision@100 cannot reach 1: the perfect model's value is its ceiling. The "
        f"protocol week had {sum(ceilings[0].compromised_per_day)} newly compromised cards in "
        f"{len(ceilings[0].days)} days (per day: "
        + ", ".join(str(c) for c in ceilings[0].compromised_per_day)
        + "), so most days a queue of 100 must review clean cards. One week holds about 300 "
        "compromised cards: a difference of 0.01 in card precision@100 is about 7 cards, within "
        "the week-to-week spread shown above.",
        "",
        "Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".",
    ]
    payload: dict[str, Any] = {
        "date": today.isoformat(),
        "command": command,
        "seed": args.seed,
        "jobs": args.jobs,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "total_seconds": round(total_s, 1),
        "timings_seconds": {k: round(v, 2) for k, v in timings.items()},
        "data": {"transactions": len(raw), "frauds": frauds, "scenarios": scenario_counts},
        "protocol": {
            "train_start": str(split.train_start),
            "train_days": fixed.train_days,
            "delay_days": fixed.delay_days,
            "test_days": fixed.test_days,
            "top_k": fixed.top_k,
            "timezone": fixed.timezone,
        },
        "selection": {
            "metric": selection.metric,
            "validation_train_starts": [str(s) for s in selection.validation_starts],
            "ranked": [s.summary() for s in selection.ranked],
            "best": selection.best.candidate.label,
        },
        "test": {
            "train_starts": [str(s.train_start) for s in test_folds],
            "card_precision_ceiling": [round(c.mean, 6) for c in ceilings],
            "models": [t.summary() for t in tested],
        },
        "goals": {
            "targets": GOALS,
            "model": best.candidate.label,
            "protocol_week": {m: round(best.folds[0].value(m), 6) for m in GOALS},
            "mean_of_test_weeks": {m: round(best.mean(m), 6) for m in GOALS},
        },
        "rizzpay_features_protocol_week": [
            {"model": r.name, **r.metrics.summary(), "fit_seconds": round(r.fit_seconds or 0, 2)}
            for r in rizzpay_rows
        ],
        "published": [
            {"model": label, "auc_roc": auc, "average_precision": ap, "card_precision": cp}
            for label, auc, ap, cp in PUBLISHED
        ],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for suffix, body in (
        (".md", "\n".join(lines) + "\n"),
        (".json", json.dumps(payload, indent=2, default=str) + "\n"),
    ):
        out = args.out_dir / f"{stem}{suffix}"
        tmp = out.with_suffix(suffix + ".tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, out)
    print("\n".join(lines))
    print(f"\nwrote {args.out_dir / stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
