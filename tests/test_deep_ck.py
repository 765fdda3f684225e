"""The deep_ck experiment kind: through its Python API and the CLI, and the issue's acceptance at n = 1024.

Acceptance (issue 5; formula sheet rows e): at n = 1024, p = n/2, two-class gmm, the Gu+22 linear
equivalent against the exact infinite-width kernel has relative spectral error at most 0.05 for
relu-relu and 0.06 for three relu layers (CK), 0.08 for relu-relu (NTK), each smaller than at n = 256.
"""
import json

import numpy as np
import pytest
import yaml

from rmtbench.config import load_sweep
from rmtbench.experiments.base import RunContext

GMM = {"kind": "gmm", "p_over_n": 0.5, "mean_scale": 2.5, "cov_shift": [0, 4]}


def _config(*, activations, n, d_over_n=(1.0,), seeds=2, weights=("gaussian",), **options):
    return {
        "sweep": "unit", "seed": 11, "results": "results", "dask": {"mode": "synchronous"},
        "datasets": {"g": GMM},
        "experiments": [{"name": "deep", "kind": "deep_ck", "seeds": seeds, "ratio_depth": 4,
                         "ratio_activations": ["relu", "abs", "tanh"], **options,
                         "grid": {"activations": activations, "weights": list(weights), "dataset": ["g"],
                                  "n": list(n), "d_over_n": list(d_over_n)}}],
    }


def _run(config, tmp_path, *, simulate=True):
    plan = load_sweep(config).experiments["deep"]
    ctx = RunContext(data_dir=tmp_path)
    sims = [plan.kind.simulate(c, ctx) if simulate else None for c in plan.cells]
    theories = {k: plan.kind.theory(cells, ctx) for k, cells in plan.theory_groups().items()}
    return plan, plan.kind.combine(plan.cells, sims, theories)


def test_activation_lists_are_an_axis_and_one_theory_serves_all_widths_and_laws():
    """Per activation list: one theory for every width, one for Gaussian weights and one shared by the other laws
    (its kurtosis responses are per unit κ); without the per-pair terms, one for all laws."""
    activations = [["relu", "relu"], ["tanh", {"family": "leaky_relu", "a": 1, "b": 0.1}, "abs"]]
    config = _config(activations=activations, n=[32], d_over_n=[1.0, 2.0], weights=["gaussian", "rademacher", "ternary-eps0.5"])
    plan = load_sweep(config).experiments["deep"]
    assert len(plan.cells) == 12
    assert plan.cells[-1]["activations"] == ["tanh", "leaky_relu(a=1.0,b=0.1)", "abs"]
    assert len(plan.theory_groups()) == 4
    config = _config(activations=activations, n=[32], d_over_n=[1.0, 2.0], weights=["gaussian", "rademacher"],
                     per_pair_correction=False)
    assert len(load_sweep(config).experiments["deep"].theory_groups()) == 2


