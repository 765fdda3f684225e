"""Memory footprint against accuracy: ternary random features vs Gaussian RF, Nyström and LP-RFF.

Seed slides "Practical consequence of the theory" and "Numerical results" after AZC22 (test MSE of
ridge regression on quantised random nets against the number of features N, against LP-RFF and
Nyström, on a census data set); formula sheet sections 4.4-4.5, pitfalls P8 and P17.

Per cell (data set, n, N) and for every method of the ``feature_maps`` option (:mod:`rmtbench.baselines`),
each seed draws the feature map, fits kernel-scale ridge regression on the ``N`` features for the
whole ``gamma`` grid (:func:`rmtbench.baselines.feature_ridge`:
``yhat = Khat(X_test, X)(Khat + gamma I)^{-1} y`` with ``Khat = Z^T Z -> K``) and records the
training and test MSE, the measured model memory (bits of the arrays kept for prediction) and the
training-feature memory.

``ternary_rf`` uses sparse ternary weights (sparsity ``eps``, stored by
:class:`rmtbench.compact.TernaryMatrix`) and the ternary activation of
:func:`rmtbench.quantize.match_ternary` matched to the target activation at the data's
``tau = sqrt(mean_i ||x_i||^2)`` (training data). Its remaining mismatch ``delta_alpha0`` enters the
kernel as ``delta_alpha0 I`` (formula sheet section 4.5), i.e. as an extra ridge. What is done with it:
the ternary features are fitted at every ``gamma`` of the grid (``test_mse``) **and** at
``gamma - delta_alpha0`` where that is positive (``test_mse_shifted``, reported at the nominal
``gamma``), which is where AZC22's claim says the ternary model should match the Gaussian one at
``gamma``.

Theory (computed from the data alone, shared by every N of a data set): LLC18's deterministic
equivalent of the test MSE of the Gaussian random features (formula sheet section 2, the machinery of
``rf_ridge``: :class:`~rmtbench.theory.equivalent.KernelSpectrum` and
:func:`~rmtbench.theory.equivalent.ridge_mse_from_spectrum` with the expected kernel K, ``d = N`` and
``gamma_LLC = N gamma / n``); the same with ``K + delta_alpha0 I`` (AZC22's prediction for the ternary
features); optionally the same with the exact Gaussian-W kernel of the matched ternary activation,
and with that kernel plus the first-order kurtosis term of the sparse ternary weights
(:mod:`rmtbench.theory.kurtosis`; NaN, with the reason in the variable's attributes, where the data are
too localised for the expansion, as UCI Adult's one-hot columns are); and the kernel-ridge limit
``N -> infinity``. Nyström and (LP-)RFF have no theory line here.

Compute: no Dask (``uses_dask = False``). A cell is dense linear algebra on a ``min(N, n)``-sized
system per method and seed (one Cholesky factorisation per ridge), multithreaded by BLAS; features are
generated in panel-aligned row blocks, so memory stays near ``2 min(N, n)^2 + n n_test`` numbers.
Figures: ``footprint-<dataset>-n<n>`` (test MSE against N, model bits and training-feature bits, at the
best ridge of the grid) and ``footprint_ridge-<dataset>-n<n>`` (one panel per ridge).
"""
from __future__ import annotations

import functools
import json
import math
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rmtbench.baselines import METHOD_PATTERN
from rmtbench.canonical import canonical_json, short_hash
from rmtbench.experiments.base import Cell, Experiment, RunContext
from rmtbench.experiments.common import ACTIVATION, DATASET, N_TEST, POSITIVE, SIZE, cell_data, data_key, list_of

DEFAULT_METHODS = ["gaussian_rf", "ternary_rf", "nystroem", "lp_rff-b1", "lp_rff-b8"]
CURVE_POINTS = 48
"""Widths N of the dense theory curves (log-spaced between the smallest and largest N of the grid)."""
METHOD_LABELS = {
    "gaussian_rf": "Gaussian RF (float64 W)",
    "ternary_rf": "ternary RF (sparse ternary W + ternary σ)",
    "nystroem": "Nyström (sklearn)",
    "rff": "RFF (float64 features)",
}


def _label(method: str) -> str:
    if method.startswith("lp_rff-b"):
        return f"LP-RFF, {method[len('lp_rff-b'):]}-bit features"
    return METHOD_LABELS.get(method, method)


@functools.lru_cache(maxsize=32)
def _ternary_problem(activation_json: str) -> str:
    """Why no ternary activation matches this activation (at tau = 1), or '' (cached: checked once per config)."""
    from rmtbench.quantize import match_ternary

    try:
        match_ternary(json.loads(activation_json), tau=1.0)
    except ValueError as err:
        return str(err)
    return ""


def data_tau(X: np.ndarray) -> float:
    """``sqrt(mean_i ||x_i||^2)`` over the columns of ``X``: the scale at which the activation is matched."""
    return float(np.sqrt(np.mean(np.einsum("ij,ij->j", X, X))))


