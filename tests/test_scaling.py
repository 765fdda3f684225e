"""Scaling laws of the ridgeless training MSE (formula sheet §§2, 7; pitfall P7).

Model spectra are exact algebra: exponents are fitted over n = 256..4096, where the O(1/n)
corrections of the Riemann-sum asymptotics change the slope by < 0.01, so ±0.05 is a safe margin.
The closed ridgeless form is compared with the full LLC18 formula at tiny γ through the experiment's
own theory step (the gap is O(γ²), see tests/test_equivalent.py::test_ridgeless_train_mse_is_the_small_gamma_limit
for the same identity on the library functions). The random-feature side is checked where LLC18 holds
(Gaussian mixture, p = n/2) with a tolerance ~1.6/√n, and characterised where it does not (data on a
2-sphere, p = 3 fixed).
"""
import json
import math

import numpy as np
import pytest

from rmtbench.config import load_sweep
from rmtbench.experiments.base import RunContext
from rmtbench.theory.equivalent import ridgeless_theta, ridgeless_train_mse
from rmtbench.theory.laws import fit_power_law
from rmtbench.theory.scaling import (
    ModelSpectrum,
    asymptotic_theta,
    asymptotic_train_mse,
    claimed_exponent,
    eigen_decay_fit,
    model_kappa,
    model_theta,
    model_train_mse,
    parse_model_spectrum,
    predicted_exponent,
)

SIZES = [256, 512, 1024, 2048, 4096]
SPHERE = {"kind": "sphere", "p": 3, "radius": 3.0, "noise": 0.0}


# ----------------------------------------------------------------------------- model spectra


@pytest.mark.parametrize("spec", [ModelSpectrum("polynomial", 1.0), ModelSpectrum("polynomial", 0.5, "operator"),
                                  ModelSpectrum("exponential", 0.05)])
def test_model_theta_equals_the_library_ridgeless_theta(spec):
    n, d = 256, 128
    lam = spec.eigvals(n)
    assert model_theta(spec, n, d_over_n=0.5) == pytest.approx(ridgeless_theta(lam, d=d, n=n), rel=1e-10)
    # top target y = √n u_1: its energies are (n, 0, ..., 0)
    energies = np.zeros(n)
    energies[0] = math.sqrt(n)
    assert model_train_mse(spec, n, d_over_n=0.5, target="top") == pytest.approx(ridgeless_train_mse(lam, energies, d=d), rel=1e-10)


@pytest.mark.parametrize("beta", [0.5, 1.0, 1.5])
@pytest.mark.parametrize("normalisation", ["matrix", "operator"])
@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_polynomial_exponents_recovered(beta, normalisation, ratio):
    """Acceptance: exponents of θ and of the top-target MSE within ±0.05 of the prediction."""
    spec = ModelSpectrum("polynomial", beta, normalisation)
    for target in ("kernel", "top"):
        values = [model_train_mse(spec, n, d_over_n=ratio, target=target) for n in SIZES]
        fitted = fit_power_law(SIZES, values).exponent
        assert fitted == pytest.approx(predicted_exponent(spec, target), abs=0.05), (target, fitted)
    # the slides' n^-(1+β) is θ's rate in the matrix normalisation and the smooth target's in both
    assert predicted_exponent(spec, "top") == claimed_exponent("polynomial", beta=beta)
    assert predicted_exponent(spec, "kernel") == (-(1 + beta) if normalisation == "matrix" else -beta)


def test_polynomial_asymptotic_law_converges():
    spec = ModelSpectrum("polynomial", 1.0)
    errors = [abs(model_theta(spec, n, d_over_n=0.25) / float(asymptotic_theta(spec, n, d_over_n=0.25)) - 1) for n in SIZES]
    assert np.all(np.diff(errors) < 0) and errors[-1] < 2e-3  # relative error O(1/n)
    assert errors[0] * SIZES[0] == pytest.approx(errors[-1] * SIZES[-1], rel=0.3)


def test_exponential_decay_is_faster_than_any_power_not_log_n_over_n():
    """Formula sheet §7: θ = 8.1e-4, 1.3e-6, 3.7e-12 at n = 256, 512, 1024 (c = 0.05, d/n = 0.5)."""
    spec = ModelSpectrum("exponential", 0.05)
    theta = np.array([model_theta(spec, n, d_over_n=0.5) for n in SIZES])
    np.testing.assert_allclose(theta[:3], [8.1027e-4, 1.3458e-6, 3.7172e-12], rtol=1e-3)
    np.testing.assert_allclose(theta, asymptotic_theta(spec, SIZES, d_over_n=0.5), rtol=1e-9)  # ρ A e^{-c(ρn + 1/2)}
    local = np.diff(np.log(theta)) / np.diff(np.log(SIZES))
    assert np.all(np.diff(local) < 0)  # the log-log slope keeps steepening: no power law
    assert local[0] < -5 < claimed_exponent("exponential", n=SIZES)  # far below log(n)/n's ≈ −0.85
    assert np.polyfit(SIZES, np.log(theta), 1)[0] == pytest.approx(-0.05 * 0.5, rel=1e-6)
    top = [model_train_mse(spec, n, d_over_n=0.5, target="top") for n in SIZES]
    np.testing.assert_allclose(top, asymptotic_train_mse(spec, SIZES, d_over_n=0.5, target="top"), rtol=1e-8)


