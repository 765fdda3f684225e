"""The footprint kind: memory against accuracy of Gaussian RF, ternary RF (AZC22), Nyström and LP-RFF.

Theory (LLC18 with the expected kernel, computed from the data alone) against simulation (drawn
features); tolerances shrink with n. The ternary RF's match to the Gaussian RF is checked where it
holds (N >> n) and its loss measured where it does not (N = 2n), against the loss LLC18 predicts.
"""
import json

import numpy as np
import pytest
import yaml

from rmtbench.config import ConfigError, load_sweep
from rmtbench.experiments.base import RunContext
from rmtbench.experiments.footprint import _best_gamma
from rmtbench.gather import stack_cells

GMM2 = {"kind": "gmm", "p_over_n": 0.5, "mean_scale": 2.5, "cov_shift": [0, 4]}


def _config(*, n, widths, seeds=2, gamma=(1.0, 0.3), maps=None, n_test=None, **options):
    experiment = {"name": "fp", "kind": "footprint", "grid": {"dataset": ["g"], "n": [n], "n_features": list(widths)},
                  "seeds": seeds, "gamma": list(gamma), "n_test": n_test or n, **options}
    if maps is not None:
        experiment["feature_maps"] = list(maps)
    return {"sweep": "unit", "seed": 11, "datasets": {"g": GMM2}, "experiments": [experiment]}


def _run(config, tmp_path):
    sweep = load_sweep(config)
    plan = sweep.experiments["fp"]
    ctx = RunContext(data_dir=tmp_path, client=None, block_rows=1024)
    sims = [plan.kind.simulate(cell, ctx) for cell in plan.cells]
    theories = {key: plan.kind.theory(cells, ctx) for key, cells in plan.theory_groups().items()}
    gathered = stack_cells(plan.kind, plan.cells, sims, theories)
    return plan, gathered, plan.kind.compare(gathered)


def test_small_sweep_all_methods(tmp_path):
    plan, gathered, table = _run(_config(n=96, widths=[64, 96, 192], ternary_kernel_theory=False), tmp_path)
    assert len(plan.cells) == 3 and len(plan.theory_groups()) == 1  # one theory for every N
    sub = gathered.sel(dataset="g", n=96)
    assert list(sub["feature_map"].values) == ["gaussian_rf", "ternary_rf", "nystroem", "lp_rff-b1", "lp_rff-b8"]
    test = sub["test_mse"]
    assert np.isfinite(test.sel(n_features=192).drop_sel(feature_map="nystroem")).all()
    assert np.isnan(test.sel(feature_map="nystroem", n_features=192)).all()  # N > n landmarks: not defined
    assert np.isfinite(test.sel(feature_map="nystroem", n_features=64)).all()
    # Nyström on all n training points is kernel ridge regression with K: the theory's N -> infinity limit
    # (computed independently, from the eigendecomposition of K)
    np.testing.assert_allclose(test.sel(feature_map="nystroem", n_features=96).values,
                               np.broadcast_to(sub["test_mse_kernel_limit"].sel(n_features=96).values, (2, 2)), rtol=1e-6)
    shifted = sub["test_mse_shifted"]
    delta = float(sub["delta_alpha0"].max())
    assert 0.1 < delta < 0.25  # ReLU at tau ~ 1: the binary-like member, formula sheet sec. 4.5
    assert np.isfinite(shifted.sel(feature_map="ternary_rf", gamma=1.0)).all()
    assert np.isnan(shifted.drop_sel(feature_map="ternary_rf")).all()
    # memory: measured, and the ternary W at eps = 0.9 at most 1/20 of the float64 W (issue 4 acceptance)
    bits = sub["projection_bits"].max("seed")
    p = int(sub["p"].max())
    np.testing.assert_array_equal(bits.sel(feature_map="gaussian_rf").values, 64 * p * np.array([64, 96, 192]))
    assert (bits.sel(feature_map="ternary_rf") <= bits.sel(feature_map="gaussian_rf") / 20).all()
    np.testing.assert_array_equal(sub["training_feature_bits"].sel(feature_map="lp_rff-b1").values, 96 * np.array([64, 96, 192]))
    assert {"test_mse", "test_mse_shifted", "ternary_vs_gaussian:test_mse"} <= set(table["quantity"])
    paths = plan.kind.plot(gathered, tmp_path / "figures")
    assert sorted(p.name for p in paths) == ["footprint-g-n96.png", "footprint_ridge-g-n96.png"]
    captions = json.loads((tmp_path / "figures" / "captions.json").read_text())
    assert all(len(captions[p.name]) > 300 for p in paths)


