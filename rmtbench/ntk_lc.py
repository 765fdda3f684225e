"""NTK-LC matching (Gu+22): a compressed deep net with the original's NTK linear-equivalent coefficients.

Seed slides "Fully-connected deep nets: CK, NTK, and beyond" and the NTK-LC figure; formula sheet
sections 4.5 and 5 (pitfalls P11, P14, P15). For a centred deep net Σ_ℓ = (φ_ℓ(W_ℓΣ_{ℓ−1}) − c_ℓ)/√d_ℓ
the linear equivalents K̃_CK,ℓ and K̃_NTK,ℓ depend on the activations only through the per-layer
moments E φ_ℓ', E φ_ℓ'', Var φ_ℓ and q_ℓ = E[φ_ℓ'² + φ̄_ℓφ_ℓ''] at τ_{ℓ−1}ξ, and on the weights only
through their (unit) variance. The compressed net therefore keeps the widths, draws sparse ternary
weights of sparsity eps (unit variance, seed eq. 13) and replaces each φ_ℓ by a step function:

* hidden layers ℓ < L: the **binary** ``σ(t) = b (1{t < s₋} + 1{t > s₊})`` (values {0, b}: 1 bit,
  Gu+22's form) solving (E σ')² = (E φ')², (E σ'')² = (E φ'')², q(σ) = q(φ), each side at its own
  network's τ_{ℓ−1}: then α_{ℓ,1..4} and β_{ℓ,1..3} equal the original's (of the mirror pair t ↔ −t
  that solves these equations, the step whose E σ' has the sign of E φ');
* the last layer: the **three-level** ``σ(t) = a₋ 1{t < s₋} + a₊ 1{t > s₊}`` (values {a₋, 0, a₊}:
  2 bits) solving E σ' = E φ', E σ'' = E φ'' and, as closely as the family allows, Var σ = Var φ
  (τ_L): α_{L,1..3}, β_{L,1..3} match; α_{L,4} enters no kernel of the network. Where Var φ is out
  of reach the step of least variance is used; where it is reachable, the one that keeps that
  step's centre and widens its dead zone (see :func:`_solve_last`).

What cannot be matched is refused, not approximated: for a hidden φ odd up to a constant (erf, tanh,
sigmoid) E φ'' = 0, and the binary step's q(σ) = (b − 2 E σ) E σ''/2 then vanishes while q(φ) > 0, so
no step solves the hidden equations (:data:`HIDDEN_TOLERANCE`; such φ can be the last layer's). A
step as the original (sign) has no derivative, hence no NTK.

What cannot be matched, measured and reported (not hidden): for ReLU the hidden layers' τ_ℓ is
not free once (d1², d2², q) are fixed, and at the last layer no three-level step has ReLU's small
variance for its E σ', E σ'' (formula sheet section 4.5: Δα0 > 0). Both only move the identity
coefficients (τ_ℓ² − τ_0²α_{ℓ,1} of K̃_CK,ℓ, κ_ℓ² − τ_0²β_{ℓ,1} of K̃_NTK,ℓ), i.e. act as a ridge.
Step activations have E σ'² = ∞: the compressed net's κ_ℓ² (the NTK diagonal) is defined here with
the **surrogate derivative** used in training (straight-through: the original φ_ℓ' at the compressed
pre-activations), the one reported assumption.

The solved moments use closed forms (below); :func:`coefficient_table` recomputes every coefficient
of both networks independently, by Gauss–Hermite quadrature of the actual activations through
:func:`rmtbench.theory.deep.layer_coefficients`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special

from rmtbench.activations import Activation, gaussian_expectation, gaussian_moments, get_activation

__all__ = [
    "LayerMatch", "NTKLCMatch", "StepParams", "coefficient_table", "heuristic_binary", "match_network",
    "step_activation", "step_moments",
]

ActivationSpec = str | Mapping[str, Any] | Activation
_SQRT_2PI = math.sqrt(2.0 * math.pi)
#: Coefficient names in :func:`coefficient_table`, in order.
COEFFICIENTS = ("tau2", "alpha1", "alpha2", "alpha3", "alpha4", "beta1", "beta2", "beta3", "ck_identity", "kappa2",
                "ntk_identity")


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / _SQRT_2PI if math.isfinite(x) else 0.0


@dataclass(frozen=True)
class StepParams:
    """``σ(t) = a_minus 1{t < s_minus} + a_plus 1{t > s_plus}``, ``s_minus <= s_plus``."""

    s_minus: float
    s_plus: float
    a_minus: float
    a_plus: float

    @property
    def levels(self) -> int:
        """Number of distinct output values (2 when a_minus = a_plus or one side is 0, else 3)."""
        a, b = self.a_minus, self.a_plus
        return 2 if (a == b or a == 0.0 or b == 0.0) else 3

    @property
    def bits(self) -> int:
        """Bits to store one activation value: ceil(log2(levels))."""
        return int(math.ceil(math.log2(self.levels)))

    def to_dict(self) -> dict[str, float]:
        return {"s_minus": self.s_minus, "s_plus": self.s_plus, "a_minus": self.a_minus, "a_plus": self.a_plus}


def step_activation(params: StepParams) -> Activation:
    """The step function of ``params`` as an :class:`~rmtbench.activations.Activation` (piecewise constant).

    Examples
    --------
    >>> act = step_activation(StepParams(-1.0, 1.0, 1.0, 1.0))  # the heuristic 1{t<-1} + 1{t>1}
    >>> act(np.array([-2.0, 0.0, 2.0])).tolist()
    [1.0, 0.0, 1.0]
    """
    p = params
    if not p.s_minus <= p.s_plus:
        raise ValueError(f"need s_minus <= s_plus, got {p.s_minus} > {p.s_plus}")
    pieces = ((-math.inf, p.s_minus, p.a_minus, 0.0), (p.s_minus, p.s_plus, 0.0, 0.0), (p.s_plus, math.inf, p.a_plus, 0.0))

    def phi(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        return np.where(t < p.s_minus, p.a_minus, 0.0) + np.where(t > p.s_plus, p.a_plus, 0.0)

    name = f"step(s_minus={p.s_minus:.6g},s_plus={p.s_plus:.6g},a_minus={p.a_minus:.6g},a_plus={p.a_plus:.6g})"
    return Activation(name=name, phi=phi, derivative=None, kinks=(p.s_minus, p.s_plus), piecewise=pieces,
                      description="quantised step activation (NTK-LC)")


def heuristic_binary() -> StepParams:
    """The slides' heuristic binary activation φ(t) = 1{t < −1} + 1{t > 1}."""
    return StepParams(-1.0, 1.0, 1.0, 1.0)