def test_theta_vanishes_at_the_interpolation_threshold_model():
    """Pitfall P7: θ → 0⁺ (it does not diverge) as d ↑ n."""
    spec = ModelSpectrum("polynomial", 1.0)
    thetas = [model_theta(spec, 1000, d_over_n=r) for r in (0.5, 0.9, 0.99, 0.999)]
    assert np.all(np.diff(thetas) < 0) and thetas[-1] < 2e-3 * thetas[0]  # measured 1.1e-3
    with pytest.raises(ValueError, match="d < n"):
        model_theta(spec, 1000, d_over_n=1.0)


def test_label_noise_floor_is_one_minus_d_over_n():
    """Energies 1 (white noise): (1/n) Σ κ/(λ_i + κ) = (n − d)/n exactly, whatever the spectrum."""
    for spec in (ModelSpectrum("polynomial", 1.0), ModelSpectrum("exponential", 0.05)):
        lam = spec.eigvals(512)
        assert ridgeless_train_mse(lam, np.ones(512), d=128) == pytest.approx(1 - 128 / 512, rel=1e-10)
        assert model_kappa(spec, 512, d_over_n=0.25) > 0


def test_parse_and_decay_fit():
    assert parse_model_spectrum({"decay": "polynomial", "beta": 0.5}) == ModelSpectrum("polynomial", 0.5, "matrix")
    assert parse_model_spectrum("exp-c0.05-operator") == ModelSpectrum("exponential", 0.05, "operator")
    with pytest.raises(ValueError):
        parse_model_spectrum("poly-c1-matrix")
    lam = ModelSpectrum("polynomial", 1.5).eigvals(400) * (1 + 0.01 * np.cos(np.arange(400)))
    fit = eigen_decay_fit(lam, lo=10, hi=200)
    assert fit.decay == "polynomial" and fit.beta == pytest.approx(1.5, abs=0.01)
    assert eigen_decay_fit(ModelSpectrum("exponential", 0.1).eigvals(400), lo=10, hi=200).decay == "exponential"


# ----------------------------------------------------------------------------- the experiment kind


def _plan(tmp_path, *, dataset, activations, ns, ratios, seeds=2, **options):
    block = {"name": "sc", "kind": "scaling", "grid": {"activation": activations, "dataset": ["data"], "d_over_n": ratios, "n": ns},
             "seeds": seeds, "spectra": [{"decay": "polynomial", "beta": 1.0}, {"decay": "exponential", "c": 0.05}],
             "spectra_n": [256, 512, 1024]}
    block.update(options)
    config = {"sweep": "unit", "seed": 5, "datasets": {"data": dataset}, "experiments": [block]}
    return load_sweep(config, project_dir=tmp_path).experiments["sc"]


def _theory(plan, tmp_path):
    ctx = RunContext(data_dir=tmp_path)
    return {key: plan.kind.theory(cells, ctx) for key, cells in plan.theory_groups().items()}


def test_closed_form_equals_full_formula_through_the_experiment(tmp_path):
    """Acceptance: the ridgeless closed form equals the full LLC18 formula at γ = 1e-7 / 1e-8 to 1e-8 relative."""
    for dataset, gamma, ratios in (({"kind": "gmm", "p_over_n": 0.5}, 1e-7, [0.25, 0.5, 0.9]), (SPHERE, 1e-8, [0.25, 0.5])):
        plan = _plan(tmp_path, dataset=dataset, activations=["relu"], ns=[128], ratios=ratios, gamma=[gamma])
        (theory,) = _theory(plan, tmp_path).values()
        full = theory["train_mse_theory"].sel(gamma=gamma).values
        closed = theory["train_mse_ridgeless_theory"].values
        np.testing.assert_allclose(full, closed, rtol=1e-8)  # measured ≤ 3e-9 (gmm, 0.9) and ≤ 3e-10 (sphere)
        assert np.all(closed > 0)


def test_theta_vanishes_at_the_interpolation_threshold_through_the_experiment(tmp_path):
    plan = _plan(tmp_path, dataset=SPHERE, activations=["relu"], ns=[256], ratios=[0.5, 0.9, 0.99], gamma=[1e-8])
    (theory,) = _theory(plan, tmp_path).values()
    theta = theory["theta"].values
    assert np.all(np.diff(theta) < 0) and theta[-1] < 0.01 * theta[0]  # P7: θ → 0⁺, not ∞