def test_small_sweep_end_to_end(tmp_path):
    config = _config(activations=[["relu", "relu"], ["relu", "erf", "abs"]], n=[32, 64], d_over_n=[1.0, 2.0])
    plan, gathered = _run(config, tmp_path)
    assert set(gathered["activations"].values) == {"relu+relu", "relu+erf+abs"}
    assert gathered.sizes["layer"] == 3 and gathered.sizes["eig"] == 64
    # layer 3 of the two-layer net is absent (NaN), never zero
    assert np.isnan(gathered["ck_equivalent_error"].sel(activations="relu+relu", layer=3)).all()
    # theory quantities do not depend on the width; the rank-one term does (∝ 1/d) and vanishes at layer 1
    eq = gathered["ck_equivalent_error"].sel(activations="relu+relu", layer=2, weights="gaussian", dataset="g")
    assert np.allclose(eq.sel(d_over_n=1.0), eq.sel(d_over_n=2.0))
    r = gathered["rank_one"].sel(activations="relu+relu", weights="gaussian", dataset="g", n=64)
    assert float(r.sel(layer=1, d_over_n=1.0)) == 0.0
    assert float(r.sel(layer=2, d_over_n=1.0)) == pytest.approx(2 * float(r.sel(layer=2, d_over_n=2.0)), rel=1e-12)
    table = plan.kind.compare(gathered)
    quantities = set(table["quantity"])
    assert {"ck_equivalent", "ck_equivalent_model", "ntk_equivalent", "ck_empirical", "ck_empirical_corrected",
            "ck_empirical_per_pair", "ntk_empirical", "ck_ones_excess", "ck_ones_excess_per_pair", "ck_variance_per_pair",
            "ck_fluctuation_per_pair"} <= quantities
    # the per-pair term, like the rank-one term, is 0 at layer 1 and O(1/d) after it
    pair = gathered["ck_ones_predicted_per_pair"].sel(activations="relu+erf+abs", weights="gaussian", dataset="g", n=64)
    assert float(pair.sel(layer=1, d_over_n=1.0)) == 0.0
    assert float(pair.sel(layer=2, d_over_n=1.0)) == pytest.approx(2 * float(pair.sel(layer=2, d_over_n=2.0)), rel=1e-5)
    # the first-order variance is ∝ 1/d at every layer when all widths scale together
    fluct = gathered["ck_fluctuation_predicted"].sel(activations="relu+erf+abs", weights="gaussian", dataset="g", n=64)
    for layer in (1, 2, 3):
        assert float(fluct.sel(layer=layer, d_over_n=1.0)) == pytest.approx(2 * float(fluct.sel(layer=layer, d_over_n=2.0)),
                                                                         rel=1e-5)
    assert gathered["ck_fluctuation"].sizes["draw_pair"] == 1
    # one pair, two draws: no standard error worth a z-score (MIN_Z_COUNT)
    assert table.loc[table.quantity.isin(["ck_fluctuation_per_pair", "ck_ones_excess"]), "z_score"].isna().all()
    assert table.loc[table.quantity == "ck_variance_per_pair", "mc_floor"].isna().all()  # two draws: no floor
    assert table.loc[table.quantity == "ck_empirical", "mc_floor"].notna().all()
    assert table.loc[table.quantity == "ck_equivalent", "rate"].notna().all()  # two sizes: a fitted rate
    paths = plan.kind.plot(gathered, tmp_path / "figures")
    names = sorted(p.name for p in paths)
    assert "deep_ck_alpha_ratios.png" in names and any(n.startswith("deep_ck_spectra-") for n in names)
    assert any(n.startswith("deep_ck_errors-") for n in names)
    captions = json.loads((tmp_path / "figures" / "captions.json").read_text())
    assert all(len(captions[p.name]) > 100 for p in paths)
    spectra = [captions[p.name] for p in paths if p.name.startswith("deep_ck_spectra-")]
    assert all("GMM statistics (from the gmm spec)" in c for c in spectra)
    assert gathered["stat_estimated"].max() == 0.0 and np.isfinite(gathered["stat_T"]).all()


def test_the_per_pair_term_can_be_switched_off(tmp_path):
    """``per_pair_correction: false`` skips the per-pair term (its n x n arrays) and its rows; the rest stays."""
    config = _config(activations=[["relu", "relu"]], n=[32], per_pair_correction=False)
    plan, gathered = _run(config, tmp_path)
    assert "ck_error_empirical_per_pair" not in gathered and "ck_error_empirical_corrected" in gathered
    quantities = set(plan.kind.compare(gathered)["quantity"])
    assert "ck_empirical_corrected" in quantities
    assert not {"ck_empirical_per_pair", "ck_ones_excess_per_pair", "ck_variance_per_pair", "ck_fluctuation_per_pair"} & quantities
    on = load_sweep(_config(activations=[["relu", "relu"]], n=[32])).experiments["deep"]
    assert set(on.theory_groups()) != set(plan.theory_groups())  # the switch is part of the theory key


