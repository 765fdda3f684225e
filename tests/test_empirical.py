"""The Dask Gram path: correct against plain numpy, and bitwise independent of blocks and workers."""
import numpy as np
import pytest

from conftest import small_config
from rmtbench.config import load_sweep
from rmtbench.empirical import RandomFeatureMap, gram_graph, symmetric_from_upper
from rmtbench.experiments.base import RunContext
from rmtbench.parallel import compute, dask_client
from rmtbench.reduction import stripes
from rmtbench.weights import WeightLaw


def _problem(d=1300, p=20, n=50, n_test=30, law="gaussian", activation="relu"):
    rng = np.random.default_rng(0)
    X, X_test = rng.standard_normal((p, n)) / np.sqrt(p), rng.standard_normal((p, n_test)) / np.sqrt(p)
    return RandomFeatureMap(activation, WeightLaw(law), d, 11, ("test",)), X, X_test


def test_gram_matches_the_features_formed_whole():
    fmap, X, X_test = _problem()
    upper, cross = compute(None, gram_graph(fmap, X, X_test))[0]
    Phi, Phi_test = fmap.features(X), fmap.features(X_test)
    assert Phi.shape == (1300, 50)
    np.testing.assert_allclose(symmetric_from_upper(upper), Phi.T @ Phi, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(cross, Phi.T @ Phi_test, rtol=1e-12, atol=1e-10)


def test_a_wide_gram_over_several_stripes_matches_the_features_formed_whole():
    fmap, X, X_test = _problem(d=17000)  # 34 units: stripes of 16, 16 and 2 units
    assert len(stripes(fmap.units)) == 3
    upper, cross = compute(None, gram_graph(fmap, X, X_test))[0]
    Phi, Phi_test = fmap.features(X), fmap.features(X_test)
    np.testing.assert_allclose(np.triu(upper), np.triu(Phi.T @ Phi), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(cross, Phi.T @ Phi_test, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("law", ["gaussian", "rademacher"])
def test_gram_is_bitwise_identical_for_any_worker_count_lookahead_and_block(law, local_client):
    fmap, X, X_test = _problem(d=17000, law=law)
    reference = compute(None, gram_graph(fmap, X, X_test))[0]
    variants = [compute(local_client, gram_graph(fmap, X, X_test))[0],
                compute(local_client, gram_graph(fmap, X, X_test, in_flight=1))[0],
                compute(None, gram_graph(fmap, X, X_test, in_flight=5))[0],
                # feature blocks of 4, 3 and 16 units (the last stripe, 2 units, ends a block early)
                compute(local_client, gram_graph(fmap, X, X_test, block_rows=4 * 512))[0],
                compute(None, gram_graph(fmap, X, X_test, block_rows=3 * 512))[0],
                compute(local_client, gram_graph(fmap, X, X_test, block_rows=16 * 512))[0]]
    with dask_client({"mode": "local", "workers": 1}, threads=2) as one_worker_two_threads:
        variants.append(compute(one_worker_two_threads, gram_graph(fmap, X, X_test))[0])
    for upper, cross in variants:
        assert np.array_equal(upper, reference[0])
        assert np.array_equal(cross, reference[1])


def test_rf_ridge_cell_is_bitwise_identical_across_worker_counts_and_settings(tmp_path, local_client):
    config = small_config()
    config["experiments"][0]["grid"]["d_over_n"] = [270.0]  # d = 17280 features: three stripes
    sweep = load_sweep(config)
    plan = sweep.experiments["rf"]
    cell = plan.cells[0]
    results = []
    with dask_client({"mode": "local", "workers": 1}, threads=1) as one_worker:
        results.append(plan.kind.simulate(cell, RunContext(data_dir=tmp_path, client=one_worker, block_rows=512)))
    results.append(plan.kind.simulate(cell, RunContext(data_dir=tmp_path, client=local_client, block_rows=2048)))
    results.append(plan.kind.simulate(cell, RunContext(data_dir=tmp_path, client=None, block_rows=1024)))
    for other in results[1:]:
        for name in ("train_mse", "test_mse", "eigenvalues"):
            assert np.array_equal(results[0][name].values, other[name].values), name
    assert np.isfinite(results[0]["test_mse"].values).all()


def test_a_cell_on_an_existing_scheduler_by_address_gives_the_same_bits(tmp_path, local_client):
    """dask.mode 'address': the job connects to a running scheduler (here the session's LocalCluster)."""
    config = small_config()
    config["experiments"][0]["grid"]["d_over_n"] = [20.0]  # 1280 features: three units
    plan = load_sweep(config).experiments["rf"]
    cell = plan.cells[0]
    reference = plan.kind.simulate(cell, RunContext(data_dir=tmp_path, client=None, block_rows=512))
    address = local_client.scheduler.address
    with dask_client({"mode": "address", "address": address}, threads=1) as client:
        assert client.scheduler.address == address and len(client.scheduler_info()["workers"]) == 2
        result = plan.kind.simulate(cell, RunContext(data_dir=tmp_path, client=client, block_rows=1024))
    for name in ("train_mse", "test_mse", "eigenvalues"):
        assert np.array_equal(reference[name].values, result[name].values), name
