"""Shared fixtures: a real Dask LocalCluster (worker processes), small configs, the project root."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def local_client():
    """A LocalCluster with two worker processes, shared by the tests of a session."""
    from rmtbench.parallel import dask_client

    with dask_client({"mode": "local"}, threads=2) as client:
        yield client


def small_config(**overrides) -> dict:
    """A minimal valid rf_ridge config (as parsed YAML), modified by ``overrides`` at top level."""
    config = {
        "sweep": "unit",
        "seed": 7,
        "datasets": {"g": {"kind": "gmm", "p_over_n": 0.5}},
        "experiments": [
            {
                "name": "rf",
                "kind": "rf_ridge",
                "grid": {"activation": ["relu"], "weights": ["gaussian"], "dataset": ["g"], "n": [64], "d_over_n": [0.5, 2.0]},
                "seeds": 2,
                "gamma": [0.1],
                "n_test": 32,
            }
        ],
    }
    config.update(overrides)
    return config
