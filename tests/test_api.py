"""The public library surface: results, kernels and coefficients on plain arrays, ridge theory.

Wrappers are checked against the modules they wrap (orientation: rows are samples) and, where cheap,
against an independent Monte Carlo estimate from the estimators' own random features.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from rmtbench import api
from rmtbench.estimators import RandomFeatures, RandomFeaturesRidge



@pytest.fixture(autouse=True)
def _one_blas_thread():
    """One BLAS thread, as the pipeline's workers use: on a shared 2-core machine, threaded LAPACK
    spins against other jobs (a 256 x 256 eigh went from 0.05 s to 4 s). Results do not depend on it."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield

def _store(path, experiment="rf", **attrs):
    import xarray as xr

    from rmtbench.store import provenance, write_dataset

    ds = xr.Dataset({"train_mse": (("seed", "gamma"), np.arange(6.0).reshape(3, 2))}, coords={"seed": [0, 1, 2], "gamma": [0.1, 0.01]},
                    attrs=provenance(experiment=experiment, config={"sweep": "t", "seed": 3}, missing_cells=[], **attrs))
    return write_dataset(ds, path)


def test_open_results_store_folder_and_errors(tmp_path):
    _store(tmp_path / "sweep" / "rf.zarr")
    direct = api.open_results(tmp_path / "sweep" / "rf.zarr")
    assert direct["train_mse"].values.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert api.open_results(tmp_path / "sweep")["train_mse"].sizes == {"seed": 3, "gamma": 2}  # the only store
    meta = api.results_provenance(direct)
    assert meta["config"] == {"sweep": "t", "seed": 3} and meta["experiment"] == "rf"
    assert "numpy" in meta["package_versions"] and isinstance(meta["git_revision"], str)

    _store(tmp_path / "sweep" / "other.zarr", experiment="other")
    assert api.results_provenance(api.open_results(tmp_path / "sweep", "other"))["experiment"] == "other"
    with pytest.raises(FileNotFoundError, match=r"2 gathered stores \(other, rf\)"):
        api.open_results(tmp_path / "sweep")
    with pytest.raises(FileNotFoundError, match="no gathered store for experiment 'nope'.*gathered: other, rf"):
        api.open_results(tmp_path / "sweep", "nope")
    with pytest.raises(FileNotFoundError, match="no results"):
        api.open_results(tmp_path / "missing")
    (tmp_path / "sweep" / "half.zarr.tmp-1-abc").mkdir()  # an unfinished write is never opened
    assert len(list((tmp_path / "sweep").glob("*.zarr"))) == 2


def test_expected_kernel_rows_are_samples():
    from rmtbench.theory.kernels import expected_kernel, expected_kernel_diag

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((7, 5)) / np.sqrt(5), rng.standard_normal((4, 5)) / np.sqrt(5)
    np.testing.assert_array_equal(api.expected_kernel("tanh", X, Y), expected_kernel("tanh", X.T, Y.T))
    np.testing.assert_array_equal(api.expected_kernel("relu", X), expected_kernel("relu", X.T))
    np.testing.assert_array_equal(api.expected_kernel_diag("relu", X), expected_kernel_diag("relu", X.T))
    with pytest.raises(ValueError, match="n_samples, n_features"):
        api.expected_kernel("relu", np.ones(3))


