"""Synthetic data sets (gmm, sphere), the registry, and the GMM statistics."""

from __future__ import annotations

import json
import math

import jsonschema
import numpy as np
import pytest

from rmtbench.data import (
    Dataset,
    dataset_kinds,
    dataset_schema,
    gmm_class_counts,
    gmm_parameters,
    gmm_statistics,
    make_dataset,
    sphere_teacher,
)

SEED = np.random.SeedSequence(20240601)


def _arrays(ds: Dataset) -> list[np.ndarray]:
    return [ds.X, ds.y, ds.X_test, ds.y_test, ds.labels, ds.labels_test]


# ----------------------------------------------------------------- registry


def test_kinds_and_schemas_are_complete() -> None:
    assert {"gmm", "sphere", "digits", "mnist_subset", "mnist", "fashion_mnist", "cifar10", "adult"} <= set(
        dataset_kinds()
    )
    for kind in dataset_kinds():
        schema = dataset_schema(kind)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False
        for key, prop in schema["properties"].items():
            assert prop.get("description"), (kind, key)
            assert "default" in prop, (kind, key)


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "gmm"},  # neither p nor p_over_n
        {"kind": "gmm", "p": 10, "p_over_n": 0.5},  # both
        {"kind": "gmm", "p": 10, "colour": "red"},  # unknown key
        {"kind": "gmm", "p": 10, "cov_shift": [0.0]},  # wrong length for K = 2
        {"kind": "gmm", "p": 10, "proportions": [0.5, 0.6]},  # not summing to 1
        {"kind": "nope"},
    ],
)
def test_bad_specs_are_refused(spec: dict) -> None:
    with pytest.raises(ValueError):
        make_dataset(spec, n=20, n_test=5, seed=SEED)


# --------------------------------------------------------------------- gmm


def test_gmm_shapes_dtypes_and_targets() -> None:
    ds = make_dataset({"kind": "gmm", "p_over_n": 0.5}, n=64, n_test=16, seed=SEED)
    assert ds.X.shape == (32, 64) and ds.X_test.shape == (32, 16)
    assert ds.X.dtype == ds.y.dtype == np.float64
    assert ds.labels.dtype.kind == "i"
    np.testing.assert_array_equal(ds.y, np.where(ds.labels == 1, 1.0, -1.0))
    assert ds.meta["p"] == 32 and ds.meta["n"] == 64 and ds.meta["n_test"] == 16
    assert ds.meta["spec"]["p_over_n"] == 0.5  # the user's spec, so it rebuilds at any n
    assert json.loads(json.dumps(ds.meta))["tau"] == ds.meta["tau"]

    three = make_dataset({"kind": "gmm", "p": 8, "classes": 3, "cov_shift": [0, 0, 0]}, n=30, n_test=0, seed=SEED)
    np.testing.assert_array_equal(three.y, np.where(three.labels == 0, 1.0, -1.0))
    assert three.X_test.shape == (8, 0)


def test_gmm_reproducible_bit_for_bit() -> None:
    spec = {"kind": "gmm", "p": 40}
    state = SEED.state
    a = make_dataset(spec, n=50, n_test=20, seed=SEED)
    b = make_dataset(spec, n=50, n_test=20, seed=np.random.SeedSequence(20240601))
    assert SEED.state == state  # the seed is not consumed
    for x, z in zip(_arrays(a), _arrays(b)):
        assert x.tobytes() == z.tobytes()
    c = make_dataset(spec, n=50, n_test=20, seed=np.random.SeedSequence(7))
    assert a.X.tobytes() != c.X.tobytes()
    # the training part does not depend on n_test
    d = make_dataset(spec, n=50, n_test=3, seed=SEED)
    assert a.X.tobytes() == d.X.tobytes() and a.labels.tobytes() == d.labels.tobytes()


def test_gmm_proportions_are_exact_and_shuffled() -> None:
    spec = {"kind": "gmm", "p": 16, "classes": 3, "cov_shift": [0, 1, 2], "proportions": [0.25, 0.5, 0.25]}
    ds = make_dataset(spec, n=101, n_test=10, seed=SEED)
    expected = [round(0.25 * 101), round(0.5 * 101), 101 - round(0.25 * 101) - round(0.5 * 101)]
    assert np.bincount(ds.labels, minlength=3).tolist() == expected == ds.meta["class_counts"]
    assert np.bincount(ds.labels_test, minlength=3).tolist() == gmm_class_counts([0.25, 0.5, 0.25], 10).tolist()
    assert np.any(np.diff(ds.labels) < 0), "labels should be shuffled, not sorted"