def step_moments(params: StepParams, *, tau: float) -> tuple[float, float, float, float]:
    """Closed-form (E σ', E σ'', Var σ, q) at τξ (Stein forms; q = E[(ξ²−1) σ̄²]/(2τ²)).

    With u = s₊/τ, v = s₋/τ and f the standard normal density:
    E σ' = (a₊f(u) − a₋f(v))/τ, E σ'' = (a₊uf(u) − a₋vf(v))/τ², Var σ = a₊²P₊ + a₋²P₋ − (a₊P₊ + a₋P₋)².

    Examples
    --------
    >>> m = step_moments(heuristic_binary(), tau=1.0)
    >>> print(f"{m[0]:.6f} {m[1]:.6f}")  # even: E σ' = 0, E σ'' = 2 f(1)
    0.000000 0.483941
    """
    p, tau = params, float(tau)
    u, v = p.s_plus / tau, p.s_minus / tau
    fu, fv = _pdf(u), _pdf(v)
    pp, pm = float(special.ndtr(-u)), float(special.ndtr(v))
    mean = p.a_plus * pp + p.a_minus * pm
    d1 = (p.a_plus * fu - p.a_minus * fv) / tau
    d2 = (p.a_plus * u * fu - p.a_minus * v * fv) / tau**2
    var = p.a_plus**2 * pp + p.a_minus**2 * pm - mean**2
    q = (p.a_plus**2 * u * fu - p.a_minus**2 * v * fv - 2.0 * mean * (p.a_plus * u * fu - p.a_minus * v * fv)) / (2 * tau**2)
    return d1, d2, var, q


