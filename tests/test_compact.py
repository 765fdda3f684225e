"""Compact ternary / Rademacher weights: same draws as the dense path, exact products, measured memory."""
import tracemalloc

import numpy as np
import pytest

from rmtbench.compact import TernaryMatrix
from rmtbench.weights import weight_law, weight_rows


@pytest.mark.parametrize("spec", ["rademacher", "ternary-eps0.5", "ternary-eps0.666667", "ternary-eps0.9"])
def test_from_law_draws_exactly_the_dense_weights(spec):
    law = weight_law(spec)
    rows, columns = 3 * 128 + 17, 300  # not a whole number of panels
    W = weight_rows(law, root_seed=11, key=("compact", spec), start=0, stop=rows, columns=columns)
    T = TernaryMatrix.from_law(law, rows=rows, columns=columns, root_seed=11, key=("compact", spec))
    assert T.shape == (rows, columns)
    assert np.array_equal(T.to_dense(), W)
    assert T.nnz == np.count_nonzero(W)
    assert T.scale == pytest.approx(1 / np.sqrt(1 - law.eps) if law.name == "ternary" else 1.0, rel=1e-15)


@pytest.mark.parametrize("spec,layout", [("rademacher", "signs"), ("ternary-eps0.5", "bits"), ("ternary-eps0.9", "indices")])
def test_auto_layout_is_the_smallest(spec, layout):
    law = weight_law(spec)
    T = TernaryMatrix.from_law(law, rows=512, columns=256, root_seed=1, key=("auto",))
    assert T.layout == layout
    others = [TernaryMatrix.from_signs(T.signs(), scale=T.scale, layout=lay).nbytes
              for lay in ("indices", "bits", "signs") if not (lay == "signs" and law.name == "ternary")]
    assert T.nbytes == min(others)


@pytest.mark.parametrize("layout", ["indices", "bits", "signs"])
def test_matmul_is_exact_against_the_dense_product(layout):
    law = weight_law("rademacher" if layout == "signs" else "ternary-eps0.7")
    W = weight_rows(law, root_seed=5, key=("mm",), start=0, stop=1500, columns=200)  # > one product block
    T = TernaryMatrix.from_dense(W, layout=layout)
    rng = np.random.default_rng(0)
    # Small integers: S @ X is exact in float64, so the compact and dense routes agree bit for bit.
    Xi = rng.integers(-7, 8, size=(200, 33)).astype(float)
    assert np.array_equal(T.matmul(Xi), T.scale * (np.sign(W) @ Xi))
    # Real data: the same numbers up to the order of the floating-point sums.
    X = rng.standard_normal((200, 40))
    dense = W @ X
    assert np.max(np.abs(T @ X - dense)) <= 1e-13 * np.max(np.abs(dense))
    assert np.allclose(T.matmul(X[:, 0]), dense[:, 0], rtol=0, atol=1e-13 * np.max(np.abs(dense)))


def test_ternary_memory_at_eps_09_is_at_most_a_twentieth_of_float64():
    law = weight_law("ternary-eps0.9")
    rows, columns = 4096, 512
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        T = TernaryMatrix.from_law(law, rows=rows, columns=columns, root_seed=3, key=("memory",))
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    dense_bytes = rows * columns * np.dtype(np.float64).itemsize
    print(f"eps=0.9 {rows}x{columns}: {T.nbytes} B stored ({T.bits_per_entry:.3f} bits/entry), "
          f"{retained} B retained (tracemalloc), float64 {dense_bytes} B, ratio {dense_bytes / T.nbytes:.1f}")
    assert T.layout == "indices"
    assert T.nbytes <= dense_bytes / 20
    assert retained <= dense_bytes / 20  # what the process really keeps, not just the arrays we count
    # 16 bits per non-zero plus two row pointers: close to 16 (1 - eps) bits per entry
    assert T.bits_per_entry == pytest.approx(16 * 0.1 + 2 * 32 * (rows + 1) / (rows * columns), rel=0.05)


def test_index_width_grows_past_65536_columns():
    S = np.zeros((2, 70_000), dtype=np.int8)
    S[0, 69_999], S[1, 3] = 1, -1
    T = TernaryMatrix.from_signs(S, layout="indices")
    assert T.arrays["plus_indices"].dtype == np.uint32
    assert np.array_equal(T.signs(), S)
    small = TernaryMatrix.from_signs(S[:, :65_536], layout="indices")
    assert small.arrays["plus_indices"].dtype == np.uint16


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="not ternary"):
        TernaryMatrix.from_dense(np.array([[1.0, -2.0]]))
    with pytest.raises(ValueError, match="zero entries"):
        TernaryMatrix.from_signs(np.array([[1, 0]]), layout="signs")
    with pytest.raises(ValueError, match=r"\{-1, 0, 1\}"):
        TernaryMatrix.from_signs(np.array([[2, 0]]))
    with pytest.raises(ValueError, match="no compact ternary form"):
        TernaryMatrix.from_law("gaussian", rows=4, columns=4, root_seed=0, key=("g",))
    with pytest.raises(ValueError, match="cannot multiply"):
        TernaryMatrix.from_signs(np.eye(3, dtype=np.int8)).matmul(np.ones((4, 2)))
