"""The shared seed-mean table: counts of finite seeds, and no z-score below MIN_Z_COUNT of them."""
import numpy as np
import pytest
import xarray as xr

from rmtbench.compare import MIN_Z_COUNT, seed_mean_table


def test_z_scores_need_min_z_count_finite_seeds():
    """Row a has 4 seeds, row b 4 with one NaN (3 finite): a gets z = (mean − theory)/sem with the ddof-1 standard
    error, b its mean and sem over 3 seeds but no z; the count column says which."""
    values = np.array([[1.0, 2.0, 3.0, 6.0], [1.0, 2.0, np.nan, 6.0]])
    ds = xr.Dataset({"mse": (("row", "seed"), values), "mse_theory": (("row",), [2.0, 2.0])},
                    coords={"row": ["a", "b"]})
    table = seed_mean_table(ds, [("mse", "mse_theory")]).set_index("row")
    assert table.loc["a", "count"] == 4 and table.loc["b", "count"] == 3 == MIN_Z_COUNT - 1
    sem = np.std([1, 2, 3, 6], ddof=1) / 2
    assert table.loc["a", "sem"] == pytest.approx(sem)
    assert table.loc["a", "z_score"] == pytest.approx((3.0 - 2.0) / sem)
    assert table.loc["b", "mean"] == pytest.approx(3.0) and table.loc["b", "sem"] == pytest.approx(np.std([1, 2, 6], ddof=1) / np.sqrt(3))
    assert np.isnan(table.loc["b", "z_score"]) and table.loc["b", "rel_error"] == pytest.approx(0.5)


def test_one_seed_has_no_spread_and_no_z():
    ds = xr.Dataset({"mse": (("row", "seed"), [[1.5]]), "mse_theory": (("row",), [1.0])}, coords={"row": ["a"]})
    table = seed_mean_table(ds, [("mse", "mse_theory")])
    assert table["count"].tolist() == [1] and table["sem"].tolist() == [0.0] and table["z_score"].isna().all()
