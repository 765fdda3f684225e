"""The `Dataset` container, the data error type and the registry of data set kinds.

Every data set kind registers one builder and one JSON-schema fragment here;
`make_dataset` validates a spec against that fragment, fills in the defaults and
calls the builder. Conventions shared by all kinds:

* ``X`` is ``(p, n)``: columns are samples, with ``||x_i|| = O(1)``.
* ``labels`` are class indices ``0..K-1`` into the spec's class list.
* targets follow `class_targets`: ``-1``/``+1`` for two classes, otherwise ``+1``
  for class 0 and ``-1`` for every other class.
* all randomness comes from the ``seed`` argument, through one
  ``np.random.default_rng(seed)`` stream per call.
"""

from __future__ import annotations

import copy
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jsonschema
import numpy as np

__all__ = [
    "Builder",
    "DataError",
    "Dataset",
    "SizeCheck",
    "check_dataset",
    "class_targets",
    "dataset_kinds",
    "dataset_schema",
    "make_dataset",
    "register_kind",
    "resolve_spec",
]

# Modules whose import registers the built-in kinds (see `_load_builtin_kinds`).
_BUILTIN_MODULES = ("rmtbench.data.synthetic", "rmtbench.data.real")


class DataError(ValueError):
    """A data file is missing, corrupt, or holds too few samples for the request.

    The message names the file (or data set), what was expected and why it failed.
    """


@dataclass(frozen=True, eq=False)
class Dataset:
    """Training and test samples of one data set, columns as samples.

    Attributes
    ----------
    X : ndarray of shape (p, n), float64
        Training inputs, one sample per column.
    y : ndarray of shape (n,), float64
        Training targets.
    X_test : ndarray of shape (p, n_test), float64
        Test inputs, disjoint from the training samples.
    y_test : ndarray of shape (n_test,), float64
        Test targets.
    labels : ndarray of shape (n,), int64
        Class index ``0..K-1`` of each training sample (0 for unlabelled data).
    labels_test : ndarray of shape (n_test,), int64
        Class index of each test sample.
    meta : dict
        JSON-serialisable description: ``kind``, ``p``, ``n``, ``n_test``,
        ``classes``, ``normalisation``, ``target``, ``spec`` (resolved, with
        defaults) and, for file-based kinds, ``files`` with their sha256.
    """

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    labels: np.ndarray
    labels_test: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        p, n = _shape2(self.X, "X")
        p_t, n_t = _shape2(self.X_test, "X_test")
        if p_t != p:
            raise ValueError(f"X has p={p} rows but X_test has {p_t}")
        for name, arr, size in (
            ("y", self.y, n),
            ("labels", self.labels, n),
            ("y_test", self.y_test, n_t),
            ("labels_test", self.labels_test, n_t),
        ):
            if np.shape(arr) != (size,):
                raise ValueError(f"{name} has shape {np.shape(arr)}, expected ({size},)")

    @property
    def p(self) -> int:
        """Input dimension."""
        return int(self.X.shape[0])

    @property
    def n(self) -> int:
        """Number of training samples."""
        return int(self.X.shape[1])

    @property
    def n_test(self) -> int:
        """Number of test samples."""
        return int(self.X_test.shape[1])


def _shape2(arr: np.ndarray, name: str) -> tuple[int, int]:
    if np.ndim(arr) != 2:
        raise ValueError(f"{name} must be 2-D (p, n), got shape {np.shape(arr)}")
    return int(arr.shape[0]), int(arr.shape[1])


class Builder(Protocol):
    """Signature of a kind's builder: a resolved spec in, a `Dataset` out."""

    def __call__(
        self,
        spec: dict[str, Any],
        *,
        n: int,
        n_test: int,
        rng: np.random.Generator,
        data_dir: str | os.PathLike | None,
    ) -> Dataset: ...


class SizeCheck(Protocol):
    """Signature of a kind's check: a resolved spec and the sizes in; ``ValueError`` if it cannot be built."""

    def __call__(self, spec: dict[str, Any], *, n: int, n_test: int) -> None: ...


@dataclass(frozen=True)
class _Kind:
    builder: Builder
    schema: dict
    check: SizeCheck | None = None


_REGISTRY: dict[str, _Kind] = {}


