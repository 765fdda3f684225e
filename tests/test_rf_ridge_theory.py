"""Issue acceptance: seed means of ridge MSE on random features against the LLC18 equivalents.

Theory and simulation are computed independently (expected kernel vs. drawn weights) on the same data;
tolerances shrink with n as O(n^-1/2) per draw, averaged over seeds.
"""
import numpy as np
import pytest

from conftest import small_config
from rmtbench.config import load_sweep
from rmtbench.experiments.base import RunContext
from rmtbench.gather import stack_cells


def _run(tmp_path, client, *, n, seeds, activations=("relu", "erf"), weights="gaussian"):
    config = small_config()
    exp = config["experiments"][0]
    exp["grid"].update({"activation": list(activations), "weights": [weights], "n": [n], "d_over_n": [0.5, 2.0]})
    exp.update({"seeds": seeds, "gamma": [0.1, 0.01], "n_test": n})
    config["datasets"]["g"] = {"kind": "gmm", "p_over_n": 0.5, "mean_scale": 2.5, "cov_shift": [0, 4]}
    sweep = load_sweep(config)
    plan = sweep.experiments["rf"]
    ctx = RunContext(data_dir=tmp_path, client=client, block_rows=2048)
    sims = [plan.kind.simulate(cell, ctx) for cell in plan.cells]
    theories = {key: plan.kind.theory(cells, ctx) for key, cells in plan.theory_groups().items()}
    gathered = stack_cells(plan.kind, plan.cells, sims, theories)
    return plan.kind.compare(gathered)


def _check(table, *, test_tol, train_tol):
    for quantity, tol in (("test_mse", test_tol), ("train_mse", train_tol)):
        rows = table[table.quantity == quantity]
        assert len(rows) == 8
        worst = rows.loc[rows.rel_error.abs().idxmax()]
        assert abs(worst.rel_error) <= tol, f"{quantity}: {worst.to_dict()}"


def test_ridge_mse_matches_theory_small(tmp_path, local_client):
    table = _run(tmp_path, local_client, n=256, seeds=8)
    _check(table, test_tol=0.08, train_tol=0.12)


@pytest.mark.parametrize("weights", ["ternary-eps0.9", "rademacher"])
def test_non_gaussian_weights_match_the_gaussian_theory(tmp_path, local_client, weights):
    """The ridge errors are universal in the weight law at these sizes (pitfall P8 concerns the kernel).

    rf_ridge compares every law with the Gaussian-W equivalent. Sparse ternary (excess kurtosis 7) and
    Rademacher (-2) weights meet the Gaussian test's tolerances; adding the first-order kurtosis term of
    the kernel (rmtbench.theory.ck_gmm.kurtosis_term) moved the ReLU predictions away from the
    simulation instead (docs/findings.md).
    """
    table = _run(tmp_path, local_client, n=256, seeds=8, activations=("relu", "tanh"), weights=weights)
    _check(table, test_tol=0.08, train_tol=0.12)


@pytest.mark.slow
def test_ridge_mse_matches_theory_at_n1024(tmp_path, local_client):
    table = _run(tmp_path, local_client, n=1024, seeds=16)
    print(table[["quantity", "activation", "d_over_n", "gamma", "mean", "theory", "rel_error"]].to_string())
    _check(table, test_tol=0.03, train_tol=0.05)
