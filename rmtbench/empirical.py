"""Empirical Gram matrices of random features, computed on Dask without materialising the features.

The n-by-n Gram ``Phi^T Phi`` and the train/test cross-Gram ``Phi^T Phi_test`` are sums over feature
rows. Rows are grouped in units of :data:`~rmtbench.reduction.REDUCTION_ROWS`; each unit's weights are
generated on the worker from their seed panels, pushed through the activation, multiplied, and
discarded. Units are accumulated in place within fixed stripes and the stripes folded in order
(:mod:`rmtbench.reduction`), so memory does not grow with the width d and the result does not depend
on the worker count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from rmtbench.reduction import REDUCTION_ROWS, stripes
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


def _stripe_products(fmap: RandomFeatureMap, X: np.ndarray, X_test: np.ndarray | None,
                     lo: int, hi: int, block_units: int = 1, _after: None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Upper triangle of Phi_s^T Phi_s and Phi_s^T Phi_test_s for the stripe of units ``[lo, hi)``.

    ``_after`` is a scheduling token (see :func:`gram_graph`); its value is unused. Features are formed
    ``block_units`` units at a time (one ``W X`` product per block: the cache/memory knob
    ``compute.block_rows``), and the units are accumulated one by one, in order, in place
    (``syrk``/``gemm`` with beta = 1) into one n-by-n (and one n-by-n_test) Fortran-ordered
    accumulator: no n-by-n temporary per unit, and the same sums whatever the block.
    """
    from scipy.linalg.blas import dgemm, dsyrk

    from rmtbench.activations import get_activation
    from rmtbench.parallel import single_blas_thread

    phi = get_activation(fmap.activation).phi
    gram = cross = None
    if block_units < 1:
        raise ValueError(f"block_units must be >= 1, got {block_units}")
    with single_blas_thread():
        for first in range(lo, hi, block_units):
            block_start = first * REDUCTION_ROWS
            block_stop = min(min(first + block_units, hi) * REDUCTION_ROWS, fmap.width)
            W = fmap.weights(block_start, block_stop, X.shape[0])
            # C-contiguous (rows x n) is Fortran-contiguous (n x rows): BLAS reads it without a copy
            block = np.ascontiguousarray(phi(W @ X))
            block_test = None if X_test is None else np.ascontiguousarray(phi(W @ X_test))
            for offset in range(0, block_stop - block_start, REDUCTION_ROWS):
                features = block[offset : offset + REDUCTION_ROWS]  # one unit: rows of a C array stay contiguous
                if gram is None:
                    gram = dsyrk(1.0, features.T, trans=0, lower=0)
                else:
                    gram = dsyrk(1.0, features.T, beta=1.0, c=gram, trans=0, lower=0, overwrite_c=1)
                if block_test is not None:
                    test = block_test[offset : offset + REDUCTION_ROWS]
                    if cross is None:
                        cross = dgemm(1.0, features.T, test.T, trans_b=1)
                    else:
                        cross = dgemm(1.0, features.T, test.T, trans_b=1, beta=1.0, c=cross, overwrite_c=1)
    return gram, cross


def _fold(a: tuple[np.ndarray, np.ndarray | None], b: tuple[np.ndarray, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray | None]:
    # In place into ``a``, the running total: its only other reader is the ``_done`` token, which
    # ignores its value, and a lost worker recomputes it from the chain, so no one sees it mutated.
    np.add(a[0], b[0], out=a[0])
    if a[1] is not None:
        np.add(a[1], b[1], out=a[1])
    return a


def _done(part: Any) -> None:
    """A token that ``part`` exists (a tiny dependency: ordering without moving the matrix)."""
    return None


def gram_graph(fmap: RandomFeatureMap, X: Any, X_test: Any = None, *, in_flight: int = 2,
               block_rows: int = REDUCTION_ROWS) -> Any:
    """A Dask ``Delayed`` for ``(upper(Phi^T Phi), Phi^T Phi_test)``, unnormalised.

    ``X`` and ``X_test`` may be arrays or ``Delayed`` objects (pass delayed objects to share one copy
    between several graphs). One task per stripe of :data:`~rmtbench.reduction.STRIPE_UNITS` units;
    the stripes are folded in order, so the result is the same for any worker count. Stripe ``k``
    waits for the fold of stripe ``k - in_flight`` (a scheduling token that never changes a number),
    so at most ``in_flight`` stripes wait beside the accumulator: memory does not grow with the width.
    Use the number of worker threads (:attr:`rmtbench.experiments.base.RunContext.in_flight`).
    ``block_rows`` (a multiple of :data:`~rmtbench.reduction.REDUCTION_ROWS`) is how many feature rows
    a stripe forms at once; the units are still summed one by one in the same order, so it changes
    memory and speed, never a number.
    """
    import dask

    if in_flight < 1:
        raise ValueError(f"in_flight must be >= 1, got {in_flight}")
    if block_rows < REDUCTION_ROWS or block_rows % REDUCTION_ROWS:
        raise ValueError(f"block_rows must be a positive multiple of {REDUCTION_ROWS}, got {block_rows}")
    stripe = dask.delayed(_stripe_products, pure=True)
    fold = dask.delayed(_fold, pure=True)
    done = dask.delayed(_done, pure=True)
    total, tokens = None, []
    for k, (lo, hi) in enumerate(stripes(fmap.units)):
        part = stripe(fmap, X, X_test, lo, hi, block_rows // REDUCTION_ROWS, tokens[k - in_flight] if k >= in_flight else None)
        total = part if total is None else fold(total, part)
        tokens.append(done(total))
    return total


def symmetric_from_upper(upper: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose upper triangle is ``upper`` (the lower part of ``upper`` is ignored)."""
    full = np.triu(upper)
    full += np.triu(full, 1).T
    return full
