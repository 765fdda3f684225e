import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rmtbench.reduction import split_point, tree_reduce, tree_tasks


def test_split_point_is_largest_power_of_two_below_size():
    assert split_point(0, 2) == 1
    assert split_point(0, 8) == 4
    assert split_point(0, 9) == 8
    assert split_point(5, 8) == 7
    with pytest.raises(ValueError):
        split_point(3, 4)


@settings(max_examples=60, deadline=None)
@given(units=st.integers(1, 40), max_units=st.integers(1, 45), seed=st.integers(0, 2**16))
def test_any_task_size_gives_bitwise_the_same_sum(units, max_units, seed):
    rng = np.random.default_rng(seed)
    leaves = rng.standard_normal((units, 7)) * 10.0 ** rng.integers(-8, 8, size=(units, 1))
    reference = tree_reduce(0, units, lambda i: leaves[i], np.add)
    chunked = tree_tasks(0, units, max_units, lambda lo, hi: tree_reduce(lo, hi, lambda i: leaves[i], np.add), np.add)
    assert np.array_equal(reference, chunked)


def test_order_matters_so_the_fixed_tree_is_needed():
    # The property above is not vacuous: summing the same numbers in another order changes bits.
    values = [1e16, 1.0, -1e16, 1.0]
    assert tree_reduce(0, 4, lambda i: values[i], lambda a, b: a + b) != sum(values)
