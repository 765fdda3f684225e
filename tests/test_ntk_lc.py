"""NTK-LC matching: per-layer coefficients of the compressed network against the original's."""
from __future__ import annotations

import numpy as np
import pytest

from rmtbench.activations import gaussian_moments
from rmtbench.ntk_lc import StepParams, coefficient_table, heuristic_binary, match_network, step_activation, step_moments

MATCHED = ["alpha1", "alpha2", "alpha3", "beta1", "beta2", "beta3"]


@pytest.fixture(scope="module")
def relu3():
    return match_network(["relu", "relu", "relu"], tau0=1.0)


def test_step_moments_closed_form_against_quadrature():
    params = StepParams(-0.7, 1.2, -0.5, 1.3)
    for tau in (0.6, 1.0, 1.9):
        d1, d2, var, q = step_moments(params, tau=tau)
        m = gaussian_moments(step_activation(params), tau=tau)
        np.testing.assert_allclose([d1, d2, var, q], [m.d1, m.d2, m.var, m.q], rtol=1e-7, atol=1e-10)


def test_alpha_beta_matched_within_one_percent_per_layer(relu3):
    # acceptance: every layer's NTK linear-equivalent coefficients beta_{l,1..3} (and alpha_{l,1..3})
    # of the compressed network within 1% of the original's; recomputed by quadrature, not by the solver
    for row in relu3.table:
        if row["coefficient"] in MATCHED:
            assert abs(row["relative_mismatch"]) < 0.01, row
        if row["coefficient"] == "alpha4" and row["layer"] < 3:  # feeds the next layer's alpha2
            assert abs(row["relative_mismatch"]) < 0.01, row


def test_hidden_layers_binary_last_three_level(relu3):
    assert [m.params.bits for m in relu3.layers] == [1, 1, 2]
    assert all(m.solve_residual < 1e-8 for m in relu3.layers[:-1])


def test_identity_terms_are_reported_not_hidden(relu3):
    # ReLU's variance cannot be reached by these step families at fixed (E s', E s''): the identity
    # terms differ (an extra ridge) and the table must say so
    rows = {(r["layer"], r["coefficient"]): r for r in relu3.table}
    assert rows[(3, "ck_identity")]["relative_mismatch"] > 0.1
    assert relu3.max_relative_mismatch(["ck_identity", "ntk_identity"]) > 0.1


def test_no_quantisation_is_exact():
    m = match_network(["relu", "relu"], tau0=1.3, quantize=False)
    assert m.max_relative_mismatch([r["coefficient"] for r in m.table]) == 0.0
    assert m.activation_bits == [32, 32]


def test_heuristic_binary_does_not_match():
    # the slides' heuristic 1{t<-1}+1{t>1} is even: alpha_{l,1} = 0, far from ReLU's
    table = coefficient_table(["relu", "relu"], [step_activation(heuristic_binary())] * 2, tau0=1.0)
    alpha1 = [r for r in table if r["coefficient"] == "alpha1"]
    assert all(abs(r["relative_mismatch"]) > 0.99 for r in alpha1)


def _moments(name, tau):
    m = gaussian_moments(name, tau=tau)
    return m.d1, m.d2, m.var


def test_last_layer_variance_gradient_matches_finite_differences():
    from rmtbench.ntk_lc import _last_layer_variance

    for x, D1, D2 in (((0.3, 0.1), 0.5, 0.4), ((-1.2, 0.7), 0.8, -0.1), ((0.9, -1.5), 0.5, 0.399)):
        _, grad = _last_layer_variance(*x, D1, D2, gradient=True)
        h = 1e-6
        fd = [(_last_layer_variance(x[0] + h, x[1], D1, D2) - _last_layer_variance(x[0] - h, x[1], D1, D2)) / (2 * h),
              (_last_layer_variance(x[0], x[1] + h, D1, D2) - _last_layer_variance(x[0], x[1] - h, D1, D2)) / (2 * h)]
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_last_layer_variance_closed_form_against_step_moments():
    from rmtbench.ntk_lc import _last_layer_params, _last_layer_variance

    for x in ((0.3, 0.1), (-1.2, 0.7), (2.0, -2.0)):
        params = _last_layer_params(np.array(x), 0.5, 0.4, 1.0)
        d1, d2, var, _ = step_moments(params, tau=1.0)
        np.testing.assert_allclose([d1, d2, var], [0.5, 0.4, _last_layer_variance(*x, 0.5, 0.4)], rtol=1e-10)


def test_last_layer_relu_is_the_unique_least_variance_member():
    # ReLU's variance is out of reach: the solver returns the least-variance member, pinned to rounding
    from rmtbench.ntk_lc import _last_layer_params, _solve_last

    params, excess = _solve_last(*_moments("relu", 1.0), 1.0)
    assert excess > 0.1
    v, u = params.s_minus, params.s_plus
    base = step_moments(params, tau=1.0)[2]
    for dv, dw in ((1, 0), (0, 1), (1, 1), (1, -1)):
        for sign in (-1, 1):
            x = np.array([v + sign * 1e-3 * dv, np.log(u - v) + sign * 1e-3 * dw])
            assert step_moments(_last_layer_params(x, 0.5, gaussian_moments("relu", tau=1.0).d2, 1.0), tau=1.0)[2] > base
    # ReLU is positively homogeneous: the solution at scale 2 is the one at scale 1, scaled (to rounding,
    # where a minimiser of the variance itself, not of its gradient, would agree only to ~1e-8)
    twice, excess2 = _solve_last(*_moments("relu", 2.0), 2.0)
    np.testing.assert_allclose([twice.s_minus, twice.s_plus, twice.a_minus, twice.a_plus],
                               [2 * v, 2 * u, 2 * params.a_minus, 2 * params.a_plus], rtol=1e-11)
    assert excess2 == pytest.approx(excess, rel=1e-12)


