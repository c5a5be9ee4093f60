"""``rizzpay fraud``: simulate, train, evaluate, the model registry, rules and backtests.

* ``rizzpay fraud simulate --out tx.parquet`` writes a simulated transaction file (CSV or Parquet).
* ``rizzpay fraud train --data tx.parquet --out models/fraud-v1`` fits one model on the training
  window and saves ``model.joblib`` + ``metadata.json`` (atomically) into the folder; with
  ``--register`` it also (or instead) registers it: champion if there is none, else challenger.
* ``rizzpay fraud evaluate --data tx.parquet --out reports/fraud`` compares model families (or,
  with ``--model``, a saved artifact) on the handbook protocol and writes ``report.md`` (plus PNG
  curves when matplotlib is installed).
* ``rizzpay fraud registry list | show | challenge | promote | rollback | add | audit`` manages
  the model registry (``--registry DIR``, default ``$RIZZPAY_FRAUD_REGISTRY`` or
  ``$RIZZPAY_HOME/fraud-registry``).
* ``rizzpay fraud backtest --rules rules.yaml --data tx.parquet [--model VERSION]`` applies a rule
  set to labelled history, prints the outcome and writes a markdown report.
* ``rizzpay fraud rules check FILE`` validates a rule file; ``rizzpay fraud rules fields`` lists
  the names rules may use.

Exit codes: 0 success; 2 bad input (a file missing or mistyping a column, an empty window, a
single class in the training window, an existing output folder without ``--force``, a rule that
does not parse or names an unknown field, an unknown model version, a checksum mismatch, promoting
without a challenger) — the message names the problem and nothing is written or changed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import shlex
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.fraud_live import register_live

if TYPE_CHECKING:
    from fraud import evaluation, registry, rules

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
        help="fraud simulator, training, evaluation, model registry, rules and backtests",
        description="Fraud simulator, model training and evaluation, the model registry, rules "
        "and backtests (see docs/fraud.md).",
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

    train = sub.add_parser("train", help="fit one model; save it (--out) and/or register it")
    _data_arguments(train)
    train.add_argument(
        "--model",
        default="hgb",
        help="model family: logreg, tree, forest, hgb or blend (forest + hgb; default hgb)",
    )
    train.add_argument(
        "--out", type=Path, default=None, help="artifact folder to create (or use --register)"
    )
    train.add_argument("--force", action="store_true", help="replace an existing folder")
    train.add_argument(
        "--register",
        action="store_true",
        help="register the model: champion if the registry has none, else challenger",
    )
    _registry_argument(train)
    _who_why_arguments(train, why_required=False)
    train.set_defaults(handler=train_command)

    evaluate = sub.add_parser("evaluate", help="compare models and write a markdown report")
    _data_arguments(evaluate)
    evaluate.add_argument(
        "--models",
        default="logreg,tree,forest,hgb,blend",
        help="comma-separated model families to compare (default: all five)",
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

    _register_registry(sub)
    _register_rules(sub)
    register_live(sub, _registry_argument, lambda p: _who_why_arguments(p, why_required=False))

    backtest = sub.add_parser(
        "backtest", help="apply a rule set to labelled history and report what it would do"
    )
    backtest.add_argument("--rules", type=Path, required=True, help="YAML rule set")
    backtest.add_argument(
        "--data", type=Path, required=True, help="labelled transaction file (.csv or .parquet)"
    )
    backtest.add_argument(
        "--model",
        default=None,
        help="registry version or alias whose scores to use (default: the file's 'score' "
        "column if present, else the champion)",
    )
    _registry_argument(backtest)
    backtest.add_argument("--since", type=_date, default=None, help="first local day to include")
    backtest.add_argument("--until", type=_date, default=None, help="last local day to include")
    backtest.add_argument("--timezone", default="Asia/Kolkata", help="calendar of days and hours")
    backtest.add_argument(
        "--out",
        type=Path,
        default=None,
        help="markdown report to write (replaced if it exists; default backtest-<rules>.md)",
    )
    backtest.set_defaults(handler=backtest_command)


def _registry_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        type=Path,
        default=None,
        help="model registry folder (default $RIZZPAY_FRAUD_REGISTRY, else "
        "$RIZZPAY_HOME/fraud-registry)",
    )


def _who_why_arguments(parser: argparse.ArgumentParser, *, why_required: bool) -> None:
    parser.add_argument(
        "--who", default=None, help="who does this, for the audit log (default: login name)"
    )
    parser.add_argument(
        "--why", required=why_required, default="", help="reason, recorded in the audit log"
    )


def _register_registry(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reg = sub.add_parser(
        "registry",
        help="model registry: list, show, challenge, promote, rollback, add, audit",
        description="Versioned fraud models with champion/challenger aliases (docs/fraud.md).",
    )
    actions = reg.add_subparsers(dest="registry_command", required=True)
    listing = actions.add_parser("list", help="registered versions with their metrics")
    _registry_argument(listing)
    listing.set_defaults(handler=registry_list_command)
    show = actions.add_parser("show", help="one version's metadata and checksum status")
    show.add_argument("version", help="version id (v0001) or alias (champion, challenger)")
    show.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    _registry_argument(show)
    show.set_defaults(handler=registry_show_command)
    challenge = actions.add_parser("challenge", help="make a version the challenger")
    challenge.add_argument("version", help="version id (v0001)")
    _registry_argument(challenge)
    _who_why_arguments(challenge, why_required=True)
    challenge.set_defaults(handler=registry_challenge_command)
    promote = actions.add_parser("promote", help="make the challenger champion")
    _registry_argument(promote)
    _who_why_arguments(promote, why_required=True)
    promote.set_defaults(handler=registry_promote_command)
    rollback = actions.add_parser("rollback", help="restore the previous champion")
    _registry_argument(rollback)
    _who_why_arguments(rollback, why_required=True)
    rollback.set_defaults(handler=registry_rollback_command)
    add = actions.add_parser("add", help="register a saved artifact folder (train --out)")
    add.add_argument("folder", type=Path, help="artifact folder")
    add.add_argument(
        "--alias",
        choices=("auto", "challenger", "none"),
        default="auto",
        help="auto: champion if there is none, else challenger (default)",
    )
    _registry_argument(add)
    _who_why_arguments(add, why_required=False)
    add.set_defaults(handler=registry_add_command)
    audit = actions.add_parser("audit", help="the audit log of alias changes")
    _registry_argument(audit)
    audit.set_defaults(handler=registry_audit_command)


def _register_rules(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules_parser = sub.add_parser("rules", help="check a rule file; list the fields rules may use")
    actions = rules_parser.add_subparsers(dest="rules_command", required=True)
    check = actions.add_parser("check", help="parse and check a YAML rule set")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=rules_check_command)
    fields = actions.add_parser("fields", help="names a rule may use, with types and units")
    fields.set_defaults(handler=rules_fields_command)


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


def _registry_root(args: argparse.Namespace) -> Path:
    """``--registry``, else ``$RIZZPAY_FRAUD_REGISTRY``, else ``$RIZZPAY_HOME/fraud-registry``."""
    if args.registry is not None:
        return Path(args.registry)
    configured = os.environ.get("RIZZPAY_FRAUD_REGISTRY")
    if configured:
        return Path(configured)
    from models.config import default_home  # noqa: PLC0415  (lazy)

    return default_home() / "fraud-registry"


def _who(args: argparse.Namespace) -> str:
    if args.who:
        return str(args.who)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _open_registry(args: argparse.Namespace) -> registry.ModelRegistry:
    from fraud import registry  # noqa: PLC0415  (lazy)

    return registry.ModelRegistry(_registry_root(args))


def _command(args: argparse.Namespace, name: str) -> str:
    """The command line that reproduces this run (for reports)."""
    skip = {"handler", "command", "fraud_command", "who", "why"}
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
    from fraud import dataset, registry, training  # noqa: PLC0415  (lazy)
    from fraud.features import FEATURE_SETS, describe  # noqa: PLC0415  (lazy)

    if args.model not in training.MODELS:
        return _fail(f"unknown model {args.model!r}; choose from {', '.join(training.MODELS)}")
    if args.out is None and not args.register:
        return _fail("say where the model goes: --out FOLDER and/or --register")
    if args.out is not None and args.out.exists() and not args.force:
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
        destinations = _store_trained(args, model, metadata)
    except (training.ArtifactError, registry.RegistryError) as exc:
        return _fail(exc)
    m = result.metrics
    print(
        f"trained {label} on {split.train_start}..{split.train_end} "
        f"({len(split.train_rows):,} transactions); test {split.test_start}..{split.test_end}: "
        f"AUC ROC {m.auc_roc:.3f}, average precision {m.average_precision:.3f}, "
        f"card precision@{m.card_precision.k} {m.card_precision.mean:.3f}; "
        + "; ".join(destinations)
    )
    return EXIT_OK


def _store_trained(args: argparse.Namespace, model: Any, metadata: dict[str, Any]) -> list[str]:
    """Save the artifact folder (``--out``) and/or register the model (``--register``); returns
    what was done.  Registration metadata is checked before anything is written."""
    from fraud import registry, training  # noqa: PLC0415  (lazy)

    if args.register:
        registry.check_training_metadata(metadata)
    done: list[str] = []
    if args.out is not None:
        training.save_artifact(args.out, model, metadata, overwrite=args.force)
        done.append(f"saved to {args.out}")
    if args.register:
        reg = _open_registry(args)
        why = args.why or f"trained by {metadata['command']}"
        info = reg.register(model, metadata, who=_who(args), why=why, alias="auto")
        done.append(f"registered as {info.version} ({_role(reg, info.version)}) in {reg.root}")
    return done


def _role(reg: registry.ModelRegistry, version: str) -> str:
    aliases = reg.aliases()
    if version == aliases.champion:
        return "champion"
    return "challenger" if version == aliases.challenger else "no alias"


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


def _metric_cells(metrics: dict[str, float]) -> tuple[str, str, str, str]:
    """(AUC ROC, average precision, card precision@k, its label) from recorded metrics."""
    cp_key = next((k for k in metrics if k.startswith("card_precision_at_")), None)
    cp_label = "CP@" + cp_key.removeprefix("card_precision_at_") if cp_key else "CP@k"

    def cell(key: str | None) -> str:
        return f"{metrics[key]:.3f}" if key is not None and key in metrics else "-"

    return cell("auc_roc"), cell("average_precision"), cell(cp_key), cp_label


def registry_list_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud registry list``."""
    reg = _open_registry(args)
    versions = reg.versions()
    if not versions:
        print(f"no models registered in {reg.root}")
        return EXIT_OK
    aliases = reg.aliases()
    header = (
        f"{'version':<8} {'registered (UTC)':<19} {'model':<7} {'feat':>4} "
        f"{'training window':<22} {'AUC':>6} {'AP':>6} {'CP@k':>6}  alias"
    )
    print(header)
    for v in versions:
        auc, ap, cp, _ = _metric_cells(v.metrics)
        alias = (
            "champion"
            if v.version == aliases.champion
            else ("challenger" if v.version == aliases.challenger else "")
        )
        created = v.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{v.version:<8} {created:<19} {v.family:<7} {len(v.features):>4} "
            f"{v.train_start}..{v.train_end} {auc:>6} {ap:>6} {cp:>6}  {alias}"
        )
    return EXIT_OK