def register_kind(kind: str, *, schema: Mapping[str, Any], check: SizeCheck | None = None) -> Callable[[Builder], Builder]:
    """Register a builder for ``kind`` (decorator).

    Parameters
    ----------
    kind : str
        Value of ``spec["kind"]`` that selects the builder.
    schema : mapping
        ``{key: {"type": ..., "description": ..., "default": ...}}`` for every spec
        key other than ``kind``; wrapped into a closed object schema.
    check : callable, optional
        ``check(resolved_spec, n=..., n_test=...)`` raises ``ValueError`` for what the schema cannot
        express (keys that exclude each other, list lengths, sizes); cheap, no files read and no
        draws. `check_dataset` runs it when a config is loaded, so that such a spec is refused
        before any job starts.
    """
    properties = {
        "kind": {"const": kind, "description": "Data set kind.", "default": kind},
        **copy.deepcopy(dict(schema)),
    }
    for key, prop in properties.items():
        if "description" not in prop or "default" not in prop:
            raise TypeError(f"schema of kind {kind!r}: key {key!r} needs description and default")
    full = {  # a fragment (draft 2020-12), embeddable without "$schema"
        "type": "object",
        "properties": properties,
        "required": ["kind"],
        "additionalProperties": False,
    }
    jsonschema.Draft202012Validator.check_schema(full)

    def decorate(builder: Builder) -> Builder:
        _REGISTRY[kind] = _Kind(builder=builder, schema=full, check=check)
        return builder

    return decorate


def _load_builtin_kinds() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def dataset_kinds() -> list[str]:
    """Names of the registered data set kinds, sorted."""
    _load_builtin_kinds()
    return sorted(_REGISTRY)


def _kind(kind: str) -> _Kind:
    _load_builtin_kinds()
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise ValueError(f"unknown data set kind {kind!r}; known kinds: {sorted(_REGISTRY)}") from None


def dataset_schema(kind: str) -> dict:
    """JSON-schema (draft 2020-12) fragment for the spec of ``kind``.

    Every key carries ``description`` and ``default``; unknown keys are refused
    (``additionalProperties: false``). The returned dict is a copy.
    """
    return copy.deepcopy(_kind(kind).schema)


def resolve_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``spec`` against its kind's schema and fill in the defaults.

    Raises
    ------
    ValueError
        If ``kind`` is missing or unknown, or the spec does not match the schema.
    """
    if "kind" not in spec:
        raise ValueError(f"data spec has no 'kind' key: {dict(spec)!r}")
    schema = _kind(str(spec["kind"])).schema
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(dict(spec)), key=str)
    if errors:
        lines = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '<spec>'}: {e.message}" for e in errors)
        raise ValueError(f"invalid {spec['kind']!r} data spec: {lines}")
    return {
        key: copy.deepcopy(spec[key] if key in spec else prop["default"]) for key, prop in schema["properties"].items()
    }


def check_dataset(spec: Mapping[str, Any], *, n: int, n_test: int) -> None:
    """Check that ``spec`` describes a data set that can be built with ``n`` and ``n_test`` samples.

    Runs the schema and the kind's own check (see `register_kind`), without reading files or drawing
    samples; what only the files can tell (too few samples of a class, a corrupt file) is found when
    the data are built.

    Raises
    ------
    ValueError
        Naming what is wrong with the spec at these sizes.
    """
    resolved = resolve_spec(spec)
    check = _kind(resolved["kind"]).check
    if check is not None:
        check(resolved, n=int(n), n_test=int(n_test))


def make_dataset(
    spec: Mapping[str, Any],
    *,
    n: int,
    n_test: int,
    seed: np.random.SeedSequence | int,
    data_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Build the data set described by ``spec``.

    Parameters
    ----------
    spec : mapping
        ``spec["kind"]`` selects the data set (see `dataset_kinds`); the other
        keys are described by `dataset_schema`.
    n, n_test : int
        Number of training and test samples (``n >= 1``, ``n_test >= 0``).
    seed : numpy.random.SeedSequence or int
        The only source of randomness: the same ``(spec, n, n_test, seed)`` gives
        bit-identical arrays. The seed object is not mutated.
    data_dir : path-like, optional
        Folder holding file-based data sets (``data_dir/<kind>/...``). Kinds
        shipped inside installed packages ignore it.

    Returns
    -------
    Dataset
    """
    resolved = resolve_spec(spec)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(n_test) != n_test or n_test < 0:
        raise ValueError(f"n_test must be a non-negative integer, got {n_test!r}")
    rng = np.random.default_rng(seed)
    ds = _kind(resolved["kind"]).builder(resolved, n=int(n), n_test=int(n_test), rng=rng, data_dir=data_dir)
    ds.meta.setdefault("spec", resolved)
    return ds


def class_targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Targets from class indices, the rule shared by every kind.

    Two classes: ``y = -1`` for class 0 and ``+1`` for class 1. Otherwise
    (one class, or more than two): ``y = +1`` for class 0 and ``-1`` for the others.
    """
    labels = np.asarray(labels)
    if n_classes == 2:
        return np.where(labels == 1, 1.0, -1.0)
    return np.where(labels == 0, 1.0, -1.0)


TARGET_RULE = (
    "two classes: y = -1 for class index 0 and +1 for class index 1; "
    "otherwise y = +1 for class index 0 and -1 for the others"
)