def test_cli_round_trip(tmp_path, monkeypatch):
    """Every verb of ``python -m rmtbench`` on a tiny footprint sweep, in-process, results under the project."""
    from rmtbench.cli import main

    config = _config(n=64, widths=[32, 128], seeds=1, maps=["gaussian_rf", "ternary_rf", "nystroem", "lp_rff-b2"],
                     ternary_kernel_theory=False)
    config["results"] = "results"
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    sweep = load_sweep(config, project_dir=tmp_path)
    plan = sweep.experiments["fp"]
    common = ["--sweep", "sweep.yaml", "--experiment", "fp"]
    for cell in plan.cells:
        assert main(["simulate", *common, "--cell", cell.id, "--out", str(sweep.cell_store("fp", cell.id))]) == 0
    for key in plan.theory_groups():
        assert main(["theory", *common, "--key", key, "--out", str(sweep.theory_store("fp", key))]) == 0
    assert main(["gather", *common, "--out", "results/unit/fp.zarr"]) == 0
    assert main(["compare", *common, "--store", "results/unit/fp.zarr", "--out", "results/unit/tables/fp.csv"]) == 0
    assert main(["plot", *common, "--store", "results/unit/fp.zarr", "--out", "results/unit/figures"]) == 0
    assert "LLC18 with K (Gaussian RF)" in (tmp_path / "results/unit/tables/fp.csv").read_text()
    assert len(list((tmp_path / "results/unit/figures").glob("*.png"))) == 2


def test_config_checks():
    config = _config(n=64, widths=[32], activation="cos")
    with pytest.raises(ConfigError, match="ternary_rf cannot be matched"):
        load_sweep(config)
    # job verbs read the sweep file the workflow wrote after this check passed: they skip it
    assert load_sweep(config, kind_checks=False).experiments["fp"].cells
    config["experiments"][0]["feature_maps"] = ["gaussian_rf", "nystroem"]
    load_sweep(config)  # without ternary_rf an even activation is fine
    config["experiments"][0]["feature_maps"] = ["lp_rff-b32"]
    with pytest.raises(ConfigError):
        load_sweep(config)


def _acceptance(tmp_path, n, seeds):
    config = _config(n=n, widths=[2 * n, 16 * n], seeds=seeds, gamma=[1.0, 0.3, 0.1, 0.03],
                     maps=["gaussian_rf", "ternary_rf"], eps=0.9)
    _, gathered, table = _run(config, tmp_path)
    print(table[["quantity", "method", "n_features", "gamma", "mean", "sem", "theory", "rel_error"]].to_string())
    sub = gathered.sel(dataset="g", n=n)
    return sub, table


def _worst(table, quantity, reference, *, slack):
    """Largest |relative error| beyond ``slack`` standard errors of the seed mean."""
    rows = table[(table.quantity == quantity) & table.reference.str.startswith(reference)]
    assert len(rows) > 0
    excess = (rows.rel_error.abs() - slack * rows["sem"] / rows.theory).clip(lower=0)
    return float(excess.max())


def _best_ratio(sub, width):
    """(ternary / Gaussian) of the test MSE at the best gamma of the grid, empirical and LLC18-predicted."""
    g_mean, _, _ = _best_gamma(sub, "gaussian_rf")
    t_mean, _, _ = _best_gamma(sub, "ternary_rf")
    k = list(sub["n_features"].values).index(width)
    theory_g = float(sub["test_mse_theory"].sel(n_features=width).min())
    theory_t = float(sub["test_mse_theory_azc22"].sel(n_features=width).min())
    return t_mean[k] / g_mean[k], theory_t / theory_g