def registry_show_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud registry show VERSION``."""
    import json  # noqa: PLC0415  (lazy)

    from fraud import registry  # noqa: PLC0415  (lazy)

    reg = _open_registry(args)
    try:
        info = reg.get(args.version)
    except registry.RegistryError as exc:
        return _fail(exc)
    try:
        reg.verify(info.version)
        checksum = f"{info.artifact_sha256} (verified)"
    except registry.RegistryError as exc:
        checksum = f"MISMATCH: {exc}"
    if args.json:
        print(json.dumps(info.metadata, indent=2))
        return EXIT_OK
    role = _role(reg, info.version)
    auc, ap, cp, cp_label = _metric_cells(info.metrics)
    fingerprint_now = registry.feature_fingerprint(info.features)
    same = "unchanged" if fingerprint_now == info.feature_fingerprint else "CHANGED since training"
    lines = [
        f"version:          {info.version} ({role})",
        f"registered:       {info.created_at.isoformat()} by {info.registered_by}",
        f"model:            {info.label} ({info.family})",
        f"training window:  {info.train_start} .. {info.train_end}",
        f"metrics:          AUC ROC {auc}, average precision {ap}, {cp_label} {cp}",
        f"features ({len(info.features)}):    {', '.join(info.features)}",
        f"definitions:      fingerprint {info.feature_fingerprint[:16]}… ({same})",
        f"data SHA-256:     {info.data_sha256}",
        f"scikit-learn:     {info.sklearn_version}",
        f"artifact:         {info.model_path} ({info.artifact_bytes:,} bytes)",
        f"artifact SHA-256: {checksum}",
    ]
    print("\n".join(lines))
    return EXIT_OK


def _print_record(record: registry.AuditRecord) -> None:
    at = record.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    print(
        f"#{record.seq} {at} UTC {record.action} {record.version or ''} by {record.who}: "
        f"champion {record.champion_before or '-'} -> {record.champion_after or '-'}, "
        f"challenger {record.challenger_before or '-'} -> {record.challenger_after or '-'}"
        + (f" — {record.why}" if record.why else "")
    )


def _alias_change(args: argparse.Namespace, change: str) -> int:
    from fraud import registry  # noqa: PLC0415  (lazy)

    reg = _open_registry(args)
    try:
        if change == "challenge":
            record = reg.challenge(args.version, who=_who(args), why=args.why)
        elif change == "promote":
            record = reg.promote(who=_who(args), why=args.why)
        else:
            record = reg.rollback(who=_who(args), why=args.why)
    except registry.RegistryError as exc:
        return _fail(exc)
    _print_record(record)
    return EXIT_OK


def registry_challenge_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud registry challenge VERSION --why …``."""
    return _alias_change(args, "challenge")


