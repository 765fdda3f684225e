"""Quantised activations matched to a target activation (formula sheet section 4.5; AZC22's TRF).

A binary ``σ(t) = c 1{t > s}`` or ternary ``σ(t) = c (1{t > s₊} - 1{t < s₋})`` activation is chosen
so that its first two Gaussian moments at the data scale τ equal the target's,

    ``E σ'(τξ) = E φ'(τξ)`` and ``E σ''(τξ) = E φ''(τξ)``,

which matches α1 and α2 (and α3 = 2 α2) of the conjugate-kernel equivalent (formula sheet section 4.3),
with the signs of the Hermite coefficients a1, a2 kept as well. With ``u = s₊/τ``, ``v = s₋/τ`` and
``f`` the standard normal density (formula sheet section 4.5):

    ``E σ' = (c/τ)(f(u) + f(v))``, ``E σ'' = (c/τ²)(u f(u) + v f(v))``,
    ``Var σ = c² (P₊ + P₋ - (P₊ - P₋)²)``, ``P₊ = P(ξ > u)``, ``P₋ = P(ξ < v)``.

The binary match is unique: ``u = τ m2/m1``. The ternary matches form a one-parameter family
(two equations, three unknowns); :func:`match_ternary` returns the member with the smallest
``|Δα0|``. The mismatch ``Δα0 = α0(σ) - α0(φ) = Var σ - Var φ`` remains: it adds ``Δα0 I_n`` to the
kernel, i.e. it acts as an extra ridge (:meth:`QuantizedMatch.target_ridge`).

τ is a standard deviation (pitfall P1). The TRF repository's conventions differ (weights of
variance 1 - eps, thresholds at sqrt(2) s, a second equation off by sqrt(2); pitfall P17): these
equations are re-derived, not copied.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from rmtbench.activations import Activation, alpha_coefficients, gaussian_moments, get_activation

__all__ = ["QuantizedMatch", "match_binary", "match_ternary"]

ActivationSpec = str | Mapping[str, Any] | Activation
#: Thresholds are kept within this many standard deviations: beyond, a step fires with probability
#: below 1e-15 and the scale needed to match α1 overflows any useful range.
MAX_THRESHOLD_STD = 8.0
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class QuantizedMatch:
    """A quantised activation matched to a target's α1 and α2 at scale τ.

    Attributes
    ----------
    activation
        The quantised :class:`~rmtbench.activations.Activation` (family ``binary`` or ``ternary``).
    spec
        Its mapping spec, e.g. ``{"family": "ternary", "s_minus": ..., "s_plus": ..., "scale": ...}``
        (accepted by :func:`~rmtbench.activations.get_activation` and by configs).
    alpha_target
        ``(α0, α1, α2, α3)`` of the target at τ.
    alpha_matched
        ``(α0, α1, α2, α3)`` of the quantised activation at τ, recomputed by quadrature from the
        activation itself (not from the matching equations).
    delta_alpha0
        ``alpha_matched[0] - alpha_target[0]``: the quantised kernel is the target's plus
        ``delta_alpha0 · I_n`` to leading order.
    """

    activation: Activation
    spec: Mapping[str, Any]
    alpha_target: tuple[float, float, float, float]
    alpha_matched: tuple[float, float, float, float]
    delta_alpha0: float

    def target_ridge(self, gamma: float) -> float:
        """The ridge of the target that the quantised features at ridge ``gamma`` behave like.

        In the kernel limit (d >> n) ridge regression on the quantised features sees
        ``K_target + Δα0 I`` (up to O(p^{-1/2}) and the 1_n directions, formula sheet section 4.5),
        so it equals kernel ridge on the target's kernel at ``gamma + Δα0``; conversely, use
        ``gamma - Δα0`` (when positive) on the quantised features to emulate the target at ``gamma``.

        Examples
        --------
        >>> m = match_binary("relu", tau=1.0)
        >>> abs(m.target_ridge(0.1) - 0.1 - m.delta_alpha0) < 1e-15
        True
        """
        return float(gamma) + self.delta_alpha0


def _normal_pdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


def _target_moments(target: ActivationSpec, tau: float) -> tuple[Activation, float, float, float]:
    act = get_activation(target)
    m = gaussian_moments(act, tau=tau)
    if not all(math.isfinite(x) for x in (m.d1, m.d2, m.var)):
        raise ValueError(f"{act.name}: Gaussian moments at tau={tau} are not finite")
    scale = math.sqrt(max(m.second, 0.0))
    if abs(m.d1) * m.tau <= 1e-10 * max(scale, 1e-300):
        raise ValueError(
            f"no binary or ternary activation matches {act.name} at tau={tau}: its alpha1 = (E phi')^2 is 0 "
            "(an even activation such as abs or cos), while a step c*1{t>s} or c*(1{t>s+} - 1{t<s-}) "
            "has E sigma' = (c/tau)(f(s+/tau) + f(s-/tau)) != 0 for every c != 0"
        )
    return act, m.d1, m.d2, m.var


def _result(target: Activation, tau: float, spec: dict[str, Any]) -> QuantizedMatch:
    act = get_activation(spec)
    a_t = tuple(float(x) for x in alpha_coefficients(target, tau=tau))
    a_m = tuple(float(x) for x in alpha_coefficients(act, tau=tau))
    return QuantizedMatch(activation=act, spec=spec, alpha_target=a_t, alpha_matched=a_m,  # type: ignore[arg-type]
                          delta_alpha0=a_m[0] - a_t[0])


def _check_threshold(u: float, target: Activation, tau: float, what: str) -> None:
    if not abs(u) <= MAX_THRESHOLD_STD:
        raise ValueError(
            f"no practical {what} activation matches {target.name} at tau={tau}: the threshold would sit at "
            f"{u:.3g} standard deviations (|E phi''/E phi'| * tau is too large); beyond {MAX_THRESHOLD_STD:g} "
            "the step almost never fires"
        )


def match_binary(target: ActivationSpec, *, tau: float) -> QuantizedMatch:
    """The binary activation ``c 1{t > s}`` with the target's E φ'(τξ) and E φ''(τξ).

    Unique solution: ``s = τ² m2/m1`` and ``c = m1 τ / f(s/τ)`` (``m_k = E φ^(k)(τξ)``, ``f`` the
    standard normal density).

    Parameters
    ----------
    target
        Activation or spec.
    tau
        The data's scale, a standard deviation (``sqrt(tr C°/p)``, or ``sqrt(mean ||x_i||²)``).

    Returns
    -------
    QuantizedMatch

    Raises
    ------
    ValueError
        When the target's α1 is 0 (even φ), or the threshold would lie beyond
        :data:`MAX_THRESHOLD_STD` standard deviations.

    Examples
    --------
    >>> m = match_binary("relu", tau=1.0)  # formula sheet section 4.5: c ≈ 1.75, s ≈ 0.81 τ, Δα0 ≈ 0.16
    >>> print(f"{m.spec['threshold']:.4f} {m.spec['scale']:.4f} {m.delta_alpha0:.4f}")  # s = τ sqrt(2/π)
    0.7979 1.7231 0.1559
    """
    act, m1, m2, _ = _target_moments(target, tau)
    tau = float(tau)
    u = tau * m2 / m1
    if abs(u) < 1e-12:  # odd target: m2 is 0 up to quadrature rounding
        u = 0.0
    _check_threshold(u, act, tau, "binary")
    scale = m1 * tau / _normal_pdf(u)
    return _result(act, tau, {"family": "binary", "threshold": float(u * tau), "scale": float(scale)})


def _ternary_members(v: float, ratio: float) -> list[float]:
    """All u > 0 with (u f(u) + v f(v)) / (f(u) + f(v)) = ratio, i.e. (u - R) f(u) = (R - v) f(v)."""
    b = (ratio - v) * _normal_pdf(v)
    u_star = 0.5 * (ratio + math.sqrt(ratio * ratio + 4.0))  # the maximum of h(u) = (u - R) f(u)
    peak = (u_star - ratio) * _normal_pdf(u_star)

    def h(u: float) -> float:
        return (u - ratio) * _normal_pdf(u) - b

    roots = []
    if b > peak:
        return roots
    h0 = -ratio * _INV_SQRT_2PI
    if h0 < b:  # increasing branch on (0, u*)
        roots.append(u_star if b == peak else optimize.brentq(h, 0.0, u_star, xtol=1e-15, rtol=1e-15))
    if b > 0.0 and b < peak:  # decreasing branch on (u*, inf), h -> 0+
        hi = u_star + 1.0
        while h(hi) > 0.0:
            hi = u_star + 2.0 * (hi - u_star)
        roots.append(optimize.brentq(h, u_star, hi, xtol=1e-15, rtol=1e-15))
    return [r for r in roots if r > 0.0]


def _ternary_delta(u: float, v: float, m1: float, tau: float, var_target: float) -> tuple[float, float]:
    scale = m1 * tau / (_normal_pdf(u) + _normal_pdf(v))
    p_plus, p_minus = special.ndtr(-u), special.ndtr(v)
    var = scale * scale * (p_plus + p_minus - (p_plus - p_minus) ** 2)
    return var - var_target, scale


def match_ternary(target: ActivationSpec, *, tau: float) -> QuantizedMatch:
    """The ternary activation ``c (1{t > s₊} - 1{t < s₋})`` matching the target's α1 and α2 with least |Δα0|.

    For each ``s₋/τ = v`` in ``[-8, 0)`` the threshold ``s₊/τ = u > 0`` solves
    ``(u f(u) + v f(v)) / (f(u) + f(v)) = τ m2/m1`` (up to two roots) and
    ``c = m1 τ / (f(u) + f(v))``; the member with the smallest ``|Var σ - Var φ|`` is returned
    (a grid over v, then a bounded scalar refinement). For ReLU at τ ≈ 1 the best member degenerates
    to the binary step (s₋ at the edge of the search range, formula sheet section 4.5): the family
    cannot match α0, and the remaining ``Δα0`` is reported.

    Parameters
    ----------
    target
        Activation or spec.
    tau
        The data's scale, a standard deviation.

    Returns
    -------
    QuantizedMatch

    Raises
    ------
    ValueError
        When the target's α1 is 0 (even φ: no step function has E σ' = 0), or no member has both
        thresholds within :data:`MAX_THRESHOLD_STD` standard deviations.

    Examples
    --------
    >>> m = match_ternary("erf", tau=1.0)  # odd target: a symmetric member, s₋ = -s₊
    >>> print(f"{m.spec['s_minus'] + m.spec['s_plus']:.6f} {m.delta_alpha0:.4f}")
    0.000000 0.0595
    """
    act, m1, m2, var_target = _target_moments(target, tau)
    tau = float(tau)
    ratio = tau * m2 / m1
    if abs(ratio) < 1e-12:
        ratio = 0.0

    def best_for(v: float) -> tuple[float, float, float]:
        """(|Δα0|, u, scale) of the best member with this v (inf when none)."""
        best = (math.inf, math.nan, math.nan)
        for u in _ternary_members(v, ratio):
            if u > MAX_THRESHOLD_STD:
                continue
            delta, scale = _ternary_delta(u, v, m1, tau, var_target)
            if abs(delta) < best[0]:
                best = (abs(delta), u, scale)
        return best

    grid = -np.concatenate([np.geomspace(1e-6, 1e-2, 9)[:-1], np.linspace(1e-2, MAX_THRESHOLD_STD, 400)])
    values = [best_for(float(v))[0] for v in grid]
    k = int(np.argmin(values))
    if not math.isfinite(values[k]):
        raise ValueError(
            f"no practical ternary activation matches {act.name} at tau={tau}: every member of the family needs a "
            f"threshold beyond {MAX_THRESHOLD_STD:g} standard deviations (tau*E phi''/E phi' = {ratio:.3g})"
        )
    lo, hi = float(grid[min(k + 1, grid.size - 1)]), float(grid[max(k - 1, 0)])
    v_best = float(grid[k])
    if lo < hi:
        res = optimize.minimize_scalar(lambda v: best_for(v)[0], bounds=(lo, hi), method="bounded",
                                       options={"xatol": 1e-12})
        if res.success and res.fun <= values[k]:
            v_best = float(res.x)
    if ratio == 0.0:
        # odd target: the symmetric member u = -v solves the equations exactly; keep it symmetric
        _, u_best, scale = best_for(v_best)
        if abs(u_best + v_best) < 1e-6:
            u_best = -v_best
            _, scale = _ternary_delta(u_best, v_best, m1, tau, var_target)
    else:
        _, u_best, scale = best_for(v_best)
    return _result(act, tau, {"family": "ternary", "s_minus": v_best * tau, "s_plus": float(u_best * tau),
                              "scale": float(scale)})