@pytest.mark.parametrize("activation", ["relu", "erf", "sign"])
def test_expected_kernel_against_monte_carlo(activation):
    """Phi^T Phi / d from RandomFeatures converges to expected_kernel: each entry within 5 standard errors."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 8)) / np.sqrt(8) * np.array([0.5, 1, 1, 1.5, 1, 2])[:, None]
    width = 40_000
    Phi = RandomFeatures(activation=activation, width=width, random_state=9).fit_transform(X)  # (n, d)
    products = Phi[:, None, :] * Phi[None, :, :]  # (n, n, d)
    mean, se = products.mean(-1), products.std(-1, ddof=1) / np.sqrt(width)
    K = api.expected_kernel(activation, X)
    exact = se == 0  # sign on the diagonal: phi^2 = 1 for every draw
    assert np.all(np.abs(mean - K)[exact] < 1e-12)
    z = np.abs(mean - K)[~exact] / se[~exact]
    assert z.max() < 5.0, (activation, z.max())
    np.testing.assert_allclose(np.diag(K), api.expected_kernel_diag(activation, X), rtol=1e-9)


def test_coefficients_satisfy_their_identities():
    # Hermite: sum a_k^2 = E phi(xi)^2 = K(x, x) at |x| = 1; Mehler at rho = 0: K(x, y) = a_0^2
    a = api.hermite_coefficients("tanh", order=40)
    unit = np.eye(2)
    K = api.expected_kernel("tanh", unit)
    assert np.isclose(np.sum(a**2), K[0, 0], rtol=1e-8)
    assert np.isclose(a[0] ** 2, K[0, 1], atol=1e-12)
    # alpha1 = (E phi')^2 = a_1^2 at tau = 1 (Stein), alpha3 = 2 alpha2
    alphas = api.alpha_coefficients("tanh")
    assert np.isclose(alphas[1], a[1] ** 2, rtol=1e-9) and np.isclose(alphas[3], 2 * alphas[2])
    at_two = api.hermite_coefficients("relu", tau=2.0)
    np.testing.assert_allclose(at_two, 2.0 * api.hermite_coefficients("relu"), rtol=1e-10, atol=1e-14)  # relu is 1-homogeneous


def test_sphere_linear_equivalent_is_close_to_the_kernel():
    """On the sphere, ||K - K~|| / ||K|| is small and shrinks with n (seed eq. 10: O(n^-1/2))."""
    errors = []
    for n in (64, 512):
        rng = np.random.default_rng(n)
        X = rng.standard_normal((n, n // 2))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        K, Kt = api.expected_kernel("tanh", X), api.sphere_linear_equivalent("tanh", X)
        errors.append(np.linalg.norm(K - Kt, 2) / np.linalg.norm(K, 2))
    assert errors[1] < errors[0] and errors[1] < 0.05, errors


def test_gmm_linear_equivalent_matches_the_module():
    from rmtbench.data import make_dataset
    from rmtbench.theory.ck_gmm import ck_equivalent

    ds = make_dataset({"kind": "gmm", "p": 16}, n=24, n_test=0, seed=np.random.SeedSequence(2))
    wrapped = api.gmm_linear_equivalent("erf", ds.X.T, ds.labels, form="full", spec=ds.meta["spec"])
    np.testing.assert_array_equal(wrapped, ck_equivalent("erf", ds.X, ds.labels, form="full", spec=ds.meta["spec"]))


def test_ridge_mse_theory_wraps_the_equivalent_and_shapes():
    from rmtbench.theory.equivalent import KernelSpectrum, ridge_mse_from_spectrum

    rng = np.random.default_rng(3)
    X, X_test = rng.standard_normal((30, 12)) / np.sqrt(12), rng.standard_normal((10, 12)) / np.sqrt(12)
    y, y_test = np.sign(X[:, 0]), np.sign(X_test[:, 0])
    K, Kc, Kd = api.expected_kernel("erf", X), api.expected_kernel("erf", X, X_test), api.expected_kernel_diag("erf", X_test)
    one = api.ridge_mse_theory(K, y, d=45, gammas=[0.1, 1.0], K_cross=Kc, K_test_diag=Kd, y_test=y_test)
    ref = ridge_mse_from_spectrum(KernelSpectrum.from_kernel(K, y, Kc, Kd, y_test), d=45, gammas=[0.1, 1.0])
    np.testing.assert_array_equal(one.train_mse, ref.train_mse)
    np.testing.assert_array_equal(one.test_mse, ref.test_mse)
    many = api.ridge_mse_theory(K, y, d=[15, 45], gammas=[0.1, 1.0])
    assert many.train_mse.shape == (2, 2) and many.test_mse is None
    np.testing.assert_allclose(many.train_mse[1], one.train_mse, rtol=1e-14)
    with pytest.raises(ValueError, match="all of K_cross"):
        api.ridge_mse_theory(K, y, d=10, gammas=0.1, K_cross=Kc)


def test_ridge_theory_beside_the_estimator():
    """Seed mean of RandomFeaturesRidge train/test MSE vs ridge_mse_theory on the same data (n = 256).

    The deterministic equivalent is exact as n, d -> infinity; at n = 256 with 6 draws the observed
    gap is a few percent (test_rf_ridge_theory.py checks the n-scaling on the pipeline); 10% bounds it.
    """
    from rmtbench.data import make_dataset

    n, d, gammas = 256, 512, [0.1]
    ds = make_dataset({"kind": "gmm", "p_over_n": 0.5, "mean_scale": 2.5}, n=n, n_test=n, seed=np.random.SeedSequence(4))
    X, X_test = ds.X.T, ds.X_test.T
    train, test = [], []
    for seed in range(6):
        model = RandomFeaturesRidge(activation="relu", width=d, gammas=gammas, random_state=seed).fit(X, ds.y)
        train.append(model.train_mse_[0])
        test.append(np.mean((ds.y_test - model.predict(X_test)) ** 2))
    theory = api.ridge_mse_theory(api.expected_kernel("relu", X), ds.y, d=d, gammas=gammas,
                                  K_cross=api.expected_kernel("relu", X, X_test), K_test_diag=api.expected_kernel_diag("relu", X_test),
                                  y_test=ds.y_test)
    assert abs(np.mean(train) / theory.train_mse[0] - 1) < 0.10, (np.mean(train), theory.train_mse)
    assert abs(np.mean(test) / theory.test_mse[0] - 1) < 0.10, (np.mean(test), theory.test_mse)


def test_results_provenance_keeps_plain_strings():
    import xarray as xr

    meta = api.results_provenance(xr.Dataset(attrs={"git_revision": "abc-dirty", "cells": json.dumps({"x": "y"}), "n": 3}))
    assert meta == {"git_revision": "abc-dirty", "cells": {"x": "y"}, "n": 3}


def test_deep_conjugate_kernels_wrap_the_recursion_and_the_finite_width_mean():
    """Rows are samples; without widths the infinite-width CKs, with widths plus the per-pair mean, both
    exactly as the column-oriented modules give them (tau0 from the mean squared norm by default)."""
    from rmtbench.theory.deep import exact_ck
    from rmtbench.theory.finite_width import finite_width_shifts

    X = np.random.default_rng(3).standard_normal((9, 20)) / np.sqrt(20)
    acts = ["relu", "tanh"]
    tau0 = float(np.sqrt(np.mean(np.sum(X * X, axis=1))))
    infinite = api.deep_conjugate_kernels(acts, X)
    finite = api.deep_conjugate_kernels(acts, X, widths=[30, 30])
    exact = exact_ck(X.T, acts, tau0=tau0)
    shifts = finite_width_shifts(X.T, acts, [30, 30], tau0=tau0)
    assert infinite.shape == (2, 9, 9)
    assert np.array_equal(infinite, np.stack(exact))
    assert np.array_equal(finite, np.stack(exact) + np.stack(shifts))
    assert np.array_equal(finite[0], infinite[0]) and not np.allclose(finite[1], infinite[1], rtol=1e-3)


def test_deep_conjugate_kernels_take_the_weight_law_per_layer():
    """A non-Gaussian law adds the module's kurtosis terms (κ = E w⁴ − 3 from the law): at finite width, and at
    infinite width the first layer's (d-independent) term only; one law per layer is accepted, a wrong count is not."""
    from rmtbench.theory.finite_width import finite_width_shifts

    X = np.random.default_rng(3).standard_normal((9, 20)) / np.sqrt(20)
    acts = ["relu", "tanh"]
    tau0 = float(np.sqrt(np.mean(np.sum(X * X, axis=1))))
    gaussian = api.deep_conjugate_kernels(acts, X, widths=[30, 30])
    ternary = api.deep_conjugate_kernels(acts, X, widths=[30, 30], weights="ternary-eps0.9")
    terms = [s - g for s, g in zip(finite_width_shifts(X.T, acts, [30, 30], tau0=tau0, kurtosis=7.0),
                                   finite_width_shifts(X.T, acts, [30, 30], tau0=tau0))]
    np.testing.assert_allclose(ternary - gaussian, np.stack(terms), rtol=1e-10, atol=1e-14)
    assert np.abs(terms[1]).max() > 1e-3
    infinite = api.deep_conjugate_kernels(acts, X)
    assert np.array_equal(api.deep_conjugate_kernels(acts, X, weights=["gaussian", {"law": "rademacher"}]), infinite)
    first = api.deep_conjugate_kernels(acts, X, weights=["rademacher", "gaussian"])
    assert not np.allclose(first[0], infinite[0], rtol=1e-3) and not np.allclose(first[1], infinite[1], rtol=1e-3)
    with pytest.raises(ValueError, match="one per layer"):
        api.deep_conjugate_kernels(acts, X, weights=["gaussian"] * 3)