HIDDEN_TOLERANCE = 1e-4
"""Largest relative residual of a hidden layer's three matching equations accepted as a solution (solved
ones reach about 1e-15; a φ the binary family cannot match stays at order one)."""


def _solve_hidden(d1: float, d2: float, q: float, tau: float) -> tuple[StepParams, float]:
    """b (1{t<s₋} + 1{t>s₊}) with (E σ')² = d1², (E σ'')² = d2², q(σ) = q at scale τ; (params, residual)."""
    scale = np.array([max(d1 * d1, 1e-12), max(d2 * d2, 1e-12), max(abs(q), 1e-12)])

    def params_of(x: np.ndarray) -> StepParams:
        # thresholds and amplitude in units of τ: the starts below then fit every input scale alike
        # (for a positively homogeneous φ the solution simply scales with τ)
        v, w, b = x
        # w capped: for a φ no step matches, the optimiser runs the gap off to infinity (exp overflowed)
        return StepParams(v * tau, (v + math.exp(min(w, 30.0))) * tau, b * tau, b * tau)

    def residual(x: np.ndarray) -> np.ndarray:
        m1, m2, _, mq = step_moments(params_of(x), tau=tau)
        return (np.array([m1 * m1, m2 * m2, mq]) - np.array([d1 * d1, d2 * d2, q])) / scale

    best = None
    for v0 in (-2.0, -1.0, 0.5):
        for w0 in (-0.5, 0.5):
            for b0 in (1.0, 2.5):
                r = optimize.least_squares(residual, [v0, w0, b0], xtol=1e-14, ftol=1e-14, gtol=1e-14)
                if best is None or r.cost < best.cost:
                    best = r
                if best.cost < 1e-24:
                    break
    assert best is not None
    params = params_of(best.x)
    # The equations fix E σ' and E σ'' only up to the mirror t -> -t (one flips the sign of E σ'): of the two
    # solutions, the one whose slope has φ's sign, so that the choice does not hang on the optimiser's path.
    m1, m2, _, _ = step_moments(params, tau=tau)
    if (d1 != 0.0 and m1 * d1 < 0.0) or (d1 == 0.0 and m2 * d2 < 0.0):
        params = StepParams(-params.s_plus, -params.s_minus, params.a_plus, params.a_minus)
    return params, float(np.max(np.abs(best.fun)))


# The last layer's three-level step, with E σ' = D1/τ and E σ'' = D2/τ² imposed exactly, is a function of its
# standardised thresholds v = s₋/τ < u = s₊/τ alone: the amplitudes solve a 2 x 2 linear system in closed form,
#   a₊ = (D2 − v D1)/((u − v) f(u)),   a₋ = (D2 − u D1)/((u − v) f(v)),
# and Var σ = aᵀ C a with C the covariance of the indicators 1{ξ > u}, 1{ξ < v}. The search runs over
# x = (v, w = log(u − v)), which keeps u > v.
_LAST_V = (-8.0, 8.0)
_LAST_W = (-6.0, 2.8)


def _last_layer_amplitudes(u: Any, v: Any, g: Any, fu: Any, fv: Any, D1: float, D2: float) -> tuple[Any, Any]:
    """(a₋, a₊) imposing E σ' = D1/τ and E σ'' = D2/τ² at thresholds v < u = v + g (densities fu, fv there)."""
    return (D2 - u * D1) / (g * fv), (D2 - v * D1) / (g * fu)


