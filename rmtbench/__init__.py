"""rmtbench: random-matrix-theory predictions for random neural networks, beside their simulation.

The public names below are imported on first use (module-level ``__getattr__``), so ``import rmtbench``
stays light (no numpy, dask, xarray or scikit-learn until a name is touched) and ``snakemake -n``
stays fast. See docs/api.md.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "RandomFeatures": "rmtbench.estimators",
    "RandomFeaturesRidge": "rmtbench.estimators",
    "open_results": "rmtbench.api",
    "results_provenance": "rmtbench.api",
    "build_report": "rmtbench.report",
    "expected_kernel": "rmtbench.api",
    "expected_kernel_diag": "rmtbench.api",
    "weight_kurtosis_kernel": "rmtbench.api",
    "deep_conjugate_kernels": "rmtbench.api",
    "deep_conjugate_kernel_variances": "rmtbench.api",
    "deep_neural_tangent_kernels": "rmtbench.api",
    "deep_neural_tangent_kernel_variances": "rmtbench.api",
    "hermite_coefficients": "rmtbench.api",
    "alpha_coefficients": "rmtbench.api",
    "ridge_mse_theory": "rmtbench.api",
    "RidgeTheory": "rmtbench.api",
    "sphere_linear_equivalent": "rmtbench.api",
    "gmm_linear_equivalent": "rmtbench.api",
    "get_activation": "rmtbench.activations",
    "weight_law": "rmtbench.weights",
    "make_dataset": "rmtbench.data",
    "load_sweep": "rmtbench.config",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'rmtbench' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # cache: __getattr__ runs once per name
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:  # static analysers and IDEs see the real objects
    from rmtbench.activations import get_activation
    from rmtbench.api import (
        RidgeTheory, alpha_coefficients, deep_conjugate_kernel_variances, deep_conjugate_kernels,
        deep_neural_tangent_kernel_variances, deep_neural_tangent_kernels, expected_kernel, expected_kernel_diag, gmm_linear_equivalent,
        hermite_coefficients, open_results, results_provenance, ridge_mse_theory, sphere_linear_equivalent,
        weight_kurtosis_kernel,
    )
    from rmtbench.config import load_sweep
    from rmtbench.data import make_dataset
    from rmtbench.estimators import RandomFeatures, RandomFeaturesRidge
    from rmtbench.report import build_report
    from rmtbench.weights import weight_law
