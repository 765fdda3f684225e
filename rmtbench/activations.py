"""Activation functions: a registry with one uniform entry per φ, and its Gaussian moments.

Each :class:`Activation` carries φ, its a.e. derivative, its kinks, its parity and, when one is
known, the closed-form Gaussian kernel E[φ(u)φ(v)] in covariance form (formula sheet section 2,
rewritten for (u, v) centred Gaussian with variances ``var_a``, ``var_b`` and covariance ``cov``;
with w ~ N(0, I) and u = w^T x, v = w^T y these are ‖x‖², ‖y‖² and x^T y).

Gaussian moments are computed from φ alone by Stein's lemma (formula sheet section 1),
``E φ^{(k)}(τξ) = E[He_k(ξ) φ(τξ)] / τ^k``, with quadrature split at the kinks, so weak
derivatives (the Dirac mass of a ReLU's φ'') come out right and no activation is ever
finite-differenced (pitfall P10). τ is a standard deviation throughout (pitfall P1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rmtbench.quadrature import gaussian_expectation, gaussian_expectations, gaussian_rule, hermite_table

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "GaussianMoments",
    "KernelFn",
    "Parity",
    "Piece",
    "activation_names",
    "alpha_coefficients",
    "family_names",
    "gaussian_moments",
    "get_activation",
    "hermite_coefficients",
    "hermite_nu",
    "piecewise_function",
]

Array = NDArray[np.float64]
#: ``kernel(var_a (na,), var_b (nb,), cov (na, nb)) -> (na, nb)``: E[f(u) g(v)] for (u, v) centred
#: Gaussian with Var u = var_a[i], Var v = var_b[j], Cov(u, v) = cov[i, j].
KernelFn = Callable[[ArrayLike, ArrayLike, ArrayLike], Array]
Parity = Literal["odd", "even", "none"]
#: ``(lo, hi, intercept, slope)``: φ(t) = intercept + slope·t on (lo, hi).
Piece = tuple[float, float, float, float]

_INF = math.inf
_SQRT_2PI = math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class Activation:
    """One activation function φ and what the theory needs to know about it.

    Attributes
    ----------
    name
        Registered or canonical name (``"relu"``, ``"ternary(s_minus=-0.5,s_plus=0.81,scale=1.75)"``).
    phi
        Vectorised φ.
    derivative
        φ' almost everywhere, for forward passes of NTK computations; ``None`` for activations
        with jumps, whose weak derivative has Dirac masses that no pointwise function represents.
        Never used for moments (those use Stein forms).
    kinks
        Points where φ or φ' is not smooth; quadrature rules are split there.
    kernel
        Closed-form E[φ(u)φ(v)] (signature :data:`KernelFn`), or ``None``.
    derivative_kernel
        Closed-form E[φ'(u)φ'(v)] with φ' the weak derivative, or ``None``. For activations with
        jumps it is a sum of bivariate Gaussian densities at the jump points: finite for
        |corr| < 1 and ``inf`` on degenerate pairs (e.g. the diagonal).
    parity
        ``"odd"``, ``"even"`` or ``"none"``; quadrature uses it to halve the work.
    description
        One line for humans.
    piecewise
        For piecewise-linear φ, the pieces ``(lo, hi, intercept, slope)`` covering the real line in
        order; enables the exact-inner-integral kernel quadrature of :mod:`rmtbench.theory.kernels`.
    """

    name: str
    phi: Callable[[Array], Array]
    derivative: Callable[[Array], Array] | None = None
    kinks: tuple[float, ...] = ()
    kernel: KernelFn | None = None
    derivative_kernel: KernelFn | None = None
    parity: Parity = "none"
    description: str = ""
    piecewise: tuple[Piece, ...] | None = None

    def __call__(self, t: ArrayLike) -> Array:
        """φ(t) on an array."""
        return self.phi(np.asarray(t, dtype=float))

    @property
    def has_jumps(self) -> bool:
        """Whether φ is discontinuous (known only for piecewise-linear φ; else ``False``)."""
        pieces = self.piecewise or ()
        # value of the left piece at its right end against the right piece at its left end
        return any(a[2] + a[3] * a[1] != b[2] + b[3] * b[0] for a, b in zip(pieces[:-1], pieces[1:]))


# --------------------------------------------------------------------------------------------
# Closed-form kernels in covariance form. Each `_k_*` is elementwise on broadcast arrays;
# `_pairwise` gives it the (na,), (nb,), (na, nb) signature of KernelFn.


def _pairwise(elementwise: Callable[[Array, Array, Array], Array]) -> KernelFn:
    def kernel(var_a: ArrayLike, var_b: ArrayLike, cov: ArrayLike) -> Array:
        va = np.clip(np.atleast_1d(np.asarray(var_a, dtype=float)), 0.0, None)
        vb = np.clip(np.atleast_1d(np.asarray(var_b, dtype=float)), 0.0, None)
        c = np.asarray(cov, dtype=float)
        if va.ndim != 1 or vb.ndim != 1 or c.shape != (va.size, vb.size):
            raise ValueError(f"expected var_a (na,), var_b (nb,), cov (na, nb); got {va.shape}, {vb.shape}, {c.shape}")
        va, vb = va[:, None], vb[None, :]
        bound = np.sqrt(va * vb)
        # A covariance can only exceed sqrt(va vb) by rounding: clip so that |corr| <= 1.
        return elementwise(va, vb, np.clip(c, -bound, bound))

    kernel.__name__ = kernel.__qualname__ = elementwise.__name__.lstrip("_")
    kernel.__doc__ = elementwise.__doc__
    return kernel


def _corr(va: Array, vb: Array, c: Array) -> Array:
    s = np.sqrt(va * vb)
    rho = np.divide(c, s, out=np.zeros(np.broadcast_shapes(s.shape, c.shape)), where=s > 0)
    return np.clip(rho, -1.0, 1.0)


def _k_linear(va: Array, vb: Array, c: Array) -> Array:
    """E[uv] = cov."""
    return np.array(np.broadcast_to(c, np.broadcast_shapes(va.shape, vb.shape, c.shape)))


def _k_ones(va: Array, vb: Array, c: Array) -> Array:
    """E[1·1] = 1 (derivative kernel of the identity)."""
    return np.ones(np.broadcast_shapes(va.shape, vb.shape, c.shape))


def _sqrt_one_minus_sq(rho: Array) -> Array:
    return np.sqrt(np.clip((1.0 - rho) * (1.0 + rho), 0.0, None))


# Both terms are evaluated from the same rounded ρ: near |ρ| = 1 their sqrt(1 − |ρ|) singularities
# cancel only then (mixing ρ with va vb − c² loses about 1e-8).
def _k_relu(va: Array, vb: Array, c: Array) -> Array:
    """E[relu(u) relu(v)] = (sqrt(va vb)/2π)(ρ (π − arccos ρ) + sqrt(1 − ρ²))."""
    rho = _corr(va, vb, c)
    return np.sqrt(va * vb) * (rho * (np.pi - np.arccos(rho)) + _sqrt_one_minus_sq(rho)) / (2.0 * np.pi)


def _k_abs(va: Array, vb: Array, c: Array) -> Array:
    """E[|u||v|] = (2 sqrt(va vb)/π)(ρ arcsin ρ + sqrt(1 − ρ²))."""
    rho = _corr(va, vb, c)
    return (2.0 / np.pi) * np.sqrt(va * vb) * (rho * np.arcsin(rho) + _sqrt_one_minus_sq(rho))


def _k_step(va: Array, vb: Array, c: Array) -> Array:
    """E[1{u>0} 1{v>0}] = 1/4 + arcsin(ρ)/(2π) (0 if a variance is 0, as 1{0>0} = 0)."""
    return (0.25 + np.arcsin(_corr(va, vb, c)) / (2.0 * np.pi)) * ((va > 0) & (vb > 0))


def _k_sign(va: Array, vb: Array, c: Array) -> Array:
    """E[sign u sign v] = (2/π) arcsin ρ."""
    return (2.0 / np.pi) * np.arcsin(_corr(va, vb, c))


def _k_sin(va: Array, vb: Array, c: Array) -> Array:
    # exp(-(va+vb)/2) sinh(c), written so that huge variances give 0 rather than 0 * inf = NaN
    a = np.abs(c)
    return -0.5 * np.sign(c) * np.exp(a - 0.5 * (va + vb)) * np.expm1(-2.0 * a)


def _k_cos(va: Array, vb: Array, c: Array) -> Array:
    # exp(-(va+vb)/2) cosh(c), overflow-free form
    a = np.abs(c)
    return 0.5 * np.exp(a - 0.5 * (va + vb)) * (1.0 + np.exp(-2.0 * a))


def _k_erf(va: Array, vb: Array, c: Array) -> Array:
    """E[erf u erf v] = (2/π) arcsin(2c / sqrt((1+2va)(1+2vb)))."""
    return (2.0 / np.pi) * np.arcsin(np.clip(2.0 * c / np.sqrt((1.0 + 2.0 * va) * (1.0 + 2.0 * vb)), -1.0, 1.0))


def _k_erf_prime(va: Array, vb: Array, c: Array) -> Array:
    """E[erf'(u) erf'(v)] = (4/π)((1+2va)(1+2vb) − 4c²)^(−1/2)."""
    return (4.0 / np.pi) / np.sqrt((1.0 + 2.0 * va) * (1.0 + 2.0 * vb) - 4.0 * c * c)


def _k_quadratic(va: Array, vb: Array, c: Array) -> Array:
    """E[u² v²] = 2c² + va vb (the ς₂t²+ς₁t+ς₀ row with ς = (1, 0, 0))."""
    return 2.0 * c * c + va * vb


def _k_quadratic_prime(va: Array, vb: Array, c: Array) -> Array:
    """E[2u · 2v] = 4c."""
    return 4.0 * _k_linear(va, vb, c)


def _k_gauss(va: Array, vb: Array, c: Array) -> Array:
    """E[exp(−u²/2) exp(−v²/2)] = ((1+va)(1+vb) − c²)^(−1/2)."""
    return 1.0 / np.sqrt((1.0 + va) * (1.0 + vb) - c * c)


def _k_gauss_prime(va: Array, vb: Array, c: Array) -> Array:
    """E[u e^{−u²/2} v e^{−v²/2}] = c ((1+va)(1+vb) − c²)^(−3/2)."""
    return c / ((1.0 + va) * (1.0 + vb) - c * c) ** 1.5


def _jump_derivative_kernel(points: tuple[float, ...], jumps: tuple[float, ...]) -> KernelFn:
    """E[φ'(u)φ'(v)] for a step function φ' = Σ_i J_i δ(t − k_i): Σ_ij J_i J_j p_uv(k_i, k_j)."""

    def elementwise(va: Array, vb: Array, c: Array) -> Array:
        det = va * vb - c * c
        positive = det > 0
        safe = np.where(positive, det, 1.0)
        total = np.zeros(np.broadcast_shapes(va.shape, vb.shape, c.shape))
        for ki, ji in zip(points, jumps):
            for kj, jj in zip(points, jumps):
                quad = (vb * ki * ki - 2.0 * c * ki * kj + va * kj * kj) / safe
                total = total + ji * jj * np.exp(-0.5 * quad) / (2.0 * np.pi * np.sqrt(safe))
        return np.where(positive, total, _INF)

    elementwise.__name__ = "_jump_derivative_kernel"
    elementwise.__doc__ = "Σ_ij J_i J_j p_uv(k_i, k_j) over the jumps of φ; inf where va·vb = cov²."
    return _pairwise(elementwise)


