"""The scikit-learn estimators: estimator checks, the pipeline's draws, and the ridge path.

Every ridge quantity is checked against an independent computation: the n x n eigendecomposition of
rmtbench.ridge, explicit leave-one-out refits, and direct linear solves.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer
from sklearn.utils.estimator_checks import check_estimator

from conftest import small_config
from rmtbench.empirical import RandomFeatureMap
from rmtbench.estimators import DEFAULT_KEY, RandomFeatures, RandomFeaturesRidge
from rmtbench.weights import weight_law



@pytest.fixture(autouse=True)
def _one_blas_thread():
    """One BLAS thread, as the pipeline's workers use: on a shared 2-core machine, threaded LAPACK
    spins against other jobs (a 256 x 256 eigh went from 0.05 s to 4 s). Results do not depend on it."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield

def _data(n=40, p=10, n_test=25, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_test, p)) / np.sqrt(p)
    y = np.sign(X[:, 0]) + 0.3 * rng.standard_normal(n + n_test)
    return X[:n], y[:n], X[n:], y[n:]


@pytest.mark.parametrize("estimator", [RandomFeatures(width=64), RandomFeaturesRidge(width=128)], ids=lambda e: type(e).__name__)
def test_check_estimator_passes(estimator):
    results = check_estimator(estimator, on_fail=None, on_skip=None)
    failed = [(r["check_name"], repr(r["exception"])) for r in results if r["status"] == "failed"]
    assert not failed, failed
    assert sum(r["status"] == "passed" for r in results) >= 40


@pytest.mark.parametrize("weights", ["gaussian", "ternary-eps0.7", {"law": "student_t", "dof": 6}])
def test_int_seed_gives_the_pipelines_features(weights):
    """Same seed and key: bit-identical to RandomFeatureMap, across panel boundaries (width 300)."""
    X = _data()[0]
    key = ("rf", "abc123", "w", 2)
    rf = RandomFeatures(activation="erf", weights=weights, width=300, random_state=11, key=key).fit(X)
    fmap = RandomFeatureMap("erf", weight_law(weights), 300, 11, key)
    assert np.array_equal(rf.weights_, fmap.weights(0, 300, X.shape[1]))
    assert np.array_equal(rf.transform(X), fmap.features(X.T).T)
    # default key, and a narrower map is the first rows of a wider one (panels)
    narrow = RandomFeatures(activation="erf", weights=weights, width=100, random_state=11).fit(X)
    wide = RandomFeatures(activation="erf", weights=weights, width=300, random_state=11).fit(X)
    assert np.array_equal(narrow.weights_, wide.weights_[:100])
    assert np.array_equal(narrow.weights_, RandomFeatureMap("erf", weight_law(weights), 100, 11, DEFAULT_KEY).weights(0, 100, X.shape[1]))
    assert not np.array_equal(narrow.weights_, RandomFeatures(width=100, weights=weights, random_state=12).fit(X).weights_)


def test_generator_and_none_random_state():
    X = _data()[0]
    a = RandomFeatures(width=50, random_state=np.random.default_rng(3)).fit(X).weights_
    b = RandomFeatures(width=50, random_state=np.random.default_rng(3)).fit(X).weights_
    assert np.array_equal(a, b)
    assert np.isclose(a.var(), 1.0, atol=0.15)  # unit-variance entries, no 1/sqrt(p)
    c = RandomFeatures(width=50).fit(X).weights_
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="random_state"):
        RandomFeatures(random_state="seven").fit(X)
    with pytest.raises(ValueError, match="width"):
        RandomFeatures(width=0).fit(X)
    with pytest.raises(ValueError, match="unknown activation"):
        RandomFeatures(activation="nope").fit(X)


def test_usable_in_a_pipeline():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 5)) * 3.0
    y = np.sin(X[:, 0] / np.linalg.norm(X, axis=1) * 3)
    model = make_pipeline(Normalizer(), RandomFeatures(activation="tanh", width=200, random_state=0), Ridge(alpha=1e-3)).fit(X[:150], y[:150])
    assert model.score(X[150:], y[150:]) > 0.8
    names = make_pipeline(RandomFeatures(width=3, random_state=0)).fit(X).get_feature_names_out()
    assert list(names) == ["randomfeatures0", "randomfeatures1", "randomfeatures2"]


@pytest.mark.parametrize("width", [20, 90])  # d < n and d > n
def test_ridge_path_matches_rmtbench_ridge(width):
    """Train/test MSE over the gamma grid equal rmtbench.ridge (eigh of the n x n Gram) on the same features."""
    from rmtbench.ridge import ridge_mse_from_features

    X, y, X_test, y_test = _data()
    gammas = [1e-3, 1e-2, 0.1, 1.0]
    model = RandomFeaturesRidge(width=width, gammas=gammas, random_state=4).fit(X, y)
    Phi, Phi_test = model.features_.transform(X), model.features_.transform(X_test)
    ref = ridge_mse_from_features(Phi.T, y, Phi_test.T, y_test, gammas)
    np.testing.assert_allclose(model.train_mse_, ref.train_mse, rtol=1e-8)
    test_mse = np.mean((y_test[None] - model.predict_path(X_test)) ** 2, axis=1)
    np.testing.assert_allclose(test_mse, ref.test_mse, rtol=1e-8)
    assert model.gram_eigenvalues_.shape == (min(width, len(y)),)