def registry_promote_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud registry promote --why …``."""
    return _alias_change(args, "promote")


def registry_rollback_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud registry rollback --why …``."""
    return _alias_change(args, "rollback")


def registry_add_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud registry add FOLDER``."""
    from fraud import registry  # noqa: PLC0415  (lazy)

    reg = _open_registry(args)
    why = args.why or f"registered from {args.folder}"
    try:
        info = reg.register_artifact(args.folder, who=_who(args), why=why, alias=args.alias)
    except registry.RegistryError as exc:
        return _fail(exc)
    print(f"registered {args.folder} as {info.version} ({_role(reg, info.version)}) in {reg.root}")
    return EXIT_OK


def registry_audit_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud registry audit``."""
    reg = _open_registry(args)
    records = reg.audit_log()
    if not records:
        print(f"no alias changes recorded in {reg.audit_path}")
    for record in records:
        _print_record(record)
    return EXIT_OK


def rules_check_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud rules check FILE``."""
    from fraud import rules  # noqa: PLC0415  (lazy)

    try:
        rule_set = rules.load_rule_set(args.file)
    except rules.RuleError as exc:
        return _fail(exc)
    counts = {a: sum(r.action == a for r in rule_set.rules) for a in rules.ACTIONS}
    t = rule_set.thresholds
    print(
        f"{args.file}: {len(rule_set.rules)} rules ({counts['block']} block, "
        f"{counts['review']} review, {counts['allow']} allow); score thresholds: review "
        f"{t.review if t.review is not None else 'off'}, block "
        f"{t.block if t.block is not None else 'off'}; fields: {', '.join(sorted(rule_set.fields))}"
    )
    return EXIT_OK


def rules_fields_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud rules fields``."""
    from fraud import rules  # noqa: PLC0415  (lazy)

    del args
    print(f"{'field':<28} {'type':<7} {'unit':<16} description")
    for f in rules.describe_fields():
        print(f"{f.name:<28} {f.kind:<7} {f.unit:<16} {f.description}")
    return EXIT_OK


