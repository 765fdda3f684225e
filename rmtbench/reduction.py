"""Summation orders fixed by the number of leaves alone.

Floating-point addition is not associative, so a sum over feature blocks is only reproducible if its
order is fixed. Two orders are offered, both over *units* (fixed groups of feature rows):

- a canonical binary tree (a range of units splits at the largest power of two below its size); a
  compute task evaluates one subtree, larger blocks merely cut the same tree at a higher level. It
  holds one pending partial sum per level, i.e. memory that grows like log(leaves);
- *stripes*: fixed runs of :data:`STRIPE_UNITS` units, each accumulated in place, and the stripes
  folded left in their order. One accumulator and the stripes in flight are alive at any time, so
  memory is flat in the number of leaves; used for the n-by-n Grams, where each partial is large.

Either way any block size and any number of workers produce bit-identical sums.
"""
from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")

REDUCTION_ROWS = 512
"""Feature rows per leaf (unit) of the reduction tree. Changing it changes the last bits of every Gram."""


STRIPE_UNITS = 16
"""Units per stripe (8192 feature rows): one Dask task of the Gram. Changing it changes the last bits of every Gram."""


def stripes(units: int) -> list[tuple[int, int]]:
    """The unit ranges ``[lo, hi)`` of the stripes covering ``units`` units.

    Examples
    --------
    >>> stripes(35)
    [(0, 16), (16, 32), (32, 35)]
    """
    return [(lo, min(lo + STRIPE_UNITS, units)) for lo in range(0, units, STRIPE_UNITS)]


def split_point(lo: int, hi: int) -> int:
    """Where the canonical tree splits the unit range ``[lo, hi)`` (requires ``hi - lo >= 2``).

    Examples
    --------
    >>> split_point(0, 12), split_point(8, 12), split_point(0, 5)
    (8, 10, 4)
    """
    size = hi - lo
    if size < 2:
        raise ValueError(f"cannot split a range of {size} unit(s)")
    return lo + (1 << ((size - 1).bit_length() - 1))


def tree_reduce(lo: int, hi: int, leaf: Callable[[int], T], combine: Callable[[T, T], T]) -> T:
    """Reduce ``leaf(lo), ..., leaf(hi - 1)`` with ``combine`` along the canonical tree."""
    if hi - lo == 1:
        return leaf(lo)
    mid = split_point(lo, hi)
    return combine(tree_reduce(lo, mid, leaf, combine), tree_reduce(mid, hi, leaf, combine))


def tree_tasks(lo: int, hi: int, max_units: int, task: Callable[[int, int], T], combine: Callable[[T, T], T]) -> T:
    """Like :func:`tree_reduce`, but subtrees of at most ``max_units`` leaves become one ``task(lo, hi)``.

    ``task(lo, hi)`` must itself compute ``tree_reduce(lo, hi, ...)``; then the result is identical
    for every ``max_units``.
    """
    if hi - lo <= max_units:
        return task(lo, hi)
    mid = split_point(lo, hi)
    return combine(tree_tasks(lo, mid, max_units, task, combine), tree_tasks(mid, hi, max_units, task, combine))
