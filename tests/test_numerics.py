"""Numerical edges: singular and near-singular cells are computed stably or flagged; NaN/inf never stored.

- d = n (the interpolation threshold) with a vanishing ridge: the empirical MSEs are finite, agree with
  a direct solve, and are stored with ``ill_conditioned`` False (G has full rank at finite n);
- rank-deficient Grams (d < n, or a linear activation with d > p) with a ridge below round-off are
  stored *flagged* (``ill_conditioned`` True), with finite values;
- the theory at d = n stays finite and smooth down to gamma = 1e-16 and raises rather than return a
  non-finite number below what float64 can represent;
- a non-finite feature fails the cell loudly: no store is written;
- activations built on exp do not overflow; closed-form kernels stay finite at large variances.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import small_config
from rmtbench.config import load_sweep
from rmtbench.experiments.base import RunContext


def _plan(activation: str, d_over_n: float, gammas: list[float], *, n: int = 64):
    config = small_config()
    block = config["experiments"][0]
    block["grid"].update(activation=[activation], d_over_n=[d_over_n], n=[n])
    block["gamma"] = gammas
    plan = load_sweep(config).experiments["rf"]
    return plan, plan.cells[0]


def _simulate_and_reread(plan, cell, tmp_path):
    from rmtbench.store import open_dataset, write_dataset

    dataset = plan.kind.simulate(cell, RunContext(data_dir=tmp_path, client=None))
    write_dataset(dataset, tmp_path / "cell.zarr")
    return open_dataset(tmp_path / "cell.zarr")


def test_interpolation_threshold_with_a_vanishing_ridge_is_finite_and_unflagged(tmp_path):
    plan, cell = _plan("relu", 1.0, [1e-12, 1e-8, 1e-3])
    stored = _simulate_and_reread(plan, cell, tmp_path)
    for name in ("train_mse", "test_mse", "eigenvalues"):
        assert np.isfinite(stored[name].values).all(), name
    assert stored["ill_conditioned"].dtype == bool
    assert not stored["ill_conditioned"].values.any()  # at finite n, G has full rank at d = n
    assert (stored["eigenvalues"].values.min(axis=1) > 0).all()
    # interpolation: the training error vanishes like gamma^2
    assert (stored["train_mse"].sel(gamma=1e-12).values < 1e-15).all()


def test_ridge_at_the_interpolation_threshold_agrees_with_a_direct_solve():
    from rmtbench.ridge import ridge_mse_direct, ridge_mse_from_features

    rng = np.random.default_rng(3)
    p, n, n_test = 32, 64, 40
    X, X_test = rng.standard_normal((p, n)) / np.sqrt(p), rng.standard_normal((p, n_test)) / np.sqrt(p)
    W = rng.standard_normal((n, p))  # d = n
    Phi, Phi_test = np.maximum(W @ X, 0), np.maximum(W @ X_test, 0)
    y, y_test = np.sign(X[0]), np.sign(X_test[0])
    gammas = [1e-12, 1e-8, 1e-4]
    eig = ridge_mse_from_features(Phi, y, Phi_test, y_test, gammas)
    direct = ridge_mse_direct(Phi, y, Phi_test, y_test, gammas)
    assert not eig.ill_conditioned.any() and not direct.ill_conditioned.any()
    # cond(G + gamma I) is about 1e5 here, so both are accurate to ~1e-10: 1e-6 leaves room
    np.testing.assert_allclose(eig.test_mse, direct.test_mse, rtol=1e-6)
    np.testing.assert_allclose(eig.train_mse[1:], direct.train_mse[1:], rtol=1e-3)


@pytest.mark.parametrize("activation,d_over_n", [("relu", 0.5), ("linear", 2.0)], ids=["d<n", "linear-d>p"])
def test_rank_deficient_gram_with_a_ridge_below_round_off_is_flagged_in_the_store(tmp_path, activation, d_over_n):
    # relu with d = n/2: rank G = d < n. linear with d = 2n: rank G = p = n/2. Either way G has
    # eigenvalues at round-off level, and gamma = 1e-14 is below the trustworthy range.
    plan, cell = _plan(activation, d_over_n, [1e-14, 1e-3])
    stored = _simulate_and_reread(plan, cell, tmp_path)
    flags = stored["ill_conditioned"]
    assert flags.dtype == bool and flags.dims == ("seed", "gamma")
    assert flags.sel(gamma=1e-14).values.all() and not flags.sel(gamma=1e-3).values.any()
    assert np.isfinite(stored["train_mse"].values).all() and np.isfinite(stored["test_mse"].values).all()
    eigenvalues = stored["eigenvalues"].values
    assert (eigenvalues.min(axis=1) < 1e-12 * eigenvalues.max(axis=1)).all()  # really singular


def test_theory_at_the_interpolation_threshold_is_finite_and_smooth_for_tiny_ridges(tmp_path):
    gammas = [1e-8, 1e-10, 1e-12, 1e-14, 1e-16]
    plan, cell = _plan("relu", 1.0, gammas)
    theory = plan.kind.theory([cell], RunContext(data_dir=tmp_path))
    test = theory["test_mse_theory"].sel(d_over_n=1.0).values
    train = theory["train_mse_theory"].sel(d_over_n=1.0).values
    assert np.isfinite(test).all() and np.isfinite(train).all() and (train > 0).all()
    # Ē_test diverges as gamma -> 0 at d = n; cancellation in 1 - (1/d) tr(ΨQ̄)² would show up as an
    # erratic growth: the growth per two decades must be steady (observed: a factor 10 = gamma^{-1/2}).
    growth = test[1:] / test[:-1]
    assert (growth > 1).all()
    assert np.ptp(growth) < 1e-3 * growth.mean(), growth


def test_theory_raises_instead_of_writing_non_finite_numbers(tmp_path):
    plan, cell = _plan("relu", 1.0, [1e-300])
    with pytest.raises(FloatingPointError):
        plan.kind.theory([cell], RunContext(data_dir=tmp_path))


def test_a_non_finite_feature_fails_the_cell_and_writes_no_store(tmp_path, monkeypatch):
    import yaml

    from rmtbench import activations
    from rmtbench.cli import main

    relu = activations.ACTIVATIONS["relu"]
    overflowing = dataclasses.replace(relu, phi=lambda t: np.where(np.asarray(t) > 1.5, np.inf, np.maximum(t, 0.0)))
    monkeypatch.setitem(activations.ACTIVATIONS, "relu", overflowing)
    config = small_config(dask={"mode": "synchronous"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cell = load_sweep(config).experiments["rf"].cells[0]
    monkeypatch.chdir(tmp_path)
    with pytest.raises((ValueError, FloatingPointError, np.linalg.LinAlgError)):
        main(["simulate", "--sweep", "config.yaml", "--experiment", "rf", "--cell", cell.id, "--out", "results/c.zarr"])
    assert not (tmp_path / "results").exists()


def test_ridge_refuses_to_return_non_finite_values():
    from rmtbench.ridge import ridge_mse

    lam, U = np.linalg.eigh(np.diag([2.0, 1.0, 0.0]))  # singular G
    with pytest.raises(FloatingPointError):
        ridge_mse(lam, U, np.ones(3), np.eye(3), np.ones(3), [0.0])  # ridgeless on a singular Gram
    with pytest.raises(ValueError):
        ridge_mse(np.array([np.inf, 1.0, 1.0]), U, np.ones(3), np.eye(3), np.ones(3), [0.1])


# -- activations ----------------------------------------------------------------------------------
def _registered():
    from rmtbench.activations import ACTIVATIONS

    return list(ACTIVATIONS)


@pytest.mark.parametrize("name", _registered())
def test_activations_do_not_overflow_on_large_preactivations(name):
    from rmtbench.activations import get_activation

    act = get_activation(name)
    moderate = np.array([-1e4, -1e2, -30.0, -1.0, 0.0, 1.0, 30.0, 1e2, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        assert np.isfinite(act(moderate)).all()
    if name in ("sigmoid", "softplus", "tanh", "erf", "gauss"):  # exp-based: guarded far beyond
        extreme = np.array([-1e150, -1e3, 800.0, 1e3, 1e150])
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            values = act(extreme)
        assert np.isfinite(values).all()
        if name == "sigmoid":
            assert values[0] == 0.0 and values[-1] == 1.0
        if name == "softplus":
            assert values[-1] == 1e150 and values[0] == 0.0


def _closed_form_kernels():
    from rmtbench.activations import ACTIVATIONS

    cases = []
    for name, act in ACTIVATIONS.items():
        for which in ("kernel", "derivative_kernel"):
            if getattr(act, which) is None:
                continue
            cases.append(pytest.param(name, which, id=f"{name}-{which}"))
    return cases


@pytest.mark.parametrize("name,which", _closed_form_kernels())
def test_closed_form_kernels_stay_finite_for_large_variances(name, which):
    from rmtbench.activations import ACTIVATIONS

    kernel = getattr(ACTIVATIONS[name], which)
    variances = np.array([1.0, 1e2, 1e3, 1e4])
    off_diagonal = 0.5 * np.sqrt(np.outer(variances, variances))  # correlation 1/2 (diagonal: jumps are +inf)
    with np.errstate(over="ignore", under="ignore"):
        values = kernel(variances, variances, off_diagonal)
    assert np.isfinite(values).all()
    if name == "sin" and which == "kernel":  # E[sin u sin v] at va = vb = v, c = v/2: exp(-v)·sinh(v/2)
        with np.errstate(under="ignore"):
            expected = 0.5 * (np.exp(-variances / 2) - np.exp(-1.5 * variances))
        np.testing.assert_allclose(np.diag(values), expected, rtol=1e-12)


@pytest.mark.parametrize("n", [40, 300])  # the dense path and the Lanczos path
def test_the_spectral_norm_is_the_largest_absolute_eigenvalue_on_both_paths(n):
    from rmtbench.theory.norms import DENSE_MAX_ROWS, relative_error, spectral_norm

    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, n))
    A = (X + X.T) / 2 - 0.5 * np.ones((n, n))  # an outlier at -n/2, beyond the bulk's edge at about sqrt(2n)
    eigenvalues = np.linalg.eigvalsh(A)
    expected = max(-eigenvalues[0], eigenvalues[-1])
    assert (n > DENSE_MAX_ROWS) == (n == 300)
    assert -eigenvalues[0] > eigenvalues[-1]  # the norm comes from the negative end: |λ|, not λ_max
    assert spectral_norm(A) == pytest.approx(expected, rel=1e-10)
    assert spectral_norm(A + np.triu(np.ones((n, n)), 1) - np.tril(np.ones((n, n)), -1)) == pytest.approx(expected, rel=1e-10)
    assert spectral_norm(np.zeros((n, n))) == 0.0
    assert relative_error(A + 0.01 * np.eye(n), A) == pytest.approx(0.01 / expected, rel=1e-8)