def _backtest_scores(
    args: argparse.Namespace, frame: Any, rule_set: rules.RuleSet
) -> tuple[Any, Any, str, registry.LoadedModel | None]:
    """(scores, feature table, where the scores come from, the model) for a backtest.

    Raises ``DatasetError``/``RegistryError``/``ValueError`` with a message for the analyst.
    """
    import numpy as np  # noqa: PLC0415  (lazy)

    from fraud import dataset, registry  # noqa: PLC0415  (lazy)
    from fraud.features import compute_features, required_columns  # noqa: PLC0415  (lazy)

    model: registry.LoadedModel | None = None
    if args.model is not None or "score" not in frame.columns:
        reg = _open_registry(args)
        name = args.model or "champion"
        try:
            model = reg.load(name)
        except registry.RegistryError as exc:
            hint = (
                "" if args.model else " (pass --model VERSION or give a file with a 'score' column)"
            )
            raise registry.RegistryError(f"{exc}{hint}") from None
    features = list(rule_set.features)
    if model is not None:
        features += [f for f in model.info.features if f not in features]
    dataset.require_columns(
        frame, required_columns(features), why="the features the rules and the model use"
    )
    table = compute_features(frame, features, timezone=args.timezone)
    if model is not None:
        return model.score(table), table, f"model {model.version} ({model.info.label})", model
    raw = frame["score"]
    scores = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
        raise dataset.DatasetError(
            f"{args.data}: column 'score' must hold probabilities in [0, 1] without gaps"
        )
    return scores, table, f"the file's 'score' column ({args.data.name})", None


