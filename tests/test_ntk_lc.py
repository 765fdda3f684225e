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
