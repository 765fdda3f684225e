"""Empirical spectra (rmtbench.spectra) and the spectral side of rf_ridge against the LLC18 limiting law.

Each helper is checked against a direct computation (resolvent by linear solves, scipy's KS test); the
Gram-spectrum check compares eigenvalues of G = Phi^T Phi / n drawn on Dask with the density obtained
by Stieltjes inversion of the deterministic equivalent of the same data's expected kernel, which
never sees the draws. KS tolerances scale like n^(-1/2) with the pooled sample size.
"""
import math

import numpy as np
import pytest
import scipy.stats

from conftest import small_config
from rmtbench.config import load_sweep
from rmtbench.experiments.base import RunContext
from rmtbench.gather import stack_cells
from rmtbench.spectra import (
    atom_count, bulk_ks, draws, empirical_cdf, empirical_stieltjes, gram_density_window, spectral_histogram, split_spectrum,
    stieltjes_distance,
)
from rmtbench.theory.laws import marchenko_pastur_density


def test_empirical_stieltjes_is_the_normalised_resolvent_trace():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((40, 25))
    M = A.T @ A / 40
    z = np.array([0.3 + 0.1j, -1.0 + 0j, 2.0 - 0.5j])
    direct = [np.trace(np.linalg.inv(M - zz * np.eye(25))) / 25 for zz in z]
    np.testing.assert_allclose(empirical_stieltjes(np.linalg.eigvalsh(M), z), direct, rtol=1e-12)
    # (seed, eig) with NaN padding: each draw uses its own finite eigenvalues.
    padded = np.full((2, 30), np.nan)
    padded[0, :25] = np.linalg.eigvalsh(M)
    out = empirical_stieltjes(padded, z)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[0], direct, rtol=1e-12)
    assert np.isnan(out[1]).all()
    assert stieltjes_distance(padded[:1], z, direct)[0] < 1e-12


def test_split_and_bulk_ks_leave_out_atom_and_outliers():
    rng = np.random.default_rng(2)
    draws_ = []
    for _ in range(3):
        bulk = rng.uniform(1.0, 2.0, 500)
        draws_.append(np.concatenate([np.full(300, 0.5) + 1e-3 * rng.standard_normal(300), bulk, [50.0, 60.0]]))
    eigs = np.array(draws_)
    parts = split_spectrum(eigs[0], atom_count=300, outlier_count=2)
    assert parts.atom.size == 300 and parts.bulk.size == 500 and parts.outliers.tolist() == [50.0, 60.0]
    uniform = lambda x: np.clip(np.asarray(x) - 1.0, 0.0, 1.0)  # noqa: E731
    ks = bulk_ks(eigs, uniform, atom_count=300, outlier_count=2)
    pooled = np.concatenate([np.sort(d)[300:-2] for d in eigs])
    assert ks == pytest.approx(scipy.stats.kstest(pooled, "uniform", args=(1.0, 1.0)).statistic, abs=1e-12)
    assert ks < 1.63 / math.sqrt(pooled.size)  # 1% critical value of the KS test
    # Without handling the atom the same sample is far from the law (pitfall P21).
    assert bulk_ks(eigs, uniform, outlier_count=2) > 0.3
    with pytest.raises(ValueError):
        split_spectrum(eigs[0], atom_count=800, outlier_count=3)
    assert atom_count(1024, 0.5) == 512


def test_histogram_cdf_and_draws():
    eigs = np.array([[0.1, 0.4, np.nan], [0.2, 0.9, 0.6]])
    assert [d.tolist() for d in draws(eigs)] == [[0.1, 0.4], [0.2, 0.6, 0.9]]
    heights, edges = spectral_histogram(eigs, bins=5, range=(0.0, 1.0))
    assert np.sum(heights * np.diff(edges)) == pytest.approx(1.0)
    heights, edges = spectral_histogram(eigs, bins=5, range=(0.0, 1.0), normalise_by=10)
    assert np.sum(heights * np.diff(edges)) == pytest.approx(0.5)
    assert empirical_cdf(eigs)([0.0, 0.4, 1.0]).tolist() == [0.0, 0.6, 1.0]


