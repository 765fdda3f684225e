import numpy as np
import pytest

from rmtbench.rng import PANEL_ROWS, seed_sequence, stable_hash
from rmtbench.weights import WeightLaw, weight_law, weight_rows


@pytest.mark.parametrize("spec", ["gaussian", "rademacher", {"law": "ternary", "eps": 0.5}, {"law": "ternary", "eps": 0.9}, {"law": "student_t", "dof": 6}])
def test_laws_have_zero_mean_unit_variance_and_the_stated_fourth_moment(spec):
    law = weight_law(spec)
    w = law.sample(np.random.default_rng(0), (400, 1000)).ravel()
    assert abs(w.mean()) < 5 / np.sqrt(w.size) * np.sqrt(law.fourth_moment)
    assert abs(w.var() - 1) < 6 * np.sqrt((law.fourth_moment - 1) / w.size) + 1e-3
    if law.name != "student_t":  # heavy tails make the sample 4th moment too noisy
        assert abs(np.mean(w**4) - law.fourth_moment) < 0.05 * law.fourth_moment


def test_ternary_sparsity_and_labels_round_trip():
    law = weight_law({"law": "ternary", "eps": 0.9})
    assert law.label == "ternary-eps0.9"
    assert weight_law(law.label) == law
    signs, scale = law.sample_compact(np.random.default_rng(1), (300, 300))
    assert signs.dtype == np.int8
    assert abs(np.mean(signs == 0) - 0.9) < 0.01
    assert scale == pytest.approx(1 / np.sqrt(0.1))


def test_ternary_compact_memory_is_a_small_fraction_of_float64():
    law = weight_law({"law": "ternary", "eps": 0.9})
    assert law.bits_per_entry <= 64 / 20


@pytest.mark.parametrize("spec,key", [("gausian", "unknown weight law"), ({"law": "ternary", "eps": 1.0}, "eps"), ({"law": "student_t", "dof": 2}, "dof")])
def test_bad_laws_are_rejected_with_the_reason(spec, key):
    with pytest.raises(ValueError, match=key):
        weight_law(spec)


def test_weight_rows_do_not_depend_on_how_they_are_requested():
    law = WeightLaw("gaussian")
    full = weight_rows(law, root_seed=3, key=("k",), start=0, stop=5 * PANEL_ROWS + 17, columns=9)
    parts = [weight_rows(law, root_seed=3, key=("k",), start=a, stop=b, columns=9) for a, b in [(0, 100), (100, 400), (400, 5 * PANEL_ROWS + 17)]]
    assert np.array_equal(full, np.concatenate(parts))
    narrower = weight_rows(law, root_seed=3, key=("k",), start=0, stop=200, columns=9)
    assert np.array_equal(narrower, full[:200])
    other = weight_rows(law, root_seed=4, key=("k",), start=0, stop=200, columns=9)
    assert not np.array_equal(other, narrower)


def test_stable_hash_is_fixed_across_processes():
    # sha256-based, so this value is the same on every machine and run.
    assert stable_hash("relu") == int.from_bytes(__import__("hashlib").sha256(b"relu").digest()[:4], "little")
    assert seed_sequence(1, "a", 2).spawn_key == (stable_hash("a"), 2)
