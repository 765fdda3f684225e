"""Empirical Gram matrices of random features, computed on Dask without materialising the features.

The n-by-n Gram ``Phi^T Phi`` and the train/test cross-Gram ``Phi^T Phi_test`` are sums over feature
rows. Rows are grouped in units of :data:`~rmtbench.reduction.REDUCTION_ROWS`; each unit's weights are
generated on the worker from their seed panels, pushed through the activation, multiplied, and
discarded. Units are summed along the fixed tree of :mod:`rmtbench.reduction`, so memory does not
grow with the width d and the result does not depend on block size or worker count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from rmtbench.reduction import REDUCTION_ROWS, tree_reduce, tree_tasks
from rmtbench.weights import WeightLaw, weight_rows


@dataclass(frozen=True)
class RandomFeatureMap:
    """The map x -> phi(W x) with W (width x p) drawn from ``law`` under ``(root_seed, key)``.

    Parameters
    ----------
    activation
        Registered activation name or parametrised spec (see :mod:`rmtbench.activations`).
    law
        Law of the weight entries.
    width
        Number of features d.
    root_seed, key
        Identify the weight draw (see :mod:`rmtbench.rng`); rows are generated panel by panel.
    """

    activation: str | Mapping[str, Any]
    law: WeightLaw
    width: int
    root_seed: int
    key: tuple[int | str, ...]

    @property
    def units(self) -> int:
        """Number of reduction units covering the width."""
        return -(-self.width // REDUCTION_ROWS)

    def weights(self, start: int, stop: int, columns: int) -> np.ndarray:
        """Rows ``start:stop`` of W."""
        return weight_rows(self.law, root_seed=self.root_seed, key=self.key, start=start, stop=stop, columns=columns)

    def features(self, X: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of ``Phi = phi(W X)`` (all rows by default)."""
        from rmtbench.activations import get_activation

        stop = self.width if stop is None else stop
        phi = get_activation(self.activation).phi
        return phi(self.weights(start, stop, X.shape[0]) @ X)


def _unit_products(fmap: RandomFeatureMap, X: np.ndarray, X_test: np.ndarray | None, unit: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Upper triangle of Phi_u^T Phi_u and Phi_u^T Phi_test_u for one unit of rows."""
    from scipy.linalg.blas import dsyrk

    start = unit * REDUCTION_ROWS
    stop = min(start + REDUCTION_ROWS, fmap.width)
    from rmtbench.activations import get_activation

    phi = get_activation(fmap.activation).phi
    W = fmap.weights(start, stop, X.shape[0])
    features = np.ascontiguousarray(phi(W @ X))
    # features is C-contiguous (rows x n), i.e. Fortran-contiguous (n x rows): syrk without a copy.
    gram = dsyrk(1.0, features.T, trans=0, lower=0)
    cross = None if X_test is None else features.T @ phi(W @ X_test)
    return gram, cross


def _add(a: tuple[np.ndarray, np.ndarray | None], b: tuple[np.ndarray, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray | None]:
    gram = a[0] + b[0]
    cross = None if a[1] is None else a[1] + b[1]
    return gram, cross


def _subtree(fmap: RandomFeatureMap, X: np.ndarray, X_test: np.ndarray | None, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray | None]:
    from rmtbench.parallel import single_blas_thread

    with single_blas_thread():
        return tree_reduce(lo, hi, lambda u: _unit_products(fmap, X, X_test, u), _add)


def _add_task(a: Any, b: Any) -> Any:
    return _add(a, b)


def gram_graph(fmap: RandomFeatureMap, X: Any, X_test: Any = None, *, block_rows: int = 1024) -> Any:
    """A Dask ``Delayed`` for ``(upper(Phi^T Phi), Phi^T Phi_test)``, unnormalised.

    ``X`` and ``X_test`` may be arrays or ``Delayed`` objects (pass delayed objects to share one copy
    between several graphs). ``block_rows`` sets the rows per task; it never changes the result.
    """
    import dask

    max_units = max(1, block_rows // REDUCTION_ROWS)
    subtree = dask.delayed(_subtree, pure=True)
    add = dask.delayed(_add_task, pure=True)
    return tree_tasks(0, fmap.units, max_units, lambda lo, hi: subtree(fmap, X, X_test, lo, hi), lambda a, b: add(a, b))


def symmetric_from_upper(upper: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose upper triangle is ``upper`` (the lower part of ``upper`` is ignored)."""
    full = np.triu(upper)
    full += np.triu(full, 1).T
    return full