@pytest.mark.parametrize("d", [100, 25])
def test_gram_density_window_reduces_to_marchenko_pastur(d):
    # K = I_n: Phi^T Phi / d is a Wishart matrix, MP of ratio n/d (atom 1 - d/n when d < n).
    n = 50
    law = gram_density_window(np.ones(n), d=d, n=n, points=400, divide_by=d)
    c = n / d
    mass = min(1.0, 1.0 / c)
    np.testing.assert_allclose(law.density, marchenko_pastur_density(law.x, ratio=c), atol=2e-3 * law.density.max() + 1e-6)
    assert law.atom_mass == pytest.approx(max(0.0, 1 - d / n))
    assert np.trapezoid(law.density, law.x) == pytest.approx(mass, rel=0.01)
    assert law.window[1] >= (1 + math.sqrt(c)) ** 2


def _rf_spectrum(tmp_path, client, *, n, seeds):
    config = small_config()
    exp = config["experiments"][0]
    exp["grid"].update({"activation": ["relu"], "n": [n], "d_over_n": [0.5, 2.0]})
    exp.update({"seeds": seeds, "gamma": [0.1], "n_test": 16})
    config["datasets"]["g"] = {"kind": "gmm", "p_over_n": 0.5, "mean_scale": 2.5, "cov_shift": [0, 4]}
    plan = load_sweep(config).experiments["rf"]
    ctx = RunContext(data_dir=tmp_path, client=client, block_rows=2048)
    sims = [plan.kind.simulate(cell, ctx) for cell in plan.cells]
    theories = {key: plan.kind.theory(cells, ctx) for key, cells in plan.theory_groups().items()}
    gathered = stack_cells(plan.kind, plan.cells, sims, theories)
    table = plan.kind.compare(gathered)
    return gathered, plan, table


def test_rf_ridge_gram_spectrum_matches_limiting_law(tmp_path, local_client):
    n, seeds = 192, 3
    gathered, plan, table = _rf_spectrum(tmp_path, local_client, n=n, seeds=seeds)
    ks = table[table.quantity == "spectrum_ks"].set_index("d_over_n")["distance"]
    assert len(ks) == 2
    # Pooled bulk of seeds * min(d, n) eigenvalues; the eigenvalues of one draw are rigid (far less random than an
    # i.i.d. sample), so 1/sqrt(pooled size) is a generous bound (measured: 0.029 and 0.014 at n = 192).
    for ratio, value in ks.items():
        assert value <= 1.0 / math.sqrt(seeds * min(ratio, 1.0) * n), (ratio, value)
    # The resolvent trace at distance eta ~ 2% of the bulk from the axis fluctuates like 1/(n eta): tolerance C/n
    # (measured max over z: 0.041 and 0.049 at n = 192, 0.05 and 0.089 at n = 128).
    stieltjes = table[table.quantity == "stieltjes"]
    assert (stieltjes["distance"] < 16.0 / n).all(), stieltjes
    # The store keeps the empirical eigenvalues and the theory on its grids.
    for name in ("eigenvalues", "gram_density", "gram_density_x", "gram_atom_mass", "stieltjes_theory_real"):
        assert name in gathered
    assert float(gathered["gram_atom_mass"].sel(d_over_n=0.5).squeeze()) == pytest.approx(0.5)
    paths = plan.kind.plot(gathered, tmp_path / "fig")
    assert any(p.name.startswith("spectrum-g-relu-gaussian-n192") for p in paths)
    assert any(p.name.startswith("double_descent-") for p in paths)


@pytest.mark.slow
def test_rf_ridge_gram_spectrum_at_n1024(tmp_path, local_client):
    """Issue 3 acceptance: n = 1024, d/n = 2, relu on gmm: KS(empirical, theoretical density) <= 0.03."""
    _, _, table = _rf_spectrum(tmp_path, local_client, n=1024, seeds=4)
    rows = table[table.quantity.isin(["spectrum_ks", "stieltjes"])]
    print(rows[["quantity", "d_over_n", "distance", "sem", "note"]].to_string())
    ks = rows[(rows.quantity == "spectrum_ks")].set_index("d_over_n")["distance"]
    assert ks[2.0] <= 0.03
    assert ks[0.5] <= 0.03
