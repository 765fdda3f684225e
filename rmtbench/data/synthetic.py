"""Synthetic data sets: the Gaussian mixture (``gmm``) and the sphere teacher (``sphere``).

Both are drawn at the theory's scale ``||x_i|| = O(1)`` from one
``np.random.default_rng(seed)`` stream. Training draws come before test draws, so
the training arrays do not depend on ``n_test``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .base import TARGET_RULE, Dataset, class_targets, register_kind, resolve_spec

__all__ = ["gmm_class_counts", "gmm_parameters", "sphere_teacher"]

_P_KEYS = {
    "p": {
        "type": ["integer", "null"],
        "minimum": 1,
        "description": "Input dimension. Give exactly one of p and p_over_n.",
        "default": None,
    },
    "p_over_n": {
        "type": ["number", "null"],
        "exclusiveMinimum": 0,
        "description": "Dimension ratio: p = round(p_over_n * n) (Python round), at least 1. "
        "Give exactly one of p and p_over_n.",
        "default": None,
    },
}

_LINSPACE_PROFILE = {
    "type": "object",
    "properties": {
        "type": {"const": "linspace", "description": "Profile type.", "default": "linspace"},
        "start": {"type": "number", "exclusiveMinimum": 0, "description": "First diagonal entry."},
        "stop": {"type": "number", "exclusiveMinimum": 0, "description": "Last diagonal entry."},
    },
    "required": ["type", "start", "stop"],
    "additionalProperties": False,
}

GMM_SCHEMA = {
    **_P_KEYS,
    "classes": {
        "type": "integer",
        "minimum": 1,
        "description": "Number of classes K.",
        "default": 2,
    },
    "mean_scale": {
        "type": ["number", "array"],
        "items": {"type": "number"},
        "description": "Class means mu_a = s_a * e_a (a-th canonical basis vector of R^p); "
        "sqrt(p) x_i ~ N(mu_a, C_a). One number s for every class, or K numbers s_a (one per class).",
        "default": 2.5,
    },
    "cov_shift": {
        "type": "array",
        "items": {"type": "number"},
        "description": "K numbers c_a: C_a = (1 + c_a / sqrt(p)) D_a, D_a the class's diagonal "
        "profile (identity by default).",
        "default": [0.0, 4.0],
    },
    "cov_profile": {
        "type": ["array", "null"],
        "items": {"oneOf": [{"type": "null"}, _LINSPACE_PROFILE]},
        "description": "null (all identity) or K entries, each null (D_a = I_p) or "
        '{"type": "linspace", "start": s, "stop": e}: D_a = diag(linspace(s, e, p)).',
        "default": None,
    },
    "proportions": {
        "type": ["array", "null"],
        "items": {"type": "number", "exclusiveMinimum": 0},
        "description": "K class proportions summing to 1 (null: equal). Counts are "
        "round(prop_a * n) for a < K-1, the remainder for the last class.",
        "default": None,
    },
}

SPHERE_SCHEMA = {
    **_P_KEYS,
    "radius": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "Radius r: x uniform on the sphere ||x|| = r in R^p.",
        "default": 1.0,
    },
    "noise": {
        "type": "number",
        "minimum": 0,
        "description": "Teacher noise: y = sqrt(p) x^T beta / r + noise * eps, eps ~ N(0, 1).",
        "default": 0.1,
    },
}


def _resolve_p(spec: Mapping[str, Any], n: int) -> int:
    p, ratio = spec.get("p"), spec.get("p_over_n")
    if (p is None) == (ratio is None):
        raise ValueError(
            f"{spec.get('kind')!r} data spec needs exactly one of 'p' and 'p_over_n', got p={p!r}, p_over_n={ratio!r}"
        )
    p = int(p) if p is not None else max(1, round(float(ratio) * n))
    return p


# --------------------------------------------------------------------- gmm


def gmm_class_counts(proportions: list[float], n: int) -> np.ndarray:
    """Exact class counts: ``round(prop_a * n)`` for ``a < K-1``, the remainder for the last."""
    counts = np.array([round(q * n) for q in proportions[:-1]], dtype=np.int64)
    last = n - int(counts.sum())
    if last < 0:
        raise ValueError(f"proportions {proportions} leave a negative count for the last class at n={n}")
    return np.append(counts, last)


def _gmm_checked(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve defaults and check list lengths against K."""
    spec = resolve_spec({"kind": "gmm", **{k: v for k, v in spec.items() if k != "kind"}})
    K = spec["classes"]
    if spec["proportions"] is None:
        spec["proportions"] = [1.0 / K] * K
    for key in ("cov_shift", "cov_profile", "proportions") + (("mean_scale",) if isinstance(spec["mean_scale"], list) else ()):
        if spec[key] is not None and len(spec[key]) != K:
            raise ValueError(f"gmm spec: {key} has {len(spec[key])} entries, classes K={K} needs {K}")
    if not math.isclose(sum(spec["proportions"]), 1.0, rel_tol=0, abs_tol=1e-9):
        raise ValueError(f"gmm spec: proportions {spec['proportions']} do not sum to 1")
    return spec


