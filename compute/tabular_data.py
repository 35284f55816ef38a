"""Tabular datasets, addressed like models so that specs, the cache and share links treat them alike.

Ids (a spec's `model`):
- `tabular:breast-cancer`: scikit-learn's Wisconsin breast-cancer data (569 rows, 30 features, malignant vs
  benign), which ships inside scikit-learn (no download);
- `tabular:csv:SHA`: a CSV a researcher uploaded (content-addressed under the uploads folder).

Loading gives the raw table (`RawTable`); `read_table` turns it into a model-ready binary-classification table
for a chosen target, with the checks that give clear messages (missing values, text columns, one class, too
few rows). Types are inferred: numbers and booleans stay, a text column with few distinct values is one-hot
encoded (its columns named `column=value`), one with many is refused as an identifier or free text.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BadInput

PREFIX = "tabular:"
CSV_PREFIX = "csv:"
MAX_CSV_BYTES = 20 * 2**20
MAX_CATEGORIES = 20  # a text column with more distinct values is an ID or free text, not a category
MIN_ROWS = 40
MIN_PER_CLASS = 10
BUILT_IN = {"breast-cancer": ("scikit-learn's Wisconsin breast-cancer data: 569 tumours, 30 cell-nucleus features "
                              "(10 measures × mean, error, worst), malignant vs benign", "diagnosis", "mean texture")}


@dataclass
class RawTable:
    """A dataset as read: its frame, a suggested target and a suggested feature to shift on (transfer)."""
    frame: pd.DataFrame
    description: str
    target: str = ""
    shift_feature: str = ""


@dataclass
class Table:
    """Model-ready: numeric features X, a 0/1 target y (1 = `positive`), and what was done to get there."""
    X: pd.DataFrame
    y: np.ndarray
    target: str
    positive: str
    negative: str
    encoded: dict[str, list[str]] = field(default_factory=dict)  # text column -> its one-hot columns
    dropped_rows: int = 0
    source: pd.DataFrame | None = None  # the rows as read (after dropping), aligned with X: for splits by a column

    @property
    def features(self) -> list[str]:
        return list(self.X.columns)


def is_tabular(model_id: str) -> bool:
    return isinstance(model_id, str) and model_id.strip().startswith(PREFIX)


def dataset_name(model_id: str) -> str:
    return model_id.strip()[len(PREFIX):]


def built_in_table(name: str) -> RawTable:
    from sklearn.datasets import load_breast_cancer

    if name != "breast-cancer":
        raise BadInput(f"unknown built-in dataset '{name}'; built in: {', '.join(BUILT_IN)} (or upload a CSV)")
    data = load_breast_cancer()
    frame = pd.DataFrame(data.data, columns=list(data.feature_names))
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")  # scikit-learn: 0 = malignant
    desc, target, shift = BUILT_IN[name]
    return RawTable(frame, desc, target, shift)


def parse_csv(data: bytes) -> pd.DataFrame:
    """A DataFrame from CSV bytes, or BadInput saying what is wrong with the file."""
    if not data or not data.strip():
        raise BadInput("the CSV file is empty")
    if len(data) > MAX_CSV_BYTES:
        raise BadInput(f"the CSV is {len(data) / 2**20:.1f} MB; the limit is {MAX_CSV_BYTES // 2**20} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput("the file is not UTF-8 text: save it as a UTF-8 CSV") from None
    if "\x00" in text:
        raise BadInput("the file is binary, not a CSV")
    try:
        head = "\n".join(text.splitlines()[:20])
        try:
            sep = csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
        except csv.Error:
            sep = ","  # one column, or ragged: read as comma-separated and let the checks below speak
        frame = pd.read_csv(io.StringIO(text), sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, UnicodeError) as e:
        raise BadInput(f"the CSV does not parse: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if frame.shape[1] < 2:
        raise BadInput("the CSV has a single column: it needs feature columns and a target column (comma, semicolon "
                       "or tab separated, a header row first)")
    dup = frame.columns[frame.columns.duplicated()].tolist()
    if dup:
        raise BadInput(f"the CSV repeats column names: {', '.join(map(str, dup))}")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def store_csv(uploads: Path, data: bytes) -> str:
    """Check and keep an uploaded CSV (content-addressed, written atomically); its model id."""
    parse_csv(data)  # refuse what cannot be read before storing it
    sha = hashlib.sha256(data).hexdigest()[:20]
    uploads.mkdir(parents=True, exist_ok=True)
    path = uploads / f"{sha}.csv"
    if not path.exists():
        tmp = path.with_suffix(".csv.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return f"{PREFIX}{CSV_PREFIX}{sha}"


def csv_path(uploads: Path, name: str) -> Path:
    sha = name[len(CSV_PREFIX):]
    if not sha or not all(c in "0123456789abcdef" for c in sha):
        raise BadInput(f"'{name}' is not an uploaded CSV name (csv:SHA)")
    path = uploads / f"{sha}.csv"
    if not path.is_file():
        raise BadInput(f"no uploaded CSV {sha} on this server: upload it again")
    return path


def load_raw(model_id: str, uploads: Path) -> RawTable:
    name = dataset_name(model_id)
    if name.startswith(CSV_PREFIX):
        frame = parse_csv(csv_path(uploads, name).read_bytes())
        return RawTable(frame, f"uploaded CSV {name[len(CSV_PREFIX):]} ({len(frame)} rows, {frame.shape[1]} columns)",
                        str(frame.columns[-1]))
    return built_in_table(name)


def fingerprint(model_id: str, uploads: Path) -> str:
    name = dataset_name(model_id)
    if name.startswith(CSV_PREFIX):
        return name[len(CSV_PREFIX):]  # content-addressed already
    import sklearn

    return hashlib.sha256(f"{name}:sklearn-{sklearn.__version__}".encode()).hexdigest()[:16]


def _binary_target(col: pd.Series, target: str, positive: str) -> tuple[np.ndarray, str, str]:
    values = col.dropna().unique()
    if len(values) < 2:
        raise BadInput(f"the target '{target}' has a single class ({values[0] if len(values) else 'none'}): "
                       f"a classifier needs two")
    if len(values) > 2:
        shown = ", ".join(map(str, sorted(map(str, values))[:8]))
        raise BadInput(f"the target '{target}' has {len(values)} classes ({shown}{', …' if len(values) > 8 else ''}): "
                       f"the workflow explains binary classifiers; make a two-class column")
    labels = sorted(values, key=str)
    if positive:
        if positive not in map(str, labels):
            raise BadInput(f"positive class '{positive}' is not one of the target's classes: {', '.join(map(str, labels))}")
        pos = next(v for v in labels if str(v) == positive)
    elif set(map(str, labels)) == {"0", "1"} or set(labels) == {0, 1} or set(labels) == {False, True}:
        pos = next(v for v in labels if str(v) in ("1", "True"))
    else:  # the minority class, as in a diagnosis (the condition is the rarer label)
        counts = col.value_counts()
        pos = counts.index[-1] if counts.iloc[-1] < counts.iloc[0] else labels[-1]
    neg = next(v for v in labels if v != pos)
    return (col.to_numpy() == pos).astype(np.int64), str(pos), str(neg)


def read_table(raw: RawTable, target: str, positive: str = "", drop_missing: bool = False) -> Table:
    frame = raw.frame
    target = (target or raw.target).strip()
    if target not in frame.columns:
        raise BadInput(f"no column '{target}' in the data; columns: {', '.join(map(str, frame.columns[:20]))}"
                       f"{', …' if frame.shape[1] > 20 else ''}")
    if frame[target].isna().any():
        n = int(frame[target].isna().sum())
        if not drop_missing:
            raise BadInput(f"the target '{target}' is missing in {n} rows: drop those rows (drop missing) or fill them")
    missing = frame.isna().sum()
    missing = missing[missing > 0]
    dropped = 0
    if len(missing):
        if not drop_missing:
            shown = ", ".join(f"{c} ({n})" for c, n in missing.head(8).items())
            raise BadInput(f"missing values in {len(missing)} column(s): {shown}{', …' if len(missing) > 8 else ''}. "
                           f"Drop those rows (drop missing), or impute them before uploading")
        before = len(frame)
        frame = frame.dropna()
        dropped = before - len(frame)
    if len(frame) < MIN_ROWS:
        raise BadInput(f"too few rows: {len(frame)}{f' after dropping {dropped} with missing values' if dropped else ''}; "
                       f"the workflow needs at least {MIN_ROWS} (a quarter is held out for testing)")
    y, pos, neg = _binary_target(frame[target], target, positive)
    for label, count in ((pos, int(y.sum())), (neg, int((1 - y).sum()))):
        if count < MIN_PER_CLASS:
            raise BadInput(f"only {count} rows of class '{label}': each class needs at least {MIN_PER_CLASS}")
    X = frame.drop(columns=[target])
    if X.shape[1] == 0:
        raise BadInput("no feature columns besides the target")
    encoded = {}
    for c in list(X.columns):
        col = X[c]
        if pd.api.types.is_bool_dtype(col):
            X[c] = col.astype(np.int64)
        elif not pd.api.types.is_numeric_dtype(col):
            levels = col.astype(str).unique()
            if len(levels) > MAX_CATEGORIES:
                raise BadInput(f"column '{c}' is text with {len(levels)} distinct values (an identifier or free text?): "
                               f"drop it, or encode it as numbers")
            dummies = pd.get_dummies(col.astype(str), prefix=c, prefix_sep="=", dtype=np.int64)
            encoded[c] = list(dummies.columns)
            X = pd.concat([X.drop(columns=[c]), dummies], axis=1)
    X = X.astype(np.float64).reset_index(drop=True)
    if not np.isfinite(X.to_numpy()).all():
        bad = [c for c in X.columns if not np.isfinite(X[c]).all()]
        raise BadInput(f"infinite values in {', '.join(bad[:8])}")
    return Table(X, y, target, pos, neg, encoded, dropped, frame.reset_index(drop=True))