def test_random_features_match_llc18_where_it_applies(tmp_path):
    """Gaussian mixture with p = n/2: the ridgeless random-features residual and its Gaussian control agree with LLC18."""
    n = 256
    plan = _plan(tmp_path, dataset={"kind": "gmm", "p_over_n": 0.5}, activations=["relu"], ns=[n], ratios=[0.5], seeds=6, gamma=[1e-8])
    (cell,) = plan.cells
    sim = plan.kind.simulate(cell, RunContext(data_dir=tmp_path))
    (theory,) = _theory(plan, tmp_path).values()
    expected = float(theory["train_mse_ridgeless_theory"][0])
    tol = 1.6 / math.sqrt(n)  # per-draw fluctuations O(n^-1/2), averaged over draws, plus O(1/n) bias
    for name in ("train_mse_ridgeless", "train_mse_ridgeless_gaussian"):
        assert float(sim[name].mean()) == pytest.approx(expected, rel=tol), name
    assert bool(sim["full_rank"].all())


def test_empirical_ridgeless_is_the_least_squares_residual(tmp_path):
    """The γ → 0 value from the Gram's eigenvectors equals an independent QR least-squares residual."""
    from rmtbench.empirical import RandomFeatureMap
    from rmtbench.experiments.common import cell_data, data_key
    from rmtbench.weights import weight_law

    plan = _plan(tmp_path, dataset=SPHERE, activations=["relu"], ns=[96], ratios=[0.25], seeds=1, gaussian_control=False)
    (cell,) = plan.cells
    ctx = RunContext(data_dir=tmp_path)
    sim = plan.kind.simulate(cell, ctx)
    data = cell_data(cell, ctx)
    features = RandomFeatureMap("relu", weight_law("gaussian"), 24, cell.root_seed, ("scaling", data_key(cell), 0)).features(data.X)
    q, _ = np.linalg.qr(features.T)
    residual = np.sum((data.y - q @ (q.T @ data.y)) ** 2) / data.y.size
    assert float(sim["train_mse_ridgeless"][0]) == pytest.approx(residual, rel=1e-6)
    assert float(sim["train_mse"].sel(gamma=1e-8)[0]) == pytest.approx(residual, rel=0.05)  # small γ: close to the limit


def test_low_dimensional_sphere_end_to_end(tmp_path, local_client):
    """Characterisation on the 2-sphere (p = 3): relu follows a power law, sin random features beat LLC18 by orders of
    magnitude while their Gaussian-equivalent control follows it; the compare table sets claims beside fits."""
    plan = _plan(tmp_path, dataset=SPHERE, activations=["relu", "sin"], ns=[64, 96, 128], ratios=[0.25], seeds=2, gamma=[1e-8])
    ctx = RunContext(data_dir=tmp_path, client=local_client)
    sims = [plan.kind.simulate(cell, ctx) for cell in plan.cells]
    gathered = plan.kind.combine(plan.cells, sims, _theory(plan, tmp_path))
    assert gathered["model_theta"].dims == ("model", "model_n", "model_d_over_n")
    sin = gathered.sel(activation="sin", dataset="data", d_over_n=0.25, n=128)
    theory = float(sin["train_mse_ridgeless_theory"])
    assert float(sin["train_mse_ridgeless"].mean()) < 0.05 * theory  # LLC18 fails for low-dimensional sin features
    assert 0.5 < float(sin["train_mse_ridgeless_gaussian"].mean()) / theory < 2.0  # ... Gaussian features follow it
    table = plan.kind.compare(gathered)
    rates = table[table.quantity == "exponent_train_mse_ridgeless_theory"].set_index("activation")
    assert rates.loc["relu", "kernel_decay"] == "polynomial" and rates.loc["relu", "claim"] == "n^-(1+beta)"
    assert rates.loc["relu", "exponent"] < -1.5 and np.isfinite(rates.loc["relu", "claim_exponent"])
    assert rates.loc["sin", "kernel_decay"] == "exponential" and rates.loc["sin", "claim"] == "log(n)/n"
    models = table[table.quantity == "model_exponent_theta"].set_index("model")
    assert models.loc["poly-beta1-matrix", "exponent"] == pytest.approx(-2.0, abs=0.05)
    assert models.loc["exp-c0.05-matrix", "exponent"] < -5
    paths = plan.kind.plot(gathered, tmp_path / "figures")
    names = {p.name for p in paths}
    assert names == {"scaling-rf-data-d_over_n0.25.png", "scaling-kernel-spectrum-data.png", "scaling-model-spectra-d_over_n0.25.png"}
    captions = json.loads((tmp_path / "figures" / "captions.json").read_text())
    assert all("claim" in text for text in captions.values())
