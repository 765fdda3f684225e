"""Quantised activations matched to a target's alpha1 and alpha2 (formula sheet section 4.5)."""
import dataclasses
import math

import numpy as np
import pytest
from scipy import special

from rmtbench.activations import alpha_coefficients, get_activation
from rmtbench.parallel import single_blas_thread
from rmtbench.quantize import QuantizedMatch, match_binary, match_ternary

TARGETS = ["relu", "erf", "tanh", "sigmoid", "softplus", {"family": "leaky_relu", "a": 0.1, "b": 1.0}]


@pytest.mark.parametrize("match", [match_binary, match_ternary])
@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("tau", [0.6, 1.0, 1.7])
def test_alpha1_alpha2_alpha3_are_matched(match, target, tau):
    m = match(target, tau=tau)
    assert isinstance(m, QuantizedMatch)
    family = "binary" if match is match_binary else "ternary"
    assert m.spec["family"] == family and m.activation.name.startswith(family)
    assert get_activation(m.spec).name == m.activation.name
    # recomputed here, independently of the matching equations
    assert m.alpha_target == pytest.approx(alpha_coefficients(target, tau=tau), abs=1e-12)
    assert m.alpha_matched == pytest.approx(alpha_coefficients(m.activation, tau=tau), abs=1e-12)
    assert m.alpha_matched[1:] == pytest.approx(m.alpha_target[1:], rel=1e-9, abs=1e-12)
    assert m.delta_alpha0 == pytest.approx(m.alpha_matched[0] - m.alpha_target[0], abs=1e-15)


def test_binary_relu_closed_form():
    # E phi' = 1/2, E phi'' = f(0)/tau: threshold s = tau*sqrt(2/pi), scale = (tau/2)/f(sqrt(2/pi)).
    tau = 1.3
    m = match_binary("relu", tau=tau)
    u = math.sqrt(2 / math.pi)
    scale = 0.5 * tau / (math.exp(-u * u / 2) / math.sqrt(2 * math.pi))
    assert m.spec["threshold"] == pytest.approx(tau * u, rel=1e-12)
    assert m.spec["scale"] == pytest.approx(scale, rel=1e-12)
    tail = special.ndtr(-u)
    var_relu = tau**2 * (0.5 - 1 / (2 * math.pi))
    assert m.delta_alpha0 == pytest.approx(scale**2 * tail * (1 - tail) - var_relu, rel=1e-9)


def test_relu_family_matches_the_formula_sheet_numbers():
    # Formula sheet sec. 4.5 at tau = 1.01: the best member is the binary step c 1{t > 0.81 tau}, c ~ 1.75,
    # Delta alpha0 ~ +0.16; alpha0 cannot be matched.
    tau = 1.01
    ternary, binary = match_ternary("relu", tau=tau), match_binary("relu", tau=tau)
    assert ternary.spec["s_plus"] == pytest.approx(0.809, rel=0.01)
    assert ternary.spec["scale"] == pytest.approx(1.747, rel=0.01)
    assert ternary.delta_alpha0 == pytest.approx(0.160, abs=0.003)
    assert ternary.spec["s_minus"] <= -7.9 * tau  # degenerate: the lower step never fires
    assert ternary.delta_alpha0 == pytest.approx(binary.delta_alpha0, rel=1e-6)
    assert ternary.target_ridge(0.05) == pytest.approx(0.05 + ternary.delta_alpha0)


def test_odd_target_gets_a_symmetric_member_with_smaller_mismatch_than_the_binary():
    m = match_ternary("erf", tau=1.0)
    assert m.spec["s_minus"] == -m.spec["s_plus"]
    assert m.activation.parity == "odd"
    assert 0 < m.delta_alpha0 < match_binary("erf", tau=1.0).delta_alpha0 / 3


def test_a_ternary_target_is_recovered_with_no_alpha0_mismatch():
    target = {"family": "ternary", "s_minus": -0.5, "s_plus": 0.9, "scale": 1.3}
    for tau in (0.5, 1.0, 2.0):
        assert abs(match_ternary(target, tau=tau).delta_alpha0) < 1e-8
    sign = match_binary("sign", tau=1.0)  # 2*1{t>0} = sign + 1: same kernel up to the constant
    assert sign.spec == {"family": "binary", "threshold": 0.0, "scale": pytest.approx(2.0, rel=1e-12)}
    assert abs(sign.delta_alpha0) < 1e-12


@pytest.mark.parametrize("target", ["abs", "cos", "quadratic", "gauss"])
def test_even_targets_cannot_be_matched(target):
    for match in (match_binary, match_ternary):
        with pytest.raises(ValueError, match="alpha1 = \\(E phi'\\)\\^2 is 0"):
            match(target, tau=1.0)


def test_far_thresholds_are_refused():
    far = {"family": "binary", "threshold": 8.5, "scale": 1.0}  # tau*E phi"/E phi' = 8.5
    with pytest.raises(ValueError, match="standard deviations"):
        match_binary(far, tau=1.0)
    with pytest.raises(ValueError, match="tau must be a positive"):
        match_ternary("relu", tau=0.0)


def test_match_is_a_frozen_dataclass_with_the_agreed_fields():
    m = match_binary("relu", tau=1.0)
    assert [f.name for f in dataclasses.fields(m)] == ["activation", "spec", "alpha_target", "alpha_matched", "delta_alpha0"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.delta_alpha0 = 0.0  # type: ignore[misc]


def _kernel_errors(target, match, n):
    """||P(K_q - K - Δα0 I - S)P|| / ||PKP|| with exact kernels, with and without the ridge term Δα0 I."""
    from rmtbench.data import make_dataset
    from rmtbench.theory.ck_gmm import double_centre, slope_term, spectral_norm
    from rmtbench.theory.kernels import expected_kernel

    ds = make_dataset({"kind": "gmm", "p_over_n": 0.5, "mean_scale": 2.5, "cov_shift": [0, 4]}, n=n, n_test=0,
                      seed=np.random.SeedSequence(4))
    tau = ds.meta["tau"]
    m = match(target, tau=tau)
    K, Kq = expected_kernel(target, ds.X), expected_kernel(m.activation, ds.X)
    slope = slope_term(m.activation, ds.X, tau=tau) - slope_term(target, ds.X, tau=tau)
    scale = spectral_norm(double_centre(K))
    base = double_centre(Kq - K - slope)
    return (spectral_norm(base - m.delta_alpha0 * double_centre(np.eye(n))) / scale, spectral_norm(base) / scale)


@pytest.mark.parametrize("target,match,constant", [("relu", match_binary, 0.45), ("erf", match_ternary, 0.05)])
def test_quantised_kernel_is_the_target_kernel_plus_a_ridge(target, match, constant):
    """Formula sheet [d3] with exact kernels (no Monte-Carlo floor): after the O(p^-1/2) norm-dependent slope,
    K_q - K is Δα0 I up to an error that shrinks with p; without the Δα0 I term the error is much larger."""
    with single_blas_thread():
        errors = {n: _kernel_errors(target, match, n) for n in (128, 256)}
    for n, (with_ridge, without) in errors.items():
        p = n // 2
        print(f"{target} {match.__name__} n={n}: with Δα0 I {with_ridge:.4f}, without {without:.4f}")
        assert with_ridge <= constant / math.sqrt(p)
        assert with_ridge < without / 1.5
    assert errors[256][0] < errors[128][0]
