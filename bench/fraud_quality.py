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

**Several simulator seeds** (``--seeds 0,1,2,3,4``; ``--only-seeds`` runs just this part): one
protocol week is one random draw of ~300 compromised cards, so a goal missed by 0.002 needs more
draws, not more tuning.  For each seed it simulates the default data set, builds the handbook
features and fits every family with the settings chosen on *seed 0's* validation weeks
(:data:`FIXED_SETTINGS`, fixed before any other seed was simulated: nothing is selected here, so
no seed's test week can steer them) on the protocol's training week, and scores the protocol's
test week.  Writes ``bench/results/<YYYY-MM-DD>-fraud-quality-seeds.md`` and ``.json`` (about a
minute per seed on 2 shared cores; 4-6 minutes for five)::

    .venv/bin/python bench/fraud_quality.py --only-seeds --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
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
# The protocol week's training start (handbook chapters 3-4); the test week follows the delay.
PROTOCOL_START = dt.date(2018, 7, 25)
# The seeds section's settings: each family's best on seed 0's validation weeks, as recorded in
# bench/results/2026-11-26-fraud-quality.md (the depth-2 tree is the fixed baseline), and the
# model chosen there.  Constants, not a fresh selection, so the comparison across seeds is of
# one fixed model per family.
FIXED_SETTINGS: tuple[Candidate, ...] = (
    Candidate("logreg", {"C": 0.1}),
    Candidate("tree", {}),
    Candidate("forest", {}),
    Candidate("hgb", {}),
    Candidate("blend", {}),
)
FIXED_CHOSEN = Candidate("blend", {})
# Chapter-3 published figures per family, for the per-model summary (the blend has none).
PUBLISHED_BY_FAMILY = {
    "logreg": PUBLISHED[0],
    "tree": PUBLISHED[1],
    "forest": PUBLISHED[2],
    "hgb": PUBLISHED[3],
}


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


def _write_result(out_dir: Path, stem: str, lines: list[str], payload: dict[str, Any]) -> None:
    """Write ``<stem>.md`` and ``<stem>.json`` atomically (a reader never sees half a file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for suffix, body in (
        (".md", "\n".join(lines) + "\n"),
        (".json", json.dumps(payload, indent=2, default=str) + "\n"),
    ):
        out = out_dir / f"{stem}{suffix}"
        tmp = out.with_suffix(suffix + ".tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, out)


def _seed_list(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; distinct non-negative integers, at least one."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"seeds must be integers like 0,1,2: {text!r}") from exc
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be distinct integers >= 0: {text!r}")
    return seeds


@dataclass(frozen=True)
class SeedRun:
    """One simulator seed's protocol week: data sizes, the ceiling, each fixed model's score."""

    seed: int
    transactions: int
    frauds: int
    test_transactions: int
    test_frauds: int
    compromised_cards: int  # cards with a fraud, newly found each test day (see CardPrecision)
    ceiling: float  # card precision@k of a perfect model on this week
    scores: tuple[CandidateScore, ...]  # one per FIXED_SETTINGS entry, one fold (this week) each
    seconds: float


def run_seed(seed: int, *, customers: int, terminals: int, jobs: int) -> SeedRun:
    """Simulate with ``seed`` and test every :data:`FIXED_SETTINGS` model on the protocol week.

    ``seed`` is also the models' seed, as in the main bench, so seed 0 reproduces its
    protocol-week rows.  The caller limits the thread pools.
    """
    started = time.perf_counter()
    config = SimulationConfig(n_customers=customers, n_terminals=terminals, seed=seed)
    frame = validate_transactions(simulate(config), source=f"simulation seed {seed}")
    handbook = prepare(frame, list(FEATURE_SETS["handbook"]), Protocol(train_start=PROTOCOL_START))
    split = handbook.split
    scores = tuple(
        score_candidate(c, handbook.frame, handbook.matrix, [split], seed=seed, n_jobs=jobs)
        for c in FIXED_SETTINGS
    )
    ceiling = card_precision_ceiling(handbook.test, split.test_days, split.protocol.top_k)
    return SeedRun(
        seed=seed,
        transactions=len(frame),
        frauds=int(frame["is_fraud"].sum()),
        test_transactions=len(split.test_rows),
        test_frauds=int(handbook.test["is_fraud"].sum()),
        compromised_cards=sum(ceiling.compromised_per_day),
        ceiling=ceiling.mean,
        scores=scores,
        seconds=time.perf_counter() - started,
    )


def _over_seeds(runs: list[SeedRun], index: int) -> CandidateScore:
    """The ``index``-th fixed model's protocol-week results with one fold per seed."""
    folds = tuple(r.scores[index].folds[0] for r in runs)
    return CandidateScore(
        FIXED_SETTINGS[index], folds, sum(r.scores[index].fit_seconds for r in runs)
    )


def _sample_sd(values: list[float]) -> float:
    """Sample standard deviation (n - 1): the spread another seed would show; 0 for one value."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _mean_sd(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {_sample_sd(values):.3f}"


def _margin_line(score: CandidateScore, metric: Metric, goal: float, runs: list[SeedRun]) -> str:
    """How far the mean over seeds is from ``goal``, in standard errors, and which seeds miss."""
    values = [f.value(metric) for f in score.folds]
    mean, sd = statistics.fmean(values), _sample_sd(values)
    se = sd / len(values) ** 0.5
    gap = mean - goal
    missed = [str(r.seed) for r, v in zip(runs, values, strict=True) if v < goal]
    return (
        f"- {METRIC_LABELS[metric]}: mean {mean:.3f}, sample standard deviation {sd:.3f}, range "
        f"{min(values):.3f}–{max(values):.3f}, standard error of the mean {se:.3f}; the mean is "
        f"{abs(gap):.3f} {'above' if gap >= 0 else 'below'} the goal {goal:.3f}"
        + (f" ({abs(gap) / se:.1f} standard errors)" if se > 0 else "")
        + f"; reached on {len(values) - len(missed)} of {len(values)} seeds"
        + (f" (missed: seed{'s' if len(missed) > 1 else ''} {', '.join(missed)})" if missed else "")
        + "."
    )


def seeds_report(
    runs: list[SeedRun], *, command: str, jobs: int, customers: int, terminals: int, seconds: float
) -> tuple[list[str], dict[str, Any]]:
    """The seeds section's markdown lines and JSON payload (every number, per seed)."""
    today = dt.datetime.now(dt.UTC).date()
    protocol = Protocol(train_start=PROTOCOL_START)
    train_end = PROTOCOL_START + dt.timedelta(days=protocol.train_days - 1)
    test_start = train_end + dt.timedelta(days=protocol.delay_days + 1)
    test_end = test_start + dt.timedelta(days=protocol.test_days - 1)
    k = protocol.top_k
    reviews = k * protocol.test_days
    n = len(runs)
    seeds = ", ".join(str(r.seed) for r in runs)
    over = [_over_seeds(runs, i) for i in range(len(FIXED_SETTINGS))]
    chosen_index = FIXED_SETTINGS.index(FIXED_CHOSEN)
    chosen = over[chosen_index]
    lines = [
        f"# Fraud model quality over simulator seeds — {today.isoformat()}",
        "",
        f"Command: `{command}` (total {seconds:.0f} s on {os.cpu_count()} shared cores, "
        f"{jobs} threads; Python {platform.python_version()}).",
        "",
        "## What is measured",
        "",
        f"- Data: the simulator at {customers:,} customers, {terminals:,} terminals, "
        f"{SimulationConfig().n_days} days, seeds {seeds} (the seed is also the models' seed); "
        "handbook features (15).",
        f"- Protocol week only: train {PROTOCOL_START}..{train_end}, delay "
        f"{protocol.delay_days} days, test {test_start}..{test_end}; known compromised customers "
        "removed from each test day.",
        "- Settings fixed before any seed other than 0 was simulated: each family's best on seed "
        "0's validation weeks (bench/results/2026-11-26-fraud-quality.md): "
        + ", ".join(f"`{c.label}`" for c in FIXED_SETTINGS)
        + f"; the model chosen there is `{FIXED_CHOSEN.label}`. Nothing is selected on any "
        "seed's test week.",
        f"- Spread: sample standard deviation over the {n} seeds (n − 1).",
        "",
        "## Per seed",
    ]
    for r in runs:
        lines += [
            "",
            f"### Seed {r.seed}",
            "",
            f"{r.transactions:,} transactions, {r.frauds:,} frauds "
            f"({100 * r.frauds / r.transactions:.3f}%); test week {r.test_transactions:,} "
            f"transactions, {r.test_frauds:,} frauds, {r.compromised_cards} newly compromised "
            f"cards; {r.seconds:.0f} s.",
            "",
            f"| Model | AUC ROC | Average precision | Card precision@{k} | Fit (s) |",
            "|---|---:|---:|---:|---:|",
        ]
        for c, score in zip(FIXED_SETTINGS, r.scores, strict=True):
            f0 = score.folds[0]
            lines.append(
                f"| {MODELS[c.family].label} — {c.label} | {f0.auc_roc:.3f} | "
                f"{f0.average_precision:.3f} | {f0.card_precision:.3f} | "
                f"{score.fit_seconds:.1f} |"
            )
        lines.append(f"| Perfect model (labels as scores) | 1.000 | 1.000 | {r.ceiling:.3f} | |")
    lines += [
        "",
        f"## Summary over {n} seeds (mean ± sample standard deviation)",
        "",
        f"| Model | AUC ROC | Average precision | Card precision@{k} "
        "| Seeds meeting AUC / AP / CP goal | Published (chapter 3, one week) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c, score in zip(FIXED_SETTINGS, over, strict=True):
        cells = " | ".join(_mean_sd([f.value(m) for f in score.folds]) for m in METRICS)
        meeting = " / ".join(
            str(sum(f.value(m) >= goal for f in score.folds)) for m, goal in GOALS.items()
        )
        published = PUBLISHED_BY_FAMILY.get(c.family)
        pub = " / ".join(f"{v:.3f}" for v in published[1:]) if published else "—"
        lines.append(
            f"| {MODELS[c.family].label} — {c.label} | {cells} | {meeting} of {n} | {pub} |"
        )
    ceilings = [r.ceiling for r in runs]
    lines.append(f"| Perfect model (labels as scores) | 1 | 1 | {_mean_sd(ceilings)} | | |")
    label, auc, ap, cp = PUBLISHED[4]
    lines.append(f"| *published: {label}* | {auc:.3f} | {ap:.3f} | {cp:.3f} | | |")

    cp_sd = _sample_sd([f.card_precision for f in chosen.folds])
    ratios = [f.card_precision / r.ceiling for f, r in zip(chosen.folds, runs, strict=True)]
    lines += [
        "",
        f"## Goals (issue 5), for the model chosen on validation ({FIXED_CHOSEN.label})",
        "",
        _goal_line(f"mean over seeds {seeds}", chosen, None),
    ]
    others = [i for i, r in enumerate(runs) if r.seed != 0]
    if len(others) < len(runs) and len(others) > 1:
        # Seed 0's validation weeks chose the settings; the other seeds never influenced them.
        unseen = CandidateScore(FIXED_CHOSEN, tuple(chosen.folds[i] for i in others), 0.0)
        lines.append(
            _goal_line(
                "mean over seeds "
                + ", ".join(str(runs[i].seed) for i in others)
                + " (not seed 0, whose validation weeks chose the settings)",
                unseen,
                None,
            )
        )
    lines += [_goal_line(f"seed {r.seed}, protocol week", chosen, i) for i, r in enumerate(runs)]
    lines += ["", "## Reading", ""]
    lines += [_margin_line(chosen, m, goal, runs) for m, goal in GOALS.items()]
    lines += [
        f"- One week is {reviews} reviews ({k} a day for {protocol.test_days} days): 0.001 of "
        f"card precision@{k} is {reviews / 1000:.1f} cards, and the seed-to-seed spread of "
        f"{cp_sd:.3f} is about {cp_sd * reviews:.0f} of them. Newly compromised cards per test "
        f"week ranged {min(r.compromised_cards for r in runs)}–"
        f"{max(r.compromised_cards for r in runs)} and the perfect model's card precision "
        f"{min(ceilings):.3f}–{max(ceilings):.3f}; share of it reached: "
        + ", ".join(f"seed {r.seed} {q:.3f}" for r, q in zip(runs, ratios, strict=True))
        + f" (mean {statistics.fmean(ratios):.3f}).",
        "- The published figures are one week of one draw of the handbook's generator; the "
        "per-seed spread above is the scale on which they and these should be compared.",
    ]
    payload: dict[str, Any] = {
        "date": today.isoformat(),
        "command": command,
        "jobs": jobs,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "total_seconds": round(seconds, 1),
        "simulation": {"customers": customers, "terminals": terminals},
        "protocol": {
            "train_start": str(PROTOCOL_START),
            "train_days": protocol.train_days,
            "delay_days": protocol.delay_days,
            "test_days": protocol.test_days,
            "top_k": k,
            "timezone": protocol.timezone,
        },
        "fixed_settings": [{"family": c.family, "params": dict(c.params)} for c in FIXED_SETTINGS],
        "chosen": FIXED_CHOSEN.label,
        "seeds": [
            {
                "seed": r.seed,
                "transactions": r.transactions,
                "frauds": r.frauds,
                "test_transactions": r.test_transactions,
                "test_frauds": r.test_frauds,
                "compromised_cards": r.compromised_cards,
                "card_precision_ceiling": round(r.ceiling, 6),
                "seconds": round(r.seconds, 1),
                "models": [
                    {"label": s.candidate.label, **s.summary()["folds"][0]}
                    | {"fit_seconds": round(s.fit_seconds, 2)}
                    for s in r.scores
                ],
            }
            for r in runs
        ],
        "summary": [
            {
                "label": s.candidate.label,
                "mean": {m: round(s.mean(m), 6) for m in METRICS},
                "sample_sd": {
                    m: round(_sample_sd([f.value(m) for f in s.folds]), 6) for m in METRICS
                },
                "seeds_meeting_goal": {
                    m: sum(f.value(m) >= goal for f in s.folds) for m, goal in GOALS.items()
                },
            }
            for s in over
        ],
        "goals": {
            "targets": GOALS,
            "model": FIXED_CHOSEN.label,
            "mean_over_seeds": {m: round(chosen.mean(m), 6) for m in GOALS},
            "met_on_mean": {m: chosen.mean(m) >= goal for m, goal in GOALS.items()},
        },
        "published": [
            {"model": label, "auc_roc": auc, "average_precision": ap, "card_precision": cp}
            for label, auc, ap, cp in PUBLISHED
        ],
    }
    return lines, payload


def run_seeds(args: argparse.Namespace, command: str) -> None:
    """Run :func:`run_seed` for each of ``args.seeds`` and write the seeds result files."""
    started = time.perf_counter()
    runs: list[SeedRun] = []
    with threadpool_limits(limits=args.jobs):
        for seed in args.seeds:
            runs.append(
                run_seed(seed, customers=args.customers, terminals=args.terminals, jobs=args.jobs)
            )
            print(f"seed {seed}: {runs[-1].seconds:.0f} s", flush=True)
    lines, payload = seeds_report(
        runs,
        command=command,
        jobs=args.jobs,
        customers=args.customers,
        terminals=args.terminals,
        seconds=time.perf_counter() - started,
    )
    stem = f"{payload['date']}-fraud-quality-seeds"
    _write_result(args.out_dir, stem, lines, payload)
    print("\n".join(lines))
    print(f"\nwrote {args.out_dir / stem}.md and .json")


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
    parser.add_argument(
        "--seeds",
        type=_seed_list,
        default=None,
        help="also test the fixed settings on the protocol week of each of these simulator "
        "seeds, e.g. 0,1,2,3,4 (writes <date>-fraud-quality-seeds.md)",
    )
    parser.add_argument(
        "--only-seeds",
        action="store_true",
        help="run only the seeds part (seeds 0,1,2,3,4 unless --seeds is given)",
    )
    args = parser.parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/fraud_quality.py", *(argv or sys.argv[1:])])
    if args.only_seeds:
        if args.seeds is None:
            args.seeds = [0, 1, 2, 3, 4]
        run_seeds(args, command)
        return 0

    started = time.perf_counter()
    timings: dict[str, float] = {}
    config = SimulationConfig(
        n_customers=args.customers, n_terminals=args.terminals, seed=args.seed
    )
    raw = simulate(config)
    timings["simulation"] = time.perf_counter() - started
    frame = validate_transactions(raw, source="simulation")
    protocol = Protocol(train_start=PROTOCOL_START)

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
    _write_result(args.out_dir, stem, lines, payload)
    print("\n".join(lines))
    print(f"\nwrote {args.out_dir / stem}.md and .json")
    if args.seeds:
        run_seeds(args, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
