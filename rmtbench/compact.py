"""Compact storage of sparse ternary and Rademacher weight matrices (seed eq. 13, AZC22).

A matrix ``W = scale · S`` with ``S`` in ``{-1, 0, 1}`` is kept in one of three layouts:

``"indices"``
    Per row, the column indices of the +1 and of the -1 entries (two CSR lists; ``uint16`` indices
    when there are at most 65536 columns). About ``16 (1 - eps)`` bits per entry: 1.6 bits at
    ``eps = 0.9``, i.e. 1/40 of float64.
``"bits"``
    Two packed bit planes (non-zero, negative): 2 bits per entry whatever the sparsity.
``"signs"``
    One packed bit plane when there is no zero entry (Rademacher): 1 bit per entry.

``layout="auto"`` takes the smallest. Products are computed block by block, so a product never
materialises the float64 matrix: ``matmul`` gives ``scale · (S @ X)`` (the same numbers as the dense
product up to the order of the floating-point sums; bit for bit when ``X`` holds small integers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rmtbench.rng import PANEL_ROWS, generator
from rmtbench.weights import WeightLaw, weight_law

__all__ = ["Layout", "TernaryMatrix"]

Layout = Literal["auto", "indices", "bits", "signs"]
_LAYOUTS = ("auto", "indices", "bits", "signs")
#: Rows of S expanded at a time in products (bounds the temporary float64 block to 8·rows·max(p, n) bytes).
_BLOCK_ROWS = 1024


def _index_dtype(columns: int) -> np.dtype:
    return np.dtype(np.uint16) if columns <= 2**16 else np.dtype(np.uint32)


def _indptr_dtype(nnz: int) -> np.dtype:
    return np.dtype(np.uint32) if nnz < 2**32 else np.dtype(np.uint64)


def _layout_bytes(rows: int, columns: int, nnz: int, has_zeros: bool) -> dict[str, int]:
    packed = rows * (-(-columns // 8))
    sizes = {
        "indices": nnz * _index_dtype(columns).itemsize + 2 * (rows + 1) * _indptr_dtype(nnz).itemsize,
        "bits": 2 * packed,
    }
    if not has_zeros:
        sizes["signs"] = packed
    return sizes


@dataclass(frozen=True, eq=False)
class TernaryMatrix:
    """``W = scale · S``, ``S`` in ``{-1, 0, 1}^{rows x columns}``, stored compactly.

    Build with :meth:`from_signs`, :meth:`from_dense` or :meth:`from_law`; the constructor takes
    the stored arrays as they are.

    Attributes
    ----------
    shape
        ``(rows, columns)``.
    scale
        The common magnitude of the non-zero entries.
    layout
        ``"indices"``, ``"bits"`` or ``"signs"`` (see the module docstring).
    arrays
        The stored arrays: ``plus_indptr, plus_indices, minus_indptr, minus_indices`` (indices),
        ``nonzero, negative`` (bits: ``np.packbits`` of each row) or ``negative`` (signs).

    Examples
    --------
    >>> S = np.array([[1, 0, -1, 0], [0, 0, 1, 1]], dtype=np.int8)
    >>> W = TernaryMatrix.from_signs(S, scale=2.0, layout="indices")
    >>> W.matmul(np.eye(4))
    array([[ 2.,  0., -2.,  0.],
           [ 0.,  0.,  2.,  2.]])
    >>> W.nbytes  # 4 uint16 indices and two uint32 row pointers of length 3
    32
    """

    shape: tuple[int, int]
    scale: float
    layout: Literal["indices", "bits", "signs"]
    arrays: dict[str, np.ndarray] = field(repr=False)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_signs(cls, signs: ArrayLike, *, scale: float = 1.0, layout: Layout = "auto") -> "TernaryMatrix":
        """Store ``scale · signs`` for an integer array of signs in {-1, 0, 1}.

        Raises
        ------
        ValueError
            Entries outside {-1, 0, 1}, a non-2-D array, a non-positive scale, an unknown layout,
            or ``layout="signs"`` with zero entries.
        """
        S = np.asarray(signs)
        if S.ndim != 2:
            raise ValueError(f"signs must be a 2-D array, got shape {S.shape}")
        if not (np.issubdtype(S.dtype, np.integer) or np.issubdtype(S.dtype, np.floating)):
            raise ValueError(f"signs must be numbers in {{-1, 0, 1}}, got dtype {S.dtype}")
        if not np.all((S == 0) | (S == 1) | (S == -1)):
            raise ValueError("signs must lie in {-1, 0, 1}")
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be positive and finite, got {scale!r}")
        if layout not in _LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(_LAYOUTS)}, got {layout!r}")
        rows, columns = S.shape
        positive, negative = S > 0, S < 0
        nnz = int(positive.sum() + negative.sum())
        sizes = _layout_bytes(rows, columns, nnz, has_zeros=nnz < S.size)
        if layout == "auto":
            layout = min(sizes, key=lambda k: (sizes[k], k != "signs"))
        elif layout == "signs" and "signs" not in sizes:
            raise ValueError("layout 'signs' stores no zeros, but the matrix has zero entries; use 'bits' or 'indices'")
        if layout == "indices":
            arrays = {}
            for name, mask in (("plus", positive), ("minus", negative)):
                r, c = np.nonzero(mask)  # row-major order: indices sorted within each row
                indptr = np.zeros(rows + 1, dtype=_indptr_dtype(nnz))
                np.cumsum(np.bincount(r, minlength=rows), out=indptr[1:])
                arrays[f"{name}_indptr"] = indptr
                arrays[f"{name}_indices"] = c.astype(_index_dtype(columns))
        elif layout == "bits":
            arrays = {"nonzero": np.packbits(S != 0, axis=1), "negative": np.packbits(negative, axis=1)}
        else:
            arrays = {"negative": np.packbits(negative, axis=1)}
        return cls(shape=(rows, columns), scale=scale, layout=layout, arrays=arrays)

    @classmethod
    def from_dense(cls, W: ArrayLike, *, scale: float | None = None, layout: Layout = "auto") -> "TernaryMatrix":
        """Store a dense matrix whose non-zero entries are all ``±scale``.

        Parameters
        ----------
        W
            Dense float matrix.
        scale
            The magnitude of the non-zeros; inferred from ``W`` when omitted (1 for an all-zero W).
        layout
            Storage layout.

        Raises
        ------
        ValueError
            If the non-zero entries do not all have magnitude ``scale``.
        """
        W = np.asarray(W, dtype=float)
        if W.ndim != 2:
            raise ValueError(f"W must be a 2-D array, got shape {W.shape}")
        magnitudes = np.abs(W[W != 0])
        if scale is None:
            scale = float(magnitudes[0]) if magnitudes.size else 1.0
        if magnitudes.size and not np.all(magnitudes == scale):
            raise ValueError(f"W is not ternary: its non-zero entries are not all +-{scale!r} "
                             f"(magnitudes range over [{magnitudes.min()!r}, {magnitudes.max()!r}])")
        return cls.from_signs(np.sign(W).astype(np.int8), scale=scale, layout=layout)

    @classmethod
    def from_law(cls, law: str | dict[str, Any] | WeightLaw, *, rows: int, columns: int, root_seed: int,
                 key: tuple[int | str, ...], layout: Layout = "auto") -> "TernaryMatrix":
        """Draw the weight matrix named by ``(root_seed, key)`` directly in compact form.

        Panel by panel from the same generators as :func:`rmtbench.weights.weight_rows`, so
        ``from_law(...).to_dense()`` equals ``weight_rows(law, root_seed=..., key=..., start=0,
        stop=rows, columns=...)`` exactly; the float64 matrix is never formed (peak memory: one
        panel of ``PANEL_ROWS`` rows).

        Parameters
        ----------
        law
            A ``rademacher`` or ``ternary`` law (or its config spec).
        rows, columns
            Shape ``(d, p)``.
        root_seed, key
            Identify the draw (:mod:`rmtbench.rng`).
        layout
            Storage layout; ``"auto"`` picks the smallest by the exact byte counts of the whole
            matrix.

        Raises
        ------
        ValueError
            For a law without a ternary form (gaussian, student_t).
        """
        law = weight_law(law)
        if law.name not in ("rademacher", "ternary"):
            raise ValueError(f"weight law {law.name!r} has no compact ternary form (only rademacher and ternary)")
        if rows < 1 or columns < 1:
            raise ValueError(f"rows and columns must be positive, got {rows} x {columns}")
        panels, scale = [], 1.0
        for panel in range(-(-rows // PANEL_ROWS)):
            signs, scale = law.sample_compact(generator(root_seed, *key, "panel", panel), (PANEL_ROWS, columns))
            keep = min(PANEL_ROWS, rows - panel * PANEL_ROWS)
            panels.append(cls.from_signs(signs[:keep], scale=scale, layout="indices" if layout == "auto" else layout))
        stacked = cls._concatenate(panels)
        if layout == "auto":
            nnz = stacked.nnz
            sizes = _layout_bytes(rows, columns, nnz, has_zeros=nnz < rows * columns)
            best = min(sizes, key=lambda k: (sizes[k], k != "signs"))
            if best != stacked.layout:
                stacked = cls._concatenate([cls.from_signs(p.signs(), scale=scale, layout=best) for p in panels])
        return stacked

    @classmethod
    def _concatenate(cls, parts: list["TernaryMatrix"]) -> "TernaryMatrix":
        first = parts[0]
        rows = sum(p.shape[0] for p in parts)
        if first.layout != "indices":
            arrays = {k: np.concatenate([p.arrays[k] for p in parts]) for k in first.arrays}
            return cls(shape=(rows, first.shape[1]), scale=first.scale, layout=first.layout, arrays=arrays)
        arrays = {}
        for name in ("plus", "minus"):
            counts = np.concatenate([np.diff(p.arrays[f"{name}_indptr"].astype(np.int64)) for p in parts])
            nnz = int(counts.sum())
            indptr = np.zeros(rows + 1, dtype=_indptr_dtype(nnz))
            np.cumsum(counts, out=indptr[1:])
            arrays[f"{name}_indptr"] = indptr
            arrays[f"{name}_indices"] = np.concatenate([p.arrays[f"{name}_indices"] for p in parts])
        return cls(shape=(rows, first.shape[1]), scale=first.scale, layout="indices", arrays=arrays)

    # -- inspection --------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes held by the stored arrays (the measured footprint of the weights)."""
        return int(sum(a.nbytes for a in self.arrays.values()))

    @property
    def bits_per_entry(self) -> float:
        """``8 · nbytes / (rows · columns)`` (64 for a float64 matrix)."""
        return 8.0 * self.nbytes / (self.shape[0] * self.shape[1])

    @property
    def nnz(self) -> int:
        """Number of non-zero entries."""
        if self.layout == "indices":
            return int(self.arrays["plus_indices"].size + self.arrays["minus_indices"].size)
        if self.layout == "signs":
            return self.shape[0] * self.shape[1]
        return int(np.unpackbits(self.arrays["nonzero"], axis=1, count=self.shape[1]).sum())

    def signs(self, start: int = 0, stop: int | None = None) -> NDArray[np.int8]:
        """Rows ``start:stop`` of ``S`` as an int8 array."""
        rows, columns = self.shape
        stop = rows if stop is None else min(stop, rows)
        start = max(0, start)
        if self.layout == "indices":
            out = np.zeros((max(0, stop - start), columns), dtype=np.int8)
            for name, value in (("plus", 1), ("minus", -1)):
                indptr = self.arrays[f"{name}_indptr"].astype(np.int64)
                lo, hi = int(indptr[start]), int(indptr[stop])
                local_rows = np.repeat(np.arange(stop - start), np.diff(indptr[start : stop + 1]))
                out[local_rows, self.arrays[f"{name}_indices"][lo:hi].astype(np.int64)] = value
            return out
        negative = np.unpackbits(self.arrays["negative"][start:stop], axis=1, count=columns).astype(np.int8)
        if self.layout == "signs":
            return (1 - 2 * negative).astype(np.int8)
        nonzero = np.unpackbits(self.arrays["nonzero"][start:stop], axis=1, count=columns).astype(np.int8)
        return (nonzero * (1 - 2 * negative)).astype(np.int8)

    def to_dense(self) -> NDArray[np.float64]:
        """The float64 matrix ``scale · S`` (for tests and small sizes)."""
        return self.signs().astype(np.float64) * self.scale

    # -- products ----------------------------------------------------------------------------------
    def matmul(self, X: ArrayLike) -> NDArray[np.float64]:
        """``W @ X`` for ``X`` of shape ``(columns, n)`` (or ``(columns,)``), as ``scale · (S @ X)``.

        The ``indices`` layout multiplies sparsely (cost proportional to the non-zeros); the bit
        layouts expand ``_BLOCK_ROWS`` rows at a time and use a dense product.
        """
        X = np.asarray(X, dtype=float)
        vector = X.ndim == 1
        X2 = X[:, None] if vector else X
        if X2.ndim != 2 or X2.shape[0] != self.shape[1]:
            raise ValueError(f"cannot multiply a {self.shape} matrix by an array of shape {X.shape}")
        rows = self.shape[0]
        out = np.empty((rows, X2.shape[1]))
        if self.layout == "indices":
            from scipy import sparse

            for start in range(0, rows, _BLOCK_ROWS):
                stop = min(rows, start + _BLOCK_ROWS)
                block = np.zeros((stop - start, X2.shape[1]))
                for name, sign in (("plus", 1.0), ("minus", -1.0)):
                    indptr = self.arrays[f"{name}_indptr"][start : stop + 1].astype(np.int64)
                    indices = self.arrays[f"{name}_indices"][int(indptr[0]) : int(indptr[-1])].astype(np.int32)
                    ones = np.full(indices.size, sign)
                    part = sparse.csr_matrix((ones, indices, indptr - indptr[0]), shape=(stop - start, self.shape[1]))
                    block += part @ X2
                out[start:stop] = block
        else:
            for start in range(0, rows, _BLOCK_ROWS):
                stop = min(rows, start + _BLOCK_ROWS)
                out[start:stop] = self.signs(start, stop).astype(np.float64) @ X2
        out *= self.scale
        return out[:, 0] if vector else out

    def __matmul__(self, X: ArrayLike) -> NDArray[np.float64]:
        return self.matmul(X)
