"""The optional GPU path: its config error path, its logic on the CPU, and (with a CUDA device) its numbers.

The device code is written against an array module; with ``backend="numpy"`` the very same code runs on
the host, which is how its blocking, syrk accumulation, cross-Gram and ridge step are checked on
machines without a GPU. The CuPy run itself is skipped, with the reason, where no CUDA device is usable.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from rmtbench import gpu
from rmtbench.empirical import RandomFeatureMap, gram_graph, symmetric_from_upper
from rmtbench.parallel import compute
from rmtbench.ridge import ridge_mse
from rmtbench.weights import WeightLaw

CUDA, CUDA_WHY = gpu.cuda_status()


def _cell(n=80, n_test=40, p=24, d=1300, activation="erf", law="gaussian"):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((p, n)) / np.sqrt(p)
    X_test = rng.standard_normal((p, n_test)) / np.sqrt(p)
    y, y_test = np.sign(X[0] + 0.1), np.sign(X_test[0] + 0.1)
    return RandomFeatureMap(activation, WeightLaw(law), d, 9, ("gpu-test",)), X, X_test, y, y_test


def _cpu_reference(fmap, X, X_test, y, y_test, gammas):
    """What rf_ridge computes on the CPU path for one seed."""
    upper, cross = compute(None, gram_graph(fmap, X, X_test))[0]
    n = X.shape[1]
    lam, U = np.linalg.eigh(symmetric_from_upper(upper) / n)
    return symmetric_from_upper(upper), cross, lam, ridge_mse(lam, U, y, cross / n, y_test, gammas)


def test_device_setting_is_validated_and_names_the_option():
    assert gpu.check_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"compute\.device.*'tpu'.*cpu, cuda"):
        gpu.check_device("tpu")


def test_cuda_without_cupy_is_a_clear_error_naming_the_option(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy now raises ImportError, installed or not
    ok, why = gpu.cuda_status()
    assert not ok and "compute.device" in why
    with pytest.raises(gpu.DeviceUnavailable, match=r"config key 'compute\.device'.*CuPy.*compute\.device: cpu"):
        gpu.check_device("cuda")
    fmap, X, X_test, *_ = _cell()
    with pytest.raises(gpu.DeviceUnavailable, match="compute.device"):
        gpu.gram_products(fmap, X, X_test, backend="cuda")


@pytest.mark.parametrize("activation,law", [("erf", "gaussian"), ("relu", "rademacher"), ("sign", "gaussian")])
def test_device_code_on_the_host_matches_the_dask_path(activation, law):
    fmap, X, X_test, y, y_test = _cell(activation=activation, law=law)
    gammas = np.array([1.0, 0.1, 1e-2])
    G_ref, C_ref, lam_ref, mse_ref = _cpu_reference(fmap, X, X_test, y, y_test, gammas)
    for block_rows in (128, 640, 8192):  # blocks cut the panels differently: the same draws
        G, C = gpu.gram_products(fmap, X, X_test, backend="numpy", block_rows=block_rows)
        np.testing.assert_allclose(G, G_ref, rtol=1e-12, atol=1e-12 * np.abs(G_ref).max())
        np.testing.assert_allclose(C, C_ref, rtol=1e-12, atol=1e-12 * np.abs(C_ref).max())
    res = gpu.solve_seed(fmap, X, y, X_test, y_test, gammas, backend="numpy", block_rows=512)
    np.testing.assert_allclose(res.eigenvalues, lam_ref, rtol=0, atol=1e-12 * lam_ref.max())
    np.testing.assert_allclose(res.train_mse, mse_ref.train_mse, rtol=1e-10)
    np.testing.assert_allclose(res.test_mse, mse_ref.test_mse, rtol=1e-10)
    assert np.array_equal(res.ill_conditioned, mse_ref.ill_conditioned)
    with pytest.raises(ValueError, match="multiple of 128"):
        gpu.gram_products(fmap, X, X_test, backend="numpy", block_rows=100)


@pytest.mark.skipif(not CUDA, reason=f"no usable CUDA device: {CUDA_WHY}")
def test_cuda_path_agrees_with_the_cpu_path_to_1e_10():
    fmap, X, X_test, y, y_test = _cell(n=600, n_test=200, p=50, d=3000)
    gammas = np.array([1.0, 0.1, 1e-2])
    G_ref, C_ref, lam_ref, mse_ref = _cpu_reference(fmap, X, X_test, y, y_test, gammas)
    G, C = gpu.gram_products(fmap, X, X_test, backend="cuda", block_rows=1024)
    assert np.max(np.abs(G - G_ref)) <= 1e-10 * np.abs(G_ref).max()
    assert np.max(np.abs(C - C_ref)) <= 1e-10 * np.abs(C_ref).max()
    res = gpu.solve_seed(fmap, X, y, X_test, y_test, gammas, backend="cuda", block_rows=1024)
    assert np.max(np.abs(res.eigenvalues - lam_ref)) <= 1e-10 * lam_ref.max()
    np.testing.assert_allclose(res.train_mse, mse_ref.train_mse, rtol=1e-10)
    np.testing.assert_allclose(res.test_mse, mse_ref.test_mse, rtol=1e-10)