def test_deep_conjugate_kernel_variances_wrap_the_first_order_covariance():
    """Rows are samples; the same numbers as the column-oriented module, with the first layer's weight law; all L
    widths are needed."""
    from rmtbench.theory.finite_width import finite_width_moments

    X = np.random.default_rng(4).standard_normal((7, 20)) / np.sqrt(20)
    acts = ["relu", "erf"]
    tau0 = float(np.sqrt(np.mean(np.sum(X * X, axis=1))))
    variances = api.deep_conjugate_kernel_variances(acts, X, widths=[30, 60])
    assert np.array_equal(variances, np.stack(finite_width_moments(X.T, acts, [30, 60], tau0=tau0).variances))
    assert variances.shape == (2, 7, 7) and (variances > 0).all()
    with pytest.raises(ValueError, match="needs 2 widths"):
        api.deep_conjugate_kernel_variances(acts, X, widths=[30])
    # the first layer's law moves both layers; the second's does not at this order
    moved = api.deep_conjugate_kernel_variances(acts, X, widths=[30, 60], weights=["ternary-eps0.9", "gaussian"])
    np.testing.assert_allclose(moved, np.stack(finite_width_moments(X.T, acts, [30, 60], tau0=tau0, kurtosis=[7.0, 0.0]).variances),
                               rtol=1e-9)
    assert (np.abs(moved / variances - 1).max(axis=(1, 2)) > 0.01).all()
    assert np.array_equal(api.deep_conjugate_kernel_variances(acts, X, widths=[30, 60], weights=["gaussian", "rademacher"]),
                          variances)


