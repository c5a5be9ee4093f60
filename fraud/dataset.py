"""Transaction files (CSV or Parquet): reading, validating at the boundary, writing atomically.

Columns a file must have (see ``docs/fraud.md``):

* ``transaction_id`` — any unique, non-missing id;
* ``tx_datetime`` — timestamp; ISO 8601 strings or datetimes; naive values are taken as UTC;
* ``customer_id`` — the card holder / payer (non-missing);
* ``terminal_id`` — the terminal or merchant (non-missing);
* ``amount_minor`` — integer amount in minor units (paise), ``> 0``; **or** ``amount`` in
  currency units (rupees) with at most two decimals, converted to ``amount_minor`` on load;
* ``is_fraud`` — label, 0/1 (or true/false).

Optional: ``currency`` (one currency per file), ``method``, ``card_bin``, ``card_last4``, ``vpa``,
``device_id``, ``ip`` (strings; needed only by the features that use them), ``fraud_scenario``
(simulated data only; used by reports), ``tx_time_days`` (ignored on load; days are recomputed).

Every problem raises :class:`DatasetError` whose message names the column and shows an example.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

REQUIRED_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "amount_minor",
    "is_fraud",
)
STRING_COLUMNS: tuple[str, ...] = (
    "currency",
    "method",
    "card_bin",
    "card_last4",
    "vpa",
    "device_id",
    "ip",
)
SUFFIXES: tuple[str, ...] = (".csv", ".parquet")
_MAX_EXAMPLES = 3


class DatasetError(ValueError):
    """A transaction file that cannot be used; the message names the problem and the column."""


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DatasetError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    return suffix


def read_transactions(path: Path) -> pd.DataFrame:
    """Read and validate a transaction file; returns the frame of :func:`validate_transactions`.

    Raises :class:`DatasetError` if the file is missing, unreadable, or fails validation.
    """
    suffix = _format(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            # Strings stay strings: '0423' is a card_last4, not the number 423.
            # low_memory=False: type each column from the whole file, not chunk by chunk, so a
            # stray text value is reported as a mistyped column rather than a mixed-type warning.
            frame = pd.read_csv(path, dtype={c: "str" for c in STRING_COLUMNS}, low_memory=False)
        else:
            frame = pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    return validate_transactions(frame, source=str(path))


def _examples(values: Iterable[object]) -> str:
    shown = [repr(v) for v in list(values)[:_MAX_EXAMPLES]]
    return ", ".join(shown)


def validate_transactions(frame: pd.DataFrame, *, source: str = "data") -> pd.DataFrame:
    """Check and normalise a transaction table.

    Returns a new frame sorted by ``tx_datetime`` (stable, so file order breaks ties) with
    ``tx_datetime`` as UTC ``datetime64``, ``amount_minor`` as int64 paise (> 0), ``is_fraud`` as
    int8 0/1 and the optional string columns as strings; the index is reset.

    Raises :class:`DatasetError` naming the first problem: no rows, a missing column, a mistyped
    or missing value (with examples), duplicate transaction ids, or several currencies.
    """
    frame = frame.copy()
    if "amount_minor" not in frame.columns and "amount" in frame.columns:
        frame["amount_minor"] = _amount_to_minor(frame["amount"], source)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        hint = " (or 'amount' in currency units)" if "amount_minor" in missing else ""
        raise DatasetError(
            f"{source}: missing required column(s): {', '.join(missing)}{hint}; "
            f"found: {', '.join(map(str, frame.columns))}"
        )
    if len(frame) == 0:
        raise DatasetError(f"{source}: the file has no rows")

    for column in ("transaction_id", "customer_id", "terminal_id"):
        nulls = frame[column].isna()
        if nulls.any():
            raise DatasetError(
                f"{source}: column {column!r} has {int(nulls.sum())} missing value(s)"
            )
    duplicated = frame["transaction_id"].duplicated()
    if duplicated.any():
        raise DatasetError(
            f"{source}: column 'transaction_id' has duplicate ids, e.g. "
            f"{_examples(frame.loc[duplicated, 'transaction_id'])}"
        )

    frame["tx_datetime"] = _to_utc(frame["tx_datetime"], source)
    frame["amount_minor"] = _to_minor(frame["amount_minor"], source)
    frame["is_fraud"] = _to_label(frame["is_fraud"], source)
    for column in STRING_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].astype("str").where(frame[column].notna())
    if "currency" in frame.columns:
        currencies = sorted(frame["currency"].dropna().unique())
        if len(currencies) > 1:
            raise DatasetError(
                f"{source}: column 'currency' has several currencies ({_examples(currencies)}); "
                "amount features need one currency per file"
            )
    frame = frame.sort_values("tx_datetime", kind="stable").reset_index(drop=True)
    return frame


def _to_utc(values: pd.Series, source: str) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC")
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        raise DatasetError(
            f"{source}: column 'tx_datetime' must hold timestamps, found {values.dtype} values "
            f"such as {_examples(values)}"
        )
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna()
    if bad.any():
        raise DatasetError(
            f"{source}: column 'tx_datetime' has {int(bad.sum())} value(s) that are not "
            f"timestamps, e.g. {_examples(values[bad])}"
        )
    return parsed


def _to_minor(values: pd.Series, source: str) -> pd.Series:
    """int64 paise; floats are accepted only when they hold whole numbers."""
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        raise DatasetError(
            f"{source}: column 'amount_minor' must be integer minor units (paise), found "
            f"{values.dtype} values such as {_examples(values)}"
        )
    if values.isna().any():
        raise DatasetError(f"{source}: column 'amount_minor' has missing values")
    as_float = values.to_numpy(dtype=np.float64)
    if pd.api.types.is_float_dtype(values.dtype):
        fractional = as_float != np.floor(as_float)
        if fractional.any():
            raise DatasetError(
                f"{source}: column 'amount_minor' must be whole minor units (paise), found "
                f"fractions such as {_examples(values[fractional])}"
            )
    minor = values.to_numpy(dtype=np.int64)
    bad = minor <= 0
    if bad.any():
        raise DatasetError(
            f"{source}: column 'amount_minor' must be > 0, found {_examples(values[bad])}"
        )
    return pd.Series(minor, index=values.index, dtype=np.int64)


def _amount_to_minor(values: pd.Series, source: str) -> pd.Series:
    """Currency units (at most two decimals) to int64 minor units, at the file boundary."""
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        raise DatasetError(
            f"{source}: column 'amount' must be numeric (currency units), found {values.dtype} "
            f"values such as {_examples(values)}"
        )
    if values.isna().any():
        raise DatasetError(f"{source}: column 'amount' has missing values")
    scaled = values.to_numpy(dtype=np.float64) * 100
    rounded = np.rint(scaled)
    sub_paisa = np.abs(scaled - rounded) > 1e-6 * np.maximum(1.0, np.abs(scaled))
    if sub_paisa.any():
        raise DatasetError(
            f"{source}: column 'amount' has more than two decimals, e.g. "
            f"{_examples(values[sub_paisa])}; give amount_minor in paise instead"
        )
    return pd.Series(rounded.astype(np.int64), index=values.index)


def _to_label(values: pd.Series, source: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(np.int8)
    if not pd.api.types.is_numeric_dtype(values.dtype):
        raise DatasetError(
            f"{source}: column 'is_fraud' must be 0/1, found {values.dtype} values such as "
            f"{_examples(values)}"
        )
    bad = ~values.isin([0, 1])
    if bad.any():
        raise DatasetError(
            f"{source}: column 'is_fraud' must be 0 or 1, found {_examples(values[bad])}"
        )
    return values.astype(np.int8)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, why: str) -> None:
    """Raise :class:`DatasetError` naming the columns of ``columns`` missing from ``frame``."""
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise DatasetError(f"missing column(s) {', '.join(missing)} needed for {why}")


def write_transactions(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as CSV or Parquet (by suffix) atomically: a temp file, then a rename.

    CSV timestamps are ISO 8601 with offset; nothing is left at ``path`` if writing fails.
    """
    suffix = _format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (the data hash recorded with a model)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def staging_folder(out_dir: Path) -> Path:
    """A new empty temporary folder beside ``out_dir`` (same file system, so the final rename is
    atomic), with the usual permissions rather than ``mkdtemp``'s 0700."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    tmp.chmod(0o777 & ~_umask())
    return tmp


def publish_folder(tmp: Path, out_dir: Path) -> None:
    """Rename a finished temporary folder to ``out_dir`` (same parent), replacing an existing
    ``out_dir`` only after the new one is complete; the old one is moved aside, then removed."""
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
        os.rmdir(old)
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)
