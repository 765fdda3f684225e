"""Deep random networks: conjugate and tangent kernels per layer, and deep equilibrium models.

Network (seed eq. 15, centred by a constant as in Gu+22; formula sheet section 5)::

    Σ_0 = X,   Σ_ℓ = (φ_ℓ(W_ℓ Σ_{ℓ−1}) − c_ℓ) / √d_ℓ,   c_ℓ = E φ_ℓ(τ_{ℓ−1} ξ),

W_ℓ ∈ R^{d_ℓ×d_{ℓ−1}} with i.i.d. zero-mean unit-variance entries, X ∈ R^{p×n} with ‖x_i‖ = O(1).
Three theoretical objects per layer, computed independently of any simulation:

* the **exact infinite-width kernels** by the Gaussian recursion: K_CK,ℓ is the kernel of the
  centred φ_ℓ fed by the covariance K_CK,ℓ−1 (closed forms where the activation has one, the
  Mehler series / 2-D quadrature of :mod:`rmtbench.theory.kernels` otherwise), and
  K_NTK,ℓ = K_CK,ℓ + K_NTK,ℓ−1 ∘ K'_ℓ (seed eq. 22) with K'_ℓ the derivative kernel;
* the **Gu+22 linear equivalents** K̃_CK,ℓ = α_{ℓ,1} XᵀX + V A_ℓ Vᵀ + (τ_ℓ² − τ_0² α_{ℓ,1}) I_n and
  K̃_NTK,ℓ (β recursion), in the corrected form of the formula sheet (pitfalls P11, P14, P15);
* the **finite-width rank-one term** (pitfall P12): the expectation over all weights at finite
  widths adds r_ℓ (11ᵀ − I_n) to K_CK,ℓ (:func:`finite_width_correction`); for two layers
  r_2 = ½ (E φ_2'')² τ_1⁴ / d_1 as in the formula sheet (rows e2), deeper layers also carry the
  earlier layers' terms (derived here at first order in 1/d).

Deep equilibrium models (Ling+24; formula sheet section 6): the implicit CK G at the fixed point,
its linear equivalent G̃, and explicit shallow networks whose equivalents equal G̃.

All expectations are Gaussian at scale τ (a standard deviation, pitfall P1), computed by the Stein
forms of :func:`rmtbench.activations.gaussian_moments` (no finite differences, pitfall P10).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from rmtbench.activations import Activation, gaussian_moments, get_activation
from rmtbench.theory.norms import relative_error, spectral_norm

__all__ = [
    "DEQCoefficients",
    "DeepKernels",
    "LayerCoefficients",
    "ck_equivalent",
    "clip_moments",
    "data_statistics",
    "deq_coefficients",
    "deq_equivalent",
    "deq_exact_ck",
    "exact_ck",
    "exact_kernels",
    "exact_ntk",
    "explicit_net_coefficients",
    "finite_width_correction",
    "layer_coefficients",
    "leaky_relu_moments",
    "linear_equivalent",
    "match_one_layer_clip",
    "MatchResult",
    "match_two_layer_leaky_relu",
    "ntk_equivalent",
    "rank_one_term",
    "relative_error",
    "spectral_norm",
]

Array = NDArray[np.float64]
ActivationSpec = str | Mapping[str, Any] | Activation
Epsilon = Literal["model", "data"]


# ------------------------------------------------------------------------------------------------
# Coefficient recursion.


@dataclass(frozen=True)
class LayerCoefficients:
    """Gu+22 coefficients of layer ℓ of a centred deep random network (formula sheet section 5).

    Attributes
    ----------
    layer
        ℓ ≥ 1.
    activation
        Canonical name of φ_ℓ.
    tau0
        τ_0 = sqrt(tr C°/p), the data scale.
    tau_in
        τ_{ℓ−1}, the scale at which the moments of φ_ℓ are taken.
    tau
        τ_ℓ = sqrt(Var φ_ℓ(τ_{ℓ−1} ξ)).
    shift
        c_ℓ = E φ_ℓ(τ_{ℓ−1} ξ), the centring constant of the layer.
    d1, d2
        E φ_ℓ'(τ_{ℓ−1} ξ) and E φ_ℓ''(τ_{ℓ−1} ξ) (weak derivatives, Stein forms).
    d1_sq
        E φ_ℓ'(τ_{ℓ−1} ξ)² (``inf`` for activations with jumps).
    q
        E[φ_ℓ'² + φ̄_ℓ φ_ℓ''](τ_{ℓ−1} ξ), φ̄ the centred φ.
    alpha
        (α_{ℓ,1}, α_{ℓ,2}, α_{ℓ,3}, α_{ℓ,4}).
    beta
        (β_{ℓ,1}, β_{ℓ,2}, β_{ℓ,3}) of the NTK equivalent.
    kappa2
        κ_ℓ², the diagonal of the infinite-width NTK.
    """

    layer: int
    activation: str
    tau0: float
    tau_in: float
    tau: float
    shift: float
    d1: float
    d2: float
    d1_sq: float
    q: float
    alpha: tuple[float, float, float, float]
    beta: tuple[float, float, float]
    kappa2: float

    @property
    def ck_identity(self) -> float:
        """Coefficient of I_n in K̃_CK,ℓ: τ_ℓ² − τ_0² α_{ℓ,1} (not Gu+22's code, pitfall P15)."""
        return self.tau**2 - self.tau0**2 * self.alpha[0]

    @property
    def ntk_identity(self) -> float:
        """Coefficient of I_n in K̃_NTK,ℓ: κ_ℓ² − τ_0² β_{ℓ,1}."""
        return self.kappa2 - self.tau0**2 * self.beta[0]


def _check_tau0(tau0: float) -> float:
    tau0 = float(tau0)
    if not (math.isfinite(tau0) and tau0 > 0):
        raise ValueError(f"tau0 must be a positive standard deviation, got {tau0!r}")
    return tau0


def layer_coefficients(activations: Sequence[ActivationSpec], *, tau0: float) -> list[LayerCoefficients]:
    """τ_ℓ, α_{ℓ,1..4}, β_{ℓ,1..3} and κ_ℓ² for every layer (formula sheet section 5, corrected form).

    Starting from τ_0 and (α_{0,1..4}) = (1, 0, 0, 1), (β_{0,1..3}) = (1, 0, 0), κ_0² = τ_0²,
    with every moment of φ_ℓ taken at τ_{ℓ−1}ξ and ȧ_ℓ = (E φ_ℓ')²::

        τ_ℓ²    = Var φ_ℓ
        α_{ℓ,1} = ȧ_ℓ α_{ℓ−1,1}
        α_{ℓ,2} = ȧ_ℓ α_{ℓ−1,2} + ¼ (E φ_ℓ'')² α_{ℓ−1,4}²
        α_{ℓ,3} = ȧ_ℓ α_{ℓ−1,3} + ½ (E φ_ℓ'')² α_{ℓ−1,1}²
        α_{ℓ,4} = E[φ_ℓ'² + φ̄_ℓ φ_ℓ''] α_{ℓ−1,4}
        β_{ℓ,k} = α_{ℓ,k} + ȧ_ℓ β_{ℓ−1,k}   (k = 1, 2),
        β_{ℓ,3} = α_{ℓ,3} + ȧ_ℓ β_{ℓ−1,3} + (E φ_ℓ'')² α_{ℓ−1,1} β_{ℓ−1,1}
        κ_ℓ²    = τ_ℓ² + E[φ_ℓ'²] κ_{ℓ−1}²

    Parameters
    ----------
    activations
        φ_1, ..., φ_L (names or specs of :func:`rmtbench.activations.get_activation`).
    tau0
        τ_0 = sqrt(tr C°/p) (a standard deviation).

    Returns
    -------
    list of LayerCoefficients
        One entry per layer, ℓ = 1..L.

    Examples
    --------
    >>> c = layer_coefficients(["relu", "relu"], tau0=1.0)
    >>> print(f"{c[0].alpha[0]:.4f} {c[0].alpha[2] / c[0].alpha[1]:.1f} {c[1].alpha[0]:.4f}")
    0.2500 2.0 0.0625
    """
    tau0 = _check_tau0(tau0)
    if len(activations) == 0:
        raise ValueError("a deep network needs at least one activation")
    tau, alpha, beta, kappa2 = tau0, (1.0, 0.0, 0.0, 1.0), (1.0, 0.0, 0.0), tau0**2
    out = []
    for layer, spec in enumerate(activations, start=1):
        act = get_activation(spec)
        m = gaussian_moments(act, tau=tau)
        g1, g2 = m.d1**2, m.d2**2
        new_alpha = (g1 * alpha[0], g1 * alpha[1] + 0.25 * g2 * alpha[3] ** 2,
                     g1 * alpha[2] + 0.5 * g2 * alpha[0] ** 2, m.q * alpha[3])
        new_beta = (new_alpha[0] + g1 * beta[0], new_alpha[1] + g1 * beta[1],
                    new_alpha[2] + g1 * beta[2] + g2 * alpha[0] * beta[0])
        tau_out = math.sqrt(max(m.var, 0.0))
        kappa2 = m.var + m.d1_sq * kappa2
        out.append(LayerCoefficients(layer=layer, activation=act.name, tau0=tau0, tau_in=tau, tau=tau_out, shift=m.mean,
                                     d1=m.d1, d2=m.d2, d1_sq=m.d1_sq, q=m.q, alpha=new_alpha, beta=new_beta,
                                     kappa2=kappa2))
        if layer < len(activations) and not tau_out > 0:
            raise ValueError(f"layer {layer} ({act.name}) has Var φ = 0 at τ = {tau}: the next layer sees no signal")
        tau, alpha, beta = tau_out, new_alpha, new_beta
    return out


def finite_width_correction(coefficients: Sequence[LayerCoefficients], widths: Sequence[float]) -> Array:
    """Coefficients r_ℓ of the finite-width term r_ℓ (11ᵀ − I_n) of E[Σ_ℓᵀΣ_ℓ] (pitfall P12).

    At finite widths the off-diagonal entries of Σ_{ℓ−1}ᵀΣ_{ℓ−1} fluctuate around the infinite-width
    kernel with variance v_{ℓ−1}, and the curvature of the kernel map turns that variance into a mean
    shift ½ (E φ_ℓ'')² v_{ℓ−1}; the shift of layer ℓ−1 is carried to layer ℓ at first order by
    ȧ_ℓ = (E φ_ℓ')². With v_0 = r_0 = 0 (the data are fixed)::

        v_ℓ = τ_ℓ⁴ / d_ℓ + ȧ_ℓ² v_{ℓ−1},       r_ℓ = ȧ_ℓ r_{ℓ−1} + ½ (E φ_ℓ'')² v_{ℓ−1}.

    So r_1 = 0 (the first layer's expectation is exact at any width) and
    r_2 = ½ (E φ_2'')² τ_1⁴ / d_1, the formula sheet's term (rows e2). The carried terms (ȧ_ℓ r_{ℓ−1}
    and ȧ_ℓ² v_{ℓ−1}) matter from three layers on; they are derived here at first order in 1/d, and
    checked by Monte Carlo in ``tests/test_deepnet.py`` (300 draws, within 3 standard errors).
    Infinite widths give 0.

    A residue at three layers, measured (2026-12-03; relu at all layers, a two-class mixture with
    n = 64, p = 256). The Monte-Carlo 1ᵀ(K − K_∞)1/n of layer 3 exceeds r_3 (n − 1) as follows:

    - d = 96 (4000 draws): 0.0159 ± 0.0002 against 0.0155;
    - d = 384 (4000 draws): 0.00427 ± 0.00010 against 0.00388;
    - d = 1536 (1000 draws): 0.00113 ± 0.00009 against 0.00097.

    That is 3-16%, 1.8-3.9 standard errors; layer 2 agrees. These are terms the derivation drops:
    the fluctuations of the diagonal entries (the norms) and their covariance with the off-diagonal
    ones, which are first order too. :mod:`rmtbench.theory.finite_width` keeps them, entry by entry,
    and agrees with Monte Carlo where this term does not (``tests/test_finite_width.py``).

    Parameters
    ----------
    coefficients
        Output of :func:`layer_coefficients` (L entries).
    widths
        d_1, ..., d_L (at least L − 1 entries; d_L does not enter the expectation).

    Returns
    -------
    ndarray
        Shape ``(L,)``.

    Examples
    --------
    >>> c = layer_coefficients(["relu", "relu"], tau0=1.0)
    >>> r = finite_width_correction(c, [256, 256])
    >>> bool(r[0] == 0.0 and np.isclose(r[1], c[0].tau ** 2 / (4 * np.pi * 256)))
    True
    """
    if len(widths) < len(coefficients) - 1:
        raise ValueError(f"need at least {len(coefficients) - 1} widths, got {len(widths)}")
    r = np.zeros(len(coefficients))
    variance = 0.0  # v_{ℓ−1}
    for i, c in enumerate(coefficients):
        if i > 0:
            r[i] = c.d1**2 * r[i - 1] + 0.5 * c.d2**2 * variance
        if i < len(widths):
            variance = c.tau**4 / float(widths[i]) + c.d1**4 * variance
    return r


def rank_one_term(r: float, n: int) -> Array:
    """The matrix r (11ᵀ − I_n)."""
    term = np.full((n, n), float(r))
    np.fill_diagonal(term, 0.0)
    return term


def data_statistics(data: Any, *, source: Literal["spec", "estimated"] = "spec") -> Any:
    """The GMM statistics (τ_0, J, t, T, ψ) of a :class:`rmtbench.data.Dataset`.

    ``source="spec"`` takes means and covariances from a ``gmm`` spec (exact τ_0 = sqrt(tr C°/p),
    as in Gu+22); data of any other kind, or ``source="estimated"``, estimate them from the samples
    and their labels (τ_0² = mean ‖x_i‖², formula sheet P1).
    """
    from rmtbench.data import gmm_statistics

    spec = data.meta.get("spec") if isinstance(data.meta, Mapping) else None
    if source == "spec" and isinstance(spec, Mapping) and spec.get("kind") == "gmm":
        return gmm_statistics(data.X, data.labels, spec=spec)
    if source not in ("spec", "estimated"):
        raise ValueError(f"source must be 'spec' or 'estimated', got {source!r}")
    return gmm_statistics(data.X, data.labels)


# ------------------------------------------------------------------------------------------------
# Linear equivalents.


def _epsilon(X: Array, stats: Any, epsilon: Epsilon) -> Array:
    if epsilon == "model":
        p = X.shape[0]
        return stats.J @ stats.t / math.sqrt(p) + stats.psi
    if epsilon == "data":
        return np.einsum("ij,ij->j", X, X) - stats.tau**2
    raise ValueError(f"epsilon must be 'model' or 'data', got {epsilon!r}")


def linear_equivalent(X: Array, stats: Any, *, a1: float, a2: float, a3: float, identity: float,
                      epsilon: Epsilon = "model") -> Array:
    """a1 XᵀX + V A Vᵀ + identity·I_n with A = [[a2 t tᵀ + a3 T, a2 t], [a2 tᵀ, a2]], V = [J/√p, ψ].

    Equivalently ``a1 XᵀX + a2 ε̃ε̃ᵀ + a3 J T Jᵀ/p + identity·I_n`` with ε̃ = J t/√p + ψ
    (``epsilon="model"``, Gu+22) or ε_i = ‖x_i‖² − τ² from the data (``epsilon="data"``, asymptotically
    the same and sharper at finite n; formula sheet section 4.3).

    Parameters
    ----------
    X
        Data, ``p × n``.
    stats
        :class:`rmtbench.data.GMMStatistics` of X (J, t, T, ψ, τ).
    a1, a2, a3, identity
        The four coefficients.
    epsilon
        ``"model"`` or ``"data"``.

    Returns
    -------
    ndarray
        ``n × n``.
    """
    X = np.asarray(X, dtype=float)
    p = X.shape[0]
    eps = _epsilon(X, stats, epsilon)
    J = stats.J
    K = a1 * (X.T @ X) + a2 * np.outer(eps, eps) + a3 * (J @ stats.T @ J.T) / p
    K[np.diag_indices_from(K)] += identity
    return 0.5 * (K + K.T)


def ck_equivalent(X: Array, stats: Any, coefficients: Sequence[LayerCoefficients], layer: int = -1, *,
                  epsilon: Epsilon = "model") -> Array:
    """Gu+22 equivalent K̃_CK,ℓ = α_{ℓ,1} XᵀX + V A_ℓ Vᵀ + (τ_ℓ² − τ_0² α_{ℓ,1}) I_n.

    Parameters
    ----------
    X, stats, epsilon
        As in :func:`linear_equivalent`.
    coefficients
        Output of :func:`layer_coefficients`.
    layer
        Index into ``coefficients`` (0 is ℓ = 1; −1 the last layer).
    """
    c = coefficients[layer]
    return linear_equivalent(X, stats, a1=c.alpha[0], a2=c.alpha[1], a3=c.alpha[2], identity=c.ck_identity,
                             epsilon=epsilon)


def ntk_equivalent(X: Array, stats: Any, coefficients: Sequence[LayerCoefficients], layer: int = -1, *,
                   epsilon: Epsilon = "model") -> Array:
    """NTK equivalent K̃_NTK,ℓ = β_{ℓ,1} XᵀX + V B_ℓ Vᵀ + (κ_ℓ² − τ_0² β_{ℓ,1}) I_n (B_ℓ: A_ℓ with α → β)."""
    c = coefficients[layer]
    return linear_equivalent(X, stats, a1=c.beta[0], a2=c.beta[1], a3=c.beta[2], identity=c.ntk_identity,
                             epsilon=epsilon)


# ------------------------------------------------------------------------------------------------
# Exact infinite-width kernels by the Gaussian recursion.


def centred_activation(act: Activation, shift: float) -> Activation:
    """φ − ``shift``: a layer's activation centred by its constant c_ℓ (as the networks apply it)."""
    return get_activation({"family": "centered", "base": act, "shift": shift})


def _symmetric(K: Array) -> Array:
    return 0.5 * (K + K.T)


@dataclass(frozen=True)
class DeepKernels:
    """Exact infinite-width kernels of every layer (index 0 is layer 1)."""

    ck: list[Array]
    ntk: list[Array] | None


def exact_kernels(X: Array, activations: Sequence[ActivationSpec], *, tau0: float, ntk: bool = True,
                  nodes: int = 48, coefficients: Sequence[LayerCoefficients] | None = None,
                  widths: Sequence[float] | None = None) -> DeepKernels:
    """Infinite-width CK (and NTK) of every layer by the Gaussian recursion.

    K_CK,0 = XᵀX; [K_CK,ℓ]_ij = E[φ̄_ℓ(u)φ̄_ℓ(v)] with (u, v) centred Gaussian of covariance
    K_CK,ℓ−1 on {i, j} and φ̄_ℓ = φ_ℓ − c_ℓ; K_NTK,0 = XᵀX and K_NTK,ℓ = K_CK,ℓ + K_NTK,ℓ−1 ∘ K'_ℓ with
    [K'_ℓ]_ij = E[φ_ℓ'(u)φ_ℓ'(v)] under the same law (seed eq. 22).

    Parameters
    ----------
    X
        Data, ``p × n``.
    activations
        φ_1, ..., φ_L.
    tau0
        τ_0, which fixes the centring constants c_ℓ (through :func:`layer_coefficients`).
    ntk
        Also compute the NTK.
    nodes
        Quadrature nodes for kernels without a closed form (see :mod:`rmtbench.theory.kernels`).
    coefficients
        Precomputed :func:`layer_coefficients` (only their ``shift`` is used).
    widths
        The switch of the finite-width correction (pitfall P12): ``None`` gives the infinite-width
        kernels; widths d_1, ..., d_L add r_ℓ (11ᵀ − I_n) of :func:`finite_width_correction` to each
        CK, i.e. E[Σ_ℓᵀΣ_ℓ] over all weights at those widths, to first order in 1/d. The recursion
        itself (and the NTK) stays at infinite width.

    Returns
    -------
    DeepKernels
    """
    from rmtbench.theory.kernels import derivative_kernel_from_covariance, kernel_from_covariance

    X = np.asarray(X, dtype=float)
    coefficients = coefficients or layer_coefficients(activations, tau0=tau0)
    prev = _symmetric(X.T @ X)
    prev_ntk = prev.copy() if ntk else None
    cks, ntks = [], []
    for spec, c in zip(activations, coefficients):
        act = get_activation(spec)
        var = np.clip(np.diagonal(prev).copy(), 0.0, None)
        K = _symmetric(kernel_from_covariance(centred_activation(act, c.shift), var, var, prev, nodes=nodes, symmetric=True))
        if ntk:
            Kd = _symmetric(derivative_kernel_from_covariance(act, var, var, prev, nodes=nodes, symmetric=True))
            prev_ntk = K + prev_ntk * Kd
            ntks.append(prev_ntk)
        cks.append(K)
        prev = K
    if widths is not None:
        r = finite_width_correction(coefficients, widths)
        cks = [K + rank_one_term(r_l, K.shape[0]) for K, r_l in zip(cks, r)]
    return DeepKernels(ck=cks, ntk=ntks if ntk else None)


def exact_ck(X: Array, activations: Sequence[ActivationSpec], *, tau0: float, nodes: int = 48,
             widths: Sequence[float] | None = None) -> list[Array]:
    """Infinite-width CK of layers 1..L, plus the finite-width term when ``widths`` is given (see :func:`exact_kernels`).

    Examples
    --------
    >>> X = np.linalg.qr(np.random.default_rng(0).standard_normal((8, 4)))[0]  # orthonormal columns
    >>> K = exact_ck(X, ["linear", "linear"], tau0=1.0)[-1]
    >>> bool(np.allclose(K, np.eye(4)))
    True
    """
    return exact_kernels(X, activations, tau0=tau0, ntk=False, nodes=nodes, widths=widths).ck


def exact_ntk(X: Array, activations: Sequence[ActivationSpec], *, tau0: float, nodes: int = 48) -> list[Array]:
    """Infinite-width NTK of layers 1..L (see :func:`exact_kernels`)."""
    kernels = exact_kernels(X, activations, tau0=tau0, ntk=True, nodes=nodes)
    assert kernels.ntk is not None
    return kernels.ntk


# ------------------------------------------------------------------------------------------------
# Deep equilibrium models (Ling+24; formula sheet section 6).


@dataclass(frozen=True)
class DEQCoefficients:
    """Equilibrium scale and linear-equivalent coefficients of a DEQ z = φ̄(σ_a A z + σ_b B x)/√m.

    Attributes
    ----------
    activation
        Canonical name of φ.
    sigma_a2
        σ_a² (and σ_b² = 1 − σ_a²).
    tau0
        Data scale τ_0.
    tau_star
        τ*, the root of τ*² = σ_a² Var φ(τ*ξ) + σ_b² τ_0².
    shift
        E φ(τ*ξ), the centring constant.
    g1, g2, q
        (E φ')², (E φ'')², E[φ'² + φ̄φ''] at τ*ξ.
    alpha
        (α1, α2, α3, α4) of the pre-activation covariance S̃ (formula sheet section 6).
    """

    activation: str
    sigma_a2: float
    tau0: float
    tau_star: float
    shift: float
    g1: float
    g2: float
    q: float
    alpha: tuple[float, float, float, float]

    @property
    def sigma_b2(self) -> float:
        """σ_b² = 1 − σ_a²."""
        return 1.0 - self.sigma_a2

    @property
    def targets(self) -> tuple[float, float, float, float]:
        """The four numbers of G̃: ((α1 − σ_b²)/σ_a², α2/σ_a², α3/σ_a², (τ*² − τ_0²α1)/σ_a²).

        An explicit network whose (α_{L,1}, α_{L,2}, α_{L,3}, τ_L² − τ_0²α_{L,1}) equal these has
        the same CK equivalent as the DEQ.
        """
        a1, a2, a3, _ = self.alpha
        s = self.sigma_a2
        return ((a1 - self.sigma_b2) / s, a2 / s, a3 / s, (self.tau_star**2 - self.tau0**2 * a1) / s)


def deq_coefficients(activation: ActivationSpec, *, tau0: float, sigma_a2: float, tol: float = 1e-14,
                     max_iter: int = 500) -> DEQCoefficients:
    """τ* (by fixed-point iteration) and the DEQ's equivalent coefficients (formula sheet section 6).

    With g1 = (E φ')², g2 = (E φ'')², q = E[φ'² + φ̄φ''] at τ*ξ::

        α1 = σ_b² / (1 − σ_a² g1),     α4 = σ_b² / (1 − σ_a² q),
        α2 = σ_a² g2 α4² / (4 (1 − σ_a² g1)),     α3 = σ_a² g2 α1² / (2 (1 − σ_a² g1)).

    Parameters
    ----------
    activation
        φ.
    tau0
        Data scale τ_0.
    sigma_a2
        σ_a² in (0, 1); σ_b² = 1 − σ_a².
    tol, max_iter
        Stopping rule of the τ* iteration (a contraction for small σ_a²).

    Examples
    --------
    >>> c = deq_coefficients("relu", tau0=1.0, sigma_a2=0.2)
    >>> print(f"{c.targets[0]:.4f}")  # (1 - s)/(4 - s) for relu
    0.2105
    """
    tau0 = _check_tau0(tau0)
    if not 0.0 < sigma_a2 < 1.0:
        raise ValueError(f"sigma_a2 must be in (0, 1), got {sigma_a2!r}")
    act = get_activation(activation)
    sb2 = 1.0 - sigma_a2
    tau2 = tau0**2
    for _ in range(max_iter):
        new = sigma_a2 * gaussian_moments(act, tau=math.sqrt(tau2)).var + sb2 * tau0**2
        done = abs(new - tau2) <= tol * new
        tau2 = new
        if done:
            break
    else:
        raise RuntimeError(f"tau* iteration did not converge for {act.name} at sigma_a2={sigma_a2}")
    m = gaussian_moments(act, tau=math.sqrt(tau2))
    g1, g2 = m.d1**2, m.d2**2
    if not sigma_a2 * max(g1, m.q) < 1.0:
        raise ValueError(f"sigma_a2 * max(g1, q) >= 1 for {act.name}: the equivalent's fixed point does not exist")
    a1 = sb2 / (1.0 - sigma_a2 * g1)
    a4 = sb2 / (1.0 - sigma_a2 * m.q)
    a2 = sigma_a2 * g2 * a4**2 / (4.0 * (1.0 - sigma_a2 * g1))
    a3 = sigma_a2 * g2 * a1**2 / (2.0 * (1.0 - sigma_a2 * g1))
    return DEQCoefficients(activation=act.name, sigma_a2=float(sigma_a2), tau0=tau0, tau_star=math.sqrt(tau2),
                           shift=m.mean, g1=g1, g2=g2, q=m.q, alpha=(a1, a2, a3, a4))


def deq_exact_ck(X: Array, coefficients: DEQCoefficients, *, nodes: int = 48, tol: float = 1e-12,
                 max_iter: int = 200) -> Array:
    """The DEQ's implicit CK G = E[Z*ᵀZ*] at infinite width, by iterating G ← F(σ_a² G + σ_b² XᵀX).

    F maps a covariance S to [E φ̄(u)φ̄(v)] with (u, v) ~ N(0, S on {i, j}) and φ̄ = φ − E φ(τ*ξ)
    (the DEQ's constant centring). The map is a contraction with rate about σ_a² (E φ')².

    Parameters
    ----------
    X
        Data, ``p × n``.
    coefficients
        From :func:`deq_coefficients` (activation, σ_a², centring constant).
    nodes
        Quadrature nodes for kernels without a closed form.
    tol
        Stop when max |G_{k+1} − G_k| ≤ tol · max |G_{k+1}|.
    max_iter
        Iteration cap (a ``RuntimeError`` beyond it).

    Returns
    -------
    ndarray
        ``n × n``.
    """
    from rmtbench.theory.kernels import kernel_from_covariance

    X = np.asarray(X, dtype=float)
    act = centred_activation(get_activation(coefficients.activation), coefficients.shift)
    base = coefficients.sigma_b2 * _symmetric(X.T @ X)
    G = np.zeros_like(base)
    for _ in range(max_iter):
        S = coefficients.sigma_a2 * G + base
        var = np.clip(np.diagonal(S).copy(), 0.0, None)
        new = _symmetric(kernel_from_covariance(act, var, var, S, nodes=nodes, symmetric=True))
        change = float(np.max(np.abs(new - G)))
        G = new
        if change <= tol * float(np.max(np.abs(G))):
            return G
    raise RuntimeError(f"DEQ kernel iteration did not converge in {max_iter} steps")


def deq_equivalent(X: Array, stats: Any, coefficients: DEQCoefficients, *, epsilon: Epsilon = "model") -> Array:
    """G̃ = ((α1 − σ_b²)/σ_a²) XᵀX + V (A/σ_a²) Vᵀ + ((τ*² − τ_0²α1)/σ_a²) I_n (formula sheet section 6)."""
    t1, t2, t3, t0 = coefficients.targets
    return linear_equivalent(X, stats, a1=t1, a2=t2, a3=t3, identity=t0, epsilon=epsilon)


# -- explicit shallow networks matched to a DEQ ---------------------------------------------------


def leaky_relu_moments(a: float, b: float, tau: float) -> tuple[float, float, float, float]:
    """((E φ')², (E φ'')², Var φ, q) of φ(t) = max(a t, b t) at τξ, in closed form (a ≥ b or not).

    ``(E φ')² = (a+b)²/4``, ``(E φ'')² = (a−b)²/(2πτ²)``,
    ``Var φ = τ² ((a²+b²)(π−1) + 2ab)/(2π)`` and ``q = Var φ / τ²`` (φ is positively homogeneous).

    Examples
    --------
    >>> print(np.round(leaky_relu_moments(1.0, 0.0, 1.0), 6))  # relu: 1/4, 1/(2π), 1/2 − 1/(2π), idem
    [0.25     0.159155 0.340845 0.340845]
    """
    v = ((a * a + b * b) * (math.pi - 1.0) + 2.0 * a * b) / (2.0 * math.pi)
    return (a + b) ** 2 / 4.0, (a - b) ** 2 / (2.0 * math.pi * tau * tau), tau * tau * v, v


def clip_moments(scale: float, c: float, tau: float) -> tuple[float, float, float, float]:
    """((E φ')², (E φ'')², Var φ, q) of φ(t) = scale·clip(t, −c, c) at τξ, in closed form.

    With k = c/τ and f the standard normal density: E φ' = scale·erf(k/√2), E φ'' = 0 (φ is odd),
    Var φ = scale² (τ² (erf(k/√2) − 2 k f(k)) + c² erfc(k/√2)) and
    q = E[φ'² + φ φ''] = scale² (erf(k/√2) − 2 k f(k)) (φ'' = scale·(δ_{−c} − δ_c), φ(±c) = ±scale·c).

    Examples
    --------
    >>> g1, g2, var, q = clip_moments(1.0, 50.0, 1.3)  # c → ∞: the identity
    >>> print(f"{g1:.6f} {g2:.1f} {var:.6f} {q:.6f}")
    1.000000 0.0 1.690000 1.000000
    """
    from scipy.special import erf, erfc

    k = c / tau
    inside = float(erf(k / math.sqrt(2.0)))
    density = math.exp(-0.5 * k * k) / math.sqrt(2.0 * math.pi)
    var = scale * scale * (tau * tau * (inside - 2.0 * k * density) + c * c * float(erfc(k / math.sqrt(2.0))))
    q = scale * scale * (inside - 2.0 * k * density)
    return (scale * inside) ** 2, 0.0, var, q


def explicit_net_coefficients(moments: Sequence[tuple[float, float, float, float]], *, tau0: float,
                              ) -> tuple[float, float, float, float]:
    """(α_{L,1}, α_{L,2}, α_{L,3}, τ_L² − τ_0²α_{L,1}) of a net from its per-layer moments (g1, g2, Var, q).

    ``moments[ℓ]`` must be taken at τ_{ℓ} (the previous layer's output scale): see
    :func:`match_two_layer_leaky_relu` for how they are chained.
    """
    a = (1.0, 0.0, 0.0, 1.0)
    tau2 = tau0**2
    for g1, g2, var, q in moments:
        a = (g1 * a[0], g1 * a[1] + 0.25 * g2 * a[3] ** 2, g1 * a[2] + 0.5 * g2 * a[0] ** 2, q * a[3])
        tau2 = var
    return a[0], a[1], a[2], tau2 - tau0**2 * a[0]


def _two_layer_lrelu(params: Array, tau0: float) -> tuple[float, float, float, float]:
    a1, b1, a2, b2 = params
    first = leaky_relu_moments(a1, b1, tau0)
    second = leaky_relu_moments(a2, b2, math.sqrt(max(first[2], 1e-300)))
    return explicit_net_coefficients([first, second], tau0=tau0)


@dataclass(frozen=True)
class MatchResult:
    """Parameters of an explicit network matched to target coefficients, and how well they match.

    Attributes
    ----------
    activations
        Canonical activation names of the explicit network, layer by layer.
    parameters
        The solved parameters (names to values).
    achieved
        (α_{L,1}, α_{L,2}, α_{L,3}, τ_L² − τ_0²α_{L,1}) of the explicit network.
    targets
        What was asked.
    residual
        max_k |achieved_k − target_k| / |target_k| over the non-zero targets.
    """

    activations: tuple[str, ...]
    parameters: dict[str, float]
    achieved: tuple[float, float, float, float]
    targets: tuple[float, float, float, float]
    residual: float


def _relative_residual(achieved: Sequence[float], targets: Sequence[float]) -> float:
    scale = max(abs(t) for t in targets)
    return float(max(abs(a - t) / max(abs(t), 1e-6 * scale) for a, t in zip(achieved, targets)))


def match_two_layer_leaky_relu(targets: Sequence[float], *, tau0: float) -> MatchResult:
    """Two layers of leaky ReLU max(a_ℓ t, b_ℓ t), centred by constants, matched to four targets (Ling+24).

    Solves (α_{2,1}, α_{2,2}, α_{2,3}, τ_2² − τ_0²α_{2,1}) = ``targets`` by least squares from several
    starting points. Leaky ReLUs are positively homogeneous, so (a_1, b_1, a_2, b_2) →
    (s a_1, s b_1, a_2/s, b_2/s) leaves every coefficient unchanged: only three of the four unknowns
    are free, the first layer is normalised to a_1 = 1, and an exact match exists only when the
    targets satisfy the constraint that this leaves. ``residual`` says how close the match is.

    Parameters
    ----------
    targets
        E.g. :attr:`DEQCoefficients.targets`.
    tau0
        Data scale τ_0.

    Returns
    -------
    MatchResult
    """
    from scipy.optimize import least_squares

    targets = tuple(float(t) for t in targets)
    weights = np.array([1.0 / max(abs(t), 1e-12) for t in targets])

    def residuals(x: Array) -> Array:
        return (np.array(_two_layer_lrelu(np.array([1.0, *x]), tau0)) - np.array(targets)) * weights

    best = None
    for start in ([0.1, 1.0, 0.1], [0.5, 1.0, 0.0], [-0.2, 0.8, 0.3], [0.0, 0.5, -0.5], [0.3, 2.0, 0.5],
                  [-0.5, 1.5, 0.2], [0.8, 0.5, 0.1]):
        fit = least_squares(residuals, np.array(start), xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=5000)
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    params = np.array([1.0, *best.x])
    achieved = _two_layer_lrelu(params, tau0)
    a1, b1, a2, b2 = (float(v) for v in params)
    acts = (get_activation({"family": "leaky_relu", "a": a1, "b": b1}).name,
            get_activation({"family": "leaky_relu", "a": a2, "b": b2}).name)
    return MatchResult(activations=acts, parameters={"a1": a1, "b1": b1, "a2": a2, "b2": b2}, achieved=achieved,
                       targets=targets, residual=_relative_residual(achieved, targets))


def match_one_layer_clip(targets: Sequence[float], *, tau0: float) -> MatchResult:
    """One layer scale·clip(t, −c, c) matched to (α_1, identity) of the targets (Ling+24, tanh-DEQ).

    The clipped linear function is odd, so α_2 = α_3 = 0: it matches a DEQ with an odd activation,
    whose targets have α_2 = α_3 = 0. Two equations, two unknowns (scale, c), solved by least squares.

    Parameters
    ----------
    targets
        (α_1, α_2, α_3, identity) to match; α_2 and α_3 are reported, not matched.
    tau0
        Data scale τ_0.

    Returns
    -------
    MatchResult
    """
    from scipy.optimize import least_squares

    targets = tuple(float(t) for t in targets)

    def achieved_of(x: Array) -> tuple[float, float, float, float]:
        return explicit_net_coefficients([clip_moments(float(x[0]), abs(float(x[1])), tau0)], tau0=tau0)

    def residuals(x: Array) -> Array:
        got = achieved_of(x)
        return np.array([(got[0] - targets[0]) / targets[0], (got[3] - targets[3]) / targets[3]])

    best = None
    for start in ([1.0, 1.0], [0.5, 2.0], [2.0, 0.3], [1.0, 0.1]):
        fit = least_squares(residuals, np.array(start), bounds=([1e-6, 1e-6], [np.inf, np.inf]), xtol=1e-15,
                            ftol=1e-15, gtol=1e-15, max_nfev=5000)
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    scale, c = (float(v) for v in best.x)
    achieved = achieved_of(best.x)
    act = get_activation({"family": "clip", "c": c, "scale": scale}).name
    residual = _relative_residual((achieved[0], achieved[3]), (targets[0], targets[3]))
    return MatchResult(activations=(act,), parameters={"scale": scale, "c": c}, achieved=achieved, targets=targets,
                       residual=residual)