@pytest.mark.parametrize("name,tau,reachable", [("tanh", 1.0, False), ("erf", 1.0, False), ("sin", 1.0, False),
                                                 ("sin", 2.0, True), ("tanh", 3.0, True)])
def test_last_layer_odd_activation_gives_an_odd_step(name, tau, reachable):
    # the least-variance member (variance out of reach) and the exact match (reachable) alike
    from rmtbench.ntk_lc import _solve_last

    params, excess = _solve_last(*_moments(name, tau), tau)
    assert (abs(excess) < 1e-12) == reachable
    assert params.s_minus == pytest.approx(-params.s_plus, rel=1e-12)
    assert params.a_minus == pytest.approx(-params.a_plus, rel=1e-12)


@pytest.mark.parametrize("name,tau", [("cos", 1.0), ("cos", 2.0), ("gauss", 2.0), ("abs", 1.0)])
def test_last_layer_even_activation_gives_an_even_step(name, tau):
    from rmtbench.ntk_lc import _solve_last

    params, _ = _solve_last(*_moments(name, tau), tau)
    assert params.s_minus == pytest.approx(-params.s_plus, rel=1e-12)
    assert params.a_minus == pytest.approx(params.a_plus, rel=1e-12)


def test_last_layer_without_derivative_moments_is_a_clear_error():
    from rmtbench.ntk_lc import _solve_last

    with pytest.raises(ValueError, match="negligible next to its standard deviation"):
        _solve_last(0.0, 0.0, 0.5, 40.0)
    with pytest.raises(ValueError, match="negligible"):  # sin at tau = 20: E cos(20 xi) = exp(-200), quadrature noise
        _solve_last(*_moments("sin", 20.0), 20.0)


def test_last_layer_reachable_variance_is_matched_exactly_and_deterministically():
    # sin at tau = 2: a curve of members reaches Var sin; one of them, the same on every call
    from rmtbench.ntk_lc import _solve_last

    d1, d2, var = _moments("sin", 2.0)
    params, excess = _solve_last(d1, d2, var, 2.0)
    assert abs(excess) < 1e-12
    np.testing.assert_allclose(step_moments(params, tau=2.0)[:3], [d1, d2, var], rtol=1e-11, atol=1e-15)
    assert _solve_last(d1, d2, var, 2.0) == (params, excess)


def test_an_unmatchable_layer_is_named_in_the_error():
    # sin at a large input scale: its derivative moments vanish (to quadrature noise), no step can match
    with pytest.raises(ValueError, match=r"NTK-LC layer 2 of 2 \(sin, input scale"):
        match_network(["relu", "sin"], tau0=400.0)


def test_hidden_layer_match_holds_at_every_input_scale():
    # ReLU is positively homogeneous: the matched binary step scales with the input scale tau_0. The
    # solver's starts were once absolute, and at tau_0 = 400 it settled on a residual of 0.998.
    unit = match_network(["relu", "relu"], tau0=1.0).layers[0]
    for tau0 in (0.01, 400.0):
        layer = match_network(["relu", "relu"], tau0=tau0).layers[0]
        assert layer.solve_residual < 1e-8
        np.testing.assert_allclose([layer.params.s_minus, layer.params.s_plus, layer.params.a_plus],
                                   [tau0 * unit.params.s_minus, tau0 * unit.params.s_plus, tau0 * unit.params.a_plus],
                                   rtol=1e-8)


@pytest.mark.parametrize("activations,message", [
    (["relu", "erf", "relu"], "odd up to a constant"),  # E φ'' = 0 makes q(σ) = 0: no binary step matches
    (["tanh", "tanh"], "odd up to a constant"),  # the optimiser once overflowed here (OverflowError)
    (["sigmoid", "relu"], "odd up to a constant"),
    (["quadratic", "relu"], "out of the binary family's reach"),
    (["sign", "relu"], "no derivative"),  # a step as the original: no NTK (an AssertionError before)
])
def test_a_hidden_layer_no_step_can_match_is_an_error_not_a_silent_mismatch(activations, message):
    # Before the fix, relu-erf-relu returned a "match" with residual 1.0: α_{2,1}, β_{2,1}, α_{3,3}, β_{3,1}
    # of the compressed net were off by 100%, and nothing said so.
    with pytest.raises(ValueError, match=message):
        match_network(activations, tau0=1.0)


def test_odd_activations_are_matched_in_the_last_layer():
    match = match_network(["relu", "erf"], tau0=1.0)
    assert match.layers[0].solve_residual < 1e-8
    assert match.max_relative_mismatch(["alpha1", "alpha2", "alpha3", "beta1", "beta2", "beta3"]) < 1e-6


def test_the_config_refuses_an_activation_ntk_lc_cannot_match():
    from conftest import small_config
    from rmtbench.config import ConfigError, load_sweep

    def config(activation, depth):
        block = {"name": "ntk", "kind": "ntk_lc", "seeds": 1, "n": 200, "n_test": 100, "depth": depth, "epochs": 1,
                 "grid": {"activation": [activation], "dataset": ["g"], "width": [32]}}
        return small_config(experiments=[block])

    with pytest.raises(ConfigError, match=r"experiments\[0\]\.grid\.activation.*'erf' in all 2 layers.*odd up to a constant"):
        load_sweep(config("erf", 2))
    assert len(load_sweep(config("erf", 1)).experiments["ntk"].cells) == 1  # the last layer can take an odd φ
    assert len(load_sweep(config("relu", 3)).experiments["ntk"].cells) == 1
