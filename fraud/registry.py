"""A filesystem registry of versioned fraud models, with champion/challenger aliases.

Layout under the registry root (configurable; the CLI default is ``$RIZZPAY_HOME/fraud-registry``)::

    versions/v0001/model.joblib     the fitted scikit-learn pipeline (pickle, written once)
    versions/v0001/metadata.json    training metadata + a "registry" section (see below)
    audit.jsonl                     append-only: one JSON record per alias change
    .staging/                       registrations in progress (never listed)
    .lock                           flock(2) lock serialising writers

A version folder is also a valid training artifact (``fraud.training.load_artifact`` and
``rizzpay fraud evaluate --model`` read it).  Its ``metadata.json`` holds what training recorded
(features and their definitions, training window, metrics, data SHA-256, library versions) plus::

    "registry": {"version": "v0001", "created_at": "2025-…+00:00" (UTC), "registered_by": …,
                 "artifact_sha256": SHA-256 of model.joblib, "artifact_bytes": size in bytes,
                 "feature_fingerprint": SHA-256 of the features' definitions,
                 "sklearn_version": the scikit-learn that pickled the model}

**Register** is atomic: the files are written to a fresh folder under ``.staging``, fsynced, and
the folder is renamed to ``versions/vNNNN`` (one ``rename(2)``), then the parent is fsynced.  A
failure at any step removes the staging folder; a crash leaves at most a staging folder, which is
never listed and is removed by the next registration.

**Aliases** (``champion``, ``challenger``) live in the audit log, which is the single source of
truth: every change appends one record holding who, when (UTC), why, the versions before and after,
the champion lineage and the metrics of the versions involved; the current aliases are those of the
last record.  The append (fsynced) is the commit point, so an alias change is either recorded or
did not happen.  A torn last line (a crash mid-write) is ignored with a warning.

**Load** reads ``model.joblib`` once, checks its SHA-256 against the metadata before unpickling,
and (unless told not to) checks that the features are still defined as when the model was trained
and that scikit-learn is the same version.  Checksums catch corruption and accidental edits; they
are not a defence against someone who can rewrite both files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
import sklearn

from fraud.features import FEATURES, describe
from fraud.training import (
    ARTIFACT_FORMAT_VERSION,
    METADATA_FILE,
    MODEL_FILE,
    ArtifactError,
    fraud_scores,
    load_artifact,
)

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

VERSIONS_DIR = "versions"
STAGING_DIR = ".staging"
AUDIT_FILE = "audit.jsonl"
LOCK_FILE = ".lock"
ALIASES: tuple[str, ...] = ("champion", "challenger")
_VERSION = re.compile(r"v(\d{4,})")

AliasChoice = Literal["auto", "challenger", "none"]
AuditAction = Literal["register", "challenge", "promote", "rollback"]


class RegistryError(ValueError):
    """A registry operation that cannot be done; nothing was changed.  The message says why."""


def utc_now() -> dt.datetime:
    """The current time, tz-aware UTC."""
    return dt.datetime.now(dt.UTC)


def feature_fingerprint(features: Sequence[str]) -> str:
    """SHA-256 of the ordered feature names and their definitions in ``fraud.features`` (keys,
    windows, delays, aggregations, scales, units — descriptions excluded, so rewording a
    description does not change it)."""
    definitions = [
        {k: v for k, v in row.items() if k != "description"} for row in describe(features)
    ]
    body = json.dumps(
        {"features": list(features), "definitions": definitions},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _definitions_fingerprint(features: Sequence[str], definitions: object) -> str:
    """The fingerprint of definitions as recorded in training metadata (not the current code)."""
    if not isinstance(definitions, list):
        raise RegistryError("metadata 'feature_definitions' must be a list")
    rows = [
        {k: v for k, v in row.items() if k != "description"}
        for row in definitions
        if isinstance(row, dict)
    ]
    body = json.dumps(
        {"features": list(features), "definitions": rows}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ModelVersion:
    """One registered model, as its ``metadata.json`` describes it."""

    version: str
    created_at: dt.datetime  # registration time, UTC
    family: str
    label: str
    features: tuple[str, ...]
    feature_fingerprint: str
    train_start: dt.date  # training window, local calendar days, inclusive
    train_end: dt.date
    metrics: dict[str, float]  # as measured on the model's own test window at training time
    data_sha256: str
    sklearn_version: str
    artifact_sha256: str
    artifact_bytes: int
    registered_by: str
    path: Path
    metadata: dict[str, Any] = field(repr=False, compare=False)

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE


@dataclass(frozen=True)
class Aliases:
    """Who is champion and challenger now; ``lineage`` lists champions oldest first (its last
    entry is the champion), which is what :meth:`ModelRegistry.rollback` walks back."""

    champion: str | None = None
    challenger: str | None = None
    lineage: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuditRecord:
    """One alias change.  ``metrics`` maps each version involved to its recorded metrics."""

    seq: int
    at: dt.datetime  # UTC
    action: AuditAction
    who: str
    why: str
    version: str | None  # the version acted on (registered, challenged, promoted, restored)
    champion_before: str | None
    champion_after: str | None
    challenger_before: str | None
    challenger_after: str | None
    lineage: tuple[str, ...]  # champion lineage after the change
    metrics: dict[str, dict[str, float]]

    @property
    def aliases(self) -> Aliases:
        return Aliases(self.champion_after, self.challenger_after, self.lineage)

    def to_json(self) -> str:
        body = {
            "seq": self.seq,
            "at": self.at.astimezone(dt.UTC).isoformat(),
            "action": self.action,
            "who": self.who,
            "why": self.why,
            "version": self.version,
            "champion_before": self.champion_before,
            "champion_after": self.champion_after,
            "challenger_before": self.challenger_before,
            "challenger_after": self.challenger_after,
            "lineage": list(self.lineage),
            "metrics": self.metrics,
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> AuditRecord:
        """Parse one log line; raises ``ValueError`` (or ``KeyError``/``TypeError``) if broken."""
        raw = json.loads(line)
        at = dt.datetime.fromisoformat(raw["at"])
        if at.tzinfo is None:
            raise ValueError("audit time without a time zone")
        if raw["action"] not in ("register", "challenge", "promote", "rollback"):
            raise ValueError(f"unknown audit action {raw['action']!r}")
        return cls(
            seq=int(raw["seq"]),
            at=at,
            action=raw["action"],
            who=str(raw["who"]),
            why=str(raw["why"]),
            version=raw["version"],
            champion_before=raw["champion_before"],
            champion_after=raw["champion_after"],
            challenger_before=raw["challenger_before"],
            challenger_after=raw["challenger_after"],
            lineage=tuple(str(v) for v in raw["lineage"]),
            metrics={str(k): dict(v) for k, v in raw["metrics"].items()},
        )


@dataclass(frozen=True)
class LoadedModel:
    """A verified, unpickled model with its registry entry."""

    info: ModelVersion
    pipeline: Any  # a fitted scikit-learn Pipeline with predict_proba

    @property
    def version(self) -> str:
        return self.info.version

    def score(self, rows: pd.DataFrame) -> FloatArray:
        """Fraud probability (0-1) for each row; ``rows`` holds the model's feature columns by
        name (any order, extra columns ignored).  Raises ``ValueError`` naming missing columns."""
        missing = [f for f in self.info.features if f not in rows.columns]
        if missing:
            raise ValueError(
                f"model {self.info.version} needs feature column(s) {', '.join(missing)}"
            )
        matrix = rows[list(self.info.features)].to_numpy(dtype=np.float64)
        return fraud_scores(self.pipeline, matrix)


@dataclass(frozen=True)
class ShadowScores:
    """Scores of one batch: the champion's to act on, the challenger's to log only."""

    champion_version: str
    scores: FloatArray  # act on these
    challenger_version: str | None = None
    challenger_scores: FloatArray | None = None  # log only, never act on
    challenger_error: str | None = None  # why the challenger produced no scores


def shadow_score(
    champion: LoadedModel, challenger: LoadedModel | None, rows: pd.DataFrame
) -> ShadowScores:
    """Score a batch with the champion (to act on) and the challenger (to log only).

    Pure: no I/O beyond calling the loaded models.  The champion's errors propagate (there is
    nothing to act on without it); a challenger that fails — a missing feature column, an
    exception inside the model — never affects the champion's scores: its error is returned in
    ``challenger_error`` for the caller to log.
    """
    scores = champion.score(rows)
    if challenger is None:
        return ShadowScores(champion.version, scores)
    try:
        shadow = challenger.score(rows)
    except Exception as exc:  # the challenger must never break live scoring
        return ShadowScores(
            champion.version,
            scores,
            challenger.version,
            None,
            f"{type(exc).__name__}: {exc}",
        )
    return ShadowScores(champion.version, scores, challenger.version, shadow)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _fsync_path(path: Path, *, directory: bool = False) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, body: Mapping[str, Any]) -> None:
    """Write ``body`` as indented JSON and fsync it."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(dict(body), indent=2, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _publish(staging: Path, target: Path) -> None:
    """Rename the finished staging folder into place (atomic) and make the rename durable."""
    os.rename(staging, target)
    _fsync_path(target.parent, directory=True)


