"""``rizzpay fraud``: simulate transactions, train a fraud model, evaluate models.

* ``rizzpay fraud simulate --out tx.parquet`` writes a simulated transaction file (CSV or Parquet).
* ``rizzpay fraud train --data tx.parquet --out models/fraud-v1`` fits one model on the training
  window and saves ``model.joblib`` + ``metadata.json`` (atomically) into the folder.
* ``rizzpay fraud evaluate --data tx.parquet --out reports/fraud`` compares model families (or,
  with ``--model``, a saved artifact) on the handbook protocol and writes ``report.md`` (plus PNG
  curves when matplotlib is installed).

Exit codes: 0 success; 2 bad input (a file missing or mistyping a column, an empty window, a
single class in the training window, an existing output folder without ``--force``) — the
message names the problem and nothing is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraud import evaluation

# The fraud modules import pandas and scikit-learn, which take seconds: the handlers import them
# lazily (the "lazy" noqa comments below) so other ``rizzpay`` commands and ``--help`` stay quick.

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``fraud`` command and its ``simulate``, ``train`` and ``evaluate`` sub-commands."""
    fraud = subparsers.add_parser(
        "fraud",
        help="fraud simulator, model training and evaluation",
        description="Fraud simulator, model training and evaluation (see docs/fraud.md).",
    )
    sub = fraud.add_subparsers(dest="fraud_command", required=True)

    sim = sub.add_parser("simulate", help="write a simulated transaction file (.csv or .parquet)")
    sim.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet")
    sim.add_argument("--customers", type=_positive, default=5_000)
    sim.add_argument("--terminals", type=_positive, default=10_000)
    sim.add_argument("--days", type=_positive, default=183)
    sim.add_argument("--start-date", type=_date, default=dt.date(2018, 4, 1))
    sim.add_argument("--seed", type=int, default=0)
    sim.set_defaults(handler=simulate_command)

    train = sub.add_parser("train", help="fit one model and save it with its metadata")
    _data_arguments(train)
    train.add_argument(
        "--model", default="hgb", help="model family: logreg, tree, forest or hgb (default hgb)"
    )
    train.add_argument("--out", type=Path, required=True, help="artifact folder to create")
    train.add_argument("--force", action="store_true", help="replace an existing folder")
    train.set_defaults(handler=train_command)

    evaluate = sub.add_parser("evaluate", help="compare models and write a markdown report")
    _data_arguments(evaluate)
    evaluate.add_argument(
        "--models",
        default="logreg,tree,forest,hgb",
        help="comma-separated model families to compare (default: all four)",
    )
    evaluate.add_argument(
        "--model",
        type=Path,
        default=None,
        help="evaluate a saved artifact folder instead of training (features and, unless given, "
        "the training window come from its metadata)",
    )
    evaluate.add_argument("--out", type=Path, required=True, help="report folder to create")
    evaluate.add_argument("--force", action="store_true", help="replace an existing folder")
    evaluate.set_defaults(handler=evaluate_command)


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="transaction file (.csv or .parquet)"
    )
    parser.add_argument(
        "--train-start",
        type=_date,
        default=None,
        help="first training day (local date); default: the latest window that fits the data",
    )
    parser.add_argument("--train-days", type=_positive, default=7)
    parser.add_argument("--delay-days", type=_non_negative, default=7)
    parser.add_argument("--test-days", type=_positive, default=7)
    parser.add_argument("--top-k", type=_positive, default=100, help="cards reviewed per day")
    parser.add_argument("--timezone", default="Asia/Kolkata", help="calendar of days and hours")
    parser.add_argument(
        "--features", choices=("handbook", "rizzpay"), default="handbook", help="feature set"
    )
    parser.add_argument("--seed", type=int, default=0, help="model random seed")
    parser.add_argument("--jobs", type=_positive, default=1, help="CPU threads for fitting")