# --------------------------------------------------------------------------------------------
# Pointwise functions.


def _erf(t: Array) -> Array:
    from scipy.special import erf  # imported on first use: keeps config loading (snakemake -n) light

    return erf(t)


def _expit(t: Array) -> Array:
    from scipy.special import expit

    return expit(t)


def _relu(t: Array) -> Array:
    return np.maximum(t, 0.0)


def _step(t: Array) -> Array:
    return (t > 0).astype(float)


def _erf_prime(t: Array) -> Array:
    return (2.0 / math.sqrt(math.pi)) * np.exp(-t * t)


def _tanh_prime(t: Array) -> Array:
    th = np.tanh(t)
    return 1.0 - th * th


def _sigmoid_prime(t: Array) -> Array:
    s = _expit(t)
    return s * (1.0 - s)


def _gauss(t: Array) -> Array:
    return np.exp(-0.5 * t * t)


def _gauss_prime(t: Array) -> Array:
    return -t * np.exp(-0.5 * t * t)


def _softplus(t: Array) -> Array:
    return np.logaddexp(0.0, t)


_R = (-_INF, _INF)

ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("linear", lambda t: np.array(t, dtype=float), np.ones_like, (), _pairwise(_k_linear),
                   _pairwise(_k_ones), "odd", "identity t", ((*_R, 0.0, 1.0),)),
        Activation("relu", _relu, _step, (0.0,), _pairwise(_k_relu), _pairwise(_k_step), "none",
                   "max(t, 0)", ((-_INF, 0.0, 0.0, 0.0), (0.0, _INF, 0.0, 1.0))),
        Activation("abs", np.abs, np.sign, (0.0,), _pairwise(_k_abs), _pairwise(_k_sign), "even",
                   "|t|", ((-_INF, 0.0, 0.0, -1.0), (0.0, _INF, 0.0, 1.0))),
        Activation("erf", _erf, _erf_prime, (), _pairwise(_k_erf), _pairwise(_k_erf_prime), "odd",
                   "error function erf(t)"),
        Activation("tanh", np.tanh, _tanh_prime, (), None, None, "odd", "tanh(t) (no closed-form kernel)"),
        Activation("sigmoid", _expit, _sigmoid_prime, (), None, None, "none",
                   "logistic 1/(1+e^{-t}) (no closed-form kernel)"),
        Activation("sign", np.sign, None, (0.0,), _pairwise(_k_sign), _jump_derivative_kernel((0.0,), (2.0,)),
                   "odd", "sign(t)", ((-_INF, 0.0, -1.0, 0.0), (0.0, _INF, 1.0, 0.0))),
        Activation("step", _step, None, (0.0,), _pairwise(_k_step), _jump_derivative_kernel((0.0,), (1.0,)),
                   "none", "Heaviside 1{t>0}", ((-_INF, 0.0, 0.0, 0.0), (0.0, _INF, 1.0, 0.0))),
        Activation("sin", np.sin, np.cos, (), _pairwise(_k_sin), _pairwise(_k_cos), "odd", "sin(t)"),
        Activation("cos", np.cos, lambda t: -np.sin(t), (), _pairwise(_k_cos), _pairwise(_k_sin), "even", "cos(t)"),
        Activation("quadratic", np.square, lambda t: 2.0 * t, (), _pairwise(_k_quadratic),
                   _pairwise(_k_quadratic_prime), "even", "t²"),
        Activation("gauss", _gauss, _gauss_prime, (), _pairwise(_k_gauss), _pairwise(_k_gauss_prime), "even",
                   "Gaussian bump exp(−t²/2)"),
        Activation("softplus", _softplus, _expit, (), None, None, "none",
                   "log(1 + e^t) (no closed-form kernel)"),
    ]
}


