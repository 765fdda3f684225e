"""Theory against simulation: relative errors of seed means, and convergence-rate fits."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np


#: Fewest seeds (or draws) behind a z-score. (mean − theory)/sem with ``count`` draws is a t statistic with
#: count − 1 degrees of freedom: below 3 its variance is infinite (with 2 pairs of draws, |z| = 7 was seen at
#: an exact layer), so tables leave z empty there rather than print a number that reads as a z.
MIN_Z_COUNT = 4


def z_score(error: Any, sem: Any, count: Any) -> Any:
    """``error / sem`` where ``count >= MIN_Z_COUNT`` and ``sem > 0``; NaN elsewhere (pandas Series).

    Examples
    --------
    >>> import pandas as pd
    >>> z_score(pd.Series([1.0, 1.0, 1.0]), pd.Series([0.5, 0.5, 0.0]), pd.Series([3, 4, 4])).tolist()
    [nan, 2.0, nan]
    """
    return (error / sem).where((sem > 0) & (count >= MIN_Z_COUNT))


def seed_mean_table(gathered: Any, pairs: Iterable[tuple[str, str]], *, seed_dim: str = "seed") -> Any:
    """A tidy table with, per cell and non-seed coordinate, the seed mean, the number of seeds behind it
    (``count``, finite values only), its standard error, the theory, the relative error
    ``(mean - theory) / theory`` and the z-score (:func:`z_score`: empty below :data:`MIN_Z_COUNT` seeds)
    for each (empirical, theory) variable pair.
    """
    import pandas as pd

    frames = []
    for empirical, theory in pairs:
        values = gathered[empirical]
        if seed_dim in values.dims:
            count = values.count(seed_dim)
            mean = values.mean(seed_dim)
            sem = (values.std(seed_dim, ddof=1) / np.sqrt(count)).where(count > 1, 0.0)
        else:
            mean, count = values, values.notnull().astype(int)
            sem = mean * 0.0
        table = xr_to_frame(mean.rename("mean"), count.rename("count"), sem.rename("sem"), gathered[theory].rename("theory"))
        table.insert(0, "quantity", empirical)
        table["rel_error"] = (table["mean"] - table["theory"]) / table["theory"]
        table["z_score"] = z_score(table["mean"] - table["theory"], table["sem"], table["count"])
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
