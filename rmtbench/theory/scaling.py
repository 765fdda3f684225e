"""Scaling laws of the ridgeless training MSE for model kernel spectra (formula sheet §§2, 7).

In the under-parameterised ridgeless limit (d < n, γ → 0) the LLC18 training MSE has the closed form

    E_train = (κ/n) y^T (K + κI)^{-1} y,      Σ_i λ_i/(λ_i + κ) = d,      θ = dκ/n,

so it depends on K only through its eigenvalues λ_i and the energies (U^Ty)_i² of the target. This
module evaluates it *exactly* for model spectra at any n, in log space (so e^{-c i} at i = 10⁵ is no
problem), and gives the asymptotic laws it follows at fixed ρ = d/n:

* polynomial λ_i = A·i^{-α}, α = 1 + β: κ = A·t·n^{-α} (1 + O(1/n)) with t the root of
  ∫_0^1 dx/(1 + t x^α) = ρ (the sum Σ_i 1/(1 + t(i/n)^α) is a Riemann sum of that integral);
* exponential λ_i = A·e^{-c i}: κ ≈ A·e^{-c(ρn + 1/2)} (the sum is a Fermi function counting ρn
  eigenvalues above κ), i.e. faster than any power of n.

Two normalisations (formula sheet §7): ``"matrix"``, λ_i(K) = i^{-α} (A = 1), and ``"operator"``,
λ_i(K) = n·i^{-α} (A = n), which is how the eigenvalues of an n×n kernel matrix scale (n times the
eigenvalues μ_i of the integral operator). Two targets: ``"kernel"``, y ~ N(0, K) averaged over y,
for which E_y E_train = θ; and ``"top"``, a fixed target on the leading eigenvector with
‖y‖² = n (a smooth teacher such as a linear function on the sphere), for which
E_train = κ/(λ_1 + κ). A pure-noise target (energies 1) gives (1/n) Σ κ/(λ_i + κ) = 1 − d/n exactly:
label noise of variance σ² leaves a floor σ²(1 − d/n) that no spectrum removes.

Rates (``predicted_exponent``): θ ∝ n^{-(1+β)} (matrix) or n^{-β} (operator); the top target
∝ n^{-(1+β)} in both. The slides' claims are n^{-(1+β)} for polynomial decay and log(n)/n for
exponential decay; the second is not what this model gives (formula sheet §7, §10 item 7).

Examples
--------
>>> spec = ModelSpectrum("polynomial", 1.0)
>>> ns = [512, 1024, 2048, 4096]
>>> slope = np.polyfit(np.log(ns), np.log([model_theta(spec, n, d_over_n=0.5) for n in ns]), 1)[0]
>>> bool(abs(slope - predicted_exponent(spec, "kernel")) < 0.02)
True
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Mapping

import numpy as np
import scipy.optimize
import scipy.special
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "EigenDecayFit",
    "ModelSpectrum",
    "Target",
    "asymptotic_kappa",
    "asymptotic_theta",
    "asymptotic_train_mse",
    "claimed_exponent",
    "eigen_decay_fit",
    "log_kappa",
    "log_n_over_n_slope",
    "model_kappa",
    "model_theta",
    "model_train_mse",
    "parse_model_spectrum",
    "polynomial_prefactor",
    "predicted_exponent",
]

Decay = Literal["polynomial", "exponential"]
Normalisation = Literal["matrix", "operator"]
Target = Literal["kernel", "top"]

_TARGETS = ("kernel", "top")
_LABEL = re.compile(r"(?:(?P<poly>poly-beta)|exp-c)(?P<rate>[0-9.eE+-]+)-(?P<norm>matrix|operator)")


@dataclass(frozen=True)
class ModelSpectrum:
    """A model kernel spectrum λ_1 ≥ λ_2 ≥ ... ≥ λ_n of an n×n kernel matrix.

    Parameters
    ----------
    decay
        ``"polynomial"``: λ_i = A·i^{-(1+rate)} (rate = β > 0); ``"exponential"``: λ_i = A·e^{-rate·i}
        (rate = c > 0).
    rate
        β or c.
    normalisation
        ``"matrix"`` (A = 1) or ``"operator"`` (A = n).

    Examples
    --------
    >>> ModelSpectrum("polynomial", 0.5, "operator").label
    'poly-beta0.5-operator'
    >>> np.round(ModelSpectrum("exponential", 1.0).eigvals(3), 4)
    array([0.3679, 0.1353, 0.0498])
    """

    decay: Decay
    rate: float
    normalisation: Normalisation = "matrix"

    def __post_init__(self) -> None:
        if self.decay not in ("polynomial", "exponential"):
            raise ValueError(f"decay must be 'polynomial' or 'exponential', got {self.decay!r}")
        if self.normalisation not in ("matrix", "operator"):
            raise ValueError(f"normalisation must be 'matrix' or 'operator', got {self.normalisation!r}")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate (beta or c) must be > 0, got {self.rate!r}")

    @property
    def label(self) -> str:
        """Short readable name, e.g. ``poly-beta1-matrix`` or ``exp-c0.05-operator``."""
        name = f"poly-beta{self.rate:g}" if self.decay == "polynomial" else f"exp-c{self.rate:g}"
        return f"{name}-{self.normalisation}"

    @property
    def alpha(self) -> float:
        """Decay exponent α = 1 + β of a polynomial spectrum (NaN for exponential)."""
        return 1.0 + self.rate if self.decay == "polynomial" else math.nan

    def log_amplitude(self, n: int) -> float:
        """log A: 0 (matrix) or log n (operator)."""
        return math.log(n) if self.normalisation == "operator" else 0.0

    def log_eigvals(self, n: int) -> NDArray[np.float64]:
        """log λ_i for i = 1..n (exact, no underflow)."""
        i = np.arange(1, int(n) + 1, dtype=np.float64)
        core = -self.alpha * np.log(i) if self.decay == "polynomial" else -self.rate * i
        return self.log_amplitude(n) + core

    def eigvals(self, n: int) -> NDArray[np.float64]:
        """λ_i for i = 1..n (tiny values may underflow to 0; use :meth:`log_eigvals`)."""
        return np.exp(self.log_eigvals(n))


def parse_model_spectrum(spec: str | Mapping[str, Any] | ModelSpectrum) -> ModelSpectrum:
    """A :class:`ModelSpectrum` from a mapping ``{decay, beta | c, normalisation}`` or a label.

    Examples
    --------
    >>> parse_model_spectrum({"decay": "exponential", "c": 0.05}).label
    'exp-c0.05-matrix'
    >>> parse_model_spectrum("poly-beta1-operator") == ModelSpectrum("polynomial", 1.0, "operator")
    True
    """
    if isinstance(spec, ModelSpectrum):
        return spec
    if isinstance(spec, str):
        match = _LABEL.fullmatch(spec)
        if match:
            decay = "polynomial" if match["poly"] else "exponential"
            return ModelSpectrum(decay, float(match["rate"]), match["norm"])  # type: ignore[arg-type]
        raise ValueError(f"model spectrum label {spec!r} is not of the form poly-beta<b>-<norm> or exp-c<c>-<norm>")
    decay = spec.get("decay")
    key = "beta" if decay == "polynomial" else "c"
    if key not in spec:
        raise ValueError(f"a {decay!r} model spectrum needs the key {key!r}, got {dict(spec)}")
    return ModelSpectrum(decay, float(spec[key]), spec.get("normalisation", "matrix"))  # type: ignore[arg-type]


def _width(n: int, d_over_n: float) -> int:
    d = int(round(float(d_over_n) * int(n)))
    if not 1 <= d < n:
        raise ValueError(f"the ridgeless limit needs 1 <= d < n; got d = {d} (d/n = {d_over_n}, n = {n})")
    return d


# --------------------------------------------------------------------------- exact algebra


def log_kappa(log_eigvals: ArrayLike, *, d: float) -> float:
    """log κ, κ the root of Σ_i λ_i/(λ_i + κ) = d, from log λ (robust at any magnitude).

    Each term is expit(log λ_i − log κ); the sum decreases from rank to 0 as log κ grows, so the root
    is bracketed and found by Brent's method to ~1e-15 absolute in log κ.

    Examples
    --------
    For λ = 1 (n of them) the root is κ = n/d − 1:

    >>> round(math.exp(log_kappa(np.zeros(100), d=25)), 12)
    3.0
    """
    ll = np.asarray(log_eigvals, dtype=np.float64).ravel()
    if not np.all(np.isfinite(ll)):
        raise ValueError("log_eigvals must be finite (zero eigenvalues are not allowed here)")
    d = float(d)
    if not 0 < d < ll.size:
        raise ValueError(f"need 0 < d < number of eigenvalues = {ll.size}, got d = {d}")

    def h(u: float) -> float:
        return float(np.sum(scipy.special.expit(ll - u))) - d

    top = float(ll.max())
    hi = top + math.log(ll.size / d) + 1.0  # Σ expit(ll − u) <= n e^{top − u} < d here
    lo = float(ll.min()) - 40.0  # every term >= 1 − 4e-18: the sum is ~n > d
    return float(scipy.optimize.brentq(h, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500))


def model_kappa(spectrum: ModelSpectrum, n: int, *, d_over_n: float) -> float:
    """The effective ridge κ (Σ λ_i/(λ_i + κ) = d) of a model spectrum with n eigenvalues."""
    return math.exp(log_kappa(spectrum.log_eigvals(n), d=_width(n, d_over_n)))


def model_theta(spectrum: ModelSpectrum, n: int, *, d_over_n: float) -> float:
    """θ = lim γδ(−γ) = (d/n)κ: the ridgeless training MSE averaged over targets y ~ N(0, K).

    Equal to :func:`rmtbench.theory.equivalent.ridgeless_theta` on ``spectrum.eigvals(n)`` (up to
    that function's zero-eigenvalue threshold, which this log-space version does not need).
    """
    d = _width(n, d_over_n)
    return d / n * math.exp(log_kappa(spectrum.log_eigvals(n), d=d))


def model_train_mse(spectrum: ModelSpectrum, n: int, *, d_over_n: float, target: Target = "kernel") -> float:
    """Closed-form ridgeless training MSE (κ/n) Σ_i a_i² /(λ_i + κ) of a model spectrum.

    Parameters
    ----------
    target
        ``"kernel"``: E over y ~ N(0, K), a_i² = λ_i, giving θ; ``"top"``: y = √n·u_1, giving
        κ/(λ_1 + κ).

    Examples
    --------
    >>> spec = ModelSpectrum("polynomial", 1.0)
    >>> t = model_train_mse(spec, 512, d_over_n=0.5, target="top")
    >>> k = model_kappa(spec, 512, d_over_n=0.5)
    >>> bool(abs(t - k / (1 + k)) < 1e-15)
    True
    """
    if target == "kernel":
        return model_theta(spectrum, n, d_over_n=d_over_n)
    if target == "top":
        log_lam = spectrum.log_eigvals(n)
        return float(scipy.special.expit(log_kappa(log_lam, d=_width(n, d_over_n)) - log_lam[0]))
    raise ValueError(f"target must be one of {_TARGETS}, got {target!r}")


# --------------------------------------------------------------------------- asymptotic laws


@lru_cache(maxsize=256)
def polynomial_prefactor(alpha: float, d_over_n: float) -> float:
    """t(α, ρ), the root of ∫_0^1 dx/(1 + t x^α) = ρ: κ ≈ A·t·n^{-α} for λ_i = A·i^{-α}.

    Examples
    --------
    For α = 2 the integral is arctan(√t)/√t; at ρ = π/4 the root is t = 1:

    >>> round(polynomial_prefactor(2.0, math.pi / 4), 10)
    1.0
    """
    import scipy.integrate

    rho = float(d_over_n)
    if not 0 < rho < 1:
        raise ValueError(f"d/n must be in (0, 1), got {rho}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")

    def g(log_t: float) -> float:
        t = math.exp(log_t)
        knee = min(0.5, t ** (-1.0 / alpha))  # the integrand drops from 1 to 1/2 at x = t^{-1/α}
        value, _ = scipy.integrate.quad(lambda x: 1.0 / (1.0 + t * x**alpha), 0.0, 1.0, points=[knee], epsabs=1e-13,
                                        epsrel=1e-12, limit=400)
        return value - rho

    return math.exp(scipy.optimize.brentq(g, -60.0, 200.0, xtol=1e-13))


def asymptotic_kappa(spectrum: ModelSpectrum, n: ArrayLike, *, d_over_n: float) -> NDArray[np.float64]:
    """Leading-order κ(n): A·t·n^{-α} (polynomial) or A·e^{-c(ρn + 1/2)} (exponential)."""
    nn = np.asarray(n, dtype=np.float64)
    amp = nn if spectrum.normalisation == "operator" else np.ones_like(nn)
    if spectrum.decay == "polynomial":
        return amp * polynomial_prefactor(spectrum.alpha, float(d_over_n)) * nn ** (-spectrum.alpha)
    return amp * np.exp(-spectrum.rate * (float(d_over_n) * nn + 0.5))


def asymptotic_theta(spectrum: ModelSpectrum, n: ArrayLike, *, d_over_n: float) -> NDArray[np.float64]:
    """Leading-order θ(n) = ρ·κ(n) (see :func:`asymptotic_kappa`)."""
    return float(d_over_n) * asymptotic_kappa(spectrum, n, d_over_n=d_over_n)


def asymptotic_train_mse(spectrum: ModelSpectrum, n: ArrayLike, *, d_over_n: float, target: Target = "kernel") -> NDArray[np.float64]:
    """Leading-order training MSE: θ(n) for ``"kernel"``, κ(n)/(λ_1 + κ(n)) for ``"top"``."""
    if target == "kernel":
        return asymptotic_theta(spectrum, n, d_over_n=d_over_n)
    if target == "top":
        nn = np.asarray(n, dtype=np.float64)
        lam1 = np.exp(np.array([spectrum.log_eigvals(int(m))[0] for m in nn.ravel()])).reshape(nn.shape)
        kappa = asymptotic_kappa(spectrum, nn, d_over_n=d_over_n)
        return kappa / (lam1 + kappa)
    raise ValueError(f"target must be one of {_TARGETS}, got {target!r}")


def predicted_exponent(spectrum: ModelSpectrum, target: Target = "kernel") -> float:
    """Exponent of the power law n^x that the training MSE follows (NaN: faster than any power).

    Polynomial λ_i = A i^{-(1+β)}: θ ∝ A n^{-(1+β)}, i.e. −(1+β) (matrix) or −β (operator); the top
    target κ/λ_1 ∝ n^{-(1+β)} in both normalisations. Exponential decay: NaN.

    Examples
    --------
    >>> predicted_exponent(ModelSpectrum("polynomial", 1.0, "operator")), predicted_exponent(ModelSpectrum("polynomial", 1.0, "operator"), "top")
    (-1.0, -2.0)
    """
    if spectrum.decay == "exponential":
        return math.nan
    if target == "top" or spectrum.normalisation == "matrix":
        return -spectrum.alpha
    return 1.0 - spectrum.alpha


def log_n_over_n_slope(n: ArrayLike) -> NDArray[np.float64]:
    """Local log–log slope of log(n)/n, −1 + 1/log n: the exponent the slides' exponential claim implies.

    Examples
    --------
    >>> round(float(log_n_over_n_slope(math.e)), 12)
    0.0
    """
    return -1.0 + 1.0 / np.log(np.asarray(n, dtype=np.float64))


def claimed_exponent(decay: Decay, *, beta: float = math.nan, n: ArrayLike | None = None) -> float:
    """The slides' rate as a log–log slope: −(1+β) for polynomial decay, and for exponential decay the
    slope of log(n)/n fitted over the sizes ``n`` (−1 + 1/log n at one size).

    Examples
    --------
    >>> claimed_exponent("polynomial", beta=0.5)
    -1.5
    >>> round(claimed_exponent("exponential", n=[256, 512, 1024]), 3)
    -0.839
    """
    if decay == "polynomial":
        return -(1.0 + float(beta))
    if n is None:
        raise ValueError("the exponential claim log(n)/n needs the sizes n to turn into a slope")
    nn = np.asarray(n, dtype=np.float64).ravel()
    if nn.size == 1:
        return float(log_n_over_n_slope(nn[0]))
    return float(np.polyfit(np.log(nn), np.log(np.log(nn) / nn), 1)[0])


# --------------------------------------------------------------------------- kernel spectra


@dataclass(frozen=True)
class EigenDecayFit:
    """Fits of the decay of eigenvalues λ_i (i = lo..hi, 1-based) as a power and as an exponential.

    Attributes
    ----------
    alpha
        α̂ of λ_i ≈ C·i^{-α̂} (β̂ = α̂ − 1), least squares in (log i, log λ).
    c
        ĉ of λ_i ≈ C·e^{-ĉ i}, least squares in (i, log λ).
    power_rms, exponential_rms
        RMS residuals of log λ of the two fits: the smaller says which decay describes the range.
    lo, hi
        The index range used (1-based, inclusive).
    """

    alpha: float
    c: float
    power_rms: float
    exponential_rms: float
    lo: int
    hi: int

    @property
    def beta(self) -> float:
        """β̂ = α̂ − 1."""
        return self.alpha - 1.0

    @property
    def decay(self) -> Decay:
        """The better-fitting decay on the range."""
        return "polynomial" if self.power_rms <= self.exponential_rms else "exponential"


def eigen_decay_fit(eigvals: ArrayLike, *, lo: int, hi: int) -> EigenDecayFit:
    """Fit λ_i, i = lo..hi (1-based, eigenvalues sorted decreasingly inside), as a power and an exponential.

    Eigenvalues at or below ``len·eps·λ_max`` (round-off) end the range early.

    Examples
    --------
    >>> fit = eigen_decay_fit(np.arange(1, 201.0) ** -2.5, lo=5, hi=200)
    >>> round(fit.alpha, 10), fit.decay
    (2.5, 'polynomial')
    >>> eigen_decay_fit(np.exp(-0.1 * np.arange(1, 201.0)), lo=5, hi=200).decay
    'exponential'
    """
    lam = np.sort(np.asarray(eigvals, dtype=np.float64).ravel())[::-1]
    floor = lam.size * np.finfo(np.float64).eps * max(lam[0], 0.0)
    last = int(np.count_nonzero(lam > floor))
    hi = min(int(hi), last)
    lo = max(1, int(lo))
    if hi - lo < 2:
        raise ValueError(f"need at least 3 eigenvalues above round-off in [{lo}, {hi}]")
    i = np.arange(lo, hi + 1, dtype=np.float64)
    ll = np.log(lam[lo - 1 : hi])
    pw = np.polyfit(np.log(i), ll, 1)
    ex = np.polyfit(i, ll, 1)
    rms = lambda coef, x: float(np.sqrt(np.mean((np.polyval(coef, x) - ll) ** 2)))  # noqa: E731
    return EigenDecayFit(alpha=float(-pw[0]), c=float(-ex[0]), power_rms=rms(pw, np.log(i)), exponential_rms=rms(ex, i), lo=lo, hi=hi)