def _fail(message: object) -> int:
    print(f"rizzpay fraud: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _command(args: argparse.Namespace, name: str) -> str:
    """The command line that reproduces this run (for reports)."""
    skip = {"handler", "command", "fraud_command"}
    parts = ["rizzpay", "fraud", name]
    for key, value in sorted(vars(args).items()):
        if key in skip or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return shlex.join(parts)


def simulate_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud simulate``."""
    from fraud import dataset, simulator  # noqa: PLC0415  (lazy)

    if args.out.suffix.lower() not in (".csv", ".parquet"):
        return _fail(f"{args.out}: unsupported file type; use .csv or .parquet")
    config = simulator.SimulationConfig(
        n_customers=args.customers,
        n_terminals=args.terminals,
        n_days=args.days,
        start_date=args.start_date,
        seed=args.seed,
    )
    started = time.perf_counter()
    frame = simulator.simulate(config)
    try:
        dataset.write_transactions(frame, args.out)
    except dataset.DatasetError as exc:
        return _fail(exc)
    frauds = int(frame["is_fraud"].sum())
    print(
        f"wrote {len(frame):,} transactions ({frauds:,} frauds, "
        f"{100 * frauds / max(len(frame), 1):.2f}%) to {args.out} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return EXIT_OK


def _protocol(args: argparse.Namespace, train_start: dt.date | None) -> evaluation.Protocol:
    from fraud import evaluation  # noqa: PLC0415  (lazy)

    return evaluation.Protocol(
        train_start=train_start,
        train_days=args.train_days,
        delay_days=args.delay_days,
        test_days=args.test_days,
        timezone=args.timezone,
        top_k=args.top_k,
    )


def _threads(n: int) -> AbstractContextManager[object]:
    """Limit BLAS/OpenMP threads (gradient boosting, logistic regression) to ``n``."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # noqa: PLC0415

    limits: AbstractContextManager[object] = threadpool_limits(limits=n)
    return limits


def train_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud train``."""
    from fraud import dataset, training  # noqa: PLC0415  (lazy)
    from fraud.features import FEATURE_SETS, describe  # noqa: PLC0415  (lazy)

    if args.model not in training.MODELS:
        return _fail(f"unknown model {args.model!r}; choose from {', '.join(training.MODELS)}")
    if args.out.exists() and not args.force:
        return _fail(f"{args.out} already exists; choose another folder or pass --force")
    feature_names = list(FEATURE_SETS[args.features])
    try:
        frame = dataset.read_transactions(args.data)
        with _threads(args.jobs):
            prepared = training.prepare(frame, feature_names, _protocol(args, args.train_start))
            model, seconds = training.fit(args.model, prepared, seed=args.seed, n_jobs=args.jobs)
            label = training.MODELS[args.model].label
            result = training.assess(
                model, prepared, name=args.model, label=label, fit_seconds=seconds
            )
    except dataset.DatasetError as exc:
        return _fail(exc)
    split = prepared.split
    train_labels = prepared.y_train
    test = prepared.test
    metadata: dict[str, Any] = {
        "format_version": training.ARTIFACT_FORMAT_VERSION,
        "model": {"family": args.model, "label": label, "seed": args.seed},
        "features": feature_names,
        "feature_set": args.features,
        "feature_definitions": describe(feature_names),
        "timezone": split.protocol.timezone,
        "training_window": {
            "start": split.train_start.isoformat(),
            "end": split.train_end.isoformat(),
            "days": split.protocol.train_days,
            "rows": len(split.train_rows),
            "frauds": int(train_labels.sum()),
        },
        "delay_days": split.protocol.delay_days,
        "test_window": {
            "start": split.test_start.isoformat(),
            "end": split.test_end.isoformat(),
            "days": split.protocol.test_days,
            "rows": len(split.test_rows),
            "frauds": int(test["is_fraud"].sum()),
            "removed_known_compromised_rows": split.removed_rows,
        },
        "metrics": result.metrics.summary(),
        "fit_seconds": round(seconds, 3),
        "data": {
            "path": str(args.data.resolve()),
            "sha256": dataset.file_sha256(args.data),
            "rows": len(frame),
            "frauds": int(frame["is_fraud"].sum()),
        },
        "command": _command(args, "train"),
        "environment": training.environment(dt.datetime.now(dt.UTC)),
    }
    try:
        training.save_artifact(args.out, model, metadata, overwrite=args.force)
    except training.ArtifactError as exc:
        return _fail(exc)
    m = result.metrics
    print(
        f"trained {label} on {split.train_start}..{split.train_end} "
        f"({len(split.train_rows):,} transactions); test {split.test_start}..{split.test_end}: "
        f"AUC ROC {m.auc_roc:.3f}, average precision {m.average_precision:.3f}, "
        f"card precision@{m.card_precision.k} {m.card_precision.mean:.3f}; saved to {args.out}"
    )
    return EXIT_OK


def evaluate_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud evaluate``."""
    from fraud import dataset, evaluation, training  # noqa: PLC0415  (lazy)
    from fraud.features import FEATURE_SETS  # noqa: PLC0415  (lazy)

    if args.out.exists() and not args.force:
        return _fail(f"{args.out} already exists; choose another folder or pass --force")
    train_start: dt.date | None = args.train_start
    saved: tuple[Any, str] | None = None  # (fitted pipeline, report label) of --model
    if args.model is not None:
        try:
            pipeline, metadata = training.load_artifact(args.model)
        except training.ArtifactError as exc:
            return _fail(exc)
        saved = (pipeline, f"{metadata['model']['label']} (saved, {args.model.name})")
        feature_names = [str(f) for f in metadata["features"]]
        feature_set = f"{metadata.get('feature_set', 'custom')} (from {args.model})"
        if train_start is None:
            train_start = dt.date.fromisoformat(str(metadata["training_window"]["start"]))
        names: list[str] = []
    else:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
        unknown = [n for n in names if n not in training.MODELS]
        if unknown or not names:
            choices = ", ".join(training.MODELS)
            return _fail(
                f"unknown model(s) {', '.join(unknown) or '(none)'}; choose from {choices}"
            )
        feature_names = list(FEATURE_SETS[args.features])
        feature_set = args.features
    try:
        frame = dataset.read_transactions(args.data)
        with _threads(args.jobs):
            prepared = training.prepare(frame, feature_names, _protocol(args, train_start))
            if saved is not None:
                results = [
                    training.assess(
                        saved[0], prepared, name="saved", label=saved[1], fit_seconds=None
                    )
                ]
            else:
                compared = training.compare(prepared, names, seed=args.seed, n_jobs=args.jobs)
                results = [r for r, _ in compared]
    except dataset.DatasetError as exc:
        return _fail(exc)
    report = evaluation.EvaluationReport(
        source=str(args.data),
        data_sha256=dataset.file_sha256(args.data),
        frame=prepared.frame,
        split=prepared.split,
        feature_set=feature_set,
        features=feature_names,
        results=results,
        command=_command(args, "evaluate"),
        generated_at=dt.datetime.now(dt.UTC),
    )
    try:
        path = evaluation.write_report(args.out, report, overwrite=args.force)
    except FileExistsError as exc:
        return _fail(exc)
    k = prepared.split.protocol.top_k
    print(f"{'model':<45} {'AUC ROC':>8} {'AP':>8} {'CP@' + str(k):>8}")
    for r in results:
        m = r.metrics
        print(
            f"{r.label:<45} {m.auc_roc:>8.3f} {m.average_precision:>8.3f} "
            f"{m.card_precision.mean:>8.3f}"
        )
    print(f"report: {path}")
    return EXIT_OK