class Footprint(Experiment):
    """Ridge test MSE against the number of features and the memory in bits, for four kinds of features."""

    kind = "footprint"
    description = ("Ridge test MSE vs number of features N and vs memory in bits: Gaussian RF, ternary RF (AZC22), "
                   "Nyström and LP-RFF, with LLC18's prediction for the Gaussian RF.")
    axes = ("dataset", "n", "n_features")
    uses_dask = False
    grid_schema = {
        "dataset": list_of(DATASET, "Data sets (the slides: a census set; here UCI Adult, kind adult, and gmm)."),
        "n": list_of(SIZE, "Training samples n."),
        "n_features": list_of({"type": "integer", "minimum": 1}, "Numbers of features N (Nyström: landmarks, at most n)."),
    }
    options_schema = {
        "feature_maps": {"type": "array", "minItems": 1, "uniqueItems": True,
                         "items": {"type": "string", "pattern": METHOD_PATTERN}, "default": DEFAULT_METHODS,
                         "description": "Feature maps compared in every cell (dimension feature_map of the results): "
                                        "gaussian_rf, ternary_rf, nystroem, rff, lp_rff-b<bits> (1 <= bits <= 16); "
                                        "see rmtbench.baselines."},
        "activation": {**ACTIVATION, "default": "relu",
                       "description": "Target activation phi of the Gaussian RF; its expected kernel is Nyström's kernel "
                                      "and the ternary activation is matched to it."},
        "eps": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.9,
                "description": "Sparsity of the ternary weights (probability of a zero entry)."},
        "seeds": {"type": "integer", "minimum": 1, "default": 2,
                  "description": "Independent draws of every feature map per cell (data stay fixed)."},
        "gamma": list_of(POSITIVE, "Ridges gamma > 0 on the kernel scale: yhat = Khat(X_test, X)(Khat + gamma I)^-1 y "
                                   "with Khat = Z^T Z -> K.", default=[1.0, 0.3, 0.1]),
        "n_test": N_TEST,
        "rff_bandwidth": {"type": "number", "exclusiveMinimum": 0, "default": 1.0,
                          "description": "sigma of the Gaussian kernel exp(-||x-x'||^2/(2 sigma^2)) of rff and lp_rff "
                                         "(data are normalised to mean ||x_i||^2 = 1)."},
        "kernel_nodes": {"type": "integer", "minimum": 8, "default": 48,
                         "description": "Gauss-Hermite nodes per dimension for kernels without closed form."},
        "ternary_kernel_theory": {"type": "boolean", "default": True,
                                  "description": "Also compute LLC18 with the exact (Gaussian-W) kernel of the matched "
                                                 "ternary activation (one more n x n kernel by quadrature and eigendecomposition), "
                                                 "and with that kernel plus the first-order kurtosis term of the sparse ternary "
                                                 "weights (pitfall P8), where the data are delocalised enough for it."},
    }

    def check(self, point: Mapping[str, Any], options: Mapping[str, Any], where: str) -> None:
        from rmtbench.config import ConfigError

        methods = options.get("feature_maps", DEFAULT_METHODS)
        if "ternary_rf" in methods:
            problem = _ternary_problem(canonical_json(options.get("activation", "relu")))
            if problem:
                raise ConfigError(f"config key '{where}.activation': ternary_rf cannot be matched to it: {problem}")

    def theory_key(self, cell: Cell) -> str:
        return short_hash({"data": data_key(cell), "activation": cell["activation"], "gamma": cell["gamma"],
                           "nodes": cell["kernel_nodes"], "ternary": cell["ternary_kernel_theory"], "seed": cell.root_seed,
                           "eps": cell["eps"]})  # the weight-kurtosis term depends on the sparsity

    def resource_estimate(self, cells: list[Cell], *, step: str) -> dict[str, float] | None:
        """One process: the smaller of the primal (N x N) and dual (n x n) systems per feature map and seed."""
        from rmtbench.resources import BLAS3_FLOPS_PER_SECOND, BYTES, input_dim

        if step != "simulate":
            return None  # the expected kernel and its eigendecomposition: the generic estimate fits
        cell = cells[0]
        n, n_test, N, p = int(cell["n"]), int(cell["n_test"]), int(cell["n_features"]), input_dim(cell)
        m, gammas, runs = n + n_test, len(cell["gamma"]), int(cell["seeds"]) * len(cell["feature_maps"])
        if N <= n:  # features formed whole, N x N system
            memory = BYTES * (3 * N * m + 2 * N * N + p * m)  # W X, phi of it and Z; the system and its factor
            flops = 2 * N * p * m + N * N * n + gammas * (N**3 / 3 + 2 * N * m)
        else:  # Z^T Z and Z^T Z_test accumulated over row blocks, n x n system
            memory = BYTES * (3 * n * n + n * n_test + 2 * 4096 * m + p * m)
            flops = 2 * N * p * m + N * n * n + 2 * N * n * n_test + gammas * (n**3 / 3 + 2 * n * n_test)
        threads = 4 if runs * flops > 1e13 else 1  # BLAS threads of the one process
        return {"threads": threads, "memory": float(memory), "seconds": runs * flops / (BLAS3_FLOPS_PER_SECOND * threads)}

    # -- empirical ---------------------------------------------------------------------------------
    def simulate(self, cell: Cell, ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.quantize import match_ternary
        from rmtbench.store import provenance

        data = cell_data(cell, ctx)
        X, X_test = data.X, data.X_test
        p, n, N = X.shape[0], X.shape[1], int(cell["n_features"])
        methods, seeds = list(cell["feature_maps"]), int(cell["seeds"])
        gammas = np.asarray(cell["gamma"], dtype=float)
        tau = data_tau(X)
        match = match_ternary(cell["activation"], tau=tau) if "ternary_rf" in methods else None
        delta = match.delta_alpha0 if match is not None else math.nan
        shifted = gammas - delta
        shape = (len(methods), seeds, gammas.size)
        test, train, test_shifted = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
        model_bits, projection_bits = np.full(shape[:2], np.nan), np.full(shape[:2], np.nan)
        feature_bits, sides, layouts = np.full(len(methods), np.nan), [""] * len(methods), {}
        for m, method in enumerate(methods):
            if method == "nystroem" and N > n:
                continue  # landmarks are training samples: at most n of them
            for seed in range(seeds):
                fmap = self._feature_map(method, cell, data, match, seed)
                report = fmap.memory()
                model_bits[m, seed], projection_bits[m, seed] = report.model_bits, report.projection_bits
                feature_bits[m] = report.training_feature_bits(n)
                extra = shifted[shifted > 0] if method == "ternary_rf" else np.empty(0)
                res = _ridge(fmap, data, np.concatenate([gammas, extra]), ctx.block_rows)
                sides[m] = res.side
                test[m, seed], train[m, seed] = res.test_mse[: gammas.size], res.train_mse[: gammas.size]
                if extra.size:
                    test_shifted[m, seed, shifted > 0] = res.test_mse[gammas.size:]
                if method == "ternary_rf":
                    layouts["ternary_rf"] = fmap.W.layout
        dims = ("feature_map", "seed", "gamma")
        return xr.Dataset(
            {
                "test_mse": (dims, test, {"long_name": "test MSE", "description": "(1/n_test)||y_test - yhat||^2 at ridge gamma"}),
                "train_mse": (dims, train, {"long_name": "training MSE", "description": "(1/n)||y - yhat||^2 at ridge gamma"}),
                "test_mse_shifted": (dims, test_shifted, {
                    "long_name": "test MSE of the ternary RF at ridge gamma - delta_alpha0",
                    "description": "NaN for other methods and where gamma <= delta_alpha0"}),
                "model_bits": (("feature_map", "seed"), model_bits, {
                    "long_name": "model memory in bits (prediction time)",
                    "description": "8 x nbytes of the stored projection arrays (measured) + 64 N for the coefficients"}),
                "projection_bits": (("feature_map", "seed"), projection_bits, {
                    "long_name": "bits of the stored projection (weights, landmarks, frequencies), measured"}),
                "training_feature_bits": (("feature_map",), feature_bits, {
                    "long_name": "bits of the n x N stored training features (n N x bits per entry)"}),
                "p": ((), p, {"long_name": "input dimension"}),
                "n_test": ((), X_test.shape[1], {"long_name": "test samples"}),
                "eps": ((), float(cell["eps"]), {"long_name": "sparsity of the ternary weights"}),
                "tau": ((), tau, {"long_name": "sqrt(mean ||x_i||^2) of the training data"}),
                "delta_alpha0": ((), delta, {"long_name": "alpha0(ternary sigma) - alpha0(phi) at tau",
                                             "source": "formula sheet sec. 4.5"}),
            },
            coords={"feature_map": methods, "seed": np.arange(seeds), "gamma": gammas},
            attrs=provenance(cell=cell.to_json(), data=data.meta, solve_side=dict(zip(methods, sides)),
                             ternary_activation=None if match is None else dict(match.spec),
                             ternary_layout=layouts.get("ternary_rf")),
        )

    @staticmethod
    def _feature_map(method: str, cell: Cell, data: Any, match: Any, seed: int) -> Any:
        from rmtbench.baselines import (
            GaussianRandomFeatures, LowPrecisionRFF, NystroemFeatures, TernaryRandomFeatures, parse_method,
        )

        family, bits = parse_method(method)
        key = ("footprint", data_key(cell), method, seed)
        N, p = int(cell["n_features"]), data.X.shape[0]
        if family == "gaussian_rf":
            return GaussianRandomFeatures(cell["activation"], width=N, p=p, root_seed=cell.root_seed, key=key)
        if family == "ternary_rf":
            return TernaryRandomFeatures(match.spec, eps=float(cell["eps"]), width=N, p=p, root_seed=cell.root_seed, key=key)
        if family == "nystroem":
            return NystroemFeatures(cell["activation"], width=N, X=data.X, root_seed=cell.root_seed, key=key,
                                    nodes=int(cell["kernel_nodes"]))
        return LowPrecisionRFF(width=N, p=p, bandwidth=float(cell["rff_bandwidth"]), bits=bits, root_seed=cell.root_seed, key=key)

    # -- theory ------------------------------------------------------------------------------------
    def theory(self, cells: list[Cell], ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.activations import get_activation
        from rmtbench.quantize import match_ternary
        from rmtbench.store import provenance
        from rmtbench.theory.equivalent import KernelSpectrum
        from rmtbench.theory.kernels import expected_kernel, expected_kernel_diag

        first = cells[0]
        data = cell_data(first, ctx)
        X, X_test, y, y_test = data.X, data.X_test, data.y, data.y_test
        n = X.shape[1]
        act = get_activation(first["activation"])
        nodes = int(first["kernel_nodes"])
        gammas = np.asarray(first["gamma"], dtype=float)
        widths = sorted({int(c["n_features"]) for c in cells})
        curve = np.unique(np.concatenate([np.geomspace(widths[0], widths[-1], CURVE_POINTS), widths])).astype(float)
        tau = data_tau(X)

        K, K_cross, K_diag = (expected_kernel(act, X, nodes=nodes), expected_kernel(act, X, X_test, nodes=nodes),
                              expected_kernel_diag(act, X_test))
        lam, U = np.linalg.eigh(K)
        gauss = KernelSpectrum.from_eigh(lam, U, y, K_cross, K_diag, y_test)
        spectra = {"": gauss}
        sources = {"": "LLC18 deterministic equivalent with the expected kernel K of phi (Gaussian W); formula sheet sec. 2"}
        skipped: dict[str, str] = {}  # variants not computed here, and why (their variables are NaN)
        try:
            match = match_ternary(act, tau=tau)
        except ValueError:  # no ternary activation matches phi at this tau (e.g. an even phi)
            match = None
        delta = math.nan if match is None else match.delta_alpha0
        if match is not None:
            spectra["_azc22"] = KernelSpectrum.from_eigh(lam + delta, U, y, K_cross, K_diag + delta, y_test)
            sources["_azc22"] = ("LLC18 with K + delta_alpha0 I: AZC22's equivalent kernel of the matched ternary features "
                                 "(formula sheet sec. 4.5)")
            if first["ternary_kernel_theory"]:
                sigma = match.activation
                K_t, K_t_cross, K_t_diag = (expected_kernel(sigma, X, nodes=nodes), expected_kernel(sigma, X, X_test, nodes=nodes),
                                            expected_kernel_diag(sigma, X_test))
                lam_t, U_t = np.linalg.eigh(K_t)
                spectra["_ternary"] = KernelSpectrum.from_eigh(lam_t, U_t, y, K_t_cross, K_t_diag, y_test)
                sources["_ternary"] = ("LLC18 with the exact Gaussian-W kernel of the matched ternary activation (no "
                                       "weight-kurtosis term, pitfall P8)")
                kurtosis = _kurtosis_spectrum(sigma, X, X_test, y, y_test, (K_t, K_t_cross, K_t_diag), tau=tau, eps=float(first["eps"]))
                if isinstance(kurtosis, str):
                    skipped["_ternary_k4"] = kurtosis
                else:
                    spectra["_ternary_k4"] = kurtosis
                sources["_ternary_k4"] = ("LLC18 with the matched ternary activation's kernel plus the first-order weight-kurtosis "
                                          "term of the sparse ternary W (pitfall P8; rmtbench.theory.kurtosis)")
        variables: dict[str, Any] = {}
        for suffix in [*spectra, *skipped]:
            if suffix in spectra:
                spectrum = spectra[suffix]
                test, train = _llc18(spectrum, widths, gammas, n)
                test_curve, _ = _llc18(spectrum, curve, gammas, n)
                limit_test, limit_train = _kernel_ridge(spectrum, gammas)
                attrs = {"source": sources[suffix]}
            else:
                test, train = np.full((len(widths), gammas.size), np.nan), np.full((len(widths), gammas.size), np.nan)
                test_curve = np.full((curve.size, gammas.size), np.nan)
                limit_test, limit_train = np.full(gammas.size, np.nan), np.full(gammas.size, np.nan)
                attrs = {"source": sources[suffix], "not_computed": skipped[suffix]}
            variables[f"test_mse_theory{suffix}"] = (("n_features", "gamma"), test, {"long_name": "test MSE, theory", **attrs})
            variables[f"train_mse_theory{suffix}"] = (("n_features", "gamma"), train, {"long_name": "training MSE, theory", **attrs})
            variables[f"test_mse_theory{suffix}_curve"] = (("n_features_curve", "gamma"), test_curve,
                                                           {"long_name": "test MSE, theory, dense grid of N", **attrs})
            variables[f"test_mse_kernel_limit{suffix}"] = (("gamma",), limit_test, {
                "long_name": "test MSE of kernel ridge regression (N -> infinity)", **attrs})
            variables[f"train_mse_kernel_limit{suffix}"] = (("gamma",), limit_train, {
                "long_name": "training MSE of kernel ridge regression (N -> infinity)", **attrs})
        return xr.Dataset(
            variables,
            coords={"n_features": widths, "gamma": gammas, "n_features_curve": curve},
            attrs=provenance(cells=[c.id for c in cells], data=data.meta, activation=act.name, tau=tau,
                             delta_alpha0=delta, ternary_activation=None if match is None else dict(match.spec)),
        )

    # -- comparison and figures --------------------------------------------------------------------
    def compare(self, gathered: Any) -> Any:
        return footprint_table(gathered)

    def plot(self, gathered: Any, outdir: Path) -> list[Path]:
        return footprint_figures(gathered, outdir) + ridge_figures(gathered, outdir)


KURTOSIS_MAX_LOCALISATION = 0.1
"""Largest ``max_i Σ_k x_ik⁴/‖x_i‖⁴`` (train and test) at which the first-order kurtosis term is computed:
the expansion's small parameter (about 3/p for delocalised data; UCI Adult's one-hot columns give 0.94)."""


def _kurtosis_spectrum(sigma: Any, X: np.ndarray, X_test: np.ndarray, y: np.ndarray, y_test: np.ndarray,
                       kernels: tuple[np.ndarray, np.ndarray, np.ndarray], *, tau: float, eps: float) -> Any:
    """The ternary kernel plus the sparse ternary weights' kurtosis term, or why it is not computed."""
    from rmtbench.theory.equivalent import KernelSpectrum
    from rmtbench.theory.kurtosis import localisation, weight_kurtosis_diag, weight_kurtosis_kernel
    from rmtbench.weights import weight_law

    spread = localisation(np.hstack([X, X_test]))
    if spread > KURTOSIS_MAX_LOCALISATION:
        return (f"data too localised for the first-order expansion: max_i sum_k x_ik^4/||x_i||^4 = {spread:.3g} > "
                f"{KURTOSIS_MAX_LOCALISATION:g}")
    kappa4 = weight_law({"law": "ternary", "eps": eps}).fourth_moment - 3.0
    K, K_cross, K_diag = kernels
    K = K + weight_kurtosis_kernel(sigma, X, tau=tau, kappa4=kappa4)
    lam, U = np.linalg.eigh(K)
    if lam[0] < 0:
        return f"the corrected kernel is not positive semi-definite (smallest eigenvalue {lam[0]:.3g})"
    test_diag = K_diag + weight_kurtosis_diag(sigma, X_test, tau=tau, kappa4=kappa4)
    return KernelSpectrum.from_eigh(lam, U, y, K_cross + weight_kurtosis_kernel(sigma, X, X_test, tau=tau, kappa4=kappa4),
                                    test_diag, y_test)


def _ridge(fmap: Any, data: Any, gammas: np.ndarray, block_rows: int) -> Any:
    from rmtbench.baselines import feature_ridge

    return feature_ridge(fmap, data.X, data.y, data.X_test, data.y_test, gammas, block_rows=block_rows)


def _llc18(spectrum: Any, widths: Any, gammas: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """LLC18 test and training MSE per width N at kernel-scale ridges gamma (gamma_LLC = N gamma / n)."""
    from rmtbench.theory.equivalent import ridge_mse_over_widths

    N = np.asarray(widths, dtype=float)
    _, train, test = ridge_mse_over_widths(spectrum, widths=N, gammas=N[:, None] * gammas[None, :] / n)
    return test, train


def _kernel_ridge(spectrum: Any, gammas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Test and training MSE of kernel ridge regression yhat = K_{X_test X}(K + gamma I)^{-1} y (the N -> infinity limit)."""
    lam, a, B, y_test = spectrum.eigvals, spectrum.y_proj, spectrum.cross_proj, spectrum.y_test
    inv = 1.0 / (lam[:, None] + gammas[None, :])
    test = np.mean((y_test[:, None] - B.T @ (a[:, None] * inv)) ** 2, axis=0)
    train = gammas**2 * np.sum((a[:, None] * inv) ** 2, axis=0) / lam.size
    return test, train


# -- comparison ---------------------------------------------------------------------------------------
THEORY_PAIRS = {
    "gaussian_rf": [("test_mse", "test_mse_theory", "LLC18 with K (Gaussian RF)")],
    "ternary_rf": [
        ("test_mse", "test_mse_theory_azc22", "LLC18 with K + delta_alpha0 I (AZC22)"),
        ("test_mse", "test_mse_theory_ternary", "LLC18 with the ternary activation's kernel"),
        ("test_mse", "test_mse_theory_ternary_k4", "LLC18 with the ternary activation's kernel + weight kurtosis (P8)"),
        ("test_mse_shifted", "test_mse_theory", "LLC18 with K at gamma (ternary fitted at gamma - delta_alpha0)"),
    ],
}


def footprint_table(gathered: Any) -> Any:
    """Theory against simulation, and the ternary RF against the Gaussian RF, per (dataset, n, N, gamma).

    Rows ``quantity`` = the empirical variable, ``reference`` = what it is compared with:
    seed mean, seed count, standard error, reference value, ``rel_error = (mean - reference)/reference`` and
    the z-score (empty below :data:`rmtbench.compare.MIN_Z_COUNT` seeds). The rows ``ternary_vs_gaussian``
    compare the seed means of the ternary RF (at ``gamma - delta_alpha0``, and at ``gamma``) with those of
    the Gaussian RF at ``gamma``; their ``sem`` combines both standard errors.
    """
    import pandas as pd

    from rmtbench.compare import seed_mean_table, xr_to_frame, z_score

    frames = []
    methods = list(gathered["feature_map"].values) if "feature_map" in gathered.dims else []
    for method, pairs in THEORY_PAIRS.items():
        if method not in methods:
            continue
        for empirical, theory, reference in pairs:
            if empirical not in gathered or theory not in gathered:
                continue
            sub = gathered[[empirical, theory]].sel({"feature_map": method}, drop=True)
            if not np.isfinite(sub[theory].values).any() or not np.isfinite(sub[empirical].values).any():
                continue
            table = seed_mean_table(sub, [(empirical, theory)])
            table.insert(1, "method", method)
            table.insert(2, "reference", reference)
            frames.append(table.dropna(subset=["mean", "theory"]))  # no reference value (not computed there): no row
    if {"gaussian_rf", "ternary_rf"} <= set(methods):
        count = gathered.sizes.get("seed", 1)

        def stats(values: Any) -> tuple[Any, Any]:
            mean = values.mean("seed")
            return mean, (values.std("seed", ddof=1) / np.sqrt(count) if count > 1 else mean * 0.0)

        gauss_mean, gauss_sem = stats(gathered["test_mse"].sel({"feature_map": "gaussian_rf"}, drop=True))
        for variable, reference in (("test_mse_shifted", "Gaussian RF at gamma (ternary at gamma - delta_alpha0)"),
                                    ("test_mse", "Gaussian RF at gamma (ternary at gamma)")):
            tern_mean, tern_sem = stats(gathered[variable].sel({"feature_map": "ternary_rf"}, drop=True))
            sem = np.sqrt(tern_sem**2 + gauss_sem**2)
            frame = xr_to_frame(tern_mean.rename("mean"), sem.rename("sem"), gauss_mean.rename("theory"))
            frame.insert(0, "quantity", f"ternary_vs_gaussian:{variable}")
            frame.insert(1, "method", "ternary_rf")
            frame.insert(2, "reference", reference)
            frame.insert(frame.columns.get_loc("mean") + 1, "count", count)
            frame["rel_error"] = (frame["mean"] - frame["theory"]) / frame["theory"]
            frame["z_score"] = z_score(frame["mean"] - frame["theory"], frame["sem"], frame["count"])
            frames.append(frame.dropna(subset=["mean", "theory"]))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


# -- figures ------------------------------------------------------------------------------------------
def _seed_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 (seeds) and its standard error (0 for one seed), NaN-aware."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (e.g. Nyström with N > n)
        mean = np.nanmean(values, axis=0)
        count = np.sum(np.isfinite(values), axis=0)
        sem = np.where(count > 1, np.nanstd(values, axis=0, ddof=1) / np.sqrt(np.maximum(count, 1)), 0.0)
    return mean, sem


def _best_gamma(sub: Any, method: str, variable: str = "test_mse") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per N: the seed-mean test MSE at the gamma minimising it, its standard error and that gamma."""
    values = sub[variable].sel({"feature_map": method}).transpose("n_features", "seed", "gamma").values
    means, sems, best = [], [], []
    for row in values:
        mean, sem = _seed_stats(row)
        if not np.isfinite(mean).any():
            means.append(np.nan), sems.append(np.nan), best.append(np.nan)
            continue
        k = int(np.nanargmin(mean))
        means.append(mean[k]), sems.append(sem[k]), best.append(float(sub["gamma"].values[k]))
    return np.array(means), np.array(sems), np.array(best)


def _method_colors(methods: list[str]) -> dict[str, str]:
    from rmtbench.plots import COLORS

    return {m: COLORS[i % len(COLORS)] for i, m in enumerate(methods)}


def _panels(gathered: Any) -> Any:
    from rmtbench.plots import iterate_panels

    for key, sub in iterate_panels(gathered, ["dataset", "n"]):
        if "test_mse" in sub and np.isfinite(sub["test_mse"].values).any():
            yield key, sub


def _sizes(sub: Any) -> tuple[int, int, int]:
    """(n, n_test, seeds) for captions."""
    n_test = _scalar(sub, "n_test")
    return int(sub["n"].values) if sub["n"].size == 1 else -1, int(n_test) if math.isfinite(n_test) else -1, int(sub.sizes.get("seed", 1))


def footprint_figures(gathered: Any, outdir: Path) -> list[Path]:
    """Test MSE against N, against model memory and against training-feature memory (best gamma of the grid)."""
    from rmtbench.plots import legend_below, log_axis, pyplot, save_figure

    plt = pyplot()
    paths = []
    for key, sub in _panels(gathered):
        methods = [str(m) for m in sub["feature_map"].values]
        colors = _method_colors(methods)
        widths = sub["n_features"].values.astype(float)
        fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.5))
        for method in methods:
            mean, sem, _ = _best_gamma(sub, method)
            ok = np.isfinite(mean)
            if not ok.any():
                continue
            model_bits, _ = _seed_stats(sub["model_bits"].sel({"feature_map": method}).transpose("seed", "n_features").values)
            feature_bits = sub["training_feature_bits"].sel({"feature_map": method}).values
            for ax, x in zip(axes, (widths, model_bits, feature_bits)):
                ax.plot(x[ok], mean[ok], "-", lw=0.7, alpha=0.45, color=colors[method])  # guide to the eye
                ax.errorbar(x[ok], mean[ok], yerr=sem[ok], fmt="o", ms=3.5, color=colors[method],
                            label=f"{_label(method)} (simulation)")
        if "test_mse_theory_curve" in sub:
            curve_n = sub["n_features_curve"].values
            p = float(np.nanmax(sub["p"].values))
            for suffix, method, style, text in (("", "gaussian_rf", "-", "LLC18, Gaussian RF"),
                                                ("_azc22", "ternary_rf", "--", "AZC22: LLC18 with K + Δα0 I")):
                name = f"test_mse_theory{suffix}_curve"
                if name not in sub or method not in methods:
                    continue
                line = np.nanmin(_first(sub[name], ("n_features_curve", "gamma")), axis=1)
                axes[0].plot(curve_n, line, style, lw=1.8, color=colors[method], alpha=0.85, label=f"{text} (theory)")
                if method == "gaussian_rf":  # its memory is exactly 64 (N p + N) bits
                    axes[1].plot(64.0 * (curve_n * p + curve_n), line, style, lw=1.8, color=colors[method], alpha=0.85)
            if "test_mse_kernel_limit" in sub:
                limit = float(np.nanmin(_first(sub["test_mse_kernel_limit"], ("gamma",))))
                for ax in axes:
                    ax.axhline(limit, color="0.4", lw=0.8, ls=":", label="kernel ridge with K (N → ∞)" if ax is axes[0] else None)
        for ax, xlabel in zip(axes, ("number of features N", "model memory (bits, prediction time)",
                                     "training-feature memory (bits)")):
            if ax is axes[0]:
                log_axis(ax, "x")
            else:
                ax.set_xscale("log")  # memory spans many decades: plain 10^k ticks
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test MSE")
        legend_below(fig, axes[0], ncol=3)
        fig.subplots_adjust(bottom=0.34, wspace=0.3)
        n, n_test, seeds = _sizes(sub)
        fig.suptitle(f"footprint · {key['dataset']} · n={key['n']}")
        name = f"footprint-{key['dataset']}-n{key['n']}"
        caption = (
            f"Ridge regression on N explicit features, {key['dataset']} data (n = {key['n']} training, n_test = {n_test} "
            f"test samples), in the style of the seed slides' 'Numerical results' after AZC22. Points: test MSE, mean over "
            f"{seeds} draws of each feature map with standard-error bars, at the ridge γ of the grid "
            f"{_grid(sub)} that minimises the seed mean (chosen on the test set: an optimistic, equal treatment of all "
            "methods). Methods (rmtbench.baselines): Gaussian random features φ(WX) with float64 W; ternary random features "
            f"(sparse ternary W, eps = {_scalar(sub, 'eps'):g}, stored compactly, and the ternary activation matched to φ's α1, α2 "
            "at the data's τ, formula sheet sec. 4.5); Nyström with φ's expected kernel (scikit-learn, landmarks ≤ n); LP-RFF "
            "(Zhang et al. 2019: random Fourier features of a Gaussian kernel, training features stochastically rounded to b "
            "bits). Left: against N. Middle: against the model memory a predictor keeps (weights/landmarks/frequencies measured "
            "as 8 × nbytes of the stored arrays, plus 64 N bits of coefficients). Right: against the memory of the stored n × N "
            "training features (64 bits per entry, 2 for ternary features, b for LP-RFF). Lines: LLC18's deterministic "
            "equivalent of the Gaussian-RF test MSE (formula sheet sec. 2, expected kernel K of the same data) and AZC22's "
            "prediction for the ternary features (LLC18 with K + Δα0 I), each minimised over the same γ grid; dotted: kernel "
            "ridge regression with K (N → ∞). The slides used a census set with n = 16000, p = 119; here UCI Adult (p = 103) "
            "and/or a Gaussian mixture."
        )
        paths.append(save_figure(fig, outdir, name, caption))
    return paths


def ridge_figures(gathered: Any, outdir: Path) -> list[Path]:
    """Per gamma: Gaussian RF against LLC18, ternary RF at gamma against AZC22, ternary RF at gamma - delta_alpha0."""
    from rmtbench.plots import legend_below, log_axis, pyplot, save_figure

    plt = pyplot()
    paths = []
    for key, sub in _panels(gathered):
        methods = [str(m) for m in sub["feature_map"].values]
        if "gaussian_rf" not in methods and "ternary_rf" not in methods:
            continue
        colors = _method_colors(methods)
        gammas = sub["gamma"].values
        widths = sub["n_features"].values.astype(float)
        fig, axes = plt.subplots(1, len(gammas), figsize=(3.6 * len(gammas), 3.3), squeeze=False)
        curve_n = sub["n_features_curve"].values if "n_features_curve" in sub.dims else None
        for ax, gamma in zip(axes[0], gammas):
            series = [("gaussian_rf", "test_mse", "o", "Gaussian RF at γ", "test_mse_theory_curve", "-", "LLC18 (K)"),
                      ("ternary_rf", "test_mse", "s", "ternary RF at γ", "test_mse_theory_azc22_curve", "--", "LLC18 (K + Δα0 I)"),
                      ("ternary_rf", "test_mse_shifted", "^", "ternary RF at γ − Δα0", None, None, None)]
            for method, variable, marker, text, theory, style, theory_text in series:
                if method not in methods:
                    continue
                values = sub[variable].sel({"feature_map": method, "gamma": gamma}).transpose("seed", "n_features").values
                mean, sem = _seed_stats(values)
                ok = np.isfinite(mean)
                if ok.any():
                    ax.errorbar(widths[ok], mean[ok], yerr=sem[ok], fmt=marker, ms=4, mfc="none" if variable == "test_mse" and method == "ternary_rf" else None,
                                color=colors[method], label=f"{text} (simulation)")
                if theory and theory in sub and curve_n is not None:
                    line = _first(sub[theory].sel(gamma=gamma), ("n_features_curve",))
                    ax.plot(curve_n, line, style, color=colors[method], alpha=0.85, label=f"{theory_text} (theory)")
            if "test_mse_theory_ternary_curve" in sub and "ternary_rf" in methods and curve_n is not None:
                line = _first(sub["test_mse_theory_ternary_curve"].sel(gamma=gamma), ("n_features_curve",))
                if np.isfinite(line).any():
                    ax.plot(curve_n, line, ":", color=colors["ternary_rf"], label="LLC18 (exact ternary-σ kernel) (theory)")
            log_axis(ax, "x")
            ax.set_title(f"γ = {gamma:g}")
            ax.set_xlabel("number of features N")
            ax.set_ylabel("test MSE")
        legend_below(fig, axes[0][0], ncol=3)
        fig.subplots_adjust(bottom=0.36, wspace=0.3)
        delta = float(np.nanmax(sub["delta_alpha0"].values)) if "delta_alpha0" in sub else math.nan
        fig.suptitle(f"ternary vs Gaussian RF per ridge · {key['dataset']} · n={key['n']} · Δα0 = {delta:.4g}")
        n, n_test, seeds = _sizes(sub)
        name = f"footprint_ridge-{key['dataset']}-n{key['n']}"
        caption = (
            f"AZC22's claim at fixed ridge, {key['dataset']} (n = {key['n']}, n_test = {n_test}): test MSE of kernel-scale ridge "
            f"regression against N, one panel per γ; points are means over {seeds} draws with standard errors. Circles: "
            "Gaussian random features with the target activation; open squares: ternary random features (sparse ternary W, "
            f"eps = {_scalar(sub, 'eps'):g}, matched ternary activation) at the same γ; triangles: the ternary features at "
            f"γ − Δα0 (Δα0 = {delta:.4g} = α0(σ) − α0(φ) at the data's τ, formula sheet sec. 4.5; shown where positive), which "
            "AZC22's equivalence K_ternary ≈ K + Δα0 I says should match the Gaussian RF at γ. Lines: LLC18 deterministic "
            "equivalents (formula sheet sec. 2) with the expected kernel K of φ (solid), with K + Δα0 I (dashed) and, where "
            "computed, with the exact Gaussian-W kernel of the ternary activation (dotted; no weight-kurtosis term, pitfall P8)."
        )
        paths.append(save_figure(fig, outdir, name, caption))
    return paths


def _first(array: Any, keep: tuple[str, ...]) -> np.ndarray:
    """Values of ``array`` with the dimensions not in ``keep`` reduced (NaN-skipping max over identical copies)."""
    extra = [d for d in array.dims if d not in keep]
    if extra:
        array = array.max(extra, skipna=True)  # theory is identical along grid axes it does not depend on
    return array.transpose(*keep).values


def _grid(sub: Any) -> str:
    return "{" + ", ".join(f"{g:g}" for g in sub["gamma"].values) + "}"


def _scalar(ds: Any, name: str) -> float:
    """A per-cell scalar of the gathered data (NaN when absent)."""
    return float(np.nanmax(ds[name].values)) if name in ds and np.isfinite(ds[name].values).any() else math.nan