def _check_acceptance(sub, table, n, *, gauss_tol, azc_tol, near_tol, gap_tol):
    # Gaussian RF against LLC18 (3 standard errors of slack for the seed noise, P20)
    assert _worst(table, "test_mse", "LLC18 with K (Gaussian RF)", slack=3) <= gauss_tol
    # ternary RF against AZC22's prediction, LLC18 with K + delta_alpha0 I; finite (1 - eps) p makes
    # the pre-activations of sparse W non-Gaussian (P8), so this tolerance is wider and shrinks with p = n/2
    assert _worst(table, "test_mse", "LLC18 with K + delta_alpha0 I", slack=3) <= azc_tol
    near, near_theory = _best_ratio(sub, 16 * n)
    moderate, moderate_theory = _best_ratio(sub, 2 * n)
    print(f"n={n}: best-gamma ternary/Gaussian test MSE at N=16n {near:.4f} (LLC18 {near_theory:.4f}), "
          f"at N=2n {moderate:.4f} (LLC18 {moderate_theory:.4f})")
    assert abs(near - 1.0) <= near_tol  # AZC22's "no performance loss" holds for N >> n ...
    assert abs(moderate - moderate_theory) <= gap_tol  # ... and the loss at N = 2n is the one LLC18 predicts
    assert moderate_theory > 1.08


def test_ternary_against_gaussian_rf_on_gmm(tmp_path):
    sub, table = _acceptance(tmp_path, n=256, seeds=3)
    # measured (root seed 11): |rel| Gaussian vs LLC18 <= 4.0 %, ternary vs AZC22 <= 6.0 % (the ternary does better
    # than predicted at p = 128, ~13 non-zeros per row of W); best-gamma ratio 0.978 at N = 16n (LLC18 1.038) and
    # 1.141 at N = 2n (LLC18 1.165). Another root seed gave 0.935 and 1.047: at n = 256 the ratio is noisy.
    _check_acceptance(sub, table, 256, gauss_tol=0.04, azc_tol=0.10, near_tol=0.10, gap_tol=0.10)


@pytest.mark.slow
def test_ternary_against_gaussian_rf_on_gmm_n512(tmp_path):
    sub, table = _acceptance(tmp_path, n=512, seeds=3)
    # measured (root seed 11): |rel| Gaussian vs LLC18 <= 3.2 % (1.0 % beyond 3 s.e.), ternary vs AZC22 <= 1.8 %;
    # best-gamma ratio 1.012 at N = 16n (LLC18 1.032) and 1.103 at N = 2n (LLC18 1.141)
    _check_acceptance(sub, table, 512, gauss_tol=0.02, azc_tol=0.03, near_tol=0.05, gap_tol=0.05)


def test_weight_kurtosis_variant_is_computed_on_delocalised_data_only(tmp_path):
    from rmtbench.experiments.footprint import _kurtosis_spectrum

    plan = load_sweep(_config(n=256, widths=[64, 512], ternary_kernel_theory=True)).experiments["fp"]  # p = 128
    (key, cells), = plan.theory_groups().items()
    theory = plan.kind.theory(cells, RunContext(data_dir=tmp_path))
    with_term, without = theory["test_mse_theory_ternary_k4"].values, theory["test_mse_theory_ternary"].values
    assert np.isfinite(with_term).all() and not np.array_equal(with_term, without)
    assert "not_computed" not in theory["test_mse_theory_ternary_k4"].attrs

    one_hot = np.eye(8)  # one non-zero coordinate per sample: the first-order expansion does not apply
    kernels = (np.eye(4), np.zeros((4, 4)), np.ones(4))
    why = _kurtosis_spectrum("relu", one_hot[:, :4], one_hot[:, 4:], np.ones(4), np.ones(4), kernels, tau=1.0, eps=0.9)
    assert isinstance(why, str) and "too localised" in why
