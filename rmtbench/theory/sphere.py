"""Linearisation of random-features kernels on the sphere (seed eq. 10; formula sheet section 3).

For x_i uniform on the sphere of radius τ in R^p (‖x_i‖ = τ exactly) and w ~ N(0, I_p), the expected
kernel K = E_w[φ(X^T w) φ(w^T X)] has, by Mehler's formula, the entries K_ij = Σ_k a_k² ρ_ij^k with
ρ_ij = x_i^T x_j / τ² and a_k = a_k(φ_τ) the normalised Hermite coefficients of φ_τ(t) = φ(τt);
K_ii = ν = E φ(τξ)². Hence the linear equivalent

    K̃ = a0² 11^T + a1² X^TX/τ² + (a2²/p) 11^T + (ν − a0² − a1²) I_n,     ‖K − K̃‖ = O(n^{-1/2}).

Spectrum (c = n/p): apart from the rank-one part s·11^T, s = a0² + a2²/p, the eigenvalues of K follow
the shifted and scaled Marchenko–Pastur law ν − a0² − a1² + a1²·MP_c, including (when n > p) an atom
of mass 1 − p/n at the shift ν − a0² − a1² (pitfall P21). With θ = n·s, the rank-one part creates
one outlier when θ > a1²·√c(1 + √c), at

    λ_out = θ + (ν − a0² − a1²) + a1² / (1 − c·a1²/θ)           (≈ n a0² + ν − a0² for large n),

the root of θ·∫ dμ(x)/(λ − x) = 1 with μ the shifted/scaled MP law (the direction 1/√n is generic
for the rotation-invariant bulk), solved in closed form with the MP R-transform R(g) = 1/(1 − cg).

Examples
--------
>>> lin = SphereLinearization.for_activation("relu", n=1024, p=512)
>>> print(f"{lin.shift:.6f} {lin.scale:.2f} {lin.atom_mass:.2f} {lin.outlier_location():.3f}")
0.090845 0.25 0.50 163.475
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rmtbench.theory.laws import marchenko_pastur_cdf, marchenko_pastur_density, marchenko_pastur_edges

__all__ = ["SphereLinearization", "marchenko_pastur_green"]

Array = NDArray[np.float64]


def marchenko_pastur_green(w: ArrayLike, *, ratio: float) -> Array:
    """G(w) = ∫ dμ_c(t)/(w − t) for real w above the MP support (atom at 0 included).

    G(w) = (w − 1 + c − √((w − 1 − c)² − 4c)) / (2cw) for w ≥ b = (1 + √c)²; it decreases from
    G(b) = 1/(√c(1 + √c)) to 0 and is the inverse of w(g) = 1/g + 1/(1 − cg).

    Examples
    --------
    >>> g = float(marchenko_pastur_green(5.0, ratio=0.5))
    >>> round(1 / g + 1 / (1 - 0.5 * g), 12)
    5.0
    """
    c = float(ratio)
    ww = np.asarray(w, dtype=np.float64)
    _, b = marchenko_pastur_edges(c)
    if np.any(ww < b):
        raise ValueError(f"w must lie at or above the MP edge {b}")
    root = np.sqrt(np.clip((ww - 1.0 - c) ** 2 - 4.0 * c, 0.0, None))
    return (ww - 1.0 + c - root) / (2.0 * c * ww)


@dataclass(frozen=True)
class SphereLinearization:
    """The linear equivalent K̃ of seed eq. 10 and the spectrum it predicts, for one (φ, n, p, τ).

    Attributes
    ----------
    activation
        Canonical activation name.
    n, p
        Samples and dimension.
    tau
        Radius of the sphere (τ = 1: the unit sphere of the seed).
    a0, a1, a2
        Normalised Hermite coefficients of φ_τ(t) = φ(τt) (formula sheet section 1).
    nu
        ν = E φ(τξ)² = K_ii.
    """

    activation: str
    n: int
    p: int
    tau: float
    a0: float
    a1: float
    a2: float
    nu: float

    @classmethod
    def for_activation(cls, activation: str | Mapping[str, Any], *, n: int, p: int, tau: float = 1.0) -> "SphereLinearization":
        """Coefficients of ``activation`` at radius ``tau`` by quadrature split at the kinks (~1e-13).

        Examples
        --------
        >>> lin = SphereLinearization.for_activation("tanh", n=100, p=50)
        >>> lin.outlier_count, round(lin.a1, 6)
        (0, 0.605706)
        """
        from rmtbench.activations import get_activation, hermite_coefficients, hermite_nu

        if int(n) < 1 or int(p) < 1:
            raise ValueError(f"need n, p >= 1, got n={n}, p={p}")
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a positive radius, got {tau}")
        act = get_activation(activation)
        a = hermite_coefficients(act, tau=float(tau), order=2)
        return cls(activation=act.name, n=int(n), p=int(p), tau=float(tau), a0=float(a[0]), a1=float(a[1]),
                   a2=float(a[2]), nu=float(hermite_nu(act, tau=float(tau))))

    # -- the matrices -----------------------------------------------------------------------------
    @property
    def shift(self) -> float:
        """ν − a0² − a1² (= Σ_{k≥2} a_k² ≥ 0): the identity term, and the location of the atom."""
        return max(0.0, self.nu - self.a0**2 - self.a1**2)

    @property
    def scale(self) -> float:
        """a1²: the factor of X^TX/τ² (the MP law is scaled by it)."""
        return self.a1**2

    @property
    def spike(self) -> float:
        """s = a0² + a2²/p, the coefficient of 11^T."""
        return self.a0**2 + self.a2**2 / self.p

    @property
    def ratio(self) -> float:
        """c = n/p, the ratio of the MP law of X^TX/τ² (n×n)."""
        return self.n / self.p

    def _gram(self, X: ArrayLike) -> Array:
        X = np.asarray(X, dtype=np.float64)
        if X.shape != (self.p, self.n):
            raise ValueError(f"X must be p x n = {(self.p, self.n)}, got {X.shape}")
        return (X.T @ X) / self.tau**2

    def bulk_matrix(self, X: ArrayLike) -> Array:
        """a1² X^TX/τ² + (ν − a0² − a1²) I: the reference that errors are measured against (P19)."""
        out = self.scale * self._gram(X)
        out[np.diag_indices_from(out)] += self.shift
        return out

    def linear_equivalent(self, X: ArrayLike) -> Array:
        """K̃ = a0² 11^T + a1² X^TX/τ² + (a2²/p) 11^T + (ν − a0² − a1²) I_n for data X (p×n).

        Examples
        --------
        >>> X = np.eye(3)  # orthonormal points on the unit sphere of R^3
        >>> Kt = SphereLinearization.for_activation("relu", n=3, p=3).linear_equivalent(X)
        >>> print(np.round(Kt, 4))
        [[0.5265 0.1857 0.1857]
         [0.1857 0.5265 0.1857]
         [0.1857 0.1857 0.5265]]
        """
        out = self.bulk_matrix(X)
        out += self.spike
        return out

    # -- the predicted spectrum -------------------------------------------------------------------
    @property
    def has_bulk(self) -> bool:
        """False when a1 = 0 (|t|, cos, ...): the bulk then collapses to the point ν − a0²."""
        return self.scale > 1e-14 * max(1.0, self.nu)

    @property
    def atom_mass(self) -> float:
        """(1 − p/n)₊: mass of the atom at :attr:`shift` (X^TX has rank min(n, p))."""
        return max(0.0, 1.0 - self.p / self.n)

    @property
    def atom_count(self) -> int:
        """Eigenvalues of K̃ exactly at the shift: n − p − 1 when n > p and s > 0, n − p when s = 0, else 0.

        X^TX has the eigenvalue 0 with multiplicity n − p; the rank-one part s·11^T takes one
        eigenvector out of that eigenspace (1 is not orthogonal to it), so one eigenvalue leaves the
        atom: the outlier, or the top of the bulk when the spike is below the threshold.
        """
        if self.n <= self.p:
            return 0
        return self.n - self.p - (1 if self.spike > 0 else 0)

    @property
    def bulk_edges(self) -> tuple[float, float]:
        """Edges shift + scale·(1 ∓ √c)² of the continuous part."""
        a, b = marchenko_pastur_edges(self.ratio)
        return self.shift + self.scale * a, self.shift + self.scale * b

    def _standardise(self, x: ArrayLike) -> Array:
        if not self.has_bulk:
            raise ValueError(f"{self.activation} has a1 = 0: the linear equivalent has no continuous bulk")
        return (np.asarray(x, dtype=np.float64) - self.shift) / self.scale

    def density(self, x: ArrayLike) -> Array:
        """Density of the continuous part (mass 1 − atom): f_MP((x − shift)/scale)/scale."""
        return marchenko_pastur_density(self._standardise(x), ratio=self.ratio) / self.scale

    def bulk_cdf(self, x: ArrayLike) -> Array:
        """CDF of the continuous part renormalised to mass 1: compare it with the bulk, i.e. the eigenvalues
        left after removing the :attr:`atom_count` lowest and the :attr:`outlier_count` highest."""
        return marchenko_pastur_cdf(self._standardise(x), ratio=self.ratio)

    def cdf(self, x: ArrayLike) -> Array:
        """CDF of the whole predicted law of the n − (outliers) eigenvalues, atom included."""
        return marchenko_pastur_cdf(self._standardise(x), ratio=self.ratio, include_atom=True)

    @property
    def outlier_threshold(self) -> float:
        """θ = n·s above which the rank-one part separates from the bulk: a1²·√c(1 + √c)."""
        c = self.ratio
        return self.scale * math.sqrt(c) * (1.0 + math.sqrt(c))

    @property
    def outlier_count(self) -> int:
        """1 when n·s exceeds :attr:`outlier_threshold` (and s > 0), else 0."""
        theta = self.n * self.spike
        return int(theta > 0 and theta > self.outlier_threshold)

    def outlier_location(self) -> float:
        """λ_out = θ + shift + a1²/(1 − c a1²/θ), θ = n s; NaN when there is no outlier."""
        if not self.outlier_count:
            return float("nan")
        theta = self.n * self.spike
        return theta + self.shift + self.scale / (1.0 - self.ratio * self.scale / theta)