@pytest.mark.parametrize("width,fit_intercept", [(15, False), (70, False), (12, True), (70, True)])
def test_leave_one_out_matches_refits(width, fit_intercept):
    """cv_mse_ equals n explicit refits without sample i (re-centred when there is an intercept)."""
    X, y, _, _ = _data(n=30)
    y = y + 1.5  # a mean for the intercept to find
    gammas = np.array([1e-2, 0.3])
    model = RandomFeaturesRidge(width=width, gammas=gammas, random_state=2, fit_intercept=fit_intercept).fit(X, y)
    Phi = model.features_.transform(X)
    n = len(y)
    loo = np.zeros_like(gammas)
    for k, gamma in enumerate(gammas):
        for i in range(n):
            keep = np.arange(n) != i
            F, t = Phi[keep], y[keep]
            shift_f, shift_t = (F.mean(0), t.mean()) if fit_intercept else (0.0, 0.0)
            F, t = F - shift_f, t - shift_t
            # sum_j (t_j - F_j b)^2 + n gamma ||b||^2: the penalty of the full sample, as RidgeCV keeps alpha
            beta = scipy.linalg.solve(F.T @ F / n + gamma * np.eye(width), F.T @ t / n, assume_a="pos")
            loo[k] += (y[i] - shift_t - (Phi[i] - shift_f) @ beta) ** 2 / n
    np.testing.assert_allclose(model.cv_mse_, loo, rtol=1e-8)
    assert model.gamma_ == gammas[np.argmin(model.cv_mse_)]


def test_validation_split_selects_and_refits():
    X, y, _, _ = _data(n=60)
    gammas = [1e-4, 1e-2, 1.0, 100.0]
    model = RandomFeaturesRidge(width=80, gammas=gammas, cv=0.25, random_state=5).fit(X, y)
    again = RandomFeaturesRidge(width=80, gammas=gammas, cv=0.25, random_state=5).fit(X, y)
    np.testing.assert_array_equal(model.cv_mse_, again.cv_mse_)  # the split is drawn from the seed
    assert model.gamma_ == gammas[int(np.argmin(model.cv_mse_))]
    assert model.gamma_ != 100.0  # a huge ridge predicts ~0: never the best on signal
    Phi = model.features_.transform(X)
    beta = scipy.linalg.solve(Phi.T @ Phi / len(y) + model.gamma_ * np.eye(80), Phi.T @ y / len(y), assume_a="pos")
    np.testing.assert_allclose(model.coef_, beta, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(model.predict(X), Phi @ beta, rtol=1e-7, atol=1e-10)
    with pytest.raises(ValueError, match="cv"):
        RandomFeaturesRidge(cv=1.5).fit(X, y)
    with pytest.raises(ValueError, match="gammas"):
        RandomFeaturesRidge(gammas=[0.1, -1.0]).fit(X, y)


def test_multi_output_equals_separate_fits():
    X, y, X_test, _ = _data()
    Y = np.column_stack([y, -2 * y + 1])
    both = RandomFeaturesRidge(width=30, gammas=[0.05], random_state=1, fit_intercept=True).fit(X, Y)
    for j in range(2):
        one = RandomFeaturesRidge(width=30, gammas=[0.05], random_state=1, fit_intercept=True).fit(X, Y[:, j])
        np.testing.assert_allclose(both.coef_[:, j], one.coef_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(both.predict(X_test)[:, j], one.predict(X_test), rtol=1e-10, atol=1e-12)
    assert both.predict_path(X_test).shape == (1, len(X_test), 2)


def test_reproduces_an_rf_ridge_cell(tmp_path):
    """The estimator on a cell's data, seed and key gives the pipeline's train/test MSE per draw."""
    from rmtbench.config import load_sweep
    from rmtbench.experiments.base import RunContext
    from rmtbench.experiments.common import cell_data, data_key

    config = small_config(dask={"mode": "synchronous"})
    config["experiments"][0]["gamma"] = [0.1, 0.01]
    sweep = load_sweep(config, project_dir=tmp_path)
    plan = sweep.experiments["rf"]
    cell = plan.cells[1]  # d/n = 2
    ctx = RunContext(data_dir=tmp_path, client=None, block_rows=1024)
    simulated = plan.kind.simulate(cell, ctx)
    data = cell_data(cell, ctx)
    law = weight_law(cell["weights"])
    for seed in range(int(cell["seeds"])):
        model = RandomFeaturesRidge(activation=cell["activation"], weights=cell["weights"], width=int(simulated["d"]),
                                    gammas=cell["gamma"], random_state=cell.root_seed,
                                    key=("rf", data_key(cell), law.label, seed)).fit(data.X.T, data.y)
        np.testing.assert_allclose(model.train_mse_, simulated["train_mse"].sel(seed=seed).values, rtol=1e-8)
        test = np.mean((data.y_test[None] - model.predict_path(data.X_test.T)) ** 2, axis=1)
        np.testing.assert_allclose(test, simulated["test_mse"].sel(seed=seed).values, rtol=1e-8)
