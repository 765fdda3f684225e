"""Deep random networks: per-layer conjugate kernels and the NTK against their Gu+22 equivalents.

Seed slides "Deep random networks" (eqs. 15-22; Gu+22); formula sheet section 5, pitfalls P11, P12,
P14, P15. For each cell (activation list, weight law, data set, n, width d/n) and each seed, a deep
random MLP centred by constants is pushed through on Dask and the Gram of every layer and the
network's NTK are accumulated (:mod:`rmtbench.deepnet`). The theory, computed once per (data,
activation list), is the exact infinite-width CK and NTK of every layer (Gaussian recursion), their
Gu+22 linear equivalents, and two finite-width terms: the rank-one term of pitfall P12 and the
entry-by-entry first-order mean of :mod:`rmtbench.theory.finite_width`, with the entries' variance, and
the last layer's NTK mean of :mod:`rmtbench.theory.finite_width_ntk` (option ``per_pair_correction``).
For non-Gaussian weights the per-pair means add each layer's kurtosis term, Σ_k κ_k U_{k→ℓ}, and the variances
(CK and NTK) the first layer's, κ_1 R_ℓ: the theory (one per data set, activation list and "Gaussian or not") stores
the responses U and R per unit kurtosis (and the NTK's), and each cell's summary weights them with its own laws' κ.
Four comparisons come out:

* linear equivalent against the exact infinite-width kernel (theory against theory: Gu+22's claim),
  with the data-driven ε_i = ‖x_i‖² − τ² (``*_equivalent``) and with Gu+22's V = [J/√p, ψ]
  (``*_equivalent_model``);
* empirical seed-mean kernels against the exact kernels, raw, with the rank-one term and with the
  per-pair term, next to the Monte-Carlo floor estimated from the two halves of the seeds;
* the projection 1ᵀ(K_emp − K_∞)1/n against the rank-one term's r_ℓ(n − 1) and the per-pair 1ᵀS_ℓ1/n, and
  the NTK's against 0 (infinite width) and its per-pair mean;
* one draw's fluctuation around the mean: the variance of every CK entry over the draws against the
  first-order Var K_ℓ,ij of :mod:`rmtbench.theory.finite_width`, entry by entry (spectral error
  against its Monte-Carlo floor) and in total, Σ_ij Var K_ℓ,ij / n = E‖K_ℓ − E K_ℓ‖²_F / n (z-score
  over independent pairs of draws); and the same for the network's NTK, whose variance over the weights and
  the drawn read-out is :func:`rmtbench.theory.finite_width_ntk.finite_width_ntk_variances`, with the first layer's
  kurtosis term for non-Gaussian weights.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np

from rmtbench.canonical import short_hash
from rmtbench.experiments.base import Cell, Experiment, RunContext, label_of
from rmtbench.experiments.common import (
    ACTIVATION, DATASET, POSITIVE, SEEDS, SIZE, WEIGHTS, cell_data, data_key, list_of,
)

STATISTICS = {"type": "string", "enum": ["spec", "estimated"], "default": "spec",
              "description": "Where τ_0, t, T, ψ come from: the gmm spec (exact, as Gu+22) or estimates from the data "
                             "(always for real data). τ_0 also fixes the networks' centring constants."}
KERNEL_NODES = {"type": "integer", "minimum": 8, "default": 48,
                "description": "Gauss-Hermite nodes per dimension for kernels without closed form."}
SAMPLE_BLOCK = {"type": "integer", "minimum": 1, "default": 512,
                "description": "Samples per forward/backward task (changes only the last bits of a result)."}
DEFAULT_RATIO_ACTIVATIONS = ["relu", "leaky_relu(a=1.0,b=0.2)", "softplus", "abs", "cos", "tanh", "erf"]


def activation_family(spec: Any) -> str:
    """``"odd"``, ``"even"`` or ``"relu-like"`` (neither), from the activation's parity."""
    from rmtbench.activations import get_activation

    parity = get_activation(spec).parity
    return {"odd": "odd", "even": "even"}.get(parity, "relu-like")


def _spectral_norms(stack: np.ndarray) -> np.ndarray:
    from rmtbench.theory.deep import spectral_norm

    return np.array([spectral_norm(k) for k in stack])


def kernel_eigenvalues(stack: np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending) of each matrix of a stack, with one BLAS thread."""
    from scipy.linalg import eigvalsh

    from rmtbench.parallel import single_blas_thread

    with single_blas_thread():
        return np.stack([eigvalsh(np.asarray(k, dtype=float)) for k in stack])


def sample_variance(total: np.ndarray, squares: np.ndarray, count: int) -> np.ndarray:
    """Unbiased variance of every entry over ``count`` draws from Σ K and Σ K∘K: (Σ K∘K − (Σ K)²/S)/(S − 1).

    Examples
    --------
    >>> draws = np.random.default_rng(0).standard_normal((5, 2, 3, 3))
    >>> bool(np.allclose(sample_variance(draws.sum(0), (draws**2).sum(0), 5), draws.var(axis=0, ddof=1)))
    True
    """
    if count < 2:
        return np.full_like(total, np.nan)
    return (squares - total**2 / count) / (count - 1)


def entry_variance(sums: tuple[np.ndarray, np.ndarray], squares: tuple[np.ndarray, np.ndarray],
                   seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry variance over all draws, (layer, n, n), and its Monte-Carlo noise per layer ‖V_even − V_odd‖/2
    from the even and the odd draws' own variances (NaN below two draws in a half). ``sums`` are the even and odd
    draws' Σ K, ``squares`` their Σ K∘K (first L layers)."""
    depth = squares[0].shape[0]
    n_even, n_odd = len(range(0, seeds, 2)), len(range(1, seeds, 2))
    (sum_even, sum_odd), (sq_even, sq_odd) = (s[:depth] for s in sums), squares
    variance = sample_variance(sum_even + sum_odd, sq_even + sq_odd, seeds)
    if n_odd < 2:
        return variance, np.full(depth, np.nan)
    halves = sample_variance(sum_even, sq_even, n_even) - sample_variance(sum_odd, sq_odd, n_odd)
    return variance, _spectral_norms(halves / 2.0)


def layer_widths(cell: Cell, depth: int, *, d_over_n: float | None = None) -> list[int]:
    """Hidden widths d_l = round(d_over_n * n * m_l), m_l from the ``width_profile`` option (1 without one)."""
    ratio = float(cell["d_over_n"]) if d_over_n is None else float(d_over_n)
    profile = cell.get("width_profile") or [1.0] * depth
    return [max(1, int(round(ratio * int(cell["n"]) * float(m)))) for m in profile]


def weight_kurtosis(cell: Cell) -> list[float]:
    """Excess kurtosis E w⁴ − 3 of every layer's weight law (0 for Gaussian weights, inf without a fourth moment)."""
    from rmtbench.weights import layer_kurtosis

    return layer_kurtosis(str(cell["weights"]).split("+"), len(cell["activations"]))


class PerPairMoments(NamedTuple):
    """The entry-by-entry terms of :mod:`rmtbench.theory.finite_width` for every width ratio, float32."""

    shifts: np.ndarray  # S_ℓ for Gaussian weights, (ratio, layer, n, n)
    variances: np.ndarray  # Var K_ℓ,ij, (ratio, layer, n, n)
    kurtosis_responses: np.ndarray | None  # U_{k→ℓ} per unit κ_1, then κ_k/d_{k−1}: (k, ℓ, n, n), any width; 0 for ℓ < k
    variance_kurtosis_responses: np.ndarray | None  # d Var K_ℓ,ij/dκ_1, (ratio, layer, n, n)
    ntk_shifts: np.ndarray | None  # E NTK_L − NTK∞_L for Gaussian weights (rmtbench.theory.finite_width_ntk), (ratio, n, n)
    ntk_variances: np.ndarray | None  # Var NTK_L,ij for Gaussian weights, read-out drawn, (ratio, n, n)
    ntk_kurtosis_responses: np.ndarray | None  # V_{k→L} per unit of the same weights as U: (k, n, n), any width
    ntk_variance_kurtosis_responses: np.ndarray | None  # d Var NTK_L,ij/dκ_1, (ratio, n, n)
    excluded: int  # nearly collinear pairs left out
    why: str  # '' when none is