def _number(version: str) -> int:
    match = _VERSION.fullmatch(version)
    if match is None:
        raise RegistryError(f"{version!r} is not a version id")
    return int(match.group(1))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _required(metadata: Mapping[str, Any], dotted: str) -> Any:
    node: Any = metadata
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise RegistryError(f"model metadata lacks {dotted!r}")
        node = node[part]
    return node


def check_training_metadata(metadata: Mapping[str, Any]) -> None:
    """Refuse metadata that a registry entry could not describe; nothing is written yet."""
    features = _required(metadata, "features")
    if not isinstance(features, list) or not features:
        raise RegistryError("model metadata 'features' must be a non-empty list")
    unknown = [str(f) for f in features if f not in FEATURES]
    if unknown:
        raise RegistryError(f"model metadata names unknown feature(s) {', '.join(unknown)}")
    for key in ("training_window.start", "training_window.end"):
        try:
            dt.date.fromisoformat(str(_required(metadata, key)))
        except ValueError as exc:
            raise RegistryError(f"model metadata {key!r} is not a date: {exc}") from None
    metrics = _required(metadata, "metrics")
    if not isinstance(metrics, Mapping) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values()
    ):
        raise RegistryError("model metadata 'metrics' must map names to numbers")
    sha = _required(metadata, "data.sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise RegistryError("model metadata 'data.sha256' must be a hex SHA-256")
    fmt = metadata.get("format_version", ARTIFACT_FORMAT_VERSION)
    if fmt != ARTIFACT_FORMAT_VERSION:
        raise RegistryError(f"artifact format_version {fmt!r} is not {ARTIFACT_FORMAT_VERSION}")
    recorded = metadata.get("feature_definitions")
    names = [str(f) for f in features]
    if recorded is not None and _definitions_fingerprint(
        names, recorded
    ) != _definitions_fingerprint(names, describe(names)):
        raise RegistryError(
            "the features' definitions in fraud/features.py changed since this model was "
            "trained; retrain it (its inputs would not mean what it learned)"
        )


def _parse_version(folder: Path, metadata: Mapping[str, Any]) -> ModelVersion:
    reg = _required(metadata, "registry")
    if not isinstance(reg, Mapping):
        raise RegistryError(f"{folder}: 'registry' must be a mapping")
    try:
        created_at = dt.datetime.fromisoformat(str(reg["created_at"]))
        model = metadata.get("model", {})
        return ModelVersion(
            version=str(reg["version"]),
            created_at=created_at,
            family=str(model.get("family", "unknown")),
            label=str(model.get("label", model.get("family", "unknown"))),
            features=tuple(str(f) for f in metadata["features"]),
            feature_fingerprint=str(reg["feature_fingerprint"]),
            train_start=dt.date.fromisoformat(str(metadata["training_window"]["start"])),
            train_end=dt.date.fromisoformat(str(metadata["training_window"]["end"])),
            metrics={str(k): float(v) for k, v in metadata["metrics"].items()},
            data_sha256=str(metadata["data"]["sha256"]),
            sklearn_version=str(reg["sklearn_version"]),
            artifact_sha256=str(reg["artifact_sha256"]),
            artifact_bytes=int(reg["artifact_bytes"]),
            registered_by=str(reg.get("registered_by", "")),
            path=folder,
            metadata=dict(metadata),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RegistryError(
            f"{folder / METADATA_FILE}: malformed registry metadata: {exc}"
        ) from None


class ModelRegistry:
    """Versioned fraud models under ``root`` (see the module docstring for the layout).

    ``clock`` returns the current tz-aware time (injectable for tests).  Writers (register and
    alias changes) serialise on an ``flock`` of ``root/.lock``; readers take no lock.
    """

    def __init__(self, root: Path, *, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.root = root
        self._clock = clock

    # -- paths and locking -------------------------------------------------------------------

    @property
    def versions_dir(self) -> Path:
        return self.root / VERSIONS_DIR

    @property
    def audit_path(self) -> Path:
        return self.root / AUDIT_FILE

    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the registry clock must return tz-aware times")
        return now.astimezone(dt.UTC)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- reading ------------------------------------------------------------------------------

    def version_names(self) -> list[str]:
        """Registered version ids, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        found = [
            (int(m.group(1)), p.name)
            for p in self.versions_dir.iterdir()
            if (m := _VERSION.fullmatch(p.name)) and p.is_dir()
        ]
        return [name for _, name in sorted(found)]

    def versions(self) -> list[ModelVersion]:
        """Every readable registered version, oldest first (unreadable ones are logged)."""
        out: list[ModelVersion] = []
        for name in self.version_names():
            try:
                out.append(self.get(name))
            except RegistryError as exc:
                log.warning("skipping unreadable model version %s: %s", name, exc)
        return out

    def resolve(self, name: str) -> str:
        """A version id from a version id or an alias (``champion``, ``challenger``)."""
        if name in ALIASES:
            aliases = self.aliases()
            version = aliases.champion if name == "champion" else aliases.challenger
            if version is None:
                raise RegistryError(f"there is no {name} in {self.root}")
            return version
        if not _VERSION.fullmatch(name):
            raise RegistryError(
                f"{name!r} is not a version id (like v0001) or an alias (champion, challenger)"
            )
        return name

    def get(self, name: str) -> ModelVersion:
        """The registry entry of a version id or alias; reads metadata only (no unpickling)."""
        version = self.resolve(name)
        folder = self.versions_dir / version
        meta_path = folder / METADATA_FILE
        if not meta_path.is_file():
            known = ", ".join(self.version_names()) or "none"
            raise RegistryError(f"unknown model version {version!r} (registered: {known})")
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{meta_path}: cannot read: {exc}") from None
        if not isinstance(metadata, dict):
            raise RegistryError(f"{meta_path}: expected a JSON object")
        info = _parse_version(folder, metadata)
        if info.version != version:
            raise RegistryError(f"{meta_path}: records version {info.version}, not {version}")
        return info

    def verify(self, name: str) -> ModelVersion:
        """Check a version's ``model.joblib`` against its recorded SHA-256 without unpickling;
        raises :class:`RegistryError` on a mismatch or a missing file."""
        info = self.get(name)
        if not info.model_path.is_file():
            raise RegistryError(f"model version {info.version}: {MODEL_FILE} is missing")
        actual, _ = _file_sha256(info.model_path)
        self._check_checksum(info, actual)
        return info

    @staticmethod
    def _check_checksum(info: ModelVersion, actual: str) -> None:
        if actual != info.artifact_sha256:
            raise RegistryError(
                f"model version {info.version}: checksum mismatch — {MODEL_FILE} has SHA-256 "
                f"{actual[:16]}…, its metadata records {info.artifact_sha256[:16]}…; the file "
                "was changed or corrupted after registration, refusing to load it"
            )

    def load(self, name: str, *, check_environment: bool = True) -> LoadedModel:
        """Verify and unpickle a version (id or alias).

        The file is read once, hashed and checked against the metadata before unpickling.  With
        ``check_environment`` it also refuses a model whose features are now defined differently
        in ``fraud/features.py`` or that another scikit-learn version pickled.  Raises
        :class:`RegistryError`.
        """
        info = self.get(name)
        try:
            data = info.model_path.read_bytes()
        except OSError as exc:
            raise RegistryError(f"model version {info.version}: cannot read: {exc}") from None
        self._check_checksum(info, _sha256_bytes(data))
        if check_environment:
            current = feature_fingerprint(info.features)
            if current != info.feature_fingerprint:
                raise RegistryError(
                    f"model version {info.version}: its features are defined differently in "
                    "fraud/features.py than when it was trained; retrain it"
                )
            if info.sklearn_version != sklearn.__version__:
                raise RegistryError(
                    f"model version {info.version} was pickled by scikit-learn "
                    f"{info.sklearn_version}, this is {sklearn.__version__}; retrain it or "
                    "install the same version"
                )
        pipeline = joblib.load(io.BytesIO(data))
        if not hasattr(pipeline, "predict_proba"):
            raise RegistryError(f"model version {info.version}: not a probabilistic classifier")
        return LoadedModel(info, pipeline)

    def load_live(self) -> tuple[LoadedModel, LoadedModel | None]:
        """The champion and the challenger (if any), loaded, for :func:`shadow_score`."""
        aliases = self.aliases()
        if aliases.champion is None:
            raise RegistryError(f"there is no champion in {self.root}")
        champion = self.load(aliases.champion)
        challenger = self.load(aliases.challenger) if aliases.challenger else None
        return champion, challenger

    def audit_log(self) -> list[AuditRecord]:
        """Every readable audit record, oldest first (a torn or broken line is logged, skipped)."""
        if not self.audit_path.is_file():
            return []
        records: list[AuditRecord] = []
        text = self.audit_path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(AuditRecord.from_json(line))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning(
                    "%s line %d: unreadable audit record skipped: %s", self.audit_path, number, exc
                )
        return records

    def aliases(self) -> Aliases:
        """The current champion, challenger and lineage (from the last audit record)."""
        records = self.audit_log()
        return records[-1].aliases if records else Aliases()

    # -- writing ------------------------------------------------------------------------------

    def register(
        self,
        model: Any,
        metadata: Mapping[str, Any],
        *,
        who: str,
        why: str = "",
        alias: AliasChoice = "auto",
    ) -> ModelVersion:
        """Add a fitted model with its training metadata as a new version.

        ``metadata`` is what ``rizzpay fraud train`` records (``features``, ``training_window``,
        ``metrics``, ``data.sha256`` …).  ``alias``: ``auto`` makes the new version champion if
        there is none, else challenger; ``challenger`` always challenger; ``none`` no alias.
        Atomic (see the module docstring).  Raises :class:`RegistryError` for bad metadata or a
        model without ``predict_proba``; the registry is then unchanged.
        """
        if not hasattr(model, "predict_proba"):
            raise RegistryError("the model has no predict_proba; a fraud model must give scores")
        check_training_metadata(metadata)
        body = {k: v for k, v in metadata.items() if k != "registry"}
        body.setdefault("format_version", ARTIFACT_FORMAT_VERSION)
        features = [str(f) for f in body["features"]]
        with self._locked():
            staging_root = self.root / STAGING_DIR
            shutil.rmtree(staging_root, ignore_errors=True)  # leftovers of crashed registrations
            staging_root.mkdir(parents=True)
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="register-", dir=staging_root))
            try:
                staging.chmod(0o777 & ~_umask())
                joblib.dump(model, staging / MODEL_FILE)
                _fsync_path(staging / MODEL_FILE)
                sha, size = _file_sha256(staging / MODEL_FILE)
                names = self.version_names()
                version = f"v{_number(names[-1]) + 1 if names else 1:04d}"
                body["registry"] = {
                    "version": version,
                    "created_at": self._now().isoformat(),
                    "registered_by": who,
                    "registration_note": why,
                    "artifact_sha256": sha,
                    "artifact_bytes": size,
                    "feature_fingerprint": feature_fingerprint(features),
                    "sklearn_version": sklearn.__version__,
                }
                _write_json(staging / METADATA_FILE, body)
                _fsync_path(staging, directory=True)
                _publish(staging, self.versions_dir / version)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            info = self.get(version)
            current = self.aliases()
            if alias == "none":
                return info
            if alias == "auto" and current.champion is None:
                new = Aliases(version, current.challenger, (*current.lineage, version))
            else:
                new = Aliases(current.champion, version, current.lineage)
            self._append("register", who=who, why=why, version=version, before=current, after=new)
        return info

    def register_artifact(
        self, folder: Path, *, who: str, why: str = "", alias: AliasChoice = "auto"
    ) -> ModelVersion:
        """Register a training artifact folder (``rizzpay fraud train --out``)."""
        try:
            model, metadata = load_artifact(folder)
        except ArtifactError as exc:
            raise RegistryError(str(exc)) from None
        return self.register(model, metadata, who=who, why=why, alias=alias)

    def challenge(self, name: str, *, who: str, why: str) -> AuditRecord:
        """Make a registered version the challenger (scored in shadow, never acted on)."""
        with self._locked():
            info = self.verify(name)
            current = self.aliases()
            if info.version == current.champion:
                raise RegistryError(f"{info.version} is the champion; it cannot challenge itself")
            new = Aliases(current.champion, info.version, current.lineage)
            return self._append(
                "challenge", who=who, why=why, version=info.version, before=current, after=new
            )

    def promote(self, *, who: str, why: str) -> AuditRecord:
        """Make the challenger champion (verified first); the challenger slot becomes empty.
        Raises :class:`RegistryError` if there is no challenger or its checksum fails."""
        if not why.strip():
            raise RegistryError("say why the challenger is promoted (--why)")
        with self._locked():
            current = self.aliases()
            if current.challenger is None:
                raise RegistryError("there is no challenger to promote")
            self.verify(current.challenger)
            new = Aliases(current.challenger, None, (*current.lineage, current.challenger))
            return self._append(
                "promote", who=who, why=why, version=current.challenger, before=current, after=new
            )

    def rollback(self, *, who: str, why: str) -> AuditRecord:
        """Restore the previous champion in the lineage (verified first); the challenger stays.
        Raises :class:`RegistryError` if there is no earlier champion."""
        if not why.strip():
            raise RegistryError("say why the champion is rolled back (--why)")
        with self._locked():
            current = self.aliases()
            if len(current.lineage) < 2:
                raise RegistryError(
                    "there is no earlier champion to roll back to"
                    + (f" ({current.champion} is the first)" if current.champion else "")
                )
            previous = current.lineage[-2]
            self.verify(previous)
            challenger = None if current.challenger == previous else current.challenger
            new = Aliases(previous, challenger, current.lineage[:-1])
            return self._append(
                "rollback", who=who, why=why, version=previous, before=current, after=new
            )

    def _metrics(self, *versions: str | None) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for v in versions:
            if v is not None and v not in out:
                try:
                    out[v] = self.get(v).metrics
                except RegistryError:
                    out[v] = {}
        return out

    def _append(
        self,
        action: AuditAction,
        *,
        who: str,
        why: str,
        version: str | None,
        before: Aliases,
        after: Aliases,
    ) -> AuditRecord:
        """Append one fsynced record (the commit point of an alias change).  Caller holds the
        lock."""
        records = self.audit_log()
        record = AuditRecord(
            seq=records[-1].seq + 1 if records else 1,
            at=self._now(),
            action=action,
            who=who,
            why=why,
            version=version,
            champion_before=before.champion,
            champion_after=after.champion,
            challenger_before=before.challenger,
            challenger_after=after.challenger,
            lineage=after.lineage,
            metrics=self._metrics(before.champion, after.champion, before.challenger, version),
        )
        line = record.to_json() + "\n"
        created = not self.audit_path.exists()
        with self.audit_path.open("ab") as handle:
            if handle.tell() > 0:
                with self.audit_path.open("rb") as check:
                    check.seek(-1, os.SEEK_END)
                    if check.read(1) != b"\n":
                        line = "\n" + line  # a torn last line stays on its own line
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        if created:
            _fsync_path(self.root, directory=True)  # the new file's directory entry
        return record