def test_gmm_moments_match_the_spec() -> None:
    p, n = 200, 2000
    ds = make_dataset({"kind": "gmm", "p": p, "cov_shift": [0, 4]}, n=n, n_test=0, seed=SEED)
    Z = math.sqrt(p) * ds.X  # sqrt(p) x_i ~ N(mu_a, C_a)
    for a, var in ((0, 1.0), (1, 1.0 + 4 / math.sqrt(p))):
        cls = Z[:, ds.labels == a]
        mean = cls.mean(axis=1)
        assert abs(mean[a] - 2.5) < 0.15  # mu_a = 2.5 e_a
        assert np.abs(np.delete(mean, a)).max() < 0.2
        assert abs(cls.var(axis=1).mean() - var) < 0.02
        sq = np.sum(ds.X[:, ds.labels == a] ** 2, axis=0).mean()
        assert abs(sq - (var + 2.5**2 / p)) < 0.02  # (sd 0.004) E||x||^2 = tr C_a/p + ||mu_a||^2/p


def test_gmm_covariance_profile() -> None:
    p, n = 100, 1200
    spec = {
        "kind": "gmm",
        "p": p,
        "cov_shift": [0, 0],
        "cov_profile": [None, {"type": "linspace", "start": 1.6, "stop": 0.4}],
        "mean_scale": 0.0,
    }
    M, C = gmm_parameters(spec, p=p)
    np.testing.assert_allclose(C[1], np.linspace(1.6, 0.4, p))
    np.testing.assert_allclose(C[0], 1.0)
    assert not M.any()
    ds = make_dataset(spec, n=n, n_test=0, seed=SEED)
    var = (p * ds.X[:, ds.labels == 1] ** 2).mean(axis=1)
    # first and last 20 coordinates: mean variance 1.52 and 0.48
    assert abs(var[:20].mean() - np.linspace(1.6, 0.4, p)[:20].mean()) < 0.05
    assert abs(var[-20:].mean() - np.linspace(1.6, 0.4, p)[-20:].mean()) < 0.05


def test_gmm_per_class_mean_scales() -> None:
    """mean_scale as K numbers: mu_a = s_a e_a; the sample means of sqrt(p) x follow them."""
    p, n = 64, 3000
    spec = {"kind": "gmm", "p": p, "classes": 3, "mean_scale": [0.0, 2.0, -3.0], "cov_shift": [0, 0, 0]}
    M, _ = gmm_parameters(spec, p=p)
    np.testing.assert_array_equal(M[:3, :3], np.diag([0.0, 2.0, -3.0]))
    assert not M[3:].any()
    ds = make_dataset(spec, n=n, n_test=0, seed=SEED)
    for a, s in enumerate([0.0, 2.0, -3.0]):
        mean = np.sqrt(p) * ds.X[:, ds.labels == a].mean(axis=1)
        assert abs(mean[a] - s) < 0.1 and np.abs(np.delete(mean, a)).max() < 0.15
    with pytest.raises(ValueError, match="mean_scale has 2 entries"):
        gmm_parameters({**spec, "mean_scale": [1.0, 2.0]}, p=p)


def test_gmm_statistics_exact_from_spec() -> None:
    p, n = 64, 300
    spec = {
        "kind": "gmm",
        "p": p,
        "cov_shift": [1.0, 4.0],
        "cov_profile": [{"type": "linspace", "start": 1.6, "stop": 0.4}, None],
        "proportions": [0.4, 0.6],
    }
    ds = make_dataset(spec, n=n, n_test=0, seed=SEED)
    st = gmm_statistics(ds.X, ds.labels, spec=ds.meta["spec"])
    d0 = (1 + 1 / 8) * np.linspace(1.6, 0.4, p)
    d1 = np.full(p, 1 + 4 / 8)
    n_a = np.array([120, 180])
    tau2 = (120 * d0.mean() + 180 * d1.mean()) / n
    assert st.source == "spec"
    assert st.n_a.tolist() == n_a.tolist()
    np.testing.assert_array_equal(st.J.sum(axis=0), n_a)
    assert st.tau == pytest.approx(math.sqrt(tau2), rel=1e-12)
    assert st.tau == pytest.approx(ds.meta["tau"], rel=1e-12)
    np.testing.assert_allclose(st.trC, [d0.mean(), d1.mean()], rtol=1e-12)
    np.testing.assert_allclose(st.t, [(d0.sum() - p * tau2) / 8, (d1.sum() - p * tau2) / 8], rtol=1e-10)
    np.testing.assert_allclose(st.T, [[d0 @ d0 / p, d0 @ d1 / p], [d1 @ d0 / p, d1 @ d1 / p]], rtol=1e-12)
    mu = np.zeros((p, 2))
    mu[0, 0] = mu[1, 1] = 2.5
    omega = ds.X - mu[:, ds.labels] / 8
    np.testing.assert_allclose(st.psi, np.sum(omega**2, 0) - st.trC[ds.labels], atol=1e-12)
    np.testing.assert_allclose(st.eps_data, np.sum(ds.X**2, 0) - tau2, atol=1e-12)
    # psi is zero-mean; ||x_i||^2 - tau^2 = J t/sqrt(p) + psi + ||mu_a||^2/p + 2 mu_a^T omega_i/sqrt(p)
    assert abs(st.psi.mean()) < 3 * st.psi.std() / math.sqrt(n)
    mean_part = 2.5**2 / p + 2 * np.sum(mu[:, ds.labels] * omega, 0) / 8
    np.testing.assert_allclose(st.J @ st.t / 8 + st.psi + mean_part, st.eps_data, atol=1e-12)


