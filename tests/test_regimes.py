"""The LLN/CLT regimes example of the seed slides: linearisations, exact expectations, simulation over n.

The theory is exact at every n (f_LLN ~ N(0, 1/n), f_CLT ~ N(0, 1)), so simulated means must agree
with it within their Monte-Carlo standard errors (|z| < 4.5 over ~30 comparisons), and the LLN error
must decay at the rate of its leading Taylor term, n^{-1/2}.
"""
import json
import math

import numpy as np
import pytest

from rmtbench.config import load_sweep
from rmtbench.experiments.base import RunContext
from rmtbench.experiments.regimes import gaussian_abs_expectation, linearizations
from rmtbench.gather import stack_cells


def _config(**options):
    block = {"name": "reg", "kind": "regimes", "grid": {"activation": ["tanh", "relu"], "n": [50, 200, 800]}, "draws": 3000,
             "sample_points": 200}
    block.update(options)
    return {"sweep": "unit", "seed": 11, "experiments": [block]}


def _gathered(tmp_path, **options):
    plan = load_sweep(_config(**options), project_dir=tmp_path).experiments["reg"]
    ctx = RunContext(data_dir=tmp_path)
    sims = [plan.kind.simulate(cell, ctx) for cell in plan.cells]
    theories = {key: plan.kind.theory(cells, ctx) for key, cells in plan.theory_groups().items()}
    return plan, stack_cells(plan.kind, plan.cells, sims, theories)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return _gathered(tmp_path_factory.mktemp("regimes"))


def test_slides_linearisations_of_tanh():
    lin = linearizations("tanh")
    t = np.linspace(-3, 3, 13)
    assert lin.phi0 == 0.0 and abs(lin.a0) < 1e-14
    np.testing.assert_allclose(lin.psi_lln(t), t**2 / 4, atol=1e-15)
    np.testing.assert_allclose(lin.psi_clt(t), t**2 - 1, atol=1e-14)
    relu = linearizations("relu")
    assert relu.a0 == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-12)  # E relu(ξ): psi_CLT matches it


def test_abs_expectation_against_closed_form_and_monte_carlo():
    assert gaussian_abs_expectation(lambda t: t, scale=0.3) == pytest.approx(0.3 * math.sqrt(2 / math.pi), rel=1e-12)
    # |t^2 - 1| changes sign at ±1: E|ξ² − 1| = 4 φ(1) (φ the standard normal density) = 0.9679...
    assert gaussian_abs_expectation(lambda t: t**2 - 1, scale=1.0) == pytest.approx(4 * math.exp(-0.5) / math.sqrt(2 * math.pi), rel=1e-12)
    lin = linearizations("tanh")
    xi = np.random.default_rng(0).standard_normal(400_000)
    g = np.abs(np.tanh(xi) - lin.psi_clt(xi))  # sign changes near ±1.3
    exact = gaussian_abs_expectation(lambda t: np.tanh(t) - lin.psi_clt(t), scale=1.0)
    assert abs(g.mean() - exact) < 4.5 * g.std() / math.sqrt(xi.size)


def test_simulation_matches_exact_expectations(result):
    plan, gathered = result
    table = plan.kind.compare(gathered)
    rows = table[table["theory"].notna() & table["n"].notna()]
    assert len(rows) == 2 * 3 * 6
    worst = rows.loc[rows["z_score"].abs().idxmax()]
    assert abs(worst["z_score"]) < 4.5, worst.to_dict()
    # CLT regime, the slides' eq. (6): equal in expectation ...
    gap = rows[rows.quantity == "clt_gap"]
    assert np.all(np.abs(gap["theory"]) < 1e-12)
    # ... while the samples stay O(1) apart at every n (it does not shrink)
    clt = rows[rows.quantity == "clt_abs_diff"]
    assert np.all(clt["mean"] > 0.5) and np.all(clt.groupby("activation")["theory"].agg(np.ptp) < 1e-12)


def test_lln_error_decays_at_rate_one_half_and_clt_error_does_not(result):
    plan, gathered = result
    table = plan.kind.compare(gathered)
    rates = table[table.quantity.str.endswith("_rate")].set_index(["activation", "quantity"])
    for act in ("tanh", "relu"):
        lln = rates.loc[(act, "lln_abs_diff_rate")]
        # leading term |φ'(0)| E|f| ∝ n^{-1/2}; the exact expectations include the O(n^{-3/2}) corrections
        assert lln["theory_exponent"] == pytest.approx(-0.5, abs=0.01)
        assert lln["exponent"] == pytest.approx(-0.5, abs=max(0.05, 4 * lln["exponent_stderr"]))
        assert abs(rates.loc[(act, "clt_abs_diff_rate")]["exponent"]) < 0.05
    phi_dev = gathered["lln_phi_dev"].sel(activation="tanh").values
    assert np.all(np.diff(phi_dev) < 0)  # phi(f_LLN) itself tends to phi(0) = 0


def test_draws_are_reproducible_and_shared_across_activations(tmp_path, result):
    """The same cell gives the same numbers; every activation sees the same draws of x."""
    _, gathered = result
    f = gathered["sample_f_lln"]
    np.testing.assert_array_equal(f.sel(activation="tanh").values, f.sel(activation="relu").values)
    plan = load_sweep(_config(), project_dir=tmp_path).experiments["reg"]
    cell = next(c for c in plan.cells if c.point == {"activation": "tanh", "n": 200})
    again = plan.kind.simulate(cell, RunContext(data_dir=tmp_path))
    assert float(again["lln_abs_diff"]) == float(gathered["lln_abs_diff"].sel(activation="tanh", n=200))
    n = 200
    sample = gathered.sel(activation="tanh", n=n)
    assert np.std(sample["sample_f_clt"].values) == pytest.approx(1.0, abs=0.15)
    np.testing.assert_allclose(sample["sample_f_clt"].values, math.sqrt(n) * sample["sample_f_lln"].values, rtol=1e-12)


def test_figures_with_captions(tmp_path, result):
    plan, gathered = result
    paths = plan.kind.plot(gathered, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["regimes-errors-relu.png", "regimes-errors-tanh.png", "regimes-samples-relu-n200.png", "regimes-samples-tanh-n200.png"]
    captions = json.loads((tmp_path / "captions.json").read_text())
    assert "n^-0.5" in captions["regimes-errors-tanh.png"] or "n^-0.4" in captions["regimes-errors-tanh.png"]
    assert "slides" in captions["regimes-samples-tanh-n200.png"]