def test_collinear_samples_leave_the_per_pair_rows_out_and_say_why(tmp_path):
    """Class means 100 noise widths apart make same-class samples nearly parallel (1 − ρ ~ 3e-4): the
    per-pair expansion does not hold there, so its rows are absent and the theory store says why."""
    config = _config(activations=[["relu", "relu"]], n=[32])
    config["datasets"]["g"] = {**GMM, "mean_scale": 100}
    plan, gathered = _run(config, tmp_path)
    assert int(gathered["per_pair_collinear_pairs"].max()) > 0
    pair = gathered["ck_error_empirical_per_pair"]
    assert np.isnan(pair.sel(layer=2)).all() and np.isfinite(pair.sel(layer=1)).all()  # layer 1 is exact for any pair
    table = plan.kind.compare(gathered)
    layer2 = set(table.loc[table.layer == 2, "quantity"])
    assert "ck_empirical_corrected" in layer2 and not {"ck_empirical_per_pair", "ck_ones_excess_per_pair"} & layer2
    # the variance of layer 1 is exact for every pair: its rows stay, the later layers' go
    assert {"ck_variance_per_pair", "ck_fluctuation_per_pair"} <= set(table.loc[table.layer == 1, "quantity"])
    assert not {"ck_variance_per_pair", "ck_fluctuation_per_pair"} & layer2
    theory = plan.kind.theory(next(iter(plan.theory_groups().values())), RunContext(data_dir=tmp_path))
    assert "nearly collinear" in theory["ck_shift_per_pair"].attrs["not_computed"]
    assert np.isnan(theory["ck_shift_per_pair"].sel(layer=2)).all()  # collinear in the data: nothing after layer 1


def test_non_gaussian_weights_add_their_kurtosis_terms_to_the_per_pair_mean(tmp_path):
    """Per-layer laws (Rademacher, then sparse ternary: κ = −2, 7) share one theory store of responses per unit
    kurtosis; each cell's per-pair mean adds Σ_k κ_k U_{k→ℓ} and its variance κ_1 R_ℓ with its own κ, as the theory
    module computes them directly. A law without a fourth moment (Student t, 4 degrees of freedom) gets no per-pair
    prediction."""
    from rmtbench.experiments.common import cell_data
    from rmtbench.theory import deep
    from rmtbench.theory.finite_width import finite_width_moments, finite_width_shifts

    config = _config(activations=[["relu", "erf"]], n=[32], weights=["gaussian", ["rademacher", "ternary-eps0.9"], "student_t-dof4"])
    plan, gathered = _run(config, tmp_path)
    assert len(plan.theory_groups()) == 2
    kappa = gathered["weight_kurtosis"].sel(dataset="g", n=32, d_over_n=1.0, activations="relu+erf")
    assert kappa.sel(weights="rademacher+ternary-eps0.9").values.tolist() == pytest.approx([-2.0, 7.0])
    assert np.isinf(kappa.sel(weights="student_t-dof4")).all() and (kappa.sel(weights="gaussian") == 0).all()
    ones = gathered["ck_ones_predicted_per_pair"].sel(dataset="g", n=32, d_over_n=1.0, activations="relu+erf")
    cell = plan.cells[0]
    data = cell_data(cell, RunContext(data_dir=tmp_path))
    tau0 = deep.data_statistics(data).tau
    shifts = [finite_width_shifts(data.X, ["relu", "erf"], [32, 32], tau0=tau0, kurtosis=k) for k in (0.0, [-2.0, 7.0])]
    added = [(laws - gaussian).sum() / 32 for gaussian, laws in zip(*shifts)]
    assert abs(added[0]) > 1e-3 and abs(added[1]) > 1e-2  # both layers move: the check below has teeth
    np.testing.assert_allclose(ones.sel(weights="rademacher+ternary-eps0.9") - ones.sel(weights="gaussian"), added,
                               rtol=1e-4)
    assert ones.sel(weights="student_t-dof4").isnull().all()
    assert gathered["ck_error_empirical_per_pair"].sel(weights="gaussian").notnull().all()
    # beside it, for non-Gaussian laws only, the mean as if the weights were Gaussian: what the term changes
    as_gaussian = gathered["ck_ones_predicted_per_pair_gaussian_law"].sel(dataset="g", n=32, d_over_n=1.0,
                                                                          activations="relu+erf")
    np.testing.assert_allclose(as_gaussian.sel(weights="rademacher+ternary-eps0.9"), ones.sel(weights="gaussian"), rtol=1e-12)
    table = plan.kind.compare(gathered)
    rows = table[table.quantity.isin(["ck_empirical_per_pair_gaussian_law", "ck_ones_excess_per_pair_gaussian_law"])]
    assert len(rows) == 8 and set(rows["weights"]) == {"rademacher+ternary-eps0.9", "student_t-dof4"}
    # the variance: the first layer's law (κ_1 = −2) moves every layer's, as the module computes it directly
    variances = [finite_width_moments(data.X, ["relu", "erf"], [32, 32], tau0=tau0, kurtosis=k).variances
                 for k in (0.0, [-2.0, 7.0])]
    added = [(laws - gaussian).sum() / 32 for gaussian, laws in zip(*variances)]
    fluctuation = gathered["ck_fluctuation_predicted"].sel(dataset="g", n=32, d_over_n=1.0, activations="relu+erf")
    assert all(abs(a) > 0.02 * float(fluctuation.sel(weights="gaussian", layer=layer))
               for a, layer in zip(added, (1, 2)))  # both layers move by more than 2%: the check below has teeth
    np.testing.assert_allclose(fluctuation.sel(weights="rademacher+ternary-eps0.9") - fluctuation.sel(weights="gaussian"),
                               added, rtol=1e-4)
    assert fluctuation.sel(weights="student_t-dof4").isnull().all()
    np.testing.assert_allclose(gathered["ck_fluctuation_predicted_gaussian_law"].sel(
        dataset="g", n=32, d_over_n=1.0, activations="relu+erf", weights="rademacher+ternary-eps0.9"),
        fluctuation.sel(weights="gaussian"), rtol=1e-12)
    rows = table[table.quantity.isin(["ck_variance_per_pair_gaussian_law", "ck_fluctuation_per_pair_gaussian_law"])]
    assert len(rows) == 8 and set(rows["weights"]) == {"rademacher+ternary-eps0.9", "student_t-dof4"}


