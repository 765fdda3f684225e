"""The deq experiment kind (Ling+24; formula sheet section 6): API run, structure, and acceptance at n = 1024.

Acceptance (issue 5; formula sheet rows f): for a ReLU DEQ on the two-class gmm with p = n/2, the
linear equivalent G̃ of the implicit CK G has relative spectral error at most 0.04 at n = 1024, smaller
than at n = 256.
"""
import numpy as np
import pytest

from rmtbench.config import load_sweep
from rmtbench.experiments.base import RunContext

GMM = {"kind": "gmm", "p_over_n": 0.5, "mean_scale": 2.5, "cov_shift": [0, 4]}


def _config(*, activation, n, sigma_a2=(0.2,), d_over_n=(1.0,), seeds=2):
    return {
        "sweep": "unit", "seed": 13, "results": "results", "dask": {"mode": "synchronous"},
        "datasets": {"g": GMM},
        "experiments": [{"name": "deq", "kind": "deq", "seeds": seeds,
                         "grid": {"activation": list(activation), "dataset": ["g"], "n": list(n),
                                  "sigma_a2": list(sigma_a2), "d_over_n": list(d_over_n)}}],
    }


def _run(config, tmp_path, *, simulate=True):
    plan = load_sweep(config).experiments["deq"]
    ctx = RunContext(data_dir=tmp_path)
    sims = [plan.kind.simulate(c, ctx) if simulate else None for c in plan.cells]
    theories = {k: plan.kind.theory(cells, ctx) for k, cells in plan.theory_groups().items()}
    return plan, plan.kind.combine(plan.cells, sims, theories)


def test_sigma_a2_must_lie_in_the_unit_interval():
    from rmtbench.config import ConfigError

    with pytest.raises(ConfigError, match="sigma_a2"):
        load_sweep(_config(activation=["relu"], n=[32], sigma_a2=[1.2]))


def test_small_sweep_end_to_end(tmp_path):
    plan, gathered = _run(_config(activation=["relu", "tanh"], n=[32, 64], d_over_n=[1.0, 2.0]), tmp_path)
    assert len(plan.theory_groups()) == 4  # one per (activation, n): the width is the simulation's only
    relu = gathered.sel(activation="relu", dataset="g", sigma_a2=0.2, d_over_n=1.0)
    tanh = gathered.sel(activation="tanh", dataset="g", sigma_a2=0.2, d_over_n=1.0)
    # the matched explicit nets: two leaky-ReLU layers for relu, one clipped-linear layer for odd tanh
    assert (relu["explicit_depth"] == 2).all() and (tanh["explicit_depth"] == 1).all()
    assert (relu["match_residual"] < 1e-9).all() and (tanh["match_residual"] < 1e-9).all()
    assert np.isfinite(tanh["explicit_parameters"].sel(explicit_param=["scale", "c"])).all()
    assert np.isnan(tanh["explicit_parameters"].sel(explicit_param="a1")).all()
    np.testing.assert_allclose(relu["achieved"], relu["targets"], rtol=1e-9)
    assert (gathered["iterations"] < 200).all()
    table = plan.kind.compare(gathered)
    assert {"deq_equivalent", "deq_equivalent_model", "explicit_vs_deq", "deq_empirical",
            "deq_empirical_centred"} <= set(table["quantity"])
    paths = plan.kind.plot(gathered, tmp_path / "figures")
    assert sorted(p.name.split("-")[0] for p in paths) == ["deq_errors", "deq_spectra", "deq_spectra"]


@pytest.mark.slow
def test_acceptance_relu_equivalent_at_n1024(tmp_path):
    _, gathered = _run(_config(activation=["relu"], n=[256, 1024]), tmp_path, simulate=False)
    cell = gathered.sel(activation="relu", dataset="g", sigma_a2=0.2, d_over_n=1.0)
    for var in ("equivalent_error", "equivalent_error_model", "explicit_error"):
        print(f"{var:24s} n=256: {float(cell[var].sel(n=256)):.3e}  n=1024: {float(cell[var].sel(n=1024)):.3e}")
    for var in ("equivalent_error", "equivalent_error_model"):
        assert float(cell[var].sel(n=1024)) <= 0.04
        assert float(cell[var].sel(n=1024)) < float(cell[var].sel(n=256))
    # the matched two-layer leaky-ReLU net is the DEQ's CK far more closely than the linear equivalent
    assert float(cell["explicit_error"].sel(n=1024)) < 0.1 * float(cell["equivalent_error"].sel(n=1024))