def gmm_parameters(spec: Mapping[str, Any], *, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Means and covariance diagonals of the GMM described by ``spec``.

    The model is ``sqrt(p) x_i ~ N(mu_a, C_a)`` with ``mu_a = mean_scale * e_a`` and
    diagonal ``C_a = (1 + c_a / sqrt(p)) D_a`` (see the ``gmm`` schema).

    Parameters
    ----------
    spec : mapping
        A ``gmm`` spec (raw or resolved, e.g. ``Dataset.meta["spec"]``).
    p : int
        Input dimension.

    Returns
    -------
    M : ndarray of shape (p, K)
        Columns ``mu_a`` (before the ``1/sqrt(p)`` scaling of the data).
    C_diag : ndarray of shape (K, p)
        Diagonals of ``C_a`` (all positive).
    """
    spec = _gmm_checked(spec)
    K = spec["classes"]
    if spec.get("p") is not None and spec["p"] != p:
        raise ValueError(f"gmm spec has p={spec['p']} but p={p} was given")
    scales = np.broadcast_to(np.asarray(spec["mean_scale"], dtype=float), (K,))
    if K > p and np.any(scales != 0):
        raise ValueError(f"gmm spec: mu_a = mean_scale * e_a needs p >= K, got p={p}, K={K}")
    M = np.zeros((p, K))
    M[np.arange(min(K, p)), np.arange(min(K, p))] = scales[: min(K, p)]
    profiles = spec["cov_profile"] or [None] * K
    C_diag = np.empty((K, p))
    for a in range(K):
        prof = profiles[a]
        base = np.ones(p) if prof is None else np.linspace(prof["start"], prof["stop"], p)
        C_diag[a] = (1.0 + spec["cov_shift"][a] / math.sqrt(p)) * base
    if np.any(C_diag <= 0):
        raise ValueError(f"gmm spec gives a non-positive covariance at p={p}: 1 + c_a/sqrt(p) <= 0")
    return M, C_diag


def _draw_gmm(
    M: np.ndarray, C_diag: np.ndarray, counts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    p = M.shape[0]
    labels = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    Z = rng.standard_normal((p, labels.size))
    X = (M[:, labels] + np.sqrt(C_diag.T[:, labels]) * Z) / math.sqrt(p)
    return X, labels.astype(np.int64)


def _check_gmm(spec: dict[str, Any], *, n: int, n_test: int) -> None:
    """What `_build_gmm` refuses, found without drawing: p and p_over_n, list lengths, p >= K, sizes."""
    spec = _gmm_checked({**spec, "p": _resolve_p(spec, n), "p_over_n": None})
    gmm_parameters(spec, p=spec["p"])
    for size in (n, n_test):
        gmm_class_counts(spec["proportions"], size)


@register_kind("gmm", schema=GMM_SCHEMA, check=_check_gmm)
def _build_gmm(
    spec: dict[str, Any],
    *,
    n: int,
    n_test: int,
    rng: np.random.Generator,
    data_dir: str | os.PathLike | None,
) -> Dataset:
    """Gaussian mixture ``sqrt(p) x_i ~ N(mu_a, C_a)``, i.e. ``x_i = (mu_a + C_a^{1/2} z)/sqrt(p)``.

    Class assignments: exact counts (`gmm_class_counts`), then shuffled. Draw order:
    training labels, training noise, test labels, test noise.
    """
    user_spec = spec
    spec = _gmm_checked({**spec, "p": _resolve_p(spec, n), "p_over_n": None})
    p, K = spec["p"], spec["classes"]
    M, C_diag = gmm_parameters(spec, p=p)
    counts = gmm_class_counts(spec["proportions"], n)
    counts_test = gmm_class_counts(spec["proportions"], n_test)
    X, labels = _draw_gmm(M, C_diag, counts, rng)
    X_test, labels_test = _draw_gmm(M, C_diag, counts_test, rng)
    trC = C_diag.mean(axis=1)  # tr C_a / p
    tau = float(np.sqrt(counts @ trC / n))
    meta = {
        "kind": "gmm",
        "p": p,
        "n": n,
        "n_test": n_test,
        "classes": list(range(K)),
        "class_counts": counts.tolist(),
        "class_counts_test": counts_test.tolist(),
        "means": "mu_a = mean_scale[a] * e_a (one scale for all classes, or one per class)",
        "mean_scale": spec["mean_scale"],
        "covariance": "C_a = (1 + cov_shift[a]/sqrt(p)) * diag(profile_a), profile_a = 1 or linspace(start, stop, p)",
        "cov_shift": spec["cov_shift"],
        "cov_profile": spec["cov_profile"],
        "proportions": spec["proportions"],
        "trC_over_p": trC.tolist(),
        "tau": tau,
        "normalisation": "sqrt(p) x_i ~ N(mu_a, C_a): x_i = (mu_a + C_a^{1/2} z)/sqrt(p); "
        "tau = sqrt(tr C°/p), C° = sum_a (n_a/n) C_a with the training counts n_a",
        "target": TARGET_RULE,
        "spec": user_spec,
    }
    return Dataset(X, class_targets(labels, K), X_test, class_targets(labels_test, K), labels, labels_test, meta)


# ------------------------------------------------------------------ sphere


def sphere_teacher(p: int, seed: np.random.SeedSequence | int) -> np.ndarray:
    """The teacher vector ``beta*`` of the ``sphere`` kind for this seed.

    It is the first draw of ``np.random.default_rng(seed)``: ``g / ||g||`` with
    ``g ~ N(0, I_p)``, a uniform unit vector.
    """
    g = np.random.default_rng(seed).standard_normal(p)
    return g / np.linalg.norm(g)


def _draw_sphere(p: int, n: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    Z = rng.standard_normal((p, n))
    return radius * Z / np.linalg.norm(Z, axis=0, keepdims=True)


def _check_sphere(spec: dict[str, Any], *, n: int, n_test: int) -> None:
    _resolve_p(spec, n)


@register_kind("sphere", schema=SPHERE_SCHEMA, check=_check_sphere)
def _build_sphere(
    spec: dict[str, Any],
    *,
    n: int,
    n_test: int,
    rng: np.random.Generator,
    data_dir: str | os.PathLike | None,
) -> Dataset:
    """Uniform points on the sphere of radius ``r`` with a noisy linear teacher.

    ``beta* = g/||g||`` (first draw), then training inputs, training noise, test
    inputs, test noise. ``y = sqrt(p) x^T beta* / r + noise * eps``, so the clean
    part has variance 1. All labels are 0.
    """
    p = _resolve_p(spec, n)
    r, noise = float(spec["radius"]), float(spec["noise"])
    g = rng.standard_normal(p)
    beta = g / np.linalg.norm(g)
    X = _draw_sphere(p, n, r, rng)
    y = math.sqrt(p) * (beta @ X) / r + noise * rng.standard_normal(n)
    X_test = _draw_sphere(p, n_test, r, rng)
    y_test = math.sqrt(p) * (beta @ X_test) / r + noise * rng.standard_normal(n_test)
    meta = {
        "kind": "sphere",
        "p": p,
        "n": n,
        "n_test": n_test,
        "classes": [0],
        "radius": r,
        "noise": noise,
        "normalisation": f"x uniform on the sphere ||x|| = {r} (exactly)",
        "target": "y = sqrt(p) x^T beta / radius + noise * eps, beta = g/||g|| the first draw "
        "of default_rng(seed) (see sphere_teacher), eps ~ N(0, 1)",
        "spec": spec,
    }
    zeros = np.zeros(n, dtype=np.int64)
    return Dataset(X, y, X_test, y_test, zeros, np.zeros(n_test, dtype=np.int64), meta)