def test_the_ntk_gets_its_per_pair_mean_with_the_kurtosis_terms(tmp_path):
    """The theory stores the last layer's E NTK − NTK∞ per width and, shared by the non-Gaussian laws, its responses
    per unit kurtosis; each cell's prediction is what rmtbench.theory.finite_width_ntk computes directly for its
    width and law (Rademacher: κ = −2), with the as-if-Gaussian rows beside it for other laws; the NTK's variance
    likewise (the first law's term from the stored responses per unit κ_1); a network with a jump (sign) has no NTK
    and no NTK rows."""
    from rmtbench.experiments.common import cell_data
    from rmtbench.theory import deep
    from rmtbench.theory.finite_width_ntk import finite_width_ntk_shifts, finite_width_ntk_variances

    config = _config(activations=[["relu", "erf"], ["relu", "sign"]], n=[32], d_over_n=[1.0, 2.0], seeds=4,
                     weights=["gaussian", "rademacher"])
    plan, gathered = _run(config, tmp_path)
    data = cell_data(plan.cells[0], RunContext(data_dir=tmp_path))
    tau0 = deep.data_statistics(data).tau
    where = {"dataset": "g", "n": 32, "activations": "relu+erf"}
    predicted = gathered["ntk_ones_predicted_per_pair"].sel(**where)
    for ratio in (1.0, 2.0):
        for law, kappa in (("gaussian", 0.0), ("rademacher", -2.0)):
            shift = finite_width_ntk_shifts(data.X, ["relu", "erf"], [32 * ratio] * 2, tau0=tau0, kurtosis=kappa)[-1]
            np.testing.assert_allclose(float(predicted.sel(d_over_n=ratio, weights=law)), shift.sum() / 32, rtol=1e-5)
        assert abs(predicted.sel(d_over_n=ratio, weights="gaussian")) > 1e-3  # the checks have teeth
        assert abs(predicted.sel(d_over_n=ratio, weights="rademacher") - predicted.sel(d_over_n=ratio, weights="gaussian")) > 1e-3
    np.testing.assert_allclose(gathered["ntk_ones_predicted_per_pair_gaussian_law"].sel(**where, weights="rademacher"),
                               predicted.sel(weights="gaussian"), rtol=1e-12)
    table = plan.kind.compare(gathered)
    ntk_rows = table[table.quantity.str.startswith("ntk_")]  # the equivalents per layer, the rest at the last
    assert set(ntk_rows["activations"]) == {"relu+erf"}
    counts = ntk_rows.groupby("quantity").size().to_dict()
    assert counts == {"ntk_equivalent": 8, "ntk_equivalent_model": 8, "ntk_empirical": 4, "ntk_ones_excess": 4,
                      "ntk_empirical_per_pair": 4, "ntk_ones_excess_per_pair": 4,
                      "ntk_empirical_per_pair_gaussian_law": 2, "ntk_ones_excess_per_pair_gaussian_law": 2,
                      "ntk_variance_per_pair": 4, "ntk_fluctuation_per_pair": 4,
                      "ntk_variance_per_pair_gaussian_law": 2, "ntk_fluctuation_per_pair_gaussian_law": 2}
    fluctuation = gathered["ntk_fluctuation_predicted"].sel(**where)
    as_gaussian = gathered["ntk_fluctuation_predicted_gaussian_law"].sel(**where)
    for ratio in (1.0, 2.0):
        widths = [32 * ratio] * 2
        variance = finite_width_ntk_variances(data.X, ["relu", "erf"], widths, tau0=tau0)[-1].sum() / 32
        moved = finite_width_ntk_variances(data.X, ["relu", "erf"], widths, tau0=tau0, kurtosis=-2.0)[-1].sum() / 32
        np.testing.assert_allclose(float(fluctuation.sel(d_over_n=ratio, weights="gaussian")), variance, rtol=1e-5)
        np.testing.assert_allclose(float(fluctuation.sel(d_over_n=ratio, weights="rademacher")), moved, rtol=1e-4)
        np.testing.assert_allclose(float(as_gaussian.sel(d_over_n=ratio, weights="rademacher")), variance, rtol=1e-5)
        assert abs(moved - variance) > 0.01 * variance  # the law's term is there: the checks have teeth
    assert as_gaussian.sel(weights="gaussian").isnull().all()
    z = ntk_rows.loc[ntk_rows.quantity == "ntk_ones_excess_per_pair", "z_score"]
    assert z.notnull().all()  # four draws: the shared z rule gives z