def _last_layer_variance(v: np.ndarray, w: np.ndarray, D1: float, D2: float, *, gradient: bool = False) -> Any:
    """Var σ (and its gradient in (v, w)) of the three-level step with the two derivative moments imposed."""
    g = np.exp(w)
    u = v + g
    fu, fv = np.exp(-0.5 * u * u) / _SQRT_2PI, np.exp(-0.5 * v * v) / _SQRT_2PI
    a_minus, a_plus = _last_layer_amplitudes(u, v, g, fu, fv, D1, D2)
    p_plus, p_minus = special.ndtr(-u), special.ndtr(v)
    # The covariance form, not E σ² − (E σ)²: the amplitudes grow large where the thresholds close in.
    c11, c22, c12 = p_plus * special.ndtr(u), p_minus * special.ndtr(-v), -p_plus * p_minus
    ca_plus, ca_minus = c11 * a_plus + c12 * a_minus, c12 * a_plus + c22 * a_minus
    var = a_plus * ca_plus + a_minus * ca_minus
    if not gradient:
        return var
    da_plus = (-a_plus * (1.0 - g * u) / g, a_plus / g - D1 / (g * fu))  # (∂/∂u, ∂/∂v)
    da_minus = (-D1 / (g * fv) - a_minus / g, a_minus * (1.0 + g * v) / g)
    dc_u = (-fu * (1.0 - 2.0 * p_plus), 0.0, fu * p_minus)  # (∂c11, ∂c22, ∂c12)/∂u
    dc_v = (0.0, fv * (1.0 - 2.0 * p_minus), -p_plus * fv)
    grads = []
    for k, (d11, d22, d12) in enumerate((dc_u, dc_v)):
        quad = d11 * a_plus**2 + d22 * a_minus**2 + 2.0 * d12 * a_plus * a_minus
        grads.append(2.0 * (ca_plus * da_plus[k] + ca_minus * da_minus[k]) + quad)
    dv_u, dv_v = grads
    return var, np.array([dv_u + dv_v, g * dv_u])  # (∂/∂v at fixed w, ∂/∂w)


def _last_layer_params(x: np.ndarray, D1: float, D2: float, tau: float) -> StepParams:
    v, w = float(x[0]), float(x[1])
    g = math.exp(w)
    u = v + g
    a_minus, a_plus = _last_layer_amplitudes(u, v, g, _pdf(u), _pdf(v), D1, D2)
    # An amplitude that is zero but for rounding (e.g. a one-sided target) is zero: one level fewer.
    tiny = 64 * np.finfo(float).eps * max(abs(a_minus), abs(a_plus))
    return StepParams(v * tau, u * tau, a_minus if abs(a_minus) > tiny else 0.0, a_plus if abs(a_plus) > tiny else 0.0)


def _minimum_variance(D1: float, D2: float) -> np.ndarray:
    """The (v, w) of least Var σ: the best point of a grid, then Newton on the gradient."""
    vs, ws = np.linspace(*_LAST_V, 161), np.linspace(*_LAST_W, 89)
    with np.errstate(all="ignore"):
        grid = _last_layer_variance(vs[:, None], ws[None, :], D1, D2)
    grid = np.where(np.isfinite(grid), grid, np.inf)
    i, j = np.unravel_index(np.argmin(grid), grid.shape)
    x0 = np.array([vs[i], ws[j]])

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        # Probes past the normal density's float range give inf/nan quietly: the optimiser steps back from
        # them, and the result is checked below.
        with np.errstate(all="ignore"):
            var, grad = _last_layer_variance(x[0], x[1], D1, D2, gradient=True)
        return float(var), grad

    bounds = [(_LAST_V[0] - 1.0, _LAST_V[1] + 1.0), (_LAST_W[0] - 1.0, _LAST_W[1] + 1.0)]
    x = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                          options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 500}).x

    def hessian(x: np.ndarray) -> np.ndarray:
        h = 1e-5 * np.maximum(1.0, np.abs(x))
        cols = [(fun(x + h[k] * e)[1] - fun(x - h[k] * e)[1]) / (2.0 * h[k]) for k, e in enumerate(np.eye(2))]
        H = np.column_stack(cols)
        return 0.5 * (H + H.T)

    # Newton on ∇Var = 0 pins the minimiser to rounding (a minimiser of Var itself only to √eps).
    grad, H = fun(x)[1], hessian(x)
    for _ in range(20):
        if np.linalg.eigvalsh(H)[0] <= 0:
            break
        step = np.linalg.solve(H, grad)
        new_grad = fun(x - step)[1]
        if not np.abs(new_grad).max() < np.abs(grad).max():
            break
        x, grad = x - step, new_grad
        H = hessian(x)
        if np.abs(step).max() <= 4 * np.finfo(float).eps * max(1.0, np.abs(x).max()):
            break
    if not (np.all(np.isfinite(x)) and np.linalg.eigvalsh(H)[0] > 0):
        raise RuntimeError(f"no minimum of the last layer's step variance found for E σ' = {D1}, E σ'' = {D2} (τ = 1)")
    return x


