"""First-order finite-width mean and variance of a deep random network's conjugate kernels, entry by entry.

The network of :mod:`rmtbench.deepnet`: given Σ_{ℓ−1}, the rows of W_ℓ Σ_{ℓ−1} are i.i.d.
N(0, K_{ℓ−1}) with K_{ℓ−1} = Σ_{ℓ−1}ᵀΣ_{ℓ−1} (Gaussian weights), so K_ℓ is the mean of d_ℓ i.i.d.
rank-one matrices::

    E[K_ℓ | K_{ℓ−1}] = F_ℓ(K_{ℓ−1}),      Cov[K_ℓ | K_{ℓ−1}] = Γ_ℓ(K_{ℓ−1}) / d_ℓ,

with F_ℓ the Gaussian kernel map of the centred φ̄_ℓ and Γ_ℓ the covariance of one row's products
φ̄(u_a)φ̄(u_b). Write K_ℓ = K∞_ℓ + δ_ℓ, with S_ℓ = E δ_ℓ and C_ℓ = Cov δ_ℓ, both O(1/d). A second-order
expansion of E F_ℓ(K_{ℓ−1}) around K∞_{ℓ−1}, and the law of total covariance, give to first order in
1/d (the expansion of Yaida 2020 and Roberts, Yaida & Hanin 2022, applied here to a fixed data set)::

    S_ℓ = DF_ℓ[S_{ℓ−1}] + ½ D²F_ℓ[C_{ℓ−1}],      C_ℓ = DF_ℓ C_{ℓ−1} DF_ℓᵀ + Γ_ℓ(K∞_{ℓ−1}) / d_ℓ,

with S_0 = C_0 = 0 (the data are fixed). Entry (i, j) of F_ℓ depends only on the triple
(K_ii, K_jj, K_ij), and entry (i, i) only on K_ii, so both recursions close over each triple: the
3 × 3 covariance of (K_ii, K_jj, K_ij) is carried per pair, O(n²) numbers per layer. Its diagonal
is itself a prediction: Var K_ℓ,ij to first order, the size of one draw's fluctuation around the
mean (:func:`finite_width_moments`); at the first layer it is exact, Γ_1(XᵀX)/d_1.

This is what the rank-one term of :func:`rmtbench.theory.deep.finite_width_correction` approximates
(pitfall P12): that term keeps only the curvature ∂²F/∂K_ij² at K_ij = 0 and the off-diagonal
variance τ⁴/d, and drops the fluctuations of the diagonal (the norms) and their covariance with the
off-diagonal entries. Those are first order too: at three relu layers they are the 3-16% residue
recorded in that function's docstring, and for relu-erf-abs they shift layer 2, where the rank-one
term is 0 (E erf'' = 0). ``tests/test_finite_width.py`` checks both against Monte Carlo.

Nearly collinear pairs. For kinked φ, ∂²F/∂K_ij² grows like (1 − ρ²)^(−1/2) as the correlation
ρ_ij → ±1, and the expansion needs the fluctuation of ρ_ij to stay small against 1 − |ρ_ij|. Pairs
with 1 − |ρ_ij| < :data:`COLLINEAR_MARGIN` at some layer are therefore not expanded: their entries
of S and of the variance are NaN from that layer on (the first layer's variance, which needs no
expansion, stays). The exception is duplicate samples (x_i = x_j): their entry equals
the diagonal's in every draw, so S_ij = S_ii exactly (:func:`duplicate_pairs`).

Numerics. The derivatives of F_ℓ are central differences of
:func:`rmtbench.theory.kernels.kernel_from_covariance` (closed form, Mehler series or 2-D rules,
whichever the activation uses) with steps :data:`STEP` times each sample's variance (∂²F/∂a_i∂a_j is ¼∂²F/∂c²,
by the heat equation below): truncation about
STEP², round-off about 1e-16/STEP², far below the Monte-Carlo noise this is compared with. Where the
kernel map switches evaluation path (the Mehler series at |ρ| = 0.7, variance-dependent node counts),
the differences carry that path's quadrature error over the step: measured up to about 0.5% of a
second derivative for tanh, still below the noise. The fourth moments in Γ use the Mehler series for
|ρ| ≤ 0.7 and above it a 2-D rule split at the kinks (kinked φ) or a tensor Gauss–Hermite rule (smooth φ),
both near round-off (:func:`rmtbench.theory.kernels.mixed_moment`): the first layer's kurtosis term of the
variance takes their second differences, across 0.7 too. The stencil reaches 2·STEP in 1 − |ρ|, inside the
margin.
Memory: about forty n × n float64 arrays at the peak of a layer.

Non-Gaussian weights. For i.i.d. entries of a symmetric law (no third cumulant, as every law of
:mod:`rmtbench.weights`) of unit variance and excess kurtosis κ_ℓ = E w⁴ − 3 in W_ℓ,
the pair (u_i, u_j) = (wᵀΣ_i, wᵀΣ_j) of one row has the fourth joint cumulants κ_ℓ T^(m,4−m)_ij with
T^(a,b)_ij = Σ_k Σ_ki^a Σ_kj^b, and the first Edgeworth term adds to E[K_ℓ | Σ_{ℓ−1}]::

    κ_ℓ A_ℓ,   A_ij = (T^(4,0) ∂²F/∂a_i² + T^(0,4) ∂²F/∂a_j²)/6 + (T^(3,1) ∂²F/∂a_i∂c + T^(1,3) ∂²F/∂a_j∂c)/3
                     + T^(2,2) ∂²F/∂c²/4,      A_ii = T^(4)_i h''(a_i)/6,

because E[φ^(m)(u_i) φ^(4−m)(u_j)] are second derivatives of the Gaussian kernel map (heat equation:
∂F/∂a_i = ½E ∂²_i, ∂F/∂c = E ∂_i∂_j). At the first layer T comes from the data (Σ_0 = X: the
localisation of pitfall P8, about 3/p for delocalised data); after it T^(a,b) = M^(a,b)_{ℓ−1}/d_{ℓ−1},
with M^(a,b) = E[φ̄(u_i)^a φ̄(u_j)^b] the moments of the layer below (the fourth moments Γ already
uses), so the kurtosis of W_ℓ moves the mean of K_ℓ at order 1/d_{ℓ−1}, like the Gaussian terms.
:func:`kurtosis_responses` carries each A_k through the later layers' DF; E K_ℓ − K∞_ℓ gains
Σ_{k≤ℓ} κ_k U_{k→ℓ} (:func:`kurtosis_weights`: the 1/d_{k−1} is applied last, so one set of responses serves
every width).

The law changes the variance by a relative O(κ_ℓ T^(a,b)_ℓ). After the first layer that is O(κ/d²), beyond
this order; at the first layer it is the data's localisation, which does not fall with d. So κ_1 moves
Var K_ℓ of every layer at first order (:func:`variance_kurtosis_responses`, κ_1 R_ℓ): through Γ_1, whose entries
are covariances of φ̄_i², φ̄_j², φ̄_iφ̄_j and gain the Edgeworth terms of the fourth moments E φ̄_i⁴, E φ̄_i²φ̄_j²,
E φ̄_i³φ̄_j (:func:`first_layer_gamma_change`), and through the later layers' DF and Γ, taken at the input
kernel the first layer's kurtosis term moved. ``tests/test_finite_width.py`` checks it exact for a linear
layer and against Monte Carlo; the residue is O((κ_1 · localisation)²).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from rmtbench.activations import Activation

__all__ = [
    "COLLINEAR_MARGIN", "STEP", "FiniteWidthMoments", "KernelState", "LayerSensitivities", "collinear_pairs",
    "KURTOSIS_STEP", "copy_diagonal", "data_fourth_moments", "duplicate_pairs", "edgeworth_term", "finite_width_moments",
    "finite_width_shifts", "input_sensitivities", "first_layer_gamma_change", "first_layer_moment_change",
    "kurtosis_responses", "kurtosis_step",
    "kurtosis_terms", "kurtosis_weights",
    "layer_inputs", "layer_sensitivities", "layer_states", "layer_values", "linear_change", "map_derivatives",
    "network_sensitivities", "propagate", "propagate_moments", "variance_kurtosis_responses",
]

Array = NDArray[np.float64]

#: Relative step of the central differences: a_i by STEP·a_i, K_ij by STEP·sqrt(a_i a_j).
STEP = 1e-3
#: Off-diagonal pairs with 1 − |ρ| below this are not expanded (NaN; module docstring).
COLLINEAR_MARGIN = 1e-2


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class LayerSensitivities:
    """Derivatives of one layer's kernel map and its fresh covariance, at K∞ of the layer below.

    Off-diagonal entry (i, j) is F(a_i, a_j, c_ij) with a = diag K, c = K (its value ``f0``); ``fa`` is ∂F/∂a_i,
    ``fc`` ∂F/∂c, ``faa`` ∂²F/∂a_i², ``fab`` ∂²F/∂a_i∂a_j, ``fac`` ∂²F/∂a_i∂c, ``fcc`` ∂²F/∂c²
    (the a_j derivatives are the transposes, F being symmetric). The diagonal is h(a) = E φ̄(√a ξ)²
    (``h0``) with derivatives ``h1``, ``h2``. ``g_aa`` (n,), ``g_ab``, ``g_ac``, ``g_cc`` (n × n) are the entries of
    Γ: the covariances of (φ̄_i², φ̄_j², φ̄_iφ̄_j) for one row, built from the layer's output moments
    ``m4`` = E φ̄_i⁴ (n,), ``m22`` = E φ̄_i²φ̄_j² and ``m31`` = E φ̄_i³φ̄_j, which the next layer's kurtosis
    term uses. Diagonals of the n × n arrays are unused (NaN in the g and m arrays). Nearly collinear
    pairs (:data:`COLLINEAR_MARGIN`) are NaN in the derivative arrays only: Γ needs no stencil, and the
    layer-1 variance Γ/d is exact for them too (Gaussian weights; the first layer's kurtosis term of the
    variance needs stencils, so it is NaN for them).
    """

    f0: Array
    fa: Array
    fc: Array
    faa: Array
    fab: Array
    fac: Array
    fcc: Array
    h0: Array
    h1: Array
    h2: Array
    g_aa: Array
    g_ab: Array
    g_ac: Array
    g_cc: Array
    m4: Array
    m22: Array
    m31: Array


def layer_sensitivities(act: Activation, K: Array, *, nodes: int = 48) -> LayerSensitivities:
    """:class:`LayerSensitivities` of the kernel map of ``act`` (centred φ̄) at the input kernel ``K``.

    ``nodes`` sets the kernel maps' Gauss–Hermite rules and, doubled (at least 96), the 2-D rule of
    the fourth moments.
    """
    from rmtbench.quadrature import gaussian_expectations
    from rmtbench.theory.kernels import kernel_from_covariance, mixed_moment

    phi = act.phi
    K = np.asarray(K, dtype=float)
    a = np.clip(np.diagonal(K).copy(), 0.0, None)

    def kernel_map(var_a: Array, var_b: Array, cov: Array, symmetric: bool) -> Array:
        return kernel_from_covariance(act, var_a, var_b, cov, nodes=nodes, symmetric=symmetric)

    def moment(power: int, var: Array) -> Array:
        return gaussian_expectations(lambda t: np.asarray(phi(t), dtype=float) ** power, np.sqrt(var), kinks=act.kinks, nodes=40)

    pairs, diag = map_derivatives(kernel_map, lambda var: moment(2, var), K)
    f0 = pairs["f0"]
    square = lambda t: np.asarray(phi(t), dtype=float) ** 2  # noqa: E731
    rule = max(96, 2 * nodes)
    m22 = mixed_moment(square, square, a, K, kinks=act.kinks, nodes=rule, off_diagonal=True)
    m31 = mixed_moment(lambda t: np.asarray(phi(t), dtype=float) ** 3, phi, a, K, kinks=act.kinks, nodes=rule,
                       off_diagonal=True)
    m4 = moment(4, a)
    return LayerSensitivities(
        **pairs, h0=diag[0], h1=diag[1], h2=diag[2],
        g_ab=m22 - np.outer(diag[0], diag[0]), g_ac=m31 - diag[0][:, None] * f0, g_cc=m22 - f0**2, g_aa=m4 - diag[0]**2,
        m4=m4, m22=m22, m31=m31,
    )


def map_derivatives(kernel_map: Callable[[Array, Array, Array, bool], Array], diagonal: Callable[[Array], Array],
                    K: Array) -> tuple[dict[str, Array], tuple[Array, Array, Array]]:
    """Value and central-difference derivatives of a pairwise Gaussian map at the input kernel ``K``.

    Parameters
    ----------
    kernel_map
        ``(var_a, var_b, cov, symmetric) -> n × n``: the map's off-diagonal entries F(a_i, a_j, c_ij)
        (``symmetric``: the arguments are symmetric in (i, j), the upper triangle suffices). F must be a
        Gaussian expectation E f(u)g(v) of fixed functions (so ∂²F/∂a_i∂a_j = ¼∂²F/∂c², used for ``fab``).
    diagonal
        ``var -> (n,)``: the map on the diagonal, h(a).
    K
        Input kernel, ``n × n``.

    Returns
    -------
    (dict, tuple)
        ``f0, fa, fc, faa, fab, fac, fcc`` (n × n, named as in :class:`LayerSensitivities`; nearly collinear
        pairs NaN in the derivatives) and (h, h', h'') on the diagonal.
    """
    K = np.asarray(K, dtype=float)
    a = np.clip(np.diagonal(K).copy(), 0.0, None)
    # steps relative to each sample's own variance, so that samples of small norm keep valid stencils
    # (a zero-norm sample borrows the mean: its pairs are collinear and left out anyway)
    s = STEP * np.where(a > 0, a, float(np.mean(a)) or 1.0)
    sc = np.sqrt(np.outer(s, s))  # STEP·sqrt(a_i a_j): the same step in ρ for every pair

    def F(da: int = 0, db: int = 0, dc: int = 0) -> Array:
        """The map at a_i + da·s_i, a_j + db·s_j, K_ij + dc·sc_ij (da, db, dc in {−1, 0, 1})."""
        # the stencils symmetric in (i, j) compute the upper triangle only
        return kernel_map(a + da * s, a + db * s, K + dc * sc, da == db)

    f0 = F()
    a_plus, a_minus, c_plus, c_minus = F(da=1), F(da=-1), F(dc=1), F(dc=-1)
    si = s[:, None]
    derivatives = {
        "fa": (a_plus - a_minus) / (2 * si),
        "fc": (c_plus - c_minus) / (2 * sc),
        "faa": (a_plus - 2 * f0 + a_minus) / si**2,
        "fac": (F(da=1, dc=1) - F(da=1, dc=-1) - F(da=-1, dc=1) + F(da=-1, dc=-1)) / (4 * si * sc),
        "fcc": (c_plus - 2 * f0 + c_minus) / sc**2,
    }
    # Heat equation: ∂/∂a_i = ½∂²_u and ∂/∂c = ∂_u∂_v under the Gaussian, so ∂²F/∂a_i∂a_j = ¼∂²F/∂c²
    # exactly; this saves the four-point stencil in (a_i, a_j), 3 of the 10.5 map evaluations.
    derivatives["fab"] = derivatives["fcc"] / 4
    collinear = collinear_pairs(K)
    for value in derivatives.values():  # the stencils reach past |ρ| = 1 there
        value[collinear] = np.nan
    h, h_plus, h_minus = diagonal(a), diagonal(a + s), diagonal(np.clip(a - s, 0.0, None))
    diag = (h, (h_plus - h_minus) / (2 * s), (h_plus - 2 * h + h_minus) / s**2)
    return {"f0": f0, **derivatives}, diag


def collinear_pairs(K: Array) -> NDArray[np.bool_]:
    """Off-diagonal pairs with 1 − |ρ| < :data:`COLLINEAR_MARGIN` (zero-variance samples included)."""
    s = np.sqrt(np.clip(np.diagonal(K), 0.0, None))
    outer = np.outer(s, s)
    rho = np.divide(np.abs(K), outer, out=np.ones_like(K), where=outer > 0)
    out = 1.0 - rho < COLLINEAR_MARGIN
    np.fill_diagonal(out, False)
    return out


def duplicate_pairs(X: Array) -> NDArray[np.bool_]:
    """Off-diagonal pairs of identical samples (columns of ``X``): their K entries equal the diagonal's."""
    X = np.asarray(X, dtype=float)
    _, first = np.unique(X.T, axis=0, return_inverse=True)
    first = np.ravel(first)
    out = first[:, None] == first[None, :]
    np.fill_diagonal(out, False)
    return out


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class FiniteWidthMoments:
    """First-order finite-width moments of every layer's CK: ``shifts[ℓ]`` = E K_ℓ − K∞_ℓ and
    ``variances[ℓ]`` = Var K_ℓ,ij entry by entry (the diagonal holds Var K_ℓ,ii), both n × n."""

    shifts: list[Array]
    variances: list[Array]


def propagate(layers: Sequence[LayerSensitivities], widths: Sequence[float], *,
              duplicates: NDArray[np.bool_] | None = None) -> list[Array]:
    """S_ℓ = E K_ℓ − K∞_ℓ, ℓ = 1..L, to first order in 1/d, from each layer's sensitivities.

    ``widths`` gives d_1, ..., d_L (at least L − 1 of them: d_L enters only the covariance of the
    last layer, which no mean uses). The sensitivities do not depend on the widths, so one set
    serves every width. ``duplicates`` (:func:`duplicate_pairs`) get S_ij = S_ii; other nearly
    collinear pairs are NaN.
    """
    if len(widths) < len(layers) - 1:
        raise ValueError(f"need at least {len(layers) - 1} widths, got {len(widths)}")
    return [shift for shift, _ in _layer_moments(layers, widths, duplicates)]


def propagate_moments(layers: Sequence[LayerSensitivities], widths: Sequence[float], *,
                      duplicates: NDArray[np.bool_] | None = None) -> FiniteWidthMoments:
    """:func:`propagate`, with the first-order variance of every entry: C_ℓ's diagonal, Var K_ℓ,ij.

    The variance of layer ℓ needs d_ℓ, so ``widths`` has all L widths. Duplicates get the diagonal's
    variance, Var K_ij = Var K_ii (exact: the two entries are equal in every draw); other nearly
    collinear pairs get the exact Γ_1/d_1 at layer 1 and NaN from the layer whose input has them
    collinear on (the expansion needs the derivatives there). With a non-Gaussian first layer
    (:func:`finite_width_moments`' ``kurtosis``), its variance term needs them at layer 1 too: NaN there
    (a sample of zero norm is collinear with every other).
    """
    if len(widths) < len(layers):
        raise ValueError(f"the variance of every layer needs {len(layers)} widths, got {len(widths)}")
    shifts, variances = zip(*_layer_moments(layers, widths, duplicates))
    return FiniteWidthMoments(shifts=list(shifts), variances=list(variances))


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class KernelState:
    """First-order state of one layer's CK K_ℓ: its mean shift S_ℓ = E K_ℓ − K∞_ℓ and, when the layer's width is
    known, the covariance of each pair's triple (K_ii, K_jj, K_ij): ``v_aa`` = Var K_ii (n,), ``v_ab`` =
    Cov(K_ii, K_jj), ``v_ac`` = Cov(K_ii, K_ij) (row i; Cov(K_jj, K_ij) is its transpose), ``v_cc`` = Var K_ij."""

    shift: Array
    v_aa: Array | None = None
    v_ab: Array | None = None
    v_ac: Array | None = None
    v_cc: Array | None = None


def layer_states(layers: Sequence[LayerSensitivities], widths: Sequence[float], *,
                 duplicates: NDArray[np.bool_] | None = None) -> Iterator[KernelState]:
    """:class:`KernelState` of K_1, ..., K_L (the recursion of the module docstring); the covariance is None
    past the last width given, and the iteration stops there."""
    n = layers[0].fc.shape[0]
    S = np.zeros((n, n))
    v_aa, v_ab, v_ac, v_cc = np.zeros(n), np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    for ell, s in enumerate(layers):
        fb, fbb, fbc = s.fa.T, s.faa.T, s.fac.T
        if ell == 0:  # S_0 = C_0 = 0: the first layer's mean is exact, for collinear pairs too
            new = np.zeros((n, n))
        else:
            curvature = (0.5 * (s.faa * v_aa[:, None] + fbb * v_aa[None, :] + s.fcc * v_cc)
                         + s.fab * v_ab + s.fac * v_ac + fbc * v_ac.T)
            np.fill_diagonal(curvature, 0.5 * s.h2 * v_aa)
            new = linear_change(s, S) + curvature
        copy_diagonal(new, duplicates)
        S = new
        if ell >= len(widths):
            yield KernelState(new)
            break
        inv_d = 1.0 / float(widths[ell])
        if ell == 0:  # C_0 = 0: the first layer's covariance is its own, exactly, for collinear pairs too
            v_aa, v_ab, v_ac, v_cc = s.g_aa * inv_d, s.g_ab * inv_d, s.g_ac * inv_d, s.g_cc * inv_d
        else:
            # Var(δK_ii), Cov(δK_ii, δK_jj), Cov(δK_ii, δK_ij), Var(δK_ij): propagated, plus this layer's own.
            v_cc_new = (s.fa**2 * v_aa[:, None] + fb**2 * v_aa[None, :] + s.fc**2 * v_cc
                        + 2 * (s.fa * fb * v_ab + s.fa * s.fc * v_ac + fb * s.fc * v_ac.T) + s.g_cc * inv_d)
            v_ac_new = s.h1[:, None] * (s.fa * v_aa[:, None] + fb * v_ab + s.fc * v_ac) + s.g_ac * inv_d
            v_ab_new = np.outer(s.h1, s.h1) * v_ab + s.g_ab * inv_d
            v_aa = s.h1**2 * v_aa + s.g_aa * inv_d
            v_ab, v_ac, v_cc = v_ab_new, v_ac_new, v_cc_new
        yield KernelState(new, v_aa, v_ab, v_ac, v_cc)


def _layer_moments(layers: Sequence[LayerSensitivities], widths: Sequence[float],
                   duplicates: NDArray[np.bool_] | None) -> Iterator[tuple[Array, Array | None]]:
    """(S_ℓ, Var K_ℓ) per layer; the variance is None past the last width given."""
    for state in layer_states(layers, widths, duplicates=duplicates):
        variance = None if state.v_aa is None else _variance(state.v_aa, state.v_cc, duplicates)
        yield state.shift, variance


def linear_change(s: LayerSensitivities, S: Array) -> Array:
    """DF[S]: the first-order change of a layer's kernel map for a change S of its input kernel (``s`` may be any
    map's derivatives with the fields ``fa``, ``fc``, ``h1``)."""
    diag = np.diagonal(S)
    out = s.fa * diag[:, None] + s.fa.T * diag[None, :] + s.fc * S
    np.fill_diagonal(out, s.h1 * diag)
    return out


def kurtosis_terms(layers: Sequence[LayerSensitivities], X: Array, *, maps: Sequence[object] | None = None) -> list[Array]:
    """A_ℓ, ℓ = 1..L: the first-order change of E[K_ℓ | K_{ℓ−1}] per unit κ_1 at the first layer, and per unit
    κ_ℓ/d_{ℓ−1} after it (the width only scales those terms: :func:`kurtosis_weights`).

    The first layer's T^(a,b) come from the data ``X`` (``p × n``, Σ_0 = X); layer ℓ's are the fourth moments
    of layer ℓ − 1 (module docstring). Nearly collinear pairs are NaN, like the derivatives. ``maps``: the same
    change for another Gaussian map of each layer's input (its second derivatives ``faa``, ``fac``, ``fcc``, ``h2``;
    e.g. the derivative kernel's, :mod:`rmtbench.theory.finite_width_ntk`) instead of the CK's.
    """
    terms = []
    for ell, s in enumerate(layers if maps is None else maps):
        if ell == 0:
            t = data_fourth_moments(X)
        else:
            below = layers[ell - 1]
            t = (below.m4, below.m31, below.m22)
        terms.append(edgeworth_term(t, s.faa, s.fac, s.fcc, s.h2))
    return terms


def data_fourth_moments(X: Array) -> tuple[Array, Array, Array]:
    """T^(4)_i = Σ_k x_ki⁴ (n,), T^(3,1)_ij = Σ_k x_ki³ x_kj and T^(2,2)_ij = Σ_k x_ki² x_kj² of the data ``X`` (``p × n``):
    the weights of the first layer's Edgeworth terms (module docstring)."""
    X = np.asarray(X, dtype=float)
    squares = X * X
    return (squares * squares).sum(axis=0), (squares * X).T @ X, squares.T @ squares


def edgeworth_term(t: tuple[Array, Array, Array], faa: Array, fac: Array, fcc: Array, h2: Array, *,
                   faa_b: Array | None = None, fac_b: Array | None = None) -> Array:
    """First Edgeworth term of a pairwise Gaussian map per unit κ: (T^(4)_i ∂²_a_i + T^(4)_j ∂²_a_j)/6
    + (T^(3,1) ∂_a_i∂_c + T^(1,3) ∂_a_j∂_c)/3 + T^(2,2) ∂²_c/4 off the diagonal, T^(4)_i h''(a_i)/6 on it.

    ``t`` = (T^(4), T^(3,1), T^(2,2)) (:func:`data_fourth_moments`, or a layer's moments); ``faa``, ``fac``, ``fcc``
    are the map's second derivatives at entry (i, j), ``h2`` its diagonal's. ``faa_b``, ``fac_b``: ∂²/∂a_j² and
    ∂²/∂a_j∂c at (i, j), for a map not symmetric in (i, j) (default: the transposes, as for a symmetric map).
    """
    t4, t31, t22 = t
    faa_b = faa.T if faa_b is None else faa_b
    fac_b = fac.T if fac_b is None else fac_b
    A = (t4[:, None] * faa + t4[None, :] * faa_b) / 6.0 + (t31 * fac + t31.T * fac_b) / 3.0 + t22 * fcc / 4.0
    np.fill_diagonal(A, t4 * h2 / 6.0)
    return A


def kurtosis_weights(kurtosis: Sequence[float], widths: Sequence[float]) -> list[float]:
    """κ_1, κ_2/d_1, ..., κ_L/d_{L−1}: what multiplies each chain of :func:`kurtosis_responses` in E K_ℓ.

    ``widths`` needs at least L − 1 entries (d_L scales nothing).

    Examples
    --------
    >>> kurtosis_weights([7.0, 7.0, -2.0], [70, 40])
    [7.0, 0.1, -0.05]
    """
    if len(widths) < len(kurtosis) - 1:
        raise ValueError(f"need at least {len(kurtosis) - 1} widths, got {len(widths)}")
    return [float(kurtosis[0])] + [float(k) / float(d) for k, d in zip(kurtosis[1:], widths)]


def kurtosis_responses(layers: Sequence[LayerSensitivities], terms: Sequence[Array], *,
                       duplicates: NDArray[np.bool_] | None = None) -> list[list[Array]]:
    """U_{k→ℓ}: the first-order change of E K_ℓ per unit of the k-th :func:`kurtosis_weights` (κ_1, then
    κ_k/d_{k−1}), ``out[k][ℓ − k]`` for ℓ ≥ k. Independent of the widths.

    ``terms`` are :func:`kurtosis_terms`; each is carried through the later layers by their DF (the
    kurtosis adds to the mean only, at first order). ``duplicates`` get the diagonal's entry.
    """
    out = []
    for k, term in enumerate(terms):
        U = term.copy()
        copy_diagonal(U, duplicates)
        chain = [U]
        for s in layers[k + 1:]:
            U = linear_change(s, U)
            copy_diagonal(U, duplicates)
            chain.append(U)
        out.append(chain)
    return out


#: Largest relative change of the input kernel, |h U_ij|/sqrt(a_i a_j), in the difference that linearises the
#: deeper layers' sensitivities in κ_1 (:func:`variance_kurtosis_responses`).
KURTOSIS_STEP = 1e-2


def first_layer_moment_change(act: Activation, f: Callable[[Array], Array], g: Callable[[Array], Array], X: Array, *,
                              nodes: int = 48, diagonal: Callable[[Array], Array] | None = None) -> Array:
    """δE f(u_i)g(u_j) per unit κ_1 for one row of the first layer: the first Edgeworth term of the data's localisation
    (:func:`edgeworth_term`), from central differences (:func:`map_derivatives`) of the moment's Gaussian map
    (:func:`rmtbench.theory.kernels.mixed_moment`, at the kinks of ``act``, a 2-D rule of max(96, 2·nodes)).

    ``diagonal``: var -> E (fg)(u) for u ~ N(0, var), whose change fills the diagonal (0 without it). A pair with
    ``f is g`` is symmetric in (i, j); otherwise the map with the roles swapped gives the a_j side. Nearly collinear
    pairs are NaN.
    """
    from rmtbench.theory.kernels import mixed_moment

    X = np.asarray(X, dtype=float)
    K, t, rule = X.T @ X, data_fourth_moments(X), max(96, 2 * nodes)

    def pair_map(a: Callable[[Array], Array], b: Callable[[Array], Array]) -> Callable[[Array, Array, Array, bool], Array]:
        return lambda var_a, var_b, cov, _: mixed_moment(a, b, var_a, cov, kinks=act.kinks, nodes=rule, off_diagonal=True,
                                                         variances_b=var_b)

    def none(var: Array) -> Array:
        return np.zeros_like(var)

    m, diag = map_derivatives(pair_map(f, g), none if diagonal is None else diagonal, K)
    if f is g:
        return edgeworth_term(t, m["faa"], m["fac"], m["fcc"], diag[2])
    swapped, _ = map_derivatives(pair_map(g, f), none, K)
    return edgeworth_term(t, m["faa"], m["fac"], m["fcc"], diag[2], faa_b=swapped["faa"].T, fac_b=swapped["fac"].T)


def first_layer_gamma_change(act: Activation, X: Array, layer: LayerSensitivities, *, nodes: int = 48
                             ) -> tuple[Array, Array, Array, Array]:
    """Change of the first layer's Γ_1 entries (``g_aa``, ``g_ab``, ``g_ac``, ``g_cc`` of ``layer``) per unit κ_1.

    Each entry of Γ_1 is a covariance of the products φ̄_iφ̄_i, φ̄_jφ̄_j, φ̄_iφ̄_j of one row; their expectations
    E φ̄_i⁴, E φ̄_i²φ̄_j², E φ̄_i³φ̄_j, E φ̄_i², E φ̄_iφ̄_j each gain the first Edgeworth term of the data's
    localisation (:func:`edgeworth_term`), whose second derivatives are central differences of the fourth-moment
    maps (:func:`map_derivatives`). ``act`` is the layer's centred activation, ``layer`` its sensitivities at
    XᵀX (:func:`layer_sensitivities` with the same ``nodes``). Nearly collinear pairs are NaN (except in
    ``g_aa``), like the derivatives.
    """
    from rmtbench.quadrature import gaussian_expectations

    phi = act.phi
    t = data_fourth_moments(X)

    def power(k: int) -> Callable[[Array], Array]:
        return lambda u: np.asarray(phi(u), dtype=float) ** k

    square, cube = power(2), power(3)
    fourth = lambda var: gaussian_expectations(power(4), np.sqrt(var), kinks=act.kinks, nodes=40)  # noqa: E731
    d22 = first_layer_moment_change(act, square, square, X, nodes=nodes, diagonal=fourth)  # δE φ̄_i²φ̄_j², δE φ̄_i⁴
    d31 = first_layer_moment_change(act, cube, phi, X, nodes=nodes)  # its diagonal is not used
    d2 = edgeworth_term(t, layer.faa, layer.fac, layer.fcc, layer.h2)  # δE φ̄_iφ̄_j, and δE φ̄_i² on the diagonal
    dh = np.diagonal(d2).copy()
    h0, f0 = layer.h0, layer.f0
    return (np.diagonal(d22) - 2.0 * h0 * dh,
            d22 - np.outer(dh, h0) - np.outer(h0, dh),
            d31 - dh[:, None] * f0 - h0[:, None] * d2,
            d22 - 2.0 * f0 * d2)


def variance_kurtosis_responses(inputs: Sequence[tuple[Activation, Array]], layers: Sequence[LayerSensitivities],
                                X: Array, width_sets: Sequence[Sequence[float]], *, nodes: int = 48,
                                duplicates: NDArray[np.bool_] | None = None) -> list[list[Array]]:
    """d Var K_ℓ,ij / dκ_1 for ℓ = 1..L, per set of widths: the first layer's weight kurtosis in the variance.

    Two first-order effects of the data's localisation (relative O(κ_1·T), which does not vanish with d):
    the first layer's own Γ_1 changes (:func:`first_layer_gamma_change`), and every later layer's
    sensitivities (DF_ℓ and Γ_ℓ) are taken at the input kernel that the first layer's kurtosis term moved
    (K∞ + κ_1 U_{1→ℓ−1}). The second is linearised by a central difference in κ_1 over the whole recursion,
    the input kernels moved by at most :data:`KURTOSIS_STEP` relative. The later layers' own kurtosis changes
    the variance at O(κ/d²), beyond this order.

    Parameters
    ----------
    inputs
        Each layer's centred activation and input kernel (:func:`layer_inputs`).
    layers
        Their sensitivities (:func:`layer_sensitivities` with the same ``nodes``).
    X
        Data, ``p × n``.
    width_sets
        Each a list d_1, ..., d_L (all L widths).
    nodes, duplicates
        As for :func:`layer_sensitivities` and :func:`propagate_moments`.

    Returns
    -------
    list of lists of ndarray
        ``out[w][ℓ − 1]``, n × n (the diagonal holds d Var K_ii/dκ_1); NaN where the variance is.
    """
    change = first_layer_gamma_change(inputs[0][0], X, layers[0], nodes=nodes)
    U = kurtosis_terms(layers[:1], X)[0]  # the first layer's kurtosis term of the mean: the next layer's input moves
    h = kurtosis_step(inputs, U)

    def moved(sign: float) -> list[LayerSensitivities]:
        first = layers[0]
        out = [replace(first, **{name: getattr(first, name) + sign * h * d
                                 for name, d in zip(("g_aa", "g_ab", "g_ac", "g_cc"), change)})]
        if len(layers) > 1:
            K = inputs[1][1] + sign * h * np.nan_to_num(U)  # nearly collinear pairs stay NaN in Γ_1's change
            for act, _ in inputs[1:]:
                s = layer_sensitivities(act, K, nodes=nodes)
                out.append(s)
                K = s.f0.copy()
                np.fill_diagonal(K, s.h0)
        return out

    plus, minus = moved(1.0), moved(-1.0)
    responses = []
    for widths in width_sets:
        up, down = (_layer_moments(m, widths, duplicates) for m in (plus, minus))
        responses.append([(vp - vm) / (2.0 * h) for (_, vp), (_, vm) in zip(up, down)])
    return responses


def kurtosis_step(inputs: Sequence[tuple[Activation, Array]], U: Array) -> float:
    """Step h in κ_1 of the central differences that linearise the deeper layers in κ_1: h·U, the first layer's
    kurtosis term of the mean, moves the second layer's input kernel by at most :data:`KURTOSIS_STEP` relative
    (1 for a single layer, where nothing is moved)."""
    if len(inputs) < 2:
        return 1.0
    a = np.clip(np.diagonal(inputs[1][1]), 0.0, None)
    scale = np.sqrt(np.outer(a, a))
    relative = np.divide(np.abs(U), scale, out=np.zeros_like(U), where=scale > 0)
    top = float(np.nanmax(relative, initial=0.0))
    return KURTOSIS_STEP / top if top > 0 else 1.0


def _variance(v_aa: Array, v_cc: Array, duplicates: NDArray[np.bool_] | None) -> Array:
    """Var K entry by entry: Var K_ij off the diagonal, Var K_ii on it, duplicates copying the diagonal."""
    variance = v_cc.copy()
    np.fill_diagonal(variance, v_aa)
    copy_diagonal(variance, duplicates)
    return variance


def copy_diagonal(M: Array, duplicates: NDArray[np.bool_] | None) -> None:
    """Entry (i, j) of each duplicate pair takes the diagonal's M_ii (in place)."""
    if duplicates is not None:
        M[duplicates] = np.diagonal(M)[np.nonzero(duplicates)[0]]  # row i of each pair (i, j)


def layer_inputs(X: Array, activations: Sequence[object], *, tau0: float, nodes: int = 48,
                 kernels: Sequence[Array] | None = None) -> list[tuple[Activation, Array]]:
    """Each layer's centred activation φ̄_ℓ and the infinite-width kernel it sees: XᵀX, then K∞_1, ..., K∞_{L−1}.

    Parameters as in :func:`finite_width_shifts`.
    """
    from rmtbench.activations import get_activation
    from rmtbench.theory.deep import centred_activation, exact_ck, layer_coefficients

    X = np.asarray(X, dtype=float)
    coefficients = layer_coefficients(list(activations), tau0=tau0)
    if kernels is None:
        kernels = exact_ck(X, list(activations), tau0=tau0, nodes=nodes)
    inputs = [X.T @ X, *kernels[: len(coefficients) - 1]]
    return [(centred_activation(get_activation(spec), c.shift), K) for spec, c, K in zip(activations, coefficients, inputs)]


def network_sensitivities(X: Array, activations: Sequence[object], *, tau0: float, nodes: int = 48,
                          kernels: Sequence[Array] | None = None) -> list[LayerSensitivities]:
    """:class:`LayerSensitivities` of every layer, at the infinite-width kernels (they do not depend on d).

    Parameters as in :func:`finite_width_shifts`; feed the result to :func:`propagate` once per set of widths.
    """
    return input_sensitivities(layer_inputs(X, activations, tau0=tau0, nodes=nodes, kernels=kernels), nodes=nodes)


def input_sensitivities(inputs: Sequence[tuple[Activation, Array]], *, nodes: int = 48) -> list[LayerSensitivities]:
    """:class:`LayerSensitivities` of each (centred activation, input kernel) of :func:`layer_inputs`, for callers that
    keep the inputs too (:func:`variance_kurtosis_responses` needs them)."""
    return [layer_sensitivities(act, K, nodes=nodes) for act, K in inputs]


def finite_width_shifts(X: Array, activations: Sequence[object], widths: Sequence[float], *, tau0: float,
                        nodes: int = 48, kernels: Sequence[Array] | None = None,
                        kurtosis: float | Sequence[float] = 0.0) -> list[Array]:
    """E[Σ_ℓᵀΣ_ℓ] − K∞_ℓ for ℓ = 1..L, entry by entry, to first order in 1/d (module docstring).

    Parameters
    ----------
    X
        Data, ``p × n``.
    activations
        φ_1, ..., φ_L (centred by the constants of :func:`rmtbench.theory.deep.layer_coefficients`).
    widths
        d_1, ..., d_L (at least L − 1 entries).
    tau0
        τ_0, which fixes the centring constants.
    nodes
        Quadrature nodes of the kernel maps without a closed form.
    kernels
        K∞_1, ..., K∞_L if already computed (:func:`rmtbench.theory.deep.exact_ck`); only the first
        L − 1 are used.
    kurtosis
        Excess kurtosis E w⁴ − 3 of the weight entries, one value for every layer or one per layer
        (0: Gaussian weights). Adds Σ_k κ_k U_{k→ℓ} (module docstring); the first layer's term then makes
        S_1 non-zero.

    Returns
    -------
    list of ndarray
        L matrices ``n × n``; the first is 0 for Gaussian weights (its expectation is exact). Entries of
        nearly collinear pairs that are not duplicates are NaN (module docstring).

    Examples
    --------
    >>> X = np.linalg.qr(np.random.default_rng(0).standard_normal((8, 4)))[0]
    >>> S = finite_width_shifts(X, ["linear", "linear"], [16, 16], tau0=0.5)  # E WᵀW/d = I: no shift
    >>> float(np.abs(S[1]).max()) < 1e-9
    True
    """
    layers = network_sensitivities(X, activations, tau0=tau0, nodes=nodes, kernels=kernels)
    duplicates = duplicate_pairs(X)
    shifts = propagate(layers, widths, duplicates=duplicates)
    return _add_kurtosis(shifts, layers, X, widths, kurtosis, duplicates)


def finite_width_moments(X: Array, activations: Sequence[object], widths: Sequence[float], *, tau0: float,
                         nodes: int = 48, kernels: Sequence[Array] | None = None,
                         kurtosis: float | Sequence[float] = 0.0) -> FiniteWidthMoments:
    """:func:`finite_width_shifts` and the first-order variance Var K_ℓ,ij of every entry (module docstring).

    Parameters as in :func:`finite_width_shifts`, except that ``widths`` needs all L widths (d_ℓ
    sets layer ℓ's own fluctuation). The first layer's variance Γ_1(XᵀX)/d_1 is exact for Gaussian
    weights; deeper ones carry terms of order 1/d², which are not computed. ``kurtosis`` adds each
    layer's term to the shifts and the first layer's, κ_1 times :func:`variance_kurtosis_responses`,
    to the variances (the later layers' change them at O(κ/d²) only).

    Examples
    --------
    >>> X = np.linalg.qr(np.random.default_rng(0).standard_normal((8, 4)))[0]
    >>> m = finite_width_moments(X, ["linear"], [16], tau0=0.5)  # K_1 = XᵀWᵀWX/16, Wishart: Var K_ii = 2/16
    >>> round(float(m.variances[0][0, 0]), 10), round(float(m.variances[0][0, 1]), 10)
    (0.125, 0.0625)
    """
    inputs = layer_inputs(X, activations, tau0=tau0, nodes=nodes, kernels=kernels)
    layers = input_sensitivities(inputs, nodes=nodes)
    duplicates = duplicate_pairs(X)
    moments = propagate_moments(layers, widths, duplicates=duplicates)
    variances = moments.variances
    kappa_1 = layer_values(kurtosis, len(layers))[0]
    if kappa_1:
        responses = variance_kurtosis_responses(inputs, layers, X, [widths], nodes=nodes, duplicates=duplicates)[0]
        variances = [V + kappa_1 * R for V, R in zip(variances, responses)]
    return FiniteWidthMoments(shifts=_add_kurtosis(moments.shifts, layers, X, widths, kurtosis, duplicates),
                              variances=variances)


def layer_values(kurtosis: float | Sequence[float], depth: int) -> list[float]:
    """The excess kurtosis of every layer from one value or one per layer; ValueError if the count is wrong or a
    value is not finite."""
    values = [float(kurtosis)] * depth if np.ndim(kurtosis) == 0 else [float(k) for k in kurtosis]  # type: ignore[union-attr]
    if len(values) != depth:
        raise ValueError(f"kurtosis: one value, or one per layer ({depth}); got {len(values)}")
    if not np.isfinite(values).all():
        raise ValueError(f"kurtosis must be finite (a law without a fourth moment has no first-order term); got {values}")
    return values


def _add_kurtosis(shifts: list[Array], layers: Sequence[LayerSensitivities], X: Array, widths: Sequence[float],
                  kurtosis: float | Sequence[float], duplicates: NDArray[np.bool_]) -> list[Array]:
    """``shifts`` plus Σ_k κ_k U_{k→ℓ} (module docstring); unchanged for Gaussian weights (all κ = 0)."""
    values = layer_values(kurtosis, len(layers))
    if not any(values):
        return shifts
    responses = kurtosis_responses(layers, kurtosis_terms(layers, X), duplicates=duplicates)
    out = [S.copy() for S in shifts]
    for k, (weight, chain) in enumerate(zip(kurtosis_weights(values, widths), responses)):
        if weight:
            for ell, U in enumerate(chain, start=k):
                out[ell] += weight * U
    return out
