"""Every random draw of rmtbench comes from one root seed and a tuple of integer keys.

Keys are built from *what* is drawn (data of a cell, weights of a repeat, a panel of rows), never from
*how* it is computed (block size, worker count), so numbers do not change with the execution layout.
"""
from __future__ import annotations

import hashlib

import numpy as np

PANEL_ROWS = 128
"""Rows of a weight matrix drawn from one generator. Compute blocks are whole numbers of panels."""


def stable_hash(text: str, *, bits: int = 32) -> int:
    """Map a string to a non-negative integer that is the same on every machine and Python run.

    Python's built-in ``hash`` is salted per process, so it cannot key random streams.

    Examples
    --------
    >>> stable_hash("relu") == stable_hash("relu")
    True
    """
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[: bits // 8], "little")


def seed_sequence(root_seed: int, *keys: int | str) -> np.random.SeedSequence:
    """The seed sequence for a draw identified by ``keys`` under ``root_seed``.

    Parameters
    ----------
    root_seed
        The sweep's seed from the config.
    *keys
        Integers or strings (hashed with :func:`stable_hash`) naming the draw, from the outermost
        (experiment/data key) to the innermost (panel index).

    Examples
    --------
    >>> a = np.random.default_rng(seed_sequence(1, "data", 3)).standard_normal()
    >>> b = np.random.default_rng(seed_sequence(1, "data", 3)).standard_normal()
    >>> a == b
    True
    """
    spawn_key = tuple(stable_hash(k) if isinstance(k, str) else int(k) for k in keys)
    return np.random.SeedSequence(int(root_seed), spawn_key=spawn_key)


def generator(root_seed: int, *keys: int | str) -> np.random.Generator:
    """A PCG64 generator for the draw named by ``keys`` (see :func:`seed_sequence`)."""
    return np.random.Generator(np.random.PCG64(seed_sequence(root_seed, *keys)))