def _solve_last(d1: float, d2: float, var: float, tau: float) -> tuple[StepParams, float]:
    """a₋1{t<s₋} + a₊1{t>s₊} with E σ' = d1, E σ'' = d2 exactly and |Var σ − var| smallest; (params, Δvar/var).

    When no member reaches ``var`` (ReLU: formula sheet section 4.5), the member of least variance, a
    unique interior minimum found by Newton on the closed-form gradient. When members reach it, the
    one returned keeps that minimum's centre (s₋ + s₊)/2 and widens its dead zone s₊ − s₋ until
    Var σ = var (the variance grows without bound as the thresholds move apart). Both choices keep
    the symmetry of the target: odd φ give odd steps, even φ even ones. Either way the result is a
    root of a smooth equation, solved to rounding: deterministic and continuous in the moments.
    """
    D1, D2 = tau * d1, tau * tau * d2
    if max(abs(D1), abs(D2)) <= 1e-12 * math.sqrt(max(var, 0.0)):
        # Zero, or quadrature noise next to φ's spread: a step fitted to them would be noise too.
        raise ValueError(f"the last layer's target has E φ' = {d1:.3g}, E φ'' = {d2:.3g}, negligible next to its "
                         f"standard deviation {math.sqrt(max(var, 0.0)):.3g} at τ = {tau:g} (e.g. sin or cos at a large "
                         "input scale): no step activation can carry its linear equivalent")
    x = _minimum_variance(D1, D2)
    v_min = float(_last_layer_variance(x[0], x[1], D1, D2))
    if v_min < var:
        centre, w0 = x[0] + 0.5 * math.exp(x[1]), x[1]

        def at(r: float) -> np.ndarray:
            width = math.exp(w0 + r)
            return np.array([centre - 0.5 * width, w0 + r])

        def excess(r: float) -> float:
            y = at(r)
            return float(_last_layer_variance(y[0], y[1], D1, D2)) - var

        r_hi = 1e-3
        with np.errstate(all="ignore"):
            while (e := excess(r_hi)) < 0:
                r_hi *= 2.0
        if not math.isfinite(e):  # the thresholds ran past the normal density's float range
            raise RuntimeError(f"the last layer's step variance does not reach {var} before its thresholds overflow "
                               f"(E φ' = {d1:g}, E φ'' = {d2:g} at τ = {tau:g})")
        x = at(optimize.brentq(excess, 0.0, r_hi, xtol=1e-15, rtol=4 * np.finfo(float).eps))
    params = _last_layer_params(x, D1, D2, tau)
    return params, float((step_moments(params, tau=tau)[2] - var) / var)