def per_pair_moments(cell: Cell, X: np.ndarray, activations: list[Any], ratios: list[float], *, tau0: float,
                     kernels: list[np.ndarray], kurtosis: bool = False,
                     ntks: list[np.ndarray] | None = None) -> PerPairMoments:
    """S_ℓ and Var K_ℓ of :mod:`rmtbench.theory.finite_width` for every width ratio, with ``kurtosis`` the
    responses of the mean to each layer's weight kurtosis and of the variance to the first layer's, and with
    ``ntks`` (NTK∞ of every layer) the last layer's NTK shift of :mod:`rmtbench.theory.finite_width_ntk` (and with
    ``kurtosis`` its responses).

    The layers' sensitivities depend on the infinite-width kernels only: computed once, propagated per ratio.
    Entries of nearly collinear pairs (not duplicates) are NaN after layer 1, as :mod:`rmtbench.theory.finite_width`
    says; when the data themselves have such pairs, only the first layer (shift 0, exact variance) is computed, and
    for a non-Gaussian first law its variance term is NaN there as well (it needs the expansion's stencils).
    """
    from rmtbench.theory.finite_width import (
        collinear_pairs, duplicate_pairs, input_sensitivities, kurtosis_responses, kurtosis_terms, layer_inputs,
        propagate_moments, variance_kurtosis_responses,
    )
    from rmtbench.theory.finite_width_ntk import (
        network_slopes, ntk_kurtosis_responses, ntk_states, ntk_variance_kurtosis_responses,
    )

    depth, duplicates = len(activations), duplicate_pairs(X)
    n, nodes = X.shape[1], int(cell["kernel_nodes"])

    def moments(layers: list[Any], ratio: float) -> tuple[np.ndarray, np.ndarray]:  # float32 at once: n² per layer
        m = propagate_moments(layers, layer_widths(cell, depth, d_over_n=ratio)[: len(layers)], duplicates=duplicates)
        return np.array(m.shifts, dtype=np.float32), np.array(m.variances, dtype=np.float32)

    def chains(layers: list[Any]) -> list[list[np.ndarray]] | None:  # U_{k→ℓ}; the widths only weight them
        return kurtosis_responses(layers, kurtosis_terms(layers, X), duplicates=duplicates) if kurtosis else None

    def responses(layers: list[Any], chain: list[list[np.ndarray]] | None) -> np.ndarray | None:
        if chain is None:
            return None
        out = np.full((depth, depth, n, n), np.nan, dtype=np.float32)  # layers not computed stay NaN
        out[: len(layers), : len(layers)] = 0.0
        for k, U in enumerate(chain):
            out[k, k : len(layers)] = U
        return out

    def variance_responses(inputs: list[Any], layers: list[Any]) -> np.ndarray | None:  # per ratio: Γ and DF change
        if not kurtosis:
            return None
        out = np.full((len(ratios), depth, n, n), np.nan, dtype=np.float32)
        width_sets = [layer_widths(cell, depth, d_over_n=r)[: len(layers)] for r in ratios]
        for i, per_layer in enumerate(variance_kurtosis_responses(inputs, layers, X, width_sets, nodes=nodes,
                                                                  duplicates=duplicates)):
            out[i, : len(layers)] = per_layer
        return out

    def ntk(inputs: list[Any], layers: list[Any], chain: list[list[np.ndarray]] | None
            ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        if ntks is None:
            return None, None, None, None
        slopes = network_slopes(X, activations, tau0=tau0, nodes=nodes, kernels=kernels)  # once for every ratio
        out, variance = np.empty((len(ratios), n, n), dtype=np.float32), np.empty((len(ratios), n, n), dtype=np.float32)
        for i, r in enumerate(ratios):
            for state in ntk_states(layers, slopes, ntks, X.T @ X, layer_widths(cell, depth, d_over_n=r),
                                    duplicates=duplicates):
                out[i], variance[i] = state.shift, state.variance  # the last layer's are kept
        if chain is None:
            return out, variance, None, None
        V = ntk_kurtosis_responses(layers, slopes, ntks, X.T @ X, X, chain, duplicates=duplicates)
        width_sets = [layer_widths(cell, depth, d_over_n=r) for r in ratios]
        R = ntk_variance_kurtosis_responses(inputs, layers, slopes, ntks, X, width_sets, nodes=nodes, duplicates=duplicates)
        return (out, variance, np.array([v[-1] for v in V], dtype=np.float32),
                np.array([r[-1] for r in R], dtype=np.float32))

    in_data = int(np.triu(collinear_pairs(X.T @ X) & ~duplicates, 1).sum())
    if in_data:  # their entries would be NaN from layer 2 on: skip the work
        shifts = np.full((len(ratios), depth, n, n), np.nan, dtype=np.float32)
        variances = np.full_like(shifts, np.nan)
        inputs = layer_inputs(X, activations[:1], tau0=tau0, nodes=nodes, kernels=kernels[:1])
        first = input_sensitivities(inputs, nodes=nodes)
        for i, r in enumerate(ratios):
            shifts[i, :1], variances[i, :1] = moments(first, r)
        # one layer of Gaussian weights: the NTK's mean is exact (shift 0) for every pair; otherwise it needs stencils
        ntk_first = None if ntks is None else np.full((len(ratios), n, n), 0.0 if depth == 1 else np.nan, dtype=np.float32)
        ntk_variance = None if ntks is None else np.full((len(ratios), n, n), np.nan, dtype=np.float32)
        if ntks is not None and depth == 1:  # the first layer's variance needs no stencil: exact for every pair
            slopes = network_slopes(X, activations, tau0=tau0, nodes=nodes, kernels=kernels)
            for i, r in enumerate(ratios):
                ntk_variance[i] = next(ntk_states(first, slopes, ntks, X.T @ X, layer_widths(cell, depth, d_over_n=r),
                                                  duplicates=duplicates)).variance
        ntk_kurtosis = None if ntks is None or not kurtosis else np.full((depth, n, n), np.nan, dtype=np.float32)
        ntk_variance_kurtosis = None if ntk_kurtosis is None else np.full((len(ratios), n, n), np.nan, dtype=np.float32)
        return PerPairMoments(shifts, variances, responses(first, chains(first)), variance_responses(inputs, first),
                              ntk_first, ntk_variance, ntk_kurtosis, ntk_variance_kurtosis, in_data, (
            f"{in_data} pairs of samples of the data are nearly collinear (1 - |rho| < 0.01, not duplicates): the "
            "first-order expansion does not hold for them, so the per-pair terms are computed at layer 1 only"))
    inputs = layer_inputs(X, activations, tau0=tau0, nodes=nodes, kernels=kernels)
    layers = input_sensitivities(inputs, nodes=nodes)
    shifts, variances = (np.stack(a) for a in zip(*(moments(layers, r) for r in ratios)))
    later = int(np.triu(np.isnan(variances).any(axis=(0, 1)), 1).sum())
    chain = chains(layers)
    return PerPairMoments(shifts, variances, responses(layers, chain), variance_responses(inputs, layers),
                          *ntk(inputs, layers, chain), later, (
        f"{later} pairs of samples become nearly collinear (1 - |rho| < 0.01) at some layer: outside the expansion, "
        "their entries are NaN, and the per-pair rows of the layers after it with them" if later else ""))


def _per_pair_variables(terms: PerPairMoments) -> list[tuple[str, tuple[str, ...], np.ndarray | None, str, str]]:
    """The theory store's per-pair variables: (name, dims, value or None when not computed, long_name, source)."""
    per_unit = "per unit kappa_1 for source_layer 0, per unit kappa_k / d_(k-1) for source_layer k - 1"
    return [
        ("ck_shift_per_pair", ("d_over_n", "layer", "row", "col"), terms.shifts,
         "first-order finite-width mean E K_l - K_inf,l, entry by entry, for Gaussian weights",
         "rmtbench.theory.finite_width"),
        ("ck_variance_per_pair", ("d_over_n", "layer", "row", "col"), terms.variances,
         "first-order finite-width variance Var K_l,ij, entry by entry, for Gaussian weights",
         "rmtbench.theory.finite_width"),
        ("ck_variance_kurtosis_response_per_pair", ("d_over_n", "layer", "row", "col"), terms.variance_kurtosis_responses,
         "first-order change of Var K_l,ij per unit kappa_1 (the first layer's law, through the data's localisation; "
         "the later layers' change it at O(kappa/d^2))", "rmtbench.theory.finite_width.variance_kurtosis_responses"),
        ("ck_kurtosis_response_per_pair", ("source_layer", "layer", "row", "col"), terms.kurtosis_responses,
         f"first-order change of E K_l {per_unit} (0 for layer < k; any width)",
         "rmtbench.theory.finite_width.kurtosis_responses"),
        ("ntk_shift_per_pair", ("d_over_n", "row", "col"), terms.ntk_shifts,
         "first-order finite-width mean E NTK_L - NTK_inf,L of the network's NTK (last layer, read-out included), "
         "entry by entry, for Gaussian weights", "rmtbench.theory.finite_width_ntk"),
        ("ntk_variance_per_pair", ("d_over_n", "row", "col"), terms.ntk_variances,
         "first-order finite-width variance Var NTK_L,ij of the network's NTK (last layer, read-out drawn), entry by entry, "
         "for Gaussian weights (the first law's term: ntk_variance_kurtosis_response_per_pair)",
         "rmtbench.theory.finite_width_ntk.finite_width_ntk_variances"),
        ("ntk_kurtosis_response_per_pair", ("source_layer", "row", "col"), terms.ntk_kurtosis_responses,
         f"first-order change of E NTK_L {per_unit} (any width)",
         "rmtbench.theory.finite_width_ntk.ntk_kurtosis_responses"),
        ("ntk_variance_kurtosis_response_per_pair", ("d_over_n", "row", "col"), terms.ntk_variance_kurtosis_responses,
         "first-order change of Var NTK_L,ij per unit kappa_1 (the first layer's law, through the data's localisation; "
         "the later layers' change it at O(kappa/d^2))",
         "rmtbench.theory.finite_width_ntk.ntk_variance_kurtosis_responses"),
    ]


class DeepConjugateKernel(Experiment):
    """Per-layer CK and the NTK of deep random MLPs against the Gu+22 recursion."""

    kind = "deep_ck"
    description = ("Deep random MLPs: per-layer conjugate kernel and NTK (empirical, exact infinite-width, Gu+22 "
                   "linear equivalent, and the finite-width terms: rank-one and entry by entry).")
    axes = ("activations", "weights", "dataset", "n", "d_over_n")
    uses_dask = True
    grid_schema = {
        "activations": list_of({"type": "array", "minItems": 1, "items": ACTIVATION,
                                "description": "Activations phi_1..phi_L of one network (its depth L is the length)."},
                               "Networks, each a list of activations (one per layer)."),
        "weights": list_of({"type": ["string", "object", "array"], "items": WEIGHTS,
                            "description": WEIGHTS["description"] + "; or a list of them, one law per layer"},
                           "Laws of the weight entries: one law for every layer, or a list with one law per layer "
                           "(as long as the network)."),
        "dataset": list_of(DATASET, "Data sets."),
        "n": list_of(SIZE, "Samples n."),
        "d_over_n": list_of(POSITIVE, "Hidden widths d_l = round(d_over_n * n * width_profile[l]) (the same in every "
                                      "layer without a width_profile)."),
    }
    options_schema = {
        "seeds": SEEDS,
        "kernel_nodes": KERNEL_NODES,
        "sample_block": SAMPLE_BLOCK,
        "statistics": STATISTICS,
        "ratio_activations": list_of(ACTIVATION, "Activations of the alpha-ratio-versus-depth figure (each repeated at "
                                     "every layer).", default=DEFAULT_RATIO_ACTIVATIONS),
        "ratio_depth": {"type": "integer", "minimum": 1, "default": 6,
                        "description": "Largest depth of the alpha-ratio figure."},
        "per_pair_correction": {"type": "boolean", "default": True,
                                "description": "Also compute the entry-by-entry first-order finite-width mean E K_l - K_inf,l "
                                               "(with the weight law's kurtosis term for non-Gaussian weights) and variance "
                                               "Var K_l,ij (rmtbench.theory.finite_width), and the last layer's NTK mean "
                                               "E NTK_L - NTK_inf,L, with its kurtosis terms too, and its variance "
                                               "Var NTK_L,ij, with the first law's term (rmtbench.theory.finite_width_ntk; about 40 n x n "
                                               "float64 arrays at the peak plus 14 per layer for the NTK, and two n x n float32 "
                                               "matrices per width and layer in the theory store, two more per width for the "
                                               "NTK, plus L x L and L "
                                               "serving every width for non-Gaussian weights). Nearly collinear pairs of "
                                               "samples are left out (NaN)."},
        "width_profile": {"type": ["array", "null"], "items": POSITIVE, "minItems": 1, "default": None,
                          "description": "Per-layer width multipliers m_l (one per layer of every network of the block): "
                                         "d_l = round(d_over_n * n * m_l); null: the same width in every layer."},
    }

    # -- config -----------------------------------------------------------------------------------
    def check(self, point: Mapping[str, Any], options: Mapping[str, Any], where: str) -> None:
        from rmtbench.config import ConfigError

        if int(options.get("seeds", 3)) < 2:
            raise ConfigError(f"config key '{where}.seeds': deep_ck needs >= 2 seeds (the Monte-Carlo floor uses two halves)")
        depth = len(point["activations"])
        laws = str(point["weights"]).split("+")
        if len(laws) not in (1, depth):
            raise ConfigError(f"config key '{where}.grid.weights': {len(laws)} per-layer laws ({point['weights']}) for a "
                              f"network of {depth} layers ({'+'.join(point['activations'])}); give one law, or one per layer")
        profile = options.get("width_profile")
        if profile is not None and len(profile) != depth:
            raise ConfigError(f"config key '{where}.width_profile': {len(profile)} multipliers for a network of {depth} "
                              f"layers ({'+'.join(point['activations'])}); give one per layer")

    def theory_key(self, cell: Cell) -> str:
        from rmtbench.weights import layer_kurtosis

        key = {"data": data_key(cell), "activations": label_of(cell["activations"]),
               "nodes": cell["kernel_nodes"], "statistics": cell["statistics"],
               "ratio": [cell["ratio_activations"], cell["ratio_depth"]], "seed": cell.root_seed}
        if cell.get("width_profile") is not None:  # the finite-width terms depend on the widths
            key["width_profile"] = list(cell["width_profile"])
        if cell.get("per_pair_correction"):
            key["per_pair"] = True
            laws = str(cell["weights"]).split("+")  # (the depth is not needed: gathering passes labelled cells)
            if any(layer_kurtosis(laws, len(laws))):  # every non-Gaussian law shares the responses per unit kurtosis
                key["kurtosis"] = True
        return short_hash(key)

    # -- empirical ---------------------------------------------------------------------------------
    def simulate(self, cell: Cell, ctx: RunContext) -> Any:
        import dask
        import xarray as xr

        from rmtbench.activations import get_activation
        from rmtbench.deepnet import (
            DeepRandomNet, draw_kernel_graphs, pair_fluctuation_graphs, seed_square_graphs, seed_sum_graphs,
        )
        from rmtbench.parallel import compute
        from rmtbench.store import provenance
        from rmtbench.theory.deep import data_statistics
        from rmtbench.weights import weight_law

        data = cell_data(cell, ctx)
        stats = data_statistics(data, source=cell["statistics"])
        acts = list(cell["activations"])
        depth, n, seeds = len(acts), data.X.shape[1], int(cell["seeds"])
        label = str(cell["weights"])  # normalised: one law's label, or the per-layer labels joined by '+'
        laws = [weight_law(w) for w in label.split("+")]
        widths = layer_widths(cell, depth)
        ntk = all(get_activation(a).derivative is not None for a in acts)
        base = DeepRandomNet.centred(acts, widths, laws if len(laws) > 1 else laws[0], tau0=stats.tau,
                                     root_seed=cell.root_seed, key=("deep_ck", data_key(cell), label, 0))
        nets = [replace(base, key=("deep_ck", data_key(cell), label, seed)) for seed in range(seeds)]
        per_draw = draw_kernel_graphs(nets, dask.delayed(data.X), n, ntk=ntk, sample_block=int(cell["sample_block"]),
                                      block_rows=ctx.block_rows)
        even, odd, ones = seed_sum_graphs(per_draw)
        stacked = depth + ntk  # the L Grams, then the NTK
        squares_even, squares_odd = seed_square_graphs(per_draw, layers=stacked)  # seeds >= 2: both halves exist
        pair_norms = pair_fluctuation_graphs(per_draw, layers=stacked)
        even, odd, squares_even, squares_odd, *rest = compute(ctx.client, even, odd, squares_even, squares_odd, *ones,
                                                               *pair_norms)
        ones, pair_norms = rest[:seeds], rest[seeds:]
        n_even, n_odd = len(range(0, seeds, 2)), len(range(1, seeds, 2))
        mean = (even + odd) / seeds
        floor = _spectral_norms((even / n_even - odd / n_odd) / 2.0)
        variance, variance_floor = entry_variance((even, odd), (squares_even, squares_odd), seeds)
        pair_norms = np.array(pair_norms).reshape(seeds // 2, stacked)
        eig = kernel_eigenvalues(mean[:depth])  # CK spectra only: the figures do not use the NTK's
        ones = np.array(ones)
        nan_matrix = np.full((n, n), np.nan, dtype=np.float32)
        return xr.Dataset(
            {
                "ck": (("layer", "row", "col"), mean[:depth].astype(np.float32),
                       {"long_name": "seed mean of Sigma_l^T Sigma_l", "description": "empirical CK per layer (float32)"}),
                "ntk": (("row", "col"), mean[depth].astype(np.float32) if ntk else nan_matrix,
                        {"long_name": "seed mean of the network's NTK", "description": "closed form for MLPs (float32)"}),
                "ck_floor_norm": (("layer",), floor[:depth], {"description": "||mean(even seeds) - mean(odd seeds)||/2: Monte-Carlo noise of the seed mean"}),
                "ntk_floor_norm": ((), floor[depth] if ntk else np.nan),
                "ck_ones": (("seed", "layer"), ones[:, :depth], {"description": "1^T (Sigma_l^T Sigma_l) 1 / n per draw"}),
                "ntk_ones": (("seed",), ones[:, depth] if ntk else np.full(seeds, np.nan)),
                "ck_eigenvalues": (("layer", "eig"), eig, {"long_name": "eigenvalues of the seed-mean empirical CK"}),
                "ck_entry_variance": (("layer", "row", "col"), variance[:depth].astype(np.float32),
                                      {"long_name": "variance of each CK entry over the draws",
                                       "description": "unbiased, from the sums of K and K*K over the draws (float32)"}),
                "ck_variance_floor_norm": (("layer",), variance_floor[:depth],
                                           {"description": "||variance(even seeds) - variance(odd seeds)||/2: Monte-Carlo noise "
                                                           "of ck_entry_variance (NaN below four draws)"}),
                "ck_fluctuation": (("draw_pair", "layer"), pair_norms[:, :depth],
                                   {"description": "||K_2k - K_2k+1||_F^2 / (2n) per pair of draws: mean sum_ij Var K_ij / n"}),
                "ntk_entry_variance": (("row", "col"), variance[depth].astype(np.float32) if ntk else nan_matrix,
                                       {"long_name": "variance of each NTK entry over the draws (weights and read-out)",
                                        "description": "unbiased, from the sums of NTK and NTK*NTK over the draws (float32)"}),
                "ntk_variance_floor_norm": ((), variance_floor[depth] if ntk else np.nan),
                "ntk_fluctuation": (("draw_pair",), pair_norms[:, depth] if ntk else np.full(seeds // 2, np.nan),
                                    {"description": "||NTK_2k - NTK_2k+1||_F^2 / (2n) per pair of draws"}),
                "width": (("layer",), np.array(widths, dtype=float), {"long_name": "hidden width d_l"}),
                "weight_kurtosis": (("layer",), np.array(weight_kurtosis(cell)),
                                    {"long_name": "excess kurtosis E w^4 - 3 of the weight entries of layer l"}),
            },
            coords={"layer": np.arange(1, depth + 1), "seed": np.arange(seeds), "draw_pair": np.arange(seeds // 2),
                    "eig": np.arange(n)},
            attrs=provenance(cell=cell.to_json(), data=data.meta, tau0=stats.tau, shifts=list(nets[0].shifts)),
        )

    # -- theory ------------------------------------------------------------------------------------
    def theory(self, cells: list[Cell], ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.store import provenance
        from rmtbench.theory.deep import (
            ck_equivalent, data_statistics, exact_kernels, finite_width_correction, layer_coefficients, ntk_equivalent,
            relative_error,
        )

        first = cells[0]
        data = cell_data(first, ctx)
        stats = data_statistics(data, source=first["statistics"])
        acts = list(first["activations"])
        depth, n = len(acts), data.X.shape[1]
        coefs = layer_coefficients(acts, tau0=stats.tau)
        ntk_defined = all(np.isfinite(c.d1_sq) for c in coefs)
        kernels = exact_kernels(data.X, acts, tau0=stats.tau, ntk=ntk_defined, nodes=int(first["kernel_nodes"]),
                                coefficients=coefs)
        X = data.X
        ck_eq = {e: [ck_equivalent(X, stats, coefs, layer, epsilon=e) for layer in range(depth)] for e in ("data", "model")}
        errors = {f"ck_equivalent_error{s}": [relative_error(ck_eq[e][l], kernels.ck[l]) for l in range(depth)]
                  for e, s in (("data", ""), ("model", "_model"))}
        nan_layers = np.full(depth, np.nan)
        ntk_exact = np.full((depth, n, n), np.nan, dtype=np.float32)
        for e, s in (("data", ""), ("model", "_model")):
            errors[f"ntk_equivalent_error{s}"] = nan_layers.copy()
        if kernels.ntk is not None:
            ntk_exact = np.stack(kernels.ntk).astype(np.float32)
            for e, s in (("data", ""), ("model", "_model")):
                eq = [ntk_equivalent(X, stats, coefs, layer, epsilon=e) for layer in range(depth)]
                errors[f"ntk_equivalent_error{s}"] = np.array([relative_error(eq[l], kernels.ntk[l]) for l in range(depth)])
        ratios = sorted({float(c["d_over_n"]) for c in cells})
        rank_one = np.array([finite_width_correction(coefs, layer_widths(first, depth, d_over_n=r)) for r in ratios])
        per_pair = {}
        if first.get("per_pair_correction"):
            terms = per_pair_moments(first, X, acts, ratios, tau0=stats.tau, kernels=kernels.ck,
                                     kurtosis=any(weight_kurtosis(first)), ntks=kernels.ntk)
            reason = {"not_computed": terms.why} if terms.why else {}
            for name, dims, value, long_name, source in _per_pair_variables(terms):
                if value is not None:
                    per_pair[name] = (dims, value, {"long_name": long_name, "source": f"{source} (float32)", **reason})
            per_pair["per_pair_collinear_pairs"] = ((), terms.excluded,
                                                    {"long_name": "nearly collinear pairs of samples (the reason is the "
                                                                  "not_computed attribute of ck_shift_per_pair)"})
        ratio_acts = [str(a) for a in first["ratio_activations"]]
        ratio_depth = int(first["ratio_depth"])
        ratio_alpha = np.array([[c.alpha for c in layer_coefficients([a] * ratio_depth, tau0=stats.tau)] for a in ratio_acts])
        variables = {
            "ck_exact": (("layer", "row", "col"), np.stack(kernels.ck).astype(np.float32),
                         {"long_name": "infinite-width CK per layer", "source": "Gaussian recursion; formula sheet sec. 5"}),
            "ntk_exact": (("layer", "row", "col"), ntk_exact,
                          {"long_name": "infinite-width NTK per layer", "source": "seed eq. 22 (JGH18)"}),
            "ck_exact_eigenvalues": (("layer", "eig"), kernel_eigenvalues(np.stack(kernels.ck))),
            "ck_equivalent_eigenvalues": (("layer", "eig"), kernel_eigenvalues(np.stack(ck_eq["data"])),
                                          {"long_name": "eigenvalues of the Gu+22 CK equivalent (data epsilon)"}),
            **{k: (("layer",), np.asarray(v, dtype=float), {"long_name": f"||K_equivalent - K_exact|| / ||K_exact|| ({k})"})
               for k, v in errors.items()},
            "tau": (("layer",), np.array([c.tau for c in coefs]), {"long_name": "tau_l"}),
            "shift": (("layer",), np.array([c.shift for c in coefs]), {"long_name": "centring constant E phi_l(tau_{l-1} xi)"}),
            "alpha": (("layer", "alpha_k"), np.array([c.alpha for c in coefs]), {"long_name": "alpha_{l,k}, k = 1..4"}),
            "beta": (("layer", "beta_k"), np.array([c.beta for c in coefs]), {"long_name": "beta_{l,k}, k = 1..3"}),
            "kappa2": (("layer",), np.array([c.kappa2 for c in coefs]), {"long_name": "kappa_l^2 (NTK diagonal)"}),
            "rank_one": (("d_over_n", "layer"), rank_one, {"long_name": "finite-width term r_l: r_l (11^T - I)", "source": "pitfall P12"}),
            **per_pair,
            "ratio_alpha": (("ratio_activation", "depth", "alpha_k"), ratio_alpha,
                            {"long_name": "alpha_{l,k} of a network repeating one activation"}),
            "tau0": ((), stats.tau, {"long_name": "tau_0"}),
            # the GMM statistics the equivalents use, shown in the report (estimated for real data)
            "stat_estimated": ((), float(stats.source == "estimated"),
                               {"long_name": "1 if tau_0, t, T, psi were estimated from the data, 0 if taken from the gmm spec"}),
            "stat_class_fraction": (("class",), stats.n_a / stats.n_a.sum(), {"long_name": "class proportions n_a/n"}),
            "stat_t": (("class",), np.asarray(stats.t, dtype=float), {"long_name": "t_a = tr C_a° / sqrt(p)"}),
            "stat_T": (("class", "class_b"), np.asarray(stats.T, dtype=float), {"long_name": "T_ab = tr(C_a C_b) / p"}),
            "stat_psi_std": ((), float(np.std(stats.psi)), {"long_name": "standard deviation of psi_i over the samples"}),
        }
        return xr.Dataset(
            variables,
            coords={"layer": np.arange(1, depth + 1), "eig": np.arange(n), "d_over_n": ratios, "alpha_k": [1, 2, 3, 4],
                    "beta_k": [1, 2, 3], "ratio_activation": ratio_acts, "depth": np.arange(1, ratio_depth + 1)},
            attrs=provenance(cells=[c.id for c in cells], data=data.meta, activations=acts),
        )

    # -- combination: matrix-level comparisons, then only small arrays are kept --------------------
    def combine(self, cells: list[Cell], simulated: list[Any], theories: Mapping[str, Any]) -> Any:
        from rmtbench.gather import stack_cells, theory_for_cell

        summaries = []
        for cell, sim in zip(cells, simulated):
            theory = theories.get(self.theory_key(cell))
            theory = None if theory is None else theory_for_cell(cell, theory)
            summaries.append(cell_summary(sim, theory))
        labelled = [replace(c, point={**c.point, "activations": label_of(c.point["activations"])}) for c in cells]
        return stack_cells(self, labelled, summaries, {})

    # -- comparison and figures --------------------------------------------------------------------
    def compare(self, gathered: Any) -> Any:
        return error_table(gathered, list(self.axes), QUANTITIES, ones=ONES)

    def plot(self, gathered: Any, outdir: Path) -> list[Path]:
        return (spectra_figures(gathered, outdir) + error_figures(gathered, outdir) + fluctuation_figures(gathered, outdir)
                + ratio_figures(gathered, outdir))


#: (quantity, error variable, Monte-Carlo floor variable or None) of the error table.
QUANTITIES = [
    ("ck_equivalent", "ck_equivalent_error", None),
    ("ck_equivalent_model", "ck_equivalent_error_model", None),
    ("ntk_equivalent", "ntk_equivalent_error", None),
    ("ntk_equivalent_model", "ntk_equivalent_error_model", None),
    ("ck_empirical", "ck_error_empirical", "ck_mc_floor"),
    ("ck_empirical_corrected", "ck_error_empirical_corrected", "ck_mc_floor"),
    ("ck_empirical_per_pair", "ck_error_empirical_per_pair", "ck_mc_floor"),
    # non-Gaussian weights only: the per-pair mean as if the weights were Gaussian (what the kurtosis term fixes)
    ("ck_empirical_per_pair_gaussian_law", "ck_error_empirical_per_pair_gaussian_law", "ck_mc_floor"),
    ("ck_variance_per_pair", "ck_error_variance", "ck_variance_floor"),
    ("ck_variance_per_pair_gaussian_law", "ck_error_variance_gaussian_law", "ck_variance_floor_gaussian_law"),
    ("ntk_empirical", "ntk_error_empirical", "ntk_mc_floor"),
    ("ntk_empirical_per_pair", "ntk_error_empirical_per_pair", "ntk_mc_floor"),
    ("ntk_empirical_per_pair_gaussian_law", "ntk_error_empirical_per_pair_gaussian_law", "ntk_mc_floor"),
    ("ntk_variance_per_pair", "ntk_error_variance", "ntk_variance_floor"),
    ("ntk_variance_per_pair_gaussian_law", "ntk_error_variance_gaussian_law", "ntk_variance_floor_gaussian_law"),
]

#: |z| from which a relative z-score row's error counts as resolved, and enters the fit of its rate in n.
RESOLVED_Z = 3.0


class ZRow(NamedTuple):
    """Rows of the error table with a z-score: the mean of ``per_draw`` over dimension ``draws`` against ``prediction``."""

    quantity: str
    per_draw: str
    draws: str
    prediction: str
    relative: bool  # also rel_error = (mean − prediction)/prediction (not where the prediction can be 0)


#: 1ᵀ(K − K_∞)1/n per draw against both finite-width means (0 at layer 1), and ‖K_2k − K_2k+1‖²_F/(2n) per
#: pair of draws against Σ_ij Var K_ij / n. After layer 1 the last is biased by the next order, c/d relative:
#: with many draws its z-scores are large by design, and rel_error·d measures c (docs/findings.md). The NTK's
#: 1ᵀ(NTK − NTK_∞)1/n per draw against 0 (infinite width) and against its per-pair first-order mean, and
#: ‖NTK_2k − NTK_2k+1‖²_F/(2n) against Σ_ij Var NTK_ij / n (the same next-order bias after layer 1). For non-Gaussian
#: weights, each ``*_gaussian_law`` row is the same without the law's terms.
ONES = [ZRow("ck_ones_excess", "ck_ones_excess", "seed", "ck_ones_predicted", False),
        ZRow("ck_ones_excess_per_pair", "ck_ones_excess", "seed", "ck_ones_predicted_per_pair", False),
        ZRow("ck_ones_excess_per_pair_gaussian_law", "ck_ones_excess", "seed", "ck_ones_predicted_per_pair_gaussian_law", False),
        ZRow("ck_fluctuation_per_pair", "ck_fluctuation", "draw_pair", "ck_fluctuation_predicted", True),
        ZRow("ck_fluctuation_per_pair_gaussian_law", "ck_fluctuation", "draw_pair", "ck_fluctuation_predicted_gaussian_law",
             True),
        ZRow("ntk_ones_excess", "ntk_ones_excess", "seed", "ntk_ones_predicted", False),
        ZRow("ntk_ones_excess_per_pair", "ntk_ones_excess", "seed", "ntk_ones_predicted_per_pair", False),
        ZRow("ntk_ones_excess_per_pair_gaussian_law", "ntk_ones_excess", "seed", "ntk_ones_predicted_per_pair_gaussian_law",
             False),
        ZRow("ntk_fluctuation_per_pair", "ntk_fluctuation", "draw_pair", "ntk_fluctuation_predicted", True),
        ZRow("ntk_fluctuation_per_pair_gaussian_law", "ntk_fluctuation", "draw_pair", "ntk_fluctuation_predicted_gaussian_law",
             True)]

_KEEP_THEORY = ("ck_exact_eigenvalues", "ck_equivalent_eigenvalues", "ck_equivalent_error", "ck_equivalent_error_model", "ntk_equivalent_error", "ntk_equivalent_error_model",
                "tau", "shift", "alpha", "beta", "kappa2", "rank_one", "per_pair_collinear_pairs", "ratio_alpha", "tau0", "stat_estimated",
                "stat_class_fraction", "stat_t", "stat_T", "stat_psi_std")
_KEEP_SIM = ("ck_eigenvalues", "width", "weight_kurtosis", "ck_ones", "ck_fluctuation", "ntk_fluctuation")


def cell_summary(sim: Any, theory: Any) -> Any:
    """Errors of one cell's empirical kernels against the exact ones, plus the small arrays to keep.

    ``ck_error_empirical``: ||K_emp − K_∞|| / ||K_∞|| per layer; ``ck_error_empirical_corrected``: the
    same with K_∞ + r_ℓ(11ᵀ − I); ``ck_error_empirical_per_pair``: with K_∞ + S_ℓ, the per-pair term (when
    the theory has it, with the kurtosis terms of non-Gaussian weights; for those ``*_per_pair_gaussian_law``
    is the same without them); ``ck_mc_floor``: the seed halves' noise over ||K_∞||; the NTK at the last layer
    in :func:`ntk_summary`; ``ck_ones_excess``: 1ᵀ(K_emp,seed − K_∞)1/n per seed, against
    ``ck_ones_predicted`` = r_ℓ (n − 1) and ``ck_ones_predicted_per_pair`` = 1ᵀS_ℓ1/n. With the per-pair
    variance: ``ck_error_variance`` = ‖V_emp − V_ℓ‖/‖V_ℓ‖ for the per-entry variance over the draws,
    ``ck_variance_floor`` its noise over ‖V_ℓ‖, and ``ck_fluctuation_predicted`` = Σ_ij (V_ℓ)_ij / n, the
    mean of the per-pair ``ck_fluctuation``; V_ℓ includes the first layer's kurtosis term
    (:func:`kurtosis_variance`), and for non-Gaussian laws the three ``*_gaussian_law`` are the same without it.
    """
    import xarray as xr

    from rmtbench.theory.deep import rank_one_term, relative_error, spectral_norm

    if sim is None and theory is None:
        return None
    parts = []
    if theory is not None:
        parts.append(theory[[v for v in _KEEP_THEORY if v in theory]].drop_vars("d_over_n", errors="ignore"))
    if sim is not None:
        parts.append(sim[[v for v in _KEEP_SIM if v in sim]])
    summary = xr.merge(parts, join="outer", compat="no_conflicts")
    if sim is None or theory is None:
        return summary
    layers = sim["layer"].values
    n = sim.sizes["row"]
    raw, corrected, floor, ones_excess, ones_pred = [], [], [], [], []
    has_pair = "ck_shift_per_pair" in theory
    has_variance = "ck_variance_per_pair" in theory and "ck_entry_variance" in sim
    pair_error, pair_ones = [], []
    gaussian_error, gaussian_ones = [], []  # non-Gaussian weights: the per-pair mean without the kurtosis term
    kappas = np.asarray(sim["weight_kurtosis"].values, dtype=float) if "weight_kurtosis" in sim else np.zeros(len(layers))
    non_gaussian = bool(kappas.any())
    # per-entry variance: (error, floor, fluctuation) per layer, with the kurtosis term and, for non-Gaussian laws, without
    variance_rows: dict[str, tuple[list, list, list]] = {suffix: ([], [], [])
                                                         for suffix in ("", "_gaussian_law")[: 1 + non_gaussian]}
    for i, layer in enumerate(layers):
        exact = np.asarray(theory["ck_exact"].sel(layer=layer).values, dtype=float)
        emp = np.asarray(sim["ck"].sel(layer=layer).values, dtype=float)
        r = float(theory["rank_one"].sel(layer=layer))
        norm = spectral_norm(exact)
        raw.append(spectral_norm(emp - exact) / norm)  # relative_error(emp, exact), ‖K_∞‖ computed once
        corrected.append(relative_error(emp, exact + rank_one_term(r, n)))
        floor.append(float(sim["ck_floor_norm"].sel(layer=layer)) / norm)
        ones_excess.append(sim["ck_ones"].sel(layer=layer).values - exact.sum() / n)
        ones_pred.append(r * (n - 1))
        if has_pair:
            gaussian = np.asarray(theory["ck_shift_per_pair"].sel(layer=layer).values, dtype=float)
            responses = (theory["ck_kurtosis_response_per_pair"].sel(layer=layer)
                         if "ck_kurtosis_response_per_pair" in theory else None)
            added = kurtosis_shift(kappas, sim["width"].values, responses, layer) if non_gaussian else 0.0
            predictions = [(gaussian + added, pair_error, pair_ones)]
            if non_gaussian:
                predictions.append((gaussian, gaussian_error, gaussian_ones))
            for shift, errors, ones in predictions:
                complete = bool(np.isfinite(shift).all())  # nearly collinear pairs are NaN: no per-pair rows then
                errors.append(relative_error(emp, exact + shift) if complete else np.nan)
                ones.append(shift.sum() / n if complete else np.nan)
        if has_variance:
            gaussian = np.asarray(theory["ck_variance_per_pair"].sel(layer=layer).values, dtype=float)
            responses = (theory["ck_variance_kurtosis_response_per_pair"].sel(layer=layer)
                         if "ck_variance_kurtosis_response_per_pair" in theory else None)
            added = kurtosis_variance(kappas, responses) if non_gaussian else 0.0
            measured = np.asarray(sim["ck_entry_variance"].sel(layer=layer).values, dtype=float)
            for suffix, predicted in zip(variance_rows, (gaussian + added, gaussian)):
                error, noise, fluctuation = variance_rows[suffix]
                complete = bool(np.isfinite(predicted).all())
                scale = spectral_norm(predicted) if complete else np.nan
                error.append(spectral_norm(measured - predicted) / scale if complete else np.nan)
                noise.append(float(sim["ck_variance_floor_norm"].sel(layer=layer)) / scale)
                fluctuation.append(predicted.sum() / n if complete else np.nan)
    ntk = ntk_summary(sim, theory, n, kappas=kappas)
    return summary.assign(
        ck_error_empirical=(("layer",), np.array(raw)),
        ck_error_empirical_corrected=(("layer",), np.array(corrected)),
        ck_mc_floor=(("layer",), np.array(floor)),
        ck_ones_excess=(("seed", "layer"), np.array(ones_excess).T),
        ck_ones_predicted=(("layer",), np.array(ones_pred)),
        **({"ck_error_empirical_per_pair": (("layer",), np.array(pair_error)),
            "ck_ones_predicted_per_pair": (("layer",), np.array(pair_ones))} if has_pair else {}),
        **({"ck_error_empirical_per_pair_gaussian_law": (("layer",), np.array(gaussian_error)),
            "ck_ones_predicted_per_pair_gaussian_law": (("layer",), np.array(gaussian_ones))}
           if has_pair and non_gaussian else {}),
        **{f"{name}{suffix}": (("layer",), np.array(values))
           for suffix, rows in (variance_rows.items() if has_variance else ())
           for name, values in zip(("ck_error_variance", "ck_variance_floor", "ck_fluctuation_predicted"), rows)},
        **ntk,
    )


def ntk_summary(sim: Any, theory: Any, n: int, *, kappas: np.ndarray) -> dict[str, Any]:
    """The last layer's NTK in :func:`cell_summary`: ``ntk_error_empirical`` (against NTK∞) and ``ntk_mc_floor``
    (NaN without an NTK), and where both sides have it ``ntk_ones_excess`` = 1ᵀ(NTK_emp,seed − NTK∞)1/n per seed
    against ``ntk_ones_predicted`` = 0 (infinite width); with the theory's per-pair shift,
    ``ntk_error_empirical_per_pair`` against NTK∞ + shift and ``ntk_ones_predicted_per_pair`` = 1ᵀshift1/n, the
    shift including the kurtosis terms of the layers' laws ``kappas``; for non-Gaussian laws ``*_gaussian_law``
    is the same without them. With the theory's per-pair variance V (weights and read-out; for non-Gaussian laws
    with the first layer's kurtosis term, :func:`kurtosis_variance`): ``ntk_error_variance`` = ‖V_emp − V‖/‖V‖ for
    the per-entry variance over the draws, ``ntk_variance_floor`` its noise over ‖V‖, and
    ``ntk_fluctuation_predicted`` = Σ_ij V_ij / n, the mean of the per-pair ``ntk_fluctuation``; for non-Gaussian
    laws the same three named ``*_gaussian_law`` without that term.
    """
    from rmtbench.theory.deep import relative_error, spectral_norm

    last = sim["layer"].values[-1]
    exact = np.asarray(theory["ntk_exact"].sel(layer=last).values, dtype=float)
    emp = np.asarray(sim["ntk"].values, dtype=float)
    if not (np.isfinite(exact).all() and np.isfinite(emp).all()):
        return {"ntk_error_empirical": ((), np.nan), "ntk_mc_floor": ((), np.nan)}
    norm = spectral_norm(exact)
    out = {"ntk_error_empirical": ((), spectral_norm(emp - exact) / norm),
           "ntk_mc_floor": ((), float(sim["ntk_floor_norm"]) / norm),
           "ntk_ones_excess": (("seed",), np.asarray(sim["ntk_ones"].values, dtype=float) - exact.sum() / n),
           "ntk_ones_predicted": ((), 0.0)}
    if "ntk_shift_per_pair" not in theory:
        return out
    gaussian = np.asarray(theory["ntk_shift_per_pair"].values, dtype=float)
    predictions = [("", gaussian)]
    if kappas.any():
        added = kurtosis_shift(kappas, sim["width"].values, theory.get("ntk_kurtosis_response_per_pair"), int(last))
        predictions = [("", gaussian + added), ("_gaussian_law", gaussian)]
    for suffix, shift in predictions:
        complete = bool(np.isfinite(shift).all())  # nearly collinear pairs are NaN: no per-pair rows then
        out[f"ntk_error_empirical_per_pair{suffix}"] = ((), relative_error(emp, exact + shift) if complete else np.nan)
        out[f"ntk_ones_predicted_per_pair{suffix}"] = ((), shift.sum() / n if complete else np.nan)
    if "ntk_variance_per_pair" in theory and "ntk_entry_variance" in sim:
        gaussian = np.asarray(theory["ntk_variance_per_pair"].values, dtype=float)
        variances = [("", gaussian)]
        if kappas.any():
            added = kurtosis_variance(kappas, theory.get("ntk_variance_kurtosis_response_per_pair"))
            variances = [("", gaussian + added), ("_gaussian_law", gaussian)]
        measured = np.asarray(sim["ntk_entry_variance"].values, dtype=float)
        for suffix, predicted in variances:
            complete = bool(np.isfinite(predicted).all())
            scale = spectral_norm(predicted) if complete else np.nan
            out[f"ntk_error_variance{suffix}"] = ((), spectral_norm(measured - predicted) / scale if complete else np.nan)
            out[f"ntk_variance_floor{suffix}"] = ((), float(sim["ntk_variance_floor_norm"]) / scale)
            out[f"ntk_fluctuation_predicted{suffix}"] = ((), predicted.sum() / n if complete else np.nan)
    return out


def kurtosis_variance(kappas: np.ndarray, responses: Any) -> np.ndarray | float:
    """κ_1 R_ℓ: what the first layer's weight kurtosis adds to the first-order Var K_ℓ (the later layers' laws add
    O(κ/d²) only); ``responses`` (row, col) are the theory's d Var K_ℓ/dκ_1 at the cell's width ratio.

    NaN where the first law has no fourth moment, or where it is not Gaussian and the theory has no responses.
    """
    if not kappas[0]:
        return 0.0
    if responses is None or not np.isfinite(kappas[0]):
        return np.nan
    return float(kappas[0]) * np.asarray(responses.values, dtype=float)


def kurtosis_shift(kappas: np.ndarray, widths: np.ndarray, responses: Any, layer: int) -> np.ndarray | float:
    """Σ_k κ_k U_{k→ℓ}: what the weights' excess kurtosis ``kappas`` (one per layer) adds to a first-order mean of
    layer ``layer`` (counted from 1), at the cell's ``widths``; ``responses`` (source_layer, row, col) are the
    theory's responses of that mean (the CK's at that layer, or the NTK's).

    NaN (no per-pair prediction) where a law has no fourth moment or the theory has no responses.
    """
    from rmtbench.theory.finite_width import kurtosis_weights

    if responses is None or not np.isfinite(kappas).all():
        return np.nan
    return sum(weight * np.asarray(responses.isel(source_layer=k).values, dtype=float)
               for k, weight in enumerate(kurtosis_weights(kappas, widths)) if weight and k < layer)


# ------------------------------------------------------------------------------------------------
# Tables and figures shared with the deq kind.


def error_table(gathered: Any, axes: list[str], quantities: list[tuple[str, str, str | None]], *,
                ones: list[ZRow] = ()) -> Any:
    """Tidy table: one row per (quantity, cell, layer) with the relative error, its Monte-Carlo floor and
    the rate of the error in n fitted over the sizes of its group (``rate`` ± ``rate_stderr``).

    ``ones`` lists :class:`ZRow`: rows with the mean over the draws (or pairs of draws), their ``count``, its
    standard error, the prediction and the z-score (empty below :data:`rmtbench.compare.MIN_Z_COUNT` draws), and with
    ``relative`` the relative error of the mean, which the rate is then fitted to where |z| ≥ :data:`RESOLVED_Z`.
    """
    import pandas as pd

    from rmtbench.compare import convergence_rate, z_score

    frames = []
    for quantity, var, floor in quantities:
        if var not in gathered:
            continue
        frame = gathered[var].drop_attrs().rename("rel_error").to_dataframe().reset_index()
        if floor is not None and floor in gathered:
            frame["mc_floor"] = gathered[floor].drop_attrs().rename("mc_floor").broadcast_like(gathered[var]).to_dataframe().reset_index()["mc_floor"]
        frame.insert(0, "quantity", quantity)
        frames.append(frame.dropna(subset=["rel_error"]))
    for row in ones:
        if row.per_draw not in gathered or row.prediction not in gathered:
            continue
        values = gathered[row.per_draw]
        count = values.count(row.draws)
        mean = values.mean(row.draws)
        sem = values.std(row.draws, ddof=1) / np.sqrt(count)
        frame = xr_frame({"mean": mean, "count": count, "sem": sem, "theory": gathered[row.prediction]})
        frame = frame.dropna(subset=["mean", "theory"])
        frame["z_score"] = z_score(frame["mean"] - frame["theory"], frame["sem"], frame["count"])
        if row.relative:
            frame["rel_error"] = (frame["mean"] - frame["theory"]) / frame["theory"]
        frame.insert(0, "quantity", row.quantity)
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    keys = [c for c in ["quantity", *axes, "layer"] if c in table.columns and c != "n"]
    relative = {row.quantity for row in ones if row.relative}
    rates = []
    for _, group in table.groupby(keys, dropna=False, sort=False):
        # |rel_error|: signed in the relative z-score rows, which count only where the error is resolved (|z| >= 3):
        # a rate fitted to noise (the exact layer 1) means nothing
        size = group.get("rel_error", pd.Series(np.nan, index=group.index)).astype(float).abs()
        usable = np.isfinite(size) & (size > 0)
        if group["quantity"].iloc[0] in relative:
            usable &= group["z_score"].abs() >= RESOLVED_Z  # NaN (too few draws): not resolved either
        sizes = group.loc[usable, "n"]
        rate, err = convergence_rate(sizes, size[usable]) if sizes.nunique() >= 2 else (np.nan, np.nan)
        rates.append(pd.DataFrame({"rate": rate, "rate_stderr": err}, index=group.index))
    return table.join(pd.concat(rates))


def xr_frame(arrays: Mapping[str, Any]) -> Any:
    """Merge named DataArrays (broadcast against each other) into one flat DataFrame."""
    import xarray as xr

    merged = xr.Dataset({k: v.drop_attrs() for k, v in arrays.items()})
    return merged.to_dataframe().reset_index()


def rate_label(sizes: np.ndarray, errors: np.ndarray) -> str:
    """Legend suffix " (n^slope)" from a power-law fit of errors against sizes (empty below two points)."""
    from rmtbench.compare import convergence_rate

    ok = np.isfinite(errors) & (errors > 0)
    if ok.sum() < 2:
        return ""
    rate, _ = convergence_rate(sizes[ok], errors[ok])
    return f" (n^{rate:.2f})"


def statistics_note(sub: Any) -> str:
    """A caption sentence giving the GMM statistics the theory used, and where they came from."""
    if "stat_t" not in sub or "tau0" not in sub:
        return ""

    def first(name: str) -> np.ndarray:  # the value of the first cell that has it (one per data set)
        da = sub[name]
        others = [d for d in da.dims if d not in ("class", "class_b")]
        if not others:
            return np.asarray(da.values, dtype=float)
        stacked = da.stack(_cell=others)
        for i in range(stacked.sizes["_cell"]):
            item = np.asarray(stacked.isel(_cell=i).values, dtype=float)
            if np.isfinite(item).any():
                return item
        return np.asarray(stacked.isel(_cell=0).values, dtype=float)

    t, T, frac = first("stat_t"), first("stat_T"), first("stat_class_fraction")
    keep = np.isfinite(t)
    t, frac, T = t[keep], frac[keep], T[np.ix_(keep, keep)]
    estimated = float(first("stat_estimated")) > 0.5
    fmt = lambda v: "[" + ", ".join(f"{x:.3g}" for x in np.ravel(v)) + "]"
    return (f" GMM statistics ({'estimated from the data: class means and covariances by class' if estimated else 'from the gmm spec'}): "
            f"tau_0 = {float(first('tau0')):.4g}, class proportions {fmt(frac)}, t = {fmt(t)}, diag T = {fmt(np.diag(T))}, "
            f"std psi = {float(first('stat_psi_std')):.3g}.")


def spectra_figures(ds: Any, outdir: Path) -> list[Path]:
    """Eigenvalue histograms of the empirical CK per layer against the equivalent and the exact CK."""
    from rmtbench.plots import COLORS, iterate_panels, legend_below, pyplot, save_figure

    plt = pyplot()
    paths = []
    if "ck_eigenvalues" not in ds:
        return paths
    for key, sub in iterate_panels(ds, ["activations", "weights", "dataset"]):
        sub = sub.sel(n=sub["n"].values.max(), d_over_n=sub["d_over_n"].values.max())
        emp = sub["ck_eigenvalues"].dropna("layer", how="all")
        if emp.sizes.get("layer", 0) == 0 or not np.isfinite(emp.values).any():
            continue
        layers = emp["layer"].values
        fig, axes = plt.subplots(1, len(layers), figsize=(3.0 * len(layers), 2.8), squeeze=False)
        n, ratio = int(sub["n"]), float(sub["d_over_n"])
        for ax, layer in zip(axes[0], layers):
            values = {name: sub[var].sel(layer=layer).values for name, var in
                      (("empirical", "ck_eigenvalues"), ("equivalent", "ck_equivalent_eigenvalues"), ("exact", "ck_exact_eigenvalues"))
                      if var in sub}
            values = {k: v[np.isfinite(v)] for k, v in values.items()}
            ref = values.get("exact", values["empirical"])
            top = np.quantile(ref, 0.99) * 1.15 if ref.size else 1.0
            bins = np.linspace(min(0.0, float(np.min(ref))), top, 40)
            outliers = int(np.sum(ref > top))
            ax.hist(np.clip(values["empirical"], bins[0], bins[-1]), bins=bins, density=True, color=COLORS[0], alpha=0.45,
                    label="empirical (seed mean)")
            if "equivalent" in values:
                ax.hist(np.clip(values["equivalent"], bins[0], bins[-1]), bins=bins, density=True, histtype="step",
                        color="k", lw=1.2, label="Gu+22 equivalent")
            if "exact" in values:
                ax.hist(np.clip(values["exact"], bins[0], bins[-1]), bins=bins, density=True, histtype="step",
                        color=COLORS[1], lw=1.0, ls="--", label="exact, infinite width")
            ax.set_title(f"layer {layer}" + (f"\n({outliers} eigenvalue(s) > {top:.2g} clipped)" if outliers else ""))
            ax.set_xlabel("eigenvalue")
        axes[0][0].set_ylabel("density")
        legend_below(fig, axes[0][-1], ncol=3)
        two_line_titles = any("\n" in ax.get_title() for ax in axes[0])
        fig.suptitle(f"{key['activations']} · W {key['weights']} · {key['dataset']} · n={n}, d/n={ratio:g}",
                     y=1.12 if two_line_titles else 1.04)
        name = f"deep_ck_spectra-{key['activations']}-{key['weights']}-{key['dataset']}-n{n}"
        seeds = int(sub["ck_ones"].count("seed").max()) if "ck_ones" in sub else 0
        caption = (
            f"Eigenvalues of the per-layer conjugate kernel of a deep random MLP ({key['activations']}, centred by constants, "
            f"1/sqrt(d_l) scaling; seed eq. 15) on {key['dataset']}, n={n}, widths d_l={ratio:g}n, weights {key['weights']}. "
            f"Filled: seed mean of Sigma_l^T Sigma_l over {seeds} draws; black: Gu+22 linear equivalent "
            "alpha_{l,1} X^TX + V A_l V^T + (tau_l^2 - tau_0^2 alpha_{l,1}) I (seed eq. 21, corrected form, data epsilon; "
            "formula sheet sec. 5); red dashed: exact infinite-width CK by the Gaussian recursion. Eigenvalues beyond the "
            "99th percentile of the exact spectrum are clipped into the last bin." + statistics_note(sub)
        )
        paths.append(save_figure(fig, outdir, name, caption))
    return paths


def error_figures(ds: Any, outdir: Path) -> list[Path]:
    """Relative errors against n: CK and NTK equivalents (last layer), and the empirical CK and NTK against the floor."""
    from rmtbench.plots import COLORS, iterate_panels, log_axis, pyplot, save_figure

    plt = pyplot()
    paths = []
    for key, sub in iterate_panels(ds, ["weights", "dataset"]):
        fig, axes = plt.subplots(1, 4, figsize=(14, 3.3))
        ns = sub["n"].values.astype(float)
        for i, acts in enumerate(sub["activations"].values):
            color = COLORS[i % len(COLORS)]
            cell = sub.sel(activations=acts).isel(d_over_n=-1)
            layer = cell["ck_equivalent_error"].dropna("layer", how="all")["layer"].values
            if layer.size == 0:
                continue
            last = layer[-1]
            for ax, var in ((axes[0], "ck_equivalent_error"), (axes[1], "ntk_equivalent_error")):
                for suffix, style in (("", "o-"), ("_model", "s--")):
                    y = cell[var + suffix].sel(layer=last).values.astype(float)
                    if np.isfinite(y).any():
                        label = f"{acts}{' (V = [J/sqrt p, psi])' if suffix else ''}{rate_label(ns, y)}"
                        ax.plot(ns, y, style, color=color, ms=3.5, alpha=1.0 if not suffix else 0.6, label=label)
            for j, ratio in enumerate(sub["d_over_n"].values):
                c2 = sub.sel(activations=acts, d_over_n=ratio)
                shade = 1.0 - 0.4 * j / max(1, sub.sizes["d_over_n"])
                y = c2["ck_error_empirical_corrected"].sel(layer=last).values.astype(float)
                f = c2["ck_mc_floor"].sel(layer=last).values.astype(float)
                pair = (c2["ck_error_empirical_per_pair"].sel(layer=last).values.astype(float)
                        if "ck_error_empirical_per_pair" in c2 else np.full_like(y, np.nan))
                as_gaussian = (c2["ck_error_empirical_per_pair_gaussian_law"].sel(layer=last).values.astype(float)
                               if "ck_error_empirical_per_pair_gaussian_law" in c2 else np.full_like(y, np.nan))
                if np.isfinite(pair).any():
                    axes[2].plot(ns, pair, "o-", color=color, ms=3.5, alpha=shade,
                                 label=f"{acts}, d/n={ratio:g}{rate_label(ns, pair)}")
                    axes[2].plot(ns, y, "x--", color=color, ms=3.5, alpha=0.5 * shade)
                    if np.isfinite(as_gaussian).any():  # non-Gaussian weights: the same without the kurtosis term
                        axes[2].plot(ns, as_gaussian, "^-.", color=color, ms=3.5, alpha=0.5 * shade)
                elif np.isfinite(y).any():
                    axes[2].plot(ns, y, "x--", color=color, ms=3.5, alpha=shade,
                                 label=f"{acts}, d/n={ratio:g}, rank-one{rate_label(ns, y)}")
                if np.isfinite(y).any():
                    axes[2].plot(ns, f, ":", color=color, alpha=0.8)
                _ntk_errors(axes[3], c2, ns, color, shade, f"{acts}, d/n={ratio:g}")
        titles = ("CK: equivalent vs exact (last layer)", "NTK: equivalent vs exact (last layer)",
                  "CK: empirical vs exact + finite-width term", "NTK: empirical vs exact + finite-width mean")
        for ax, title in zip(axes, titles):
            log_axis(ax, "x")
            ax.set_yscale("log")
            ax.set_xlabel("n")
            ax.set_title(title)
            ax.legend(fontsize=6)
        if axes[2].get_lines():  # the line styles of the empirical panels, in grey, beside the per-network colours
            styles = [("o-", "per-pair mean"), ("x--", "rank-one term"), (":", "Monte-Carlo floor")]
            if "ck_error_empirical_per_pair_gaussian_law" in sub and np.isfinite(sub["ck_error_empirical_per_pair_gaussian_law"]).any():
                styles.insert(2, ("^-.", "per-pair, as if Gaussian weights"))
            _style_legend(axes[2], styles)
        if axes[3].get_lines():
            styles = [(style, label) for var, style, label in (
                ("ntk_error_empirical_per_pair", "o-", "per-pair mean"),
                ("ntk_error_empirical_per_pair_gaussian_law", "^-.", "per-pair, as if Gaussian weights"))
                if var in sub and np.isfinite(sub[var]).any()]
            _style_legend(axes[3], [*styles, ("x--", "infinite width"), (":", "Monte-Carlo floor")])
        axes[0].set_ylabel("relative spectral-norm error")
        fig.suptitle(f"W {key['weights']} · {key['dataset']}")
        fig.tight_layout()
        name = f"deep_ck_errors-{key['weights']}-{key['dataset']}"
        caption = (
            f"Relative spectral-norm errors against n for deep random MLPs on {key['dataset']} (weights {key['weights']}), "
            "last layer of each network. Left: Gu+22 CK linear equivalent (seed eq. 21 corrected; formula sheet sec. 5) "
            "against the exact infinite-width CK (Gaussian recursion); solid with the data epsilon_i = ||x_i||^2 - tau^2, "
            "dashed with V = [J/sqrt(p), psi]. Middle: the NTK equivalent (beta recursion) against the exact NTK "
            "(seed eq. 22). Third: the seed-mean empirical CK against the exact CK plus a finite-width term at each width: "
            "solid, the entry-by-entry first-order mean E K_l - K_inf,l (rmtbench.theory.finite_width, where computed); "
            "crosses dashed, the rank-one term r_l(11^T - I) (pitfall P12); for non-Gaussian weights, triangles dash-dotted, "
            "the entry-by-entry mean as if the weights were Gaussian (solid adds each layer's weight-kurtosis term); "
            "the Monte-Carlo floor (two halves of the seeds) dotted. Right: the seed-mean empirical NTK of the network "
            "(read-out included) against the exact infinite-width NTK plus its entry-by-entry first-order mean "
            "(rmtbench.theory.finite_width_ntk, with the weight-kurtosis terms), solid; for non-Gaussian weights, "
            "triangles dash-dotted, the same as if the weights were Gaussian; crosses dashed, the infinite-width NTK "
            "alone; dotted, the floor. "
            "Legends give the fitted rates n^slope."
        )
        paths.append(save_figure(fig, outdir, name, caption))
    return paths


def _ntk_errors(ax: Any, cell: Any, ns: np.ndarray, color: str, shade: float, label: str) -> None:
    """One network's empirical NTK errors against n: per-pair mean (o-, or ^-. as if Gaussian weights), infinite
    width (x--; labelled when there is no per-pair line) and the Monte-Carlo floor (:)."""
    y = cell["ntk_error_empirical"].values.astype(float) if "ntk_error_empirical" in cell else np.full(ns.shape, np.nan)
    if not np.isfinite(y).any():
        return
    labelled = False
    for var, style in (("ntk_error_empirical_per_pair", "o-"), ("ntk_error_empirical_per_pair_gaussian_law", "^-.")):
        pair = cell[var].values.astype(float) if var in cell else np.full(ns.shape, np.nan)
        if np.isfinite(pair).any():
            ax.plot(ns, pair, style, color=color, ms=3.5, alpha=shade, label=f"{label}{rate_label(ns, pair)}")
            labelled = True
    ax.plot(ns, y, "x--", color=color, ms=3.5, alpha=0.5 * shade if labelled else shade,
            label=None if labelled else f"{label}, infinite width{rate_label(ns, y)}")
    ax.plot(ns, cell["ntk_mc_floor"].values.astype(float), ":", color=color, alpha=0.8)


def _style_legend(ax: Any, styles: list[tuple[str, str]]) -> None:
    """The line styles of a panel, in grey, below it (the per-network legend stays inside)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="0.45", marker=style[0] if style[0] in "ox^" else None, ls=style.lstrip("ox^"),
                      ms=3.5, label=label) for style, label in styles]
    ax.add_artist(ax.legend(fontsize=6))
    ax.legend(handles=handles, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)


def fluctuation_figures(ds: Any, outdir: Path) -> list[Path]:
    """Measured over first-order Σ_ij Var K_ℓ,ij against the layer's width, one panel per layer, and the network's
    NTK (Gaussian weights) in a last panel."""
    from rmtbench.plots import COLORS, iterate_panels, log_axis, pyplot, save_figure

    if "ck_fluctuation_predicted" not in ds or "ck_fluctuation" not in ds:
        return []
    plt = pyplot()
    paths = []

    def measured_over(sub: Any, measured: str, predicted: str) -> tuple[Any, Any]:
        draws = sub[measured]
        sem = draws.std("draw_pair", ddof=1) / np.sqrt(draws.count("draw_pair"))
        return draws.mean("draw_pair") / sub[predicted], sem / sub[predicted]

    for key, sub in iterate_panels(ds, ["weights", "dataset"]):
        ratio, sem = measured_over(sub, "ck_fluctuation", "ck_fluctuation_predicted")
        as_gaussian = (sub["ck_fluctuation"].mean("draw_pair") / sub["ck_fluctuation_predicted_gaussian_law"]
                       if "ck_fluctuation_predicted_gaussian_law" in sub else None)  # non-Gaussian laws only
        last = sub["layer"].values[-1]
        panels = [(f"layer {layer}", f"width d_{layer}", ratio.sel(layer=layer), sem.sel(layer=layer),
                   None if as_gaussian is None else as_gaussian.sel(layer=layer), sub["width"].sel(layer=layer))
                  for layer in sub["layer"].values if np.isfinite(ratio.sel(layer=layer).values).any()]
        if "ntk_fluctuation" in sub and ("ntk_fluctuation_predicted" in sub
                                         or "ntk_fluctuation_predicted_gaussian_law" in sub):
            if "ntk_fluctuation_predicted" in sub:
                ntk_ratio, ntk_sem = measured_over(sub, "ntk_fluctuation", "ntk_fluctuation_predicted")
            else:  # only non-Gaussian laws in the sweep: the as-if-Gaussian points alone
                ntk_ratio = ntk_sem = sub["ntk_fluctuation"].mean("draw_pair") * np.nan
            ntk_gaussian = (sub["ntk_fluctuation"].mean("draw_pair") / sub["ntk_fluctuation_predicted_gaussian_law"]
                            if "ntk_fluctuation_predicted_gaussian_law" in sub else None)  # non-Gaussian laws only
            if np.isfinite(ntk_ratio.values).any() or (ntk_gaussian is not None and np.isfinite(ntk_gaussian.values).any()):
                panels.append(("network NTK", f"width d_{last}", ntk_ratio, ntk_sem, ntk_gaussian,
                               sub["width"].sel(layer=last)))
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False, sharey=True)
        for ax, (title, xlabel, r, e_all, g_all, w_all) in zip(axes[0], panels):
            for i, acts in enumerate(sub["activations"].values):
                for j, n in enumerate(sub["n"].values):
                    cell = dict(activations=acts, n=n)
                    y, e = r.sel(cell).values.astype(float), e_all.sel(cell).values.astype(float)
                    width = w_all.sel(cell).values.astype(float)
                    ok = np.isfinite(y) & np.isfinite(width)
                    if ok.any():
                        bars = 2 * e[ok] if np.isfinite(e[ok]).all() else None  # one pair: no standard error, no bars
                        ax.errorbar(width[ok], y[ok], yerr=bars, fmt="os^v"[j % 4] + "-",
                                    color=COLORS[i % len(COLORS)], ms=3.5, capsize=2, label=f"{acts}, n={n}")
                    g = None if g_all is None else g_all.sel(cell).values.astype(float)
                    shown = None if g is None else np.isfinite(g) & np.isfinite(width)
                    if shown is not None and shown.any():
                        ax.plot(width[shown], g[shown], "os^v"[j % 4] + "--", color=COLORS[i % len(COLORS)], ms=3.5,
                                mfc="none", lw=0.8, label=f"{acts}, n={n}, as if Gaussian")
            ax.axhline(1.0, color="k", lw=0.8, ls=":")
            log_axis(ax, "x")
            ax.set_xlabel(xlabel)
            ax.set_title(title)
        axes[0][0].set_ylabel("measured / first-order")
        axes[0][-1].legend(fontsize=6)
        fig.suptitle(f"CK and NTK fluctuations E||K - E K||_F^2 · W {key['weights']} · {key['dataset']}", y=1.03)
        fig.tight_layout()
        caption = (
            f"One draw's fluctuation of the per-layer conjugate kernel of deep random MLPs on {key['dataset']} (weights "
            f"{key['weights']}): the total variance of the CK entries, sum_ij Var K_l,ij = E||K_l - E K_l||_F^2, measured "
            "as the mean of ||K_2k - K_2k+1||_F^2 / 2 over independent pairs of draws, divided by its first-order value "
            "in 1/d (rmtbench.theory.finite_width: the covariance of the per-pair expansion, exact at layer 1), against "
            "the layer's width; bars are two standard errors over the pairs (none with a single pair). After layer 1 the first-order value has a "
            "relative error of order 1/d (the next order is not computed), so the points approach 1 like 1/d. For a "
            "non-Gaussian first layer the first-order value includes its kurtosis term (the data's localisation, which "
            "does not fall with d); the open markers on dashed lines divide by the value as if the weights were Gaussian. "
            "The last panel is the network's NTK, with its read-out drawn in each draw, against "
            "rmtbench.theory.finite_width_ntk.finite_width_ntk_variances (the weights' part and the read-out's own), "
            "with the first layer's kurtosis term for non-Gaussian weights, and open markers as for the CK."
        )
        paths.append(save_figure(fig, outdir, f"deep_ck_fluctuations-{key['weights']}-{key['dataset']}", caption))
    return paths


def ratio_figures(ds: Any, outdir: Path) -> list[Path]:
    """alpha_{l,2}/alpha_{l,1}, alpha_{l,3}/alpha_{l,1} and the linear share against depth."""
    from rmtbench.plots import COLORS, legend_below, pyplot, save_figure

    if "ratio_alpha" not in ds:
        return []
    plt = pyplot()
    ratio = ds["ratio_alpha"]
    ratio = ratio.isel({d: 0 for d in ratio.dims if d not in ("ratio_activation", "depth", "alpha_k")})
    tau0 = ds["tau0"]
    tau0 = float(tau0.isel({d: 0 for d in tau0.dims}).values) if tau0.ndim else float(tau0)
    depth = ratio["depth"].values
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.3))
    styles = {"relu-like": "-", "even": ":", "odd": "--"}
    for i, act in enumerate(ratio["ratio_activation"].values):
        a = ratio.sel(ratio_activation=act).values  # (depth, 4)
        family = activation_family(str(act))
        color, style = COLORS[i % len(COLORS)], styles[family]
        with np.errstate(divide="ignore", invalid="ignore"):
            r2, r3 = a[:, 1] / a[:, 0], a[:, 2] / a[:, 0]
            share = a[:, 0] / (a[:, 0] + a[:, 1] + a[:, 2])
        finite = np.abs(a[:, 0]) > 1e-14
        label = f"{act} ({family})"
        axes[0].plot(depth[finite], r2[finite], style, marker="o", ms=3, color=color, label=label)
        axes[1].plot(depth[finite], r3[finite], style, marker="o", ms=3, color=color)
        axes[2].plot(depth, share, style, marker="o", ms=3, color=color)
    axes[0].set_title(r"$\alpha_{\ell,2}/\alpha_{\ell,1}$")
    axes[1].set_title(r"$\alpha_{\ell,3}/\alpha_{\ell,1}$")
    axes[2].set_title(r"linear share $\alpha_{\ell,1}/(\alpha_{\ell,1}+\alpha_{\ell,2}+\alpha_{\ell,3})$")
    for ax in axes[:2]:
        ax.set_yscale("symlog", linthresh=1e-3)
    for ax in axes:
        ax.set_xlabel(r"depth $\ell$")
    fig.suptitle(rf"Deeper nets are stronger nonlinear feature extractors ($\tau_0$ = {tau0:.3f})", y=1.02)
    legend_below(fig, axes[0], ncol=4)
    caption = (
        "Gu+22 coefficients of networks repeating one activation at every layer, against depth l (formula sheet "
        f"sec. 5, corrected; tau_0 = {tau0:.3f} from the data). Left and middle: alpha_{{l,2}}/alpha_{{l,1}} and "
        "alpha_{l,3}/alpha_{l,1}, non-decreasing in depth (seed eq. 21 remark with the index corrected, pitfall P14); "
        "they are constant (zero) for odd activations and undefined for even ones (alpha_{l,1} = 0, not 1 as the slide "
        "says), which are therefore absent there. Right: the share of the linear term, 0 for even activations, 1 for "
        "odd ones (an all-odd network is linear kernel plus identity) and decreasing for relu-like ones."
    )
    return [save_figure(fig, outdir, "deep_ck_alpha_ratios", caption)]
