"""Theory against simulation: relative errors of seed means, and convergence-rate fits."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np


def seed_mean_table(gathered: Any, pairs: Iterable[tuple[str, str]], *, seed_dim: str = "seed") -> Any:
    """A tidy table with, per cell and non-seed coordinate, the seed mean, its standard error, the theory
    and the relative error ``(mean - theory) / theory`` for each (empirical, theory) variable pair.
    """
    import pandas as pd

    frames = []
    for empirical, theory in pairs:
        values = gathered[empirical]
        count = values.sizes.get(seed_dim, 1)
        mean = values.mean(seed_dim)
        sem = values.std(seed_dim, ddof=1) / np.sqrt(count) if count > 1 else mean * 0.0
        table = xr_to_frame(mean.rename("mean"), sem.rename("sem"), gathered[theory].rename("theory"))
        table.insert(0, "quantity", empirical)
        table["rel_error"] = (table["mean"] - table["theory"]) / table["theory"]
        table["z_score"] = (table["mean"] - table["theory"]) / table["sem"].where(table["sem"] > 0)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def xr_to_frame(*arrays: Any) -> Any:
    """Merge named DataArrays into one flat DataFrame (one row per coordinate combination)."""
    import xarray as xr

    merged = xr.merge([a.drop_attrs() for a in arrays], join="outer", compat="override")
    frame = merged.to_dataframe().reset_index()
    keep = [c for c in frame.columns if c in merged.dims or c in merged.data_vars or c in merged.coords]
    return frame[keep].dropna(subset=[a.name for a in arrays if a.name == "mean"], how="all")


def convergence_rate(sizes: Any, errors: Any) -> tuple[float, float]:
    """Exponent and its standard error of ``errors ~ sizes**exponent`` (least squares in log-log)."""
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(errors, float))
    if x.size < 2:
        return float("nan"), float("nan")
    A = np.vstack([x, np.ones_like(x)]).T
    coef, residuals, *_ = np.linalg.lstsq(A, y, rcond=None)
    if x.size > 2:
        sigma2 = float(np.sum((y - A @ coef) ** 2)) / (x.size - 2)
        stderr = float(np.sqrt(sigma2 / np.sum((x - x.mean()) ** 2)))
    else:
        stderr = float("nan")
    return float(coef[0]), stderr