def test_deep_neural_tangent_kernels_wrap_the_recursion_and_the_finite_width_mean():
    """Rows are samples; without widths the infinite-width NTKs of every layer, with widths plus the per-pair
    NTK mean, exactly as the column-oriented modules give them; the first layer's mean is exact."""
    from rmtbench.theory.deep import exact_ntk
    from rmtbench.theory.finite_width_ntk import finite_width_ntk_shifts

    X = np.random.default_rng(3).standard_normal((9, 20)) / np.sqrt(20)
    acts = ["relu", "tanh"]
    tau0 = float(np.sqrt(np.mean(np.sum(X * X, axis=1))))
    infinite = api.deep_neural_tangent_kernels(acts, X)
    finite = api.deep_neural_tangent_kernels(acts, X, widths=[30, 30])
    assert infinite.shape == (2, 9, 9)
    assert np.array_equal(infinite, np.stack(exact_ntk(X.T, acts, tau0=tau0)))
    np.testing.assert_allclose(finite - infinite, np.stack(finite_width_ntk_shifts(X.T, acts, [30, 30], tau0=tau0)),
                               rtol=1e-12, atol=1e-12)
    assert np.array_equal(finite[0], infinite[0]) and not np.allclose(finite[1], infinite[1], rtol=1e-3)
    for widths in (None, [30, 30]):
        with pytest.raises(ValueError, match="sign has no pointwise derivative"):
            api.deep_neural_tangent_kernels(["relu", "sign"], X, widths=widths)
    # a weight law adds the module's kurtosis terms: at finite width, and its first layer's at infinite width
    ternary = api.deep_neural_tangent_kernels(acts, X, widths=[30, 30], weights="ternary-eps0.9")
    np.testing.assert_allclose(ternary - infinite, np.stack(finite_width_ntk_shifts(X.T, acts, [30, 30], tau0=tau0,
                                                                                   kurtosis=7.0)), rtol=1e-12, atol=1e-12)
    first = api.deep_neural_tangent_kernels(acts, X, weights=["ternary-eps0.9", "gaussian"])
    assert not np.allclose(first[0], infinite[0], rtol=1e-3) and np.isfinite(first).all()


def test_deep_neural_tangent_kernel_variances_wrap_the_module():
    """Rows are samples; the per-entry NTK variance of every layer exactly as the column-oriented module gives it,
    symmetric, positive on the diagonal; all L widths are needed, and an activation with a jump is refused."""
    from rmtbench.theory.finite_width_ntk import finite_width_ntk_variances

    X = np.random.default_rng(3).standard_normal((9, 20)) / np.sqrt(20)
    acts = ["relu", "tanh"]
    tau0 = float(np.sqrt(np.mean(np.sum(X * X, axis=1))))
    V = api.deep_neural_tangent_kernel_variances(acts, X, widths=[30, 60])
    assert V.shape == (2, 9, 9)
    np.testing.assert_allclose(V, np.stack(finite_width_ntk_variances(X.T, acts, [30, 60], tau0=tau0)), rtol=1e-12)
    assert np.allclose(V, V.transpose(0, 2, 1)) and (np.diagonal(V, axis1=1, axis2=2) > 0).all()
    ternary = api.deep_neural_tangent_kernel_variances(acts, X, widths=[30, 60], weights=["ternary-eps0.9", "gaussian"])
    np.testing.assert_allclose(ternary, np.stack(finite_width_ntk_variances(X.T, acts, [30, 60], tau0=tau0,
                                                                            kurtosis=[7.0, 0.0])), rtol=1e-12)
    assert np.abs(ternary - V).max() > 0.01 * np.abs(V).max()  # the first layer's law is not ignored
    with pytest.raises(ValueError, match="2 widths"):
        api.deep_neural_tangent_kernel_variances(acts, X, widths=[30])
    with pytest.raises(ValueError, match="sign has no pointwise derivative"):
        api.deep_neural_tangent_kernel_variances(["relu", "sign"], X, widths=[30, 30])