def test_fluctuation_rows_with_several_pairs_of_draws(tmp_path):
    """Eight draws make four pairs: the per-entry variance gets its floor, the total its z-score, relative error and
    count of pairs; for the CK of every layer and for the network's NTK."""
    config = _config(activations=[["relu", "relu"]], n=[32], seeds=8)
    plan, gathered = _run(config, tmp_path)
    table = plan.kind.compare(gathered)
    rows = table[table.quantity == "ck_fluctuation_per_pair"]
    assert len(rows) == 2 and rows[["mean", "sem", "theory", "z_score", "rel_error"]].notna().all().all()
    assert (rows["count"] == 4).all() and (table.loc[table.quantity == "ck_ones_excess", "count"] == 8).all()
    assert (rows["theory"] > 0).all()
    assert table.loc[table.quantity == "ck_variance_per_pair", "mc_floor"].notna().all()
    assert gathered["ck_fluctuation"].sizes["draw_pair"] == 4
    sim = plan.kind.simulate(plan.cells[0], RunContext(data_dir=tmp_path))
    assert sim["ck_entry_variance"].dtype == np.float32 and np.isfinite(sim["ck_variance_floor_norm"]).all()
    # the network's NTK: the same rows from the same draws (its per-entry variance includes the drawn read-out)
    ntk = table[table.quantity == "ntk_fluctuation_per_pair"]
    assert len(ntk) == 1 and ntk[["mean", "sem", "theory", "z_score", "rel_error"]].notna().all().all()
    assert table.loc[table.quantity == "ntk_variance_per_pair", "mc_floor"].notna().all()
    assert sim["ntk_entry_variance"].dtype == np.float32 and np.isfinite(float(sim["ntk_variance_floor_norm"]))
    assert sim["ntk_fluctuation"].sizes["draw_pair"] == 4
    paths = plan.kind.plot(gathered, tmp_path / "figures")
    assert any(p.name.startswith("deep_ck_fluctuations-") for p in paths)


