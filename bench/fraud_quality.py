"""Fraud model quality on the handbook protocol, at the simulator's default size.

Simulates the default data set (5,000 customers, 10,000 terminals, 183 days from 2018-04-01),
trains each model family on 2018-07-25..2018-07-31, skips a 7-day delay, tests on
2018-08-08..2018-08-14, with the handbook's 15 features and with RizzPay's extended set, and
writes ``bench/results/fraud-quality-<YYYY-MM-DD>.md`` (date in UTC).

Run from the repository root::

    .venv/bin/python bench/fraud_quality.py            # seed 0, 2 threads

It costs about a minute or two of CPU on 2 cores; it uses at most ``--jobs`` threads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # noqa: E402

from fraud.dataset import validate_transactions  # noqa: E402
from fraud.evaluation import ModelResult, Protocol, card_precision_ceiling  # noqa: E402
from fraud.features import FEATURE_SETS  # noqa: E402
from fraud.simulator import SimulationConfig, simulate  # noqa: E402
from fraud.training import MODELS, compare, prepare  # noqa: E402

HANDBOOK_DATA = {"transactions": 1_754_155, "frauds": 14_681}
# Published baselines (AUC ROC, AP, CP@100), handbook chapter 3 and the tuned model of chapter 5.
PUBLISHED: list[tuple[str, float, float, float]] = [
    ("Logistic regression", 0.871, 0.606, 0.291),
    ("Decision tree (depth 2)", 0.763, 0.496, 0.241),
    ("Random forest", 0.867, 0.658, 0.287),
    ("XGBoost", 0.862, 0.639, 0.273),
    ("XGBoost, tuned (chapter 5)", 0.869, 0.687, 0.303),
]
GOALS = {"auc_roc": 0.871, "average_precision": 0.658, "card_precision": 0.291}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=0, help="simulation and model seed")
    parser.add_argument("--jobs", type=int, default=2, help="CPU threads")
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    config = SimulationConfig(seed=args.seed)
    raw = simulate(config)
    sim_seconds = time.perf_counter() - started
    frame = validate_transactions(raw, source="simulation")
    protocol = Protocol(train_start=dt.date(2018, 7, 25))

    rows: list[tuple[str, ModelResult]] = []
    timings: dict[str, float] = {}
    with threadpool_limits(limits=args.jobs):
        for set_name in ("handbook", "rizzpay"):
            t0 = time.perf_counter()
            prepared = prepare(frame, list(FEATURE_SETS[set_name]), protocol)
            timings[f"features ({set_name})"] = time.perf_counter() - t0
            for result, _ in compare(prepared, list(MODELS), seed=args.seed, n_jobs=args.jobs):
                rows.append((set_name, result))
    split = prepared.split
    test = prepared.test

    today = dt.datetime.now(dt.UTC).date()
    out = args.out_dir / f"fraud-quality-{today.isoformat()}.md"
    frauds = int(raw["is_fraud"].sum())
    scenario_counts = raw["fraud_scenario"].value_counts().to_dict()
    command = shlex.join([".venv/bin/python", "bench/fraud_quality.py", *(argv or sys.argv[1:])])
    lines = [
        f"# Fraud model quality — {today.isoformat()}",
        "",
        f"Command: `{command}` (total {time.perf_counter() - started:.0f} s on "
        f"{os.cpu_count()} cores, {args.jobs} threads; Python {platform.python_version()}).",
        "",
        "## Data (simulator defaults, seed " + str(args.seed) + ")",
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
        f"Simulation took {sim_seconds:.1f} s.",
        "",
        "## Protocol",
        "",
        f"Train {split.train_start}..{split.train_end} ({len(split.train_rows):,} transactions), "
        f"delay {protocol.delay_days} days, test {split.test_start}..{split.test_end} "
        f"({len(split.test_rows):,} transactions, {int(test['is_fraud'].sum()):,} frauds, after "
        f"removing {split.removed_rows:,} transactions of known compromised customers). "
        "Days are India Standard Time calendar days.",
        "",
        "## Results",
        "",
        "| Features | Model | AUC ROC | Average precision | Card precision@100 | Fit (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for set_name, r in rows:
        m = r.metrics
        lines.append(
            f"| {set_name} ({len(FEATURE_SETS[set_name])}) | {r.label} | {m.auc_roc:.3f} | "
            f"{m.average_precision:.3f} | {m.card_precision.mean:.3f} | {r.fit_seconds or 0:.1f} |"
        )
    ceiling = card_precision_ceiling(test, split.test_days, protocol.top_k)
    lines.append(f"| (labels as scores) | Perfect model | 1.000 | 1.000 | {ceiling.mean:.3f} | |")
    for label, auc, ap, cp in PUBLISHED:
        lines.append(f"| published (15) | {label} | {auc:.3f} | {ap:.3f} | {cp:.3f} | |")
    lines += ["", "## Goals (issue 5)", ""]
    for set_name in ("handbook", "rizzpay"):
        results = [r for s, r in rows if s == set_name]
        best_auc = max(results, key=lambda r: r.metrics.auc_roc)
        best_ap = max(results, key=lambda r: r.metrics.average_precision)
        best_cp = max(results, key=lambda r: r.metrics.card_precision.mean)
        checks = [
            ("AUC ROC", best_auc.label, best_auc.metrics.auc_roc, GOALS["auc_roc"]),
            ("AP", best_ap.label, best_ap.metrics.average_precision, GOALS["average_precision"]),
            (
                "CP@100",
                best_cp.label,
                best_cp.metrics.card_precision.mean,
                GOALS["card_precision"],
            ),
        ]
        parts = [
            f"{name} {value:.3f} ({label}) {'≥' if value >= goal else '<'} {goal:.3f} "
            f"{'met' if value >= goal else 'NOT met'}"
            for name, label, value, goal in checks
        ]
        lines.append(f"- {set_name} features: " + "; ".join(parts) + ".")
    lines += [
        "",
        "The `handbook` rows use the handbook's 15 features and are the ones comparable with the "
        "published numbers. The `rizzpay` rows add amount-to-customer-mean ratios, velocity per "
        "card/device/IP/VPA and device/IP novelty; the device and IP signals exist because the "
        "simulator plants them (scenario-3 frauds come from a fraudster device or IP half the "
        "time), so those rows measure the pipeline, not a claim about real traffic.",
        "",
        "Card precision@100 cannot reach 1: the perfect-model row is its ceiling on this test "
        f"week, which had {sum(ceiling.compromised_per_day)} newly compromised cards in "
        f"{len(ceiling.days)} days (per day: "
        + ", ".join(str(c) for c in ceiling.compromised_per_day)
        + "), so most days a queue of 100 must review clean cards. The handbook does not "
        "publish its ceiling; compare the card-precision goal with that in mind.",
        "",
        "Timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + ".",
    ]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print("\n".join(lines))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
