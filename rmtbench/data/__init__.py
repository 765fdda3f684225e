"""Data sets for rmtbench: synthetic mixtures and spheres, and real data read from local files.

``X`` is ``(p, n)`` with samples as columns and ``||x_i|| = O(1)``. Nothing is
downloaded: real data come from a data folder or from files shipped inside
installed packages (see `rmtbench.data.real`).

>>> import numpy as np
>>> from rmtbench.data import make_dataset
>>> ds = make_dataset({"kind": "gmm", "p": 64}, n=128, n_test=32, seed=np.random.SeedSequence(0))
>>> ds.X.shape, ds.X_test.shape
((64, 128), (64, 32))
"""

from . import real, synthetic  # noqa: F401  (registers the built-in kinds)
from .base import DataError, Dataset, check_dataset, class_targets, dataset_kinds, dataset_schema, make_dataset, resolve_spec
from .gmm_stats import GMMStatistics, gmm_statistics
from .readers import read_adult_csv, read_cifar_batch, read_csv_table, read_idx
from .synthetic import gmm_class_counts, gmm_parameters, sphere_teacher

__all__ = [
    "DataError",
    "Dataset",
    "GMMStatistics",
    "check_dataset",
    "class_targets",
    "dataset_kinds",
    "dataset_schema",
    "gmm_class_counts",
    "gmm_parameters",
    "gmm_statistics",
    "make_dataset",
    "read_adult_csv",
    "read_cifar_batch",
    "read_csv_table",
    "read_idx",
    "resolve_spec",
    "sphere_teacher",
]