def test_estimated_statistics_are_stored_and_shown(tmp_path):
    """Real data have no spec: the statistics the theory uses are estimated, kept in the store, and captioned."""
    spec_cfg = _config(activations=[["relu", "relu"]], n=[64], seeds=2)
    est_cfg = _config(activations=[["relu", "relu"]], n=[64], seeds=2, statistics="estimated")
    _, spec = _run(spec_cfg, tmp_path / "spec")
    plan, est = _run(est_cfg, tmp_path / "est")
    assert float(est["stat_estimated"].max()) == 1.0
    t_spec, t_est = spec["stat_t"].values.ravel(), est["stat_t"].values.ravel()
    assert np.isfinite(t_est).all() and not np.array_equal(t_spec, t_est)
    # same data: the estimates differ from the spec by sampling error only (t is O(1) here)
    assert np.max(np.abs(t_est - t_spec)) < 1.0
    paths = plan.kind.plot(est, tmp_path / "figures")
    captions = json.loads((tmp_path / "figures" / "captions.json").read_text())
    spectra = [captions[p.name] for p in paths if p.name.startswith("deep_ck_spectra-")]
    assert spectra and all("estimated from the data" in c and "tau_0 = " in c for c in spectra)


def test_cli_round_trip(tmp_path, monkeypatch):
    """Every verb of ``python -m rmtbench`` on a tiny sweep, in-process (one import instead of six)."""
    from rmtbench.cli import main

    config = _config(activations=[["relu", "relu"]], n=[40], seeds=2)
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    sweep = load_sweep(config, project_dir=tmp_path)
    plan = sweep.experiments["deep"]
    common = ["--sweep", "sweep.yaml", "--experiment", "deep"]
    for cell in plan.cells:
        assert main(["simulate", *common, "--cell", cell.id, "--out", str(sweep.cell_store("deep", cell.id))]) == 0
    for key in plan.theory_groups():
        assert main(["theory", *common, "--key", key, "--out", str(sweep.theory_store("deep", key))]) == 0
    assert main(["gather", *common, "--out", "results/unit/deep.zarr"]) == 0
    assert main(["compare", *common, "--store", "results/unit/deep.zarr", "--out", "results/unit/tables/deep.csv"]) == 0
    assert main(["plot", *common, "--store", "results/unit/deep.zarr", "--out", "results/unit/figures"]) == 0
    table = (tmp_path / "results/unit/tables/deep.csv").read_text()
    assert "ck_equivalent" in table and "ck_ones_excess" in table
    figures = sorted(p.name.split("-")[0] for p in (tmp_path / "results/unit/figures").glob("*.png"))
    assert figures == ["deep_ck_alpha_ratios.png", "deep_ck_errors", "deep_ck_fluctuations", "deep_ck_spectra"]


@pytest.mark.slow
def test_acceptance_linear_equivalent_at_n1024(tmp_path):
    """Theory step of the kind at n = 256 and 1024 (no simulation): the issue's thresholds, falling with n."""
    config = _config(activations=[["relu", "relu"], ["relu", "relu", "relu"]], n=[256, 1024])
    _, gathered = _run(config, tmp_path, simulate=False)
    cell = gathered.sel(weights="gaussian", dataset="g", d_over_n=1.0)
    rows = {}
    for acts, layer in (("relu+relu", 2), ("relu+relu+relu", 3)):
        for var in ("ck_equivalent_error", "ck_equivalent_error_model", "ntk_equivalent_error", "ntk_equivalent_error_model"):
            values = cell[var].sel(activations=acts, layer=layer).values
            rows[(acts, var)] = values
            print(f"{acts:15s} {var:28s} n=256: {values[0]:.4f}  n=1024: {values[1]:.4f}")
    assert rows[("relu+relu", "ck_equivalent_error")][1] <= 0.05
    assert rows[("relu+relu+relu", "ck_equivalent_error")][1] <= 0.06
    assert rows[("relu+relu", "ntk_equivalent_error")][1] <= 0.08
    for values in rows.values():
        assert values[1] < values[0]