@dataclass(frozen=True)
class LayerMatch:
    """The matched quantised activation of one layer.

    Attributes
    ----------
    layer
        ℓ (from 1).
    target
        Canonical name of the original φ_ℓ.
    tau_in, tau_in_compressed
        τ_{ℓ−1} of the original and of the compressed network (the scales the moments are taken at).
    params
        The step function.
    solve_residual
        Largest relative residual of the solved equations (closed forms); for the last layer the
        relative variance mismatch (Var σ − Var φ)/Var φ left by the family.
    """

    layer: int
    target: str
    tau_in: float
    tau_in_compressed: float
    params: StepParams
    solve_residual: float

    @property
    def activation(self) -> Activation:
        return step_activation(self.params)


@dataclass(frozen=True)
class NTKLCMatch:
    """An NTK-LC design: original activations, matched compressed activations, per-layer coefficients.

    Attributes
    ----------
    activations
        The original φ_1..φ_L (canonical names).
    tau0
        The data scale τ_0.
    layers
        One :class:`LayerMatch` per layer (empty when ``quantize=False``: activations kept).
    table
        :func:`coefficient_table` of the original against the compressed network.
    """

    activations: tuple[str, ...]
    tau0: float
    layers: tuple[LayerMatch, ...]
    table: list[dict[str, Any]] = field(default_factory=list)

    @property
    def compressed_activations(self) -> list[Activation]:
        """φ̃_1..φ̃_L of the compressed network (the originals when nothing was quantised)."""
        if not self.layers:
            return [get_activation(a) for a in self.activations]
        return [m.activation for m in self.layers]

    @property
    def activation_bits(self) -> list[int]:
        """Bits per stored activation value, per layer (32 for unquantised float32)."""
        return [m.params.bits for m in self.layers] if self.layers else [32] * len(self.activations)

    def max_relative_mismatch(self, names: Sequence[str]) -> float:
        """Largest relative mismatch over the layers for the coefficients ``names``."""
        return max(abs(row["relative_mismatch"]) for row in self.table if row["coefficient"] in names)


def _chain(acts: Sequence[Activation], surrogates: Sequence[Activation], tau0: float) -> list[dict[str, float]]:
    """Per-layer coefficients by :func:`rmtbench.theory.deep.layer_coefficients` (quadrature), κ² with surrogates."""
    from rmtbench.theory.deep import layer_coefficients

    coeffs = layer_coefficients(list(acts), tau0=tau0)
    rows, kappa2 = [], tau0**2
    for c, g in zip(coeffs, surrogates):
        if math.isfinite(c.d1_sq):
            d1_sq = c.d1_sq
        else:  # step activation: E σ'² = ∞; the trained net back-propagates through the surrogate g
            deriv = g.derivative
            if deriv is None:
                raise ValueError(f"activation {g.name!r} is a step (E φ'² = ∞) with no derivative to train through: "
                                 "its network has no NTK; NTK-LC needs original activations with a derivative")
            d1_sq = gaussian_expectation(lambda t: np.asarray(deriv(t), dtype=float) ** 2, scale=c.tau_in, kinks=g.kinks)
        kappa2 = c.tau**2 + d1_sq * kappa2
        rows.append({"tau2": c.tau**2, "alpha1": c.alpha[0], "alpha2": c.alpha[1], "alpha3": c.alpha[2],
                     "alpha4": c.alpha[3], "beta1": c.beta[0], "beta2": c.beta[1], "beta3": c.beta[2],
                     "ck_identity": c.ck_identity, "kappa2": kappa2, "ntk_identity": kappa2 - tau0**2 * c.beta[0]})
    return rows