def test_gmm_statistics_estimated_close_to_exact() -> None:
    p, n = 100, 1600
    spec = {"kind": "gmm", "p": p, "cov_shift": [0.0, 6.0]}
    ds = make_dataset(spec, n=n, n_test=0, seed=SEED)
    exact = gmm_statistics(ds.X, ds.labels, spec=spec)
    est = gmm_statistics(ds.X, ds.labels)
    assert est.source == "estimated"
    # tau^2 estimated as mean ||x_i||^2 includes ||mu_a||^2/p
    assert est.tau**2 == pytest.approx(exact.tau**2 + 2.5**2 / p, abs=0.01)
    assert abs(est.eps_data.mean()) < 1e-12
    np.testing.assert_allclose(est.trC, exact.trC, atol=0.01)
    np.testing.assert_allclose(est.t, exact.t, atol=0.1)
    np.testing.assert_allclose(est.T, exact.T, rtol=0.05)
    assert np.corrcoef(est.psi, exact.psi)[0, 1] > 0.95
    # the Gram-block path (p > n) gives the same T as the scatter path
    small = gmm_statistics(ds.X[:, :80], ds.labels[:80])
    from rmtbench.data.gmm_stats import _pair_sums

    omega = ds.X[:, :80] - (ds.X[:, :80] @ small.J / small.n_a)[:, ds.labels[:80]]
    direct = np.array(
        [
            [np.sum((omega[:, ds.labels[:80] == a].T @ omega[:, ds.labels[:80] == b]) ** 2) for b in range(2)]
            for a in range(2)
        ]
    ) - np.diag([np.sum(np.sum(omega[:, ds.labels[:80] == a] ** 2, 0) ** 2) for a in range(2)])
    np.testing.assert_allclose(_pair_sums(omega, ds.labels[:80], 2), direct, rtol=1e-10)


# ------------------------------------------------------------------ sphere


def test_sphere_norms_are_exact() -> None:
    ds = make_dataset({"kind": "sphere", "p": 30, "radius": 2.0}, n=40, n_test=10, seed=SEED)
    np.testing.assert_allclose(np.linalg.norm(ds.X, axis=0), 2.0, rtol=1e-13)
    np.testing.assert_allclose(np.linalg.norm(ds.X_test, axis=0), 2.0, rtol=1e-13)
    assert not ds.labels.any() and not ds.labels_test.any()
    json.dumps(ds.meta)


def test_sphere_teacher_is_reproducible() -> None:
    p = 50
    spec = {"kind": "sphere", "p": p, "radius": 3.0, "noise": 0.0}
    ds = make_dataset(spec, n=400, n_test=50, seed=SEED)
    beta = sphere_teacher(p, SEED)
    assert np.linalg.norm(beta) == pytest.approx(1.0)
    np.testing.assert_allclose(ds.y, math.sqrt(p) * beta @ ds.X / 3.0, atol=1e-12)
    np.testing.assert_allclose(ds.y_test, math.sqrt(p) * beta @ ds.X_test / 3.0, atol=1e-12)
    assert ds.y.var() == pytest.approx(1.0, abs=0.2)  # sqrt(p) x^T beta / r has unit variance
    noisy = make_dataset({**spec, "noise": 0.5}, n=400, n_test=50, seed=SEED)
    np.testing.assert_array_equal(noisy.X_test, ds.X_test)  # the noise draws do not shift the inputs
    assert (noisy.y - ds.y).std() == pytest.approx(0.5, rel=0.15)
    again = make_dataset({**spec, "noise": 0.5}, n=400, n_test=50, seed=SEED)
    assert again.y.tobytes() == noisy.y.tobytes()