def test_per_layer_widths_and_weight_laws(tmp_path):
    """Issue 5: widths and weight laws per layer. The stored seed-mean CK of every layer is the plain
    forward pass through layers of widths d_l = round(d/n * n * m_l) whose weights follow each layer's law."""
    import math

    from rmtbench.activations import get_activation
    from rmtbench.config import ConfigError
    from rmtbench.deepnet import centring_constants
    from rmtbench.experiments.common import cell_data, data_key
    from rmtbench.theory.deep import data_statistics, finite_width_correction, layer_coefficients
    from rmtbench.weights import weight_law, weight_rows

    acts, laws = ["relu", "tanh", "relu"], ["gaussian", "ternary-eps0.5", "rademacher"]
    config = _config(activations=[acts], n=[32], d_over_n=[2.0], weights=[laws], width_profile=[1.0, 2.0, 0.5])
    plan = load_sweep(config).experiments["deep"]
    cell = plan.cells[0]
    assert cell["weights"] == "gaussian+ternary-eps0.5+rademacher"
    ctx = RunContext(data_dir=tmp_path)
    sim = plan.kind.simulate(cell, ctx)
    assert sim["width"].values.tolist() == [64.0, 128.0, 32.0]

    data = cell_data(cell, ctx)
    tau0 = data_statistics(data, source=cell["statistics"]).tau
    shifts = centring_constants(acts, tau0=tau0)  # c_l = E phi_l(tau_{l-1} xi)
    expected = np.zeros((3, 32, 32))
    for seed in range(2):
        prev, fan_in = data.X, data.X.shape[0]
        for layer, (act, law, d) in enumerate(zip(acts, laws, [64, 128, 32]), start=1):
            W = weight_rows(weight_law(law), root_seed=cell.root_seed, key=("deep_ck", data_key(cell), cell["weights"], seed, "layer", layer),
                            start=0, stop=d, columns=fan_in)
            if law == "ternary-eps0.5":
                assert set(np.unique(np.round(W, 12))) == {-round(math.sqrt(2), 12), 0.0, round(math.sqrt(2), 12)}
            if law == "rademacher":
                assert set(np.unique(W)) == {-1.0, 1.0}
            prev = (get_activation(act).phi(W @ prev) - shifts[layer - 1]) / math.sqrt(d)
            expected[layer - 1] += prev.T @ prev / 2
            fan_in = d
    np.testing.assert_allclose(sim["ck"].values, expected, rtol=2e-6, atol=2e-6)  # stored as float32

    theory = plan.kind.theory([cell], ctx)
    coefs = layer_coefficients(acts, tau0=tau0)
    np.testing.assert_allclose(theory["rank_one"].sel(d_over_n=2.0).values, finite_width_correction(coefs, [64, 128, 32]), rtol=1e-12)

    for bad, key in ((dict(weights=[["gaussian", "rademacher"]]), "grid.weights"), (dict(width_profile=[1.0, 2.0]), "width_profile")):
        with pytest.raises(ConfigError, match=key):
            load_sweep(_config(activations=[acts], n=[32], **{"weights": [laws], **bad}))


def test_rates_of_relative_z_rows_use_only_resolved_errors():
    """A bias of 5/n at layer 2, resolved at both sizes, gives the rate -1; layer 1 sits within the noise, so it
    gets no rate (a slope fitted to noise means nothing); with fewer than MIN_Z_COUNT pairs there is no z and no rate."""
    import xarray as xr

    from rmtbench.experiments.deep_ck import ONES, error_table

    ns, pairs = np.array([64, 128]), 50
    noise = np.resize([-1.0, 1.0], pairs) * 1e-4  # the standard error is about 1.4e-5 of the mean
    bias = np.array([[1e-6, 5.0 / n] for n in ns])  # (n, layer): layer 1 within the noise, layer 2 at 5/n
    values = 1.0 + bias[None, :, :] + noise[:, None, None]
    gathered = xr.Dataset(
        {"ck_fluctuation": (("draw_pair", "n", "layer"), values),
         "ck_fluctuation_predicted": (("n", "layer"), np.ones((2, 2)))},
        coords={"draw_pair": np.arange(pairs), "n": ns, "layer": [1, 2]})
    table = error_table(gathered, ["n"], [], ones=ONES).set_index("layer")
    assert table.loc[2, "rate"].to_numpy() == pytest.approx([-1.0, -1.0], abs=1e-4)
    assert table.loc[1, "rate"].isna().all() and (table.loc[1, "z_score"].abs() < 3).all()
    few = error_table(gathered.isel(draw_pair=slice(0, 3)), ["n"], [], ones=ONES)
    assert few["z_score"].isna().all() and few["rate"].isna().all()