# --------------------------------------------------------------------------------------------
# Parametrised families.


def _fmt(x: float) -> str:
    return repr(float(x) + 0.0)  # + 0.0 turns −0.0 into 0.0


def _as_float(family: str, key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{family}: parameter {key!r} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{family}: parameter {key!r} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{family}: parameter {key!r} must be finite, got {value!r}")
    return x + 0.0


def piecewise_function(pieces: tuple[Piece, ...]) -> Callable[[ArrayLike], Array]:
    """The function described by ``pieces`` (see :attr:`Activation.piecewise`).

    At a breakpoint the piece on the left wins, so a step ``1{t > k}`` is 0 at k.

    Examples
    --------
    >>> piecewise_function(((-np.inf, 0.0, 0.0, 0.0), (0.0, np.inf, 1.0, 0.0)))([-1.0, 0.0, 2.0])
    array([0., 0., 1.])
    """
    bounds = np.array([p[1] for p in pieces[:-1]])
    icpt = np.array([p[2] for p in pieces])
    slope = np.array([p[3] for p in pieces])

    def phi(t: ArrayLike) -> Array:
        t = np.asarray(t, dtype=float)
        idx = np.searchsorted(bounds, t, side="left")
        return icpt[idx] + slope[idx] * t

    return phi


def _leaky_relu(a: float, b: float) -> Activation:
    lo, hi = min(a, b), max(a, b)
    # max(a t, b t) = lo·t + (hi − lo)·relu(t): a linear part plus a ReLU part.
    c2 = hi - lo

    def kernel(va: Array, vb: Array, c: Array) -> Array:
        """(lo² + lo·(hi−lo)) c + (hi−lo)² K_relu, using E[u relu(v)] = c/2."""
        return (lo * lo + lo * c2) * c + c2 * c2 * _k_relu(va, vb, c)

    def dkernel(va: Array, vb: Array, c: Array) -> Array:
        """E[(lo + (hi−lo)1{u>0})(lo + (hi−lo)1{v>0})]."""
        pa, pb = 0.5 * (va > 0), 0.5 * (vb > 0)
        return lo * lo + lo * c2 * (pa + pb) + c2 * c2 * _k_step(va, vb, c)

    parity: Parity = "odd" if a == b else ("even" if a == -b else "none")
    return Activation(
        name=f"leaky_relu(a={_fmt(a)},b={_fmt(b)})",
        phi=lambda t: np.maximum(a * t, b * t),
        derivative=lambda t: np.where(t > 0, hi, lo),
        kinks=(0.0,),
        kernel=_pairwise(kernel),
        derivative_kernel=_pairwise(dkernel),
        parity=parity,
        description=f"max({_fmt(a)}·t, {_fmt(b)}·t)",
        piecewise=((-_INF, 0.0, 0.0, lo), (0.0, _INF, 0.0, hi)),
    )


def _binary(threshold: float, scale: float = 1.0) -> Activation:
    if scale == 0.0:
        raise ValueError("binary: parameter 'scale' must be non-zero")
    pieces = ((-_INF, threshold, 0.0, 0.0), (threshold, _INF, scale, 0.0))
    kernel = None
    if threshold == 0.0:
        kernel = _pairwise(lambda va, vb, c: scale * scale * _k_step(va, vb, c))
    return Activation(
        name=f"binary(threshold={_fmt(threshold)},scale={_fmt(scale)})",
        phi=piecewise_function(pieces),
        derivative=None,
        kinks=(threshold,),
        kernel=kernel,
        derivative_kernel=_jump_derivative_kernel((threshold,), (scale,)),
        parity="none",
        description=f"{_fmt(scale)}·1{{t > {_fmt(threshold)}}}",
        piecewise=pieces,
    )


def _ternary(s_minus: float, s_plus: float, scale: float = 1.0) -> Activation:
    if not s_minus < 0.0:
        raise ValueError(f"ternary: parameter 's_minus' must be < 0, got {s_minus!r}")
    if not s_plus > 0.0:
        raise ValueError(f"ternary: parameter 's_plus' must be > 0, got {s_plus!r}")
    if scale == 0.0:
        raise ValueError("ternary: parameter 'scale' must be non-zero")
    pieces = ((-_INF, s_minus, -scale, 0.0), (s_minus, s_plus, 0.0, 0.0), (s_plus, _INF, scale, 0.0))

    def phi(t: Array) -> Array:
        # Written out rather than from `pieces`: at t = s− the value is 0 (strict inequalities).
        t = np.asarray(t, dtype=float)
        return scale * ((t > s_plus).astype(float) - (t < s_minus))

    return Activation(
        name=f"ternary(s_minus={_fmt(s_minus)},s_plus={_fmt(s_plus)},scale={_fmt(scale)})",
        phi=phi,
        derivative=None,
        kinks=(s_minus, s_plus),
        kernel=None,
        derivative_kernel=_jump_derivative_kernel((s_minus, s_plus), (scale, scale)),
        parity="odd" if s_minus == -s_plus else "none",
        description=f"{_fmt(scale)}·(1{{t > {_fmt(s_plus)}}} − 1{{t < {_fmt(s_minus)}}})",
        piecewise=pieces,
    )


def _clip(c: float, scale: float = 1.0) -> Activation:
    if not c > 0.0:
        raise ValueError(f"clip: parameter 'c' must be > 0, got {c!r}")
    if scale == 0.0:
        raise ValueError("clip: parameter 'scale' must be non-zero")
    return Activation(
        name=f"clip(c={_fmt(c)},scale={_fmt(scale)})",
        phi=lambda t: scale * np.clip(t, -c, c),
        derivative=lambda t: scale * (np.abs(t) < c),
        kinks=(-c, c),
        kernel=None,
        derivative_kernel=None,
        parity="odd",
        description=f"{_fmt(scale)}·clip(t, −{_fmt(c)}, {_fmt(c)})",
        piecewise=((-_INF, -c, -scale * c, 0.0), (-c, c, 0.0, scale), (c, _INF, scale * c, 0.0)),
    )


def _std(var: ArrayLike) -> Array:
    return np.sqrt(np.clip(np.atleast_1d(np.asarray(var, dtype=float)), 0.0, None))


def _centered(base: Activation, shift: float) -> Activation:
    phi, kinks = base.phi, base.kinks
    kernel = None
    if base.kernel is not None:
        base_kernel = base.kernel

        def kernel(var_a: ArrayLike, var_b: ArrayLike, cov: ArrayLike) -> Array:
            """K_base − shift (E φ(u) + E φ(v)) + shift²."""
            ma = gaussian_expectations(phi, _std(var_a), kinks=kinks)
            mb = gaussian_expectations(phi, _std(var_b), kinks=kinks)
            return base_kernel(var_a, var_b, cov) - shift * (ma[:, None] + mb[None, :]) + shift * shift

    parity: Parity = base.parity if shift == 0.0 or base.parity == "even" else "none"
    pieces = None if base.piecewise is None else tuple((lo, hi, i - shift, s) for lo, hi, i, s in base.piecewise)
    return Activation(
        name=f"centered(base={base.name},shift={_fmt(shift)})",
        phi=lambda t: phi(t) - shift,
        derivative=base.derivative,
        kinks=kinks,
        kernel=kernel,
        derivative_kernel=base.derivative_kernel,
        parity=parity,
        description=f"{base.name} − {_fmt(shift)}",
        piecewise=pieces,
    )


@dataclass(frozen=True)
class _Family:
    params: tuple[str, ...]
    required: tuple[str, ...]
    description: str


_FAMILIES: dict[str, _Family] = {
    "leaky_relu": _Family(("a", "b"), ("a", "b"), "max(a·t, b·t)"),
    "binary": _Family(("threshold", "scale"), ("threshold",), "scale·1{t > threshold}"),
    "ternary": _Family(("s_minus", "s_plus", "scale"), ("s_minus", "s_plus"),
                       "scale·(1{t > s_plus} − 1{t < s_minus}), s_minus < 0 < s_plus"),
    "clip": _Family(("c", "scale"), ("c",), "scale·clip(t, −c, c), c > 0"),
    "centered": _Family(("base", "shift", "tau"), ("base",),
                        "φ_base(t) − shift; or shift = E φ_base(tau·ξ) when tau is given instead"),
}


# One object per canonical name, so equal specs give the identical (hashable, comparable) entry.
_FAMILY_CACHE: dict[str, Activation] = {}


def _build_family(family: str, params: Mapping[str, Any]) -> Activation:
    act = _construct_family(family, params)
    return _FAMILY_CACHE.setdefault(act.name, act)


def _construct_family(family: str, params: Mapping[str, Any]) -> Activation:
    spec = _FAMILIES[family]
    unknown = [k for k in params if k not in spec.params]
    if unknown:
        raise ValueError(f"{family}: unknown parameter {unknown[0]!r}; allowed: {', '.join(spec.params)}")
    missing = [k for k in spec.required if k not in params]
    if missing:
        raise ValueError(f"{family}: missing parameter {missing[0]!r} ({spec.description})")
    if family == "centered":
        base = get_activation(params["base"])
        if ("shift" in params) == ("tau" in params):
            raise ValueError("centered: give exactly one of parameter 'shift' or parameter 'tau'")
        if "shift" in params:
            shift = _as_float(family, "shift", params["shift"])
        else:
            tau = _as_float(family, "tau", params["tau"])
            if tau <= 0:
                raise ValueError(f"centered: parameter 'tau' must be > 0, got {tau!r}")
            shift = gaussian_expectation(base.phi, scale=tau, kinks=base.kinks)
        return _centered(base, shift)
    values = {k: _as_float(family, k, v) for k, v in params.items()}
    builder: Callable[..., Activation] = {
        "leaky_relu": _leaky_relu, "binary": _binary, "ternary": _ternary, "clip": _clip,
    }[family]
    return builder(**values)


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in activation spec {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in activation spec {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", re.DOTALL)


def _allowed_message() -> str:
    return (f"allowed names: {', '.join(ACTIVATIONS)}; parametrised families (as a mapping with "
            f"'family' or as 'family(key=value,...)'): {', '.join(_FAMILIES)}")


def activation_names() -> list[str]:
    """Names of the registered (non-parametrised) activations.

    Examples
    --------
    >>> "relu" in activation_names() and "tanh" in activation_names()
    True
    """
    return list(ACTIVATIONS)


def family_names() -> list[str]:
    """Names of the parametrised activation families.

    Examples
    --------
    >>> family_names()
    ['leaky_relu', 'binary', 'ternary', 'clip', 'centered']
    """
    return list(_FAMILIES)


def get_activation(spec: str | Mapping[str, Any] | Activation) -> Activation:
    """Look up or build an activation.

    Parameters
    ----------
    spec
        A registered name (``"relu"``); a canonical family name
        (``"ternary(s_minus=-0.5,s_plus=0.81,scale=1.75)"``); a mapping
        ``{"family": "ternary", "s_minus": -0.5, "s_plus": 0.81, "scale": 1.75}``; or an
        :class:`Activation`, returned unchanged. Families: ``leaky_relu(a, b)``,
        ``binary(threshold, scale=1)``, ``ternary(s_minus, s_plus, scale=1)``,
        ``clip(c, scale=1)``, ``centered(base, shift)`` (or ``tau`` instead of ``shift`` to centre
        at E φ_base(τξ)).

    Returns
    -------
    Activation
        Parametrised activations carry their canonical name, floats written as ``repr(float)``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the allowed names and families) or invalid parameter
        (the message names it).

    Examples
    --------
    >>> get_activation({"family": "ternary", "s_minus": -0.5, "s_plus": 0.81, "scale": 1.75}).name
    'ternary(s_minus=-0.5,s_plus=0.81,scale=1.75)'
    >>> get_activation("centered(base=relu,shift=0.5)")(np.array([-1.0, 2.0]))
    array([-0.5,  1.5])
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, Mapping):
        params = dict(spec)
        family = params.pop("family", None)
        if not isinstance(family, str):
            raise ValueError(f"an activation mapping needs a 'family' string; {_allowed_message()}")
        if family in ACTIVATIONS and not params:
            return ACTIVATIONS[family]
        if family not in _FAMILIES:
            raise ValueError(f"unknown activation family {family!r}; {_allowed_message()}")
        return _build_family(family, params)
    if not isinstance(spec, str):
        raise ValueError(
            f"activation spec must be a name or a mapping, got {type(spec).__name__}; {_allowed_message()}")
    name = spec.strip()
    if name in ACTIVATIONS:
        return ACTIVATIONS[name]
    head = re.match(r"^([A-Za-z_]\w*)\s*\(", name)
    if head and head.group(1) in _FAMILIES and not name.endswith(")"):
        raise ValueError(f"malformed activation spec {spec!r}: unbalanced parentheses")
    match = _CALL.match(name)
    if match and match.group(1) in _FAMILIES:
        params: dict[str, Any] = {}
        for part in _split_top_level(match.group(2)):
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"{match.group(1)}: expected key=value, got {part!r}")
            params[key.strip()] = value.strip()
        return _build_family(match.group(1), params)
    raise ValueError(f"unknown activation {spec!r}; {_allowed_message()}")


# --------------------------------------------------------------------------------------------
# Gaussian moments by Stein forms.


def _check_tau(tau: float) -> float:
    tau = float(tau)
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a positive standard deviation, got {tau!r}")
    return tau


def _phi_on_rule(act: Activation, tau: float, order: int = 4) -> tuple[Array, Array, Array]:
    # Higher Hermite orders reach further out (turning point 2√k) and oscillate faster.
    bound = max(12.0, 2.0 * math.sqrt(order + 1) + 8.0)
    panel = min(1.0, 5.0 / math.sqrt(order + 1))
    xi, w = gaussian_rule(scale=tau, kinks=act.kinks, bound=bound, panel_width=panel)
    return xi, w, np.asarray(act.phi(tau * xi), dtype=float)


def hermite_coefficients(act: str | Mapping[str, Any] | Activation, *, tau: float = 1.0, order: int = 3) -> Array:
    """Normalised Hermite coefficients a_0..a_order of φ_τ(t) = φ(τt) (formula sheet section 1).

    ``a_k = E[φ(τξ) He_k(ξ)]`` with ``He_k`` the probabilists' Hermite polynomial divided by
    sqrt(k!), so that ``Σ_k a_k² = E φ(τξ)²`` and, by Mehler, ``E[φ(τu)φ(τv)] = Σ_k a_k² ρ^k``
    for standard (u, v) with correlation ρ. Computed by quadrature split at the kinks
    (about 1e-13 absolute).

    Parameters
    ----------
    act
        Activation or spec accepted by :func:`get_activation`.
    tau
        Standard deviation of the argument (data norm), > 0.
    order
        Highest coefficient returned.

    Returns
    -------
    ndarray
        Shape ``(order + 1,)``.

    Examples
    --------
    >>> print(np.round(hermite_coefficients("relu"), 6) + 0.0)  # 1/sqrt(2π), 1/2, 1/sqrt(4π), 0
    [0.398942 0.5      0.282095 0.      ]
    """
    act = get_activation(act)
    tau = _check_tau(tau)
    xi, w, f = _phi_on_rule(act, tau, order)
    return hermite_table(xi, order) @ (w * f)


def hermite_nu(act: str | Mapping[str, Any] | Activation, *, tau: float = 1.0) -> float:
    """ν = E φ(τξ)² (= Σ_k a_k²).

    Examples
    --------
    >>> print(f"{hermite_nu('erf'):.12f}")  # (2/π) arcsin(2/3)
    0.464559054398
    """
    act = get_activation(act)
    tau = _check_tau(tau)
    return gaussian_expectation(lambda t: np.asarray(act.phi(t), dtype=float) ** 2, scale=tau, kinks=act.kinks)


@dataclass(frozen=True)
class GaussianMoments:
    """Gaussian moments of φ at scale τ (ξ ~ N(0, 1); derivatives are weak derivatives).

    Attributes
    ----------
    tau
        The standard deviation τ.
    mean
        E φ(τξ).
    d1, d2, d3, d4
        E φ^{(k)}(τξ) = E[He_k(ξ) φ(τξ)] / τ^k (Stein; He_k unnormalised probabilists').
    second
        E φ(τξ)².
    var
        Var φ(τξ).
    d1_sq
        E φ'(τξ)² from the a.e. derivative; ``inf`` when φ has a jump (its φ' has a Dirac mass);
        ``nan`` when φ is continuous but has no registered derivative.
    q
        E[φ'² + φ̄ φ''](τξ) with φ̄ = φ − mean, by the Stein form E[(ξ²−1) φ̄(τξ)²] / (2τ²)
        (Gu+22's α_{ℓ,4} factor; finite even for step-like φ, e.g. 0 for sign).
    """

    tau: float
    mean: float
    d1: float
    d2: float
    d3: float
    d4: float
    second: float
    var: float
    d1_sq: float
    q: float


def gaussian_moments(act: str | Mapping[str, Any] | Activation, *, tau: float) -> GaussianMoments:
    """All Gaussian moments of φ at scale τ by Stein forms (formula sheet sections 1 and 4.2).

    Parameters
    ----------
    act
        Activation or spec.
    tau
        Standard deviation of the argument, > 0 (not the LC18 variance; pitfall P1).

    Returns
    -------
    GaussianMoments

    Examples
    --------
    >>> m = gaussian_moments("relu", tau=1.3)
    >>> print(f"{m.d2:.10f} {m.q:.10f}")  # 1/(1.3 sqrt(2π)) and 1/2 − 1/(2π)
    0.3068786772 0.3408450569
    """
    act = get_activation(act)
    tau = _check_tau(tau)
    xi, w, f = _phi_on_rule(act, tau)
    he = hermite_table(xi, 4, normalized=False)
    wf = w * f
    mean = float(w @ f)
    d = [float(he[k] @ wf) / tau**k for k in range(1, 5)]
    centred = f - mean
    var = float(w @ centred**2)
    q = float(w @ (he[2] * centred**2)) / (2.0 * tau * tau)
    if act.has_jumps:
        d1_sq = _INF
    elif act.derivative is not None:
        derivative = act.derivative
        d1_sq = gaussian_expectation(lambda t: np.asarray(derivative(t), dtype=float) ** 2, scale=tau, kinks=act.kinks)
    else:
        d1_sq = math.nan
    return GaussianMoments(tau=tau, mean=mean, d1=d[0], d2=d[1], d3=d[2], d4=d[3], second=float(w @ f**2),
                           var=var, d1_sq=d1_sq, q=q)


def alpha_coefficients(act: str | Mapping[str, Any] | Activation, *, tau: float) -> tuple[float, float, float, float]:
    """(α0, α1, α2, α3) of the conjugate-kernel equivalent (formula sheet section 4.2).

    ``α0 = Var φ(τξ) − τ² (E φ')²``, ``α1 = (E φ')²``, ``α2 = (E φ'')²/4``, ``α3 = 2 α2``,
    expectations at τξ with τ a standard deviation (the slides' "τ E[φ']²" is a typo; for LC18's
    Table 2 use ``tau = sqrt(τ_v)``).

    Examples
    --------
    >>> a0, a1, a2, a3 = alpha_coefficients("relu", tau=1.0)
    >>> print(f"{a0:.10f} {a1:.2f} {a2:.10f}")  # 1/4 − 1/(2π), 1/4, 1/(8π)
    0.0908450569 0.25 0.0397887358
    """
    m = gaussian_moments(act, tau=tau)
    alpha2 = 0.25 * m.d2**2
    return (m.var - m.tau**2 * m.d1**2, m.d1**2, alpha2, 2.0 * alpha2)