def backtest_command(args: argparse.Namespace) -> int:
    """Handler of ``rizzpay fraud backtest``."""
    import dataclasses  # noqa: PLC0415  (lazy)

    import numpy as np  # noqa: PLC0415  (lazy)

    from fraud import dataset, evaluation, registry, rules  # noqa: PLC0415  (lazy)

    try:
        rule_set = rules.load_rule_set(args.rules)
        frame = dataset.read_transactions(args.data)
        scores, table, scored_by, model = _backtest_scores(args, frame, rule_set)
    except (rules.RuleError, dataset.DatasetError, registry.RegistryError) as exc:
        return _fail(exc)
    days = evaluation.local_days(frame, args.timezone)
    keep = np.ones(len(days), dtype=np.bool_)
    if args.since is not None:
        keep &= days >= evaluation.day_number(args.since)
    if args.until is not None:
        keep &= days <= evaluation.day_number(args.until)
    if not keep.any():
        return _fail(f"{args.data}: no payments between {args.since} and {args.until}")
    work = frame.drop(
        columns=[c for c in table.columns if c in frame.columns] + ["score"], errors="ignore"
    )
    work = work.join(table)
    work["score"] = scores
    selected = work[keep]
    try:
        report = rules.backtest(rule_set, selected)
    except rules.RuleInputError as exc:
        return _fail(exc)
    first = evaluation.from_day_number(int(days[keep].min()))
    last = evaluation.from_day_number(int(days[keep].max()))
    notes = [
        f"Payments from {first} to {last} (local days, {args.timezone}) of `{args.data}`.",
        f"Scores: {scored_by}.",
        f"Command: `{_command(args, 'backtest')}`.",
    ]
    if model is not None and model.info.train_start <= last and first <= model.info.train_end:
        notes.append(
            f"The period overlaps the model's training window ({model.info.train_start} to "
            f"{model.info.train_end}): scores there are in-sample and look better than live."
        )
    report = dataclasses.replace(report, notes=notes)
    out = args.out or Path(f"backtest-{args.rules.stem}.md")
    try:
        rules.write_text_atomic(out, rules.render_backtest(report))
    except OSError as exc:
        return _fail(f"{out}: cannot write the report: {exc}")
    print(
        f"{len(selected):,} payments ({first}..{last}), {report.frauds:,} frauds "
        f"({rules.format_paise(report.fraud_amount_minor)}); scores: {scored_by}"
    )
    print(f"{'':<38} {'rules+thresholds':>18} {'thresholds only':>18}")
    for measure, with_rules, baseline in rules.summary_rows(report):
        print(f"{measure:<38} {with_rules:>18} {baseline:>18}")
    print(f"{'rule':<32} {'action':<7} {'hits':>8} {'frauds':>8} {'precision':>9} {'deciding':>9}")
    for s in report.rules:
        print(
            f"{s.name:<32} {s.action:<7} {s.hits:>8,} {s.frauds:>8,} {s.precision:>9.3f} "
            f"{s.decided:>9,}"
        )
    print(f"report: {out}")
    return EXIT_OK