def coefficient_table(original: Sequence[ActivationSpec], compressed: Sequence[ActivationSpec], *, tau0: float,
                      surrogates: Sequence[ActivationSpec] | None = None) -> list[dict[str, Any]]:
    """Per-layer τ_ℓ², α_{ℓ,1..4}, β_{ℓ,1..3}, identity terms and κ_ℓ² of two networks, and their mismatch.

    Both chains are recomputed by quadrature of the activations themselves (independent of the
    matching's closed forms). ``relative_mismatch = (compressed − original)/|original|`` (absolute
    when the original value is below 1e-12). ``surrogates`` (default: ``original``) are the
    derivatives used for step activations in κ² (see the module docstring).
    """
    orig = [get_activation(a) for a in original]
    comp = [get_activation(a) for a in compressed]
    surr = [get_activation(a) for a in (surrogates or original)]
    if not len(orig) == len(comp) == len(surr):
        raise ValueError("original, compressed and surrogate activations need one entry per layer")
    a, b = _chain(orig, orig, tau0), _chain(comp, surr, tau0)
    table = []
    for layer, (ra, rb) in enumerate(zip(a, b), start=1):
        for name in COEFFICIENTS:
            x, y = ra[name], rb[name]
            mismatch = (y - x) / abs(x) if abs(x) > 1e-12 else y - x
            table.append({"layer": layer, "coefficient": name, "original": x, "compressed": y,
                          "relative_mismatch": mismatch})
    return table


def match_network(activations: Sequence[ActivationSpec], *, tau0: float, quantize: bool = True) -> NTKLCMatch:
    """Solve for the compressed network's quantised activations, layer by layer (module docstring).

    Parameters
    ----------
    activations
        The original φ_1..φ_L.
    tau0
        τ_0 of the data (a standard deviation; for data normalised to mean squared norm 1, 1).
    quantize
        ``False``: NTK-LC without activation quantisation (the activations are kept; the weights alone
        are made sparse ternary, which leaves every coefficient unchanged by universality).

    Returns
    -------
    NTKLCMatch

    Examples
    --------
    >>> m = match_network(["relu", "relu"], tau0=1.0)
    >>> [lm.params.bits for lm in m.layers]
    [1, 2]
    >>> m.max_relative_mismatch(["alpha1", "alpha2", "alpha3", "beta1", "beta2", "beta3"]) < 1e-6
    True
    """
    tau0 = float(tau0)
    names = tuple(get_activation(a).name for a in activations)
    if not quantize:
        table = coefficient_table(names, names, tau0=tau0)
        return NTKLCMatch(activations=names, tau0=tau0, layers=(), table=table)
    tau_o, tau_c, layers = tau0, tau0, []
    depth = len(names)
    for layer, name in enumerate(names, start=1):
        m = gaussian_moments(name, tau=tau_o)
        try:
            if layer < depth:
                params, res = _solve_hidden(m.d1, m.d2, m.q, tau_c)
                if not res <= HIDDEN_TOLERANCE:
                    why = ("for φ odd up to a constant (erf, tanh, sigmoid) E φ'' = 0 forces q(σ) = (b − 2 E σ) E σ''/2 = 0 "
                           "≠ q(φ); use such φ in the last layer only" if abs(m.d2) <= 1e-12 * max(abs(m.d1), 1.0)
                           else "these moments are out of the binary family's reach")
                    raise ValueError(
                        f"no binary step b(1{{t<s₋}} + 1{{t>s₊}}) matches (E φ')² = {m.d1**2:.6g}, (E φ'')² = {m.d2**2:.6g} and "
                        f"q = {m.q:.6g} (best relative residual {res:.3g}): {why}"
                    )
            else:
                params, res = _solve_last(m.d1, m.d2, m.var, tau_c)
        except (ValueError, RuntimeError) as err:  # say which layer and activation could not be matched
            raise type(err)(f"NTK-LC layer {layer} of {depth} ({name}, input scale τ = {tau_c:.6g}): {err}") from err
        layers.append(LayerMatch(layer=layer, target=name, tau_in=tau_o, tau_in_compressed=tau_c, params=params,
                                 solve_residual=res))
        tau_o = math.sqrt(m.var)
        tau_c = math.sqrt(max(step_moments(params, tau=tau_c)[2], 1e-300))
    comp = [lm.activation for lm in layers]
    table = coefficient_table(names, comp, tau0=tau0, surrogates=names)
    return NTKLCMatch(activations=names, tau0=tau0, layers=tuple(layers), table=table)
