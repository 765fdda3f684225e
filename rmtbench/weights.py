"""Laws of the random weights: every law has zero mean and unit variance (no 1/sqrt(p) factor).

Sparse ternary weights (seed eq. 13) are also stored compactly: an int8 sign matrix and one scale,
so their memory falls with sparsity instead of staying at 64 bits per entry.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from rmtbench.rng import PANEL_ROWS, generator


@dataclass(frozen=True)
class WeightLaw:
    """A zero-mean, unit-variance law for i.i.d. weight entries.

    Parameters
    ----------
    name
        ``gaussian``, ``rademacher``, ``ternary`` (sparsity ``eps``) or ``student_t`` (``dof`` > 2).
    eps
        Probability of a zero entry for ``ternary``; ignored otherwise.
    dof
        Degrees of freedom for ``student_t``; ignored otherwise.
    """

    name: str
    eps: float = 0.0
    dof: float = 5.0

    def __post_init__(self) -> None:
        if self.name not in WEIGHT_LAWS:
            raise ValueError(f"unknown weight law {self.name!r}; allowed: {', '.join(WEIGHT_LAWS)}")
        if self.name == "ternary" and not 0.0 <= self.eps < 1.0:
            raise ValueError(f"weights.eps must be in [0, 1), got {self.eps}")
        if self.name == "student_t" and not self.dof > 2.0:
            raise ValueError(f"weights.dof must be > 2 for a finite variance, got {self.dof}")

    @property
    def label(self) -> str:
        """Canonical short label, e.g. ``ternary-eps0.9``."""
        if self.name == "ternary":
            return f"ternary-eps{self.eps:g}"
        if self.name == "student_t":
            return f"student_t-dof{self.dof:g}"
        return self.name

    @property
    def fourth_moment(self) -> float:
        """E w^4; the excess kurtosis E w^4 - 3 enters the kernel for non-Gaussian laws (pitfall P8)."""
        if self.name == "gaussian":
            return 3.0
        if self.name == "rademacher":
            return 1.0
        if self.name == "ternary":
            return 1.0 / (1.0 - self.eps)
        if self.dof <= 4.0:
            return math.inf
        return 3.0 * (self.dof - 2.0) / (self.dof - 4.0)

    @property
    def bits_per_entry(self) -> float:
        """Storage cost of one entry in the compact form used by :meth:`sample_compact`."""
        if self.name == "rademacher":
            return 1.0
        if self.name == "ternary":
            # Either 2 bits per entry (packed dense ternary) or, when sparse enough, the uint16 column
            # index of each non-zero kept in a positive and a negative list (values are +-scale).
            return min(2.0, 16.0 * (1.0 - self.eps))
        return 64.0

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """Draw a float64 array of i.i.d. entries with zero mean and unit variance."""
        if self.name == "gaussian":
            return rng.standard_normal(shape)
        if self.name == "student_t":
            scale = math.sqrt((self.dof - 2.0) / self.dof)
            return rng.standard_t(self.dof, size=shape) * scale
        signs, scale = self.sample_compact(rng, shape)
        return signs.astype(np.float64) * scale

    def sample_compact(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
        """Draw ``(signs, scale)`` with int8 ``signs`` in {-1, 0, 1}; the weights are ``signs * scale``.

        Only for ``rademacher`` and ``ternary``. Uses the same random stream as :meth:`sample`.
        """
        if self.name == "rademacher":
            signs = np.where(rng.random(shape) < 0.5, -1, 1).astype(np.int8)
            return signs, 1.0
        if self.name == "ternary":
            u = rng.random(shape)
            half = (1.0 - self.eps) / 2.0
            signs = np.zeros(shape, dtype=np.int8)
            signs[u < half] = -1
            signs[(u >= half) & (u < 2.0 * half)] = 1
            return signs, 1.0 / math.sqrt(1.0 - self.eps)
        raise ValueError(f"weight law {self.name!r} has no compact form")


WEIGHT_LAWS = ("gaussian", "rademacher", "ternary", "student_t")


def weight_law(spec: str | Mapping[str, Any] | WeightLaw) -> WeightLaw:
    """Build a :class:`WeightLaw` from a config entry: a name or ``{law: ternary, eps: 0.9}``."""
    if isinstance(spec, WeightLaw):
        return spec
    if isinstance(spec, str):
        name, _, option = spec.partition("-")
        if name == "ternary" and option.startswith("eps"):
            return WeightLaw("ternary", eps=_parse_float(option[3:], spec))
        if name == "student_t" and option.startswith("dof"):
            return WeightLaw("student_t", dof=_parse_float(option[3:], spec))
        return WeightLaw(spec)
    options = dict(spec)
    if "law" not in options:
        raise ValueError(f"a weight-law mapping needs the key 'law' (one of {', '.join(WEIGHT_LAWS)}), "
                         f"e.g. {{law: ternary, eps: 0.9}}; got {dict(spec)!r}")
    name = options.pop("law")
    values = {}
    for key, value in options.items():
        try:
            values[key] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"weight-law parameter {key!r} must be a number (eps in [0, 1) for ternary, "
                             f"dof > 2 for student_t); got {value!r}") from None
    return WeightLaw(name, **values)


def layer_kurtosis(weights: Any, depth: int) -> list[float]:
    """Excess kurtosis E w⁴ − 3 of every layer's law, from one law (any spec) or a list of one per layer.

    0 for Gaussian weights, inf for a law without a fourth moment.

    Examples
    --------
    >>> layer_kurtosis("rademacher", 2), layer_kurtosis(["gaussian", "ternary-eps0.5"], 2)
    ([-2.0, -2.0], [0.0, -1.0])
    """
    specs = [weights] if isinstance(weights, (str, Mapping, WeightLaw)) else list(weights)
    if len(specs) not in (1, depth):
        raise ValueError(f"weights: one law, or one per layer ({depth}); got {len(specs)}")
    laws = [weight_law(spec) for spec in specs]
    return [law.fourth_moment - 3.0 for law in (laws * depth if len(laws) == 1 else laws)]


def _parse_float(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"cannot read the parameter of weight law {spec!r}") from None


def weight_panel(
    law: WeightLaw, *, root_seed: int, key: tuple[int | str, ...], panel: int, columns: int
) -> np.ndarray:
    """Rows ``panel*PANEL_ROWS`` to ``(panel+1)*PANEL_ROWS`` of a weight matrix with ``columns`` columns.

    The panel is drawn whole from its own generator, so any block of rows made of whole panels is
    the same whatever the block size, and the first ``d`` rows of a wider matrix equal a narrower one.
    """
    rng = generator(root_seed, *key, "panel", panel)
    return law.sample(rng, (PANEL_ROWS, columns))


def weight_rows(
    law: WeightLaw, *, root_seed: int, key: tuple[int | str, ...], start: int, stop: int, columns: int
) -> np.ndarray:
    """Rows ``start:stop`` of the weight matrix named by ``key``, assembled from whole panels."""
    first, last = start // PANEL_ROWS, (stop - 1) // PANEL_ROWS
    panels = [weight_panel(law, root_seed=root_seed, key=key, panel=i, columns=columns) for i in range(first, last + 1)]
    block = np.concatenate(panels, axis=0) if len(panels) > 1 else panels[0]
    offset = first * PANEL_ROWS
    return block[start - offset : stop - offset]
