"""A summation tree fixed by the number of leaves alone.

Floating-point addition is not associative, so a sum over feature blocks is only reproducible if its
order is fixed. Here the order is a canonical binary tree over *units* (fixed groups of feature rows):
a range of units splits at the largest power of two below its size. A compute task evaluates one
subtree; larger blocks merely cut the same tree at a higher level. Hence any block size and any number
of workers produce bit-identical sums.
"""
from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")

REDUCTION_ROWS = 512
"""Feature rows per leaf (unit) of the reduction tree. Changing it changes the last bits of every Gram."""


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
