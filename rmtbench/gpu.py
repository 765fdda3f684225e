"""Optional GPU path: one seed's Gram accumulation and eigendecomposition on one CUDA device (CuPy).

Selected by the config option :data:`DEVICE_OPTION` (``compute.device: cuda``; the default ``cpu`` is the
Dask path of :mod:`rmtbench.empirical`). CuPy is imported only when the GPU path is asked for; without
CuPy or without a visible CUDA device the request fails with :class:`DeviceUnavailable`, a message that
names the option and what to do.

What runs where. Weights are drawn on the host from their seed panels (:mod:`rmtbench.weights`; the
same draws as on the CPU path), a few blocks ahead in a thread pool while the device works. On the
device, per block of ``block_rows`` features: ``F = phi(W X)``, ``G += F^T F`` by ``syrk`` (half the
flops of a product), ``C += F^T phi(W X_test)``. Then ``G/n = U diag(lambda) U^T`` by ``eigh`` (cuSOLVER
``syevd``), and only ``lambda``, ``U^T y`` and ``U^T C/n`` come back to the host, where the ridge errors
for the whole gamma grid follow as in :func:`rmtbench.ridge.ridge_mse`.

Numbers. The device sums the blocks in its own order, so results are not bitwise those of the CPU path,
but agree to about ``1e-13`` relative in float64 (``1e-10`` is what :mod:`tests.test_gpu` and
``bench/gpu.py`` require). Activations are evaluated on the device when their ``phi`` accepts CuPy
arrays (numpy and scipy.special ufuncs dispatch to CuPy); otherwise on the host, block by block.

The same code runs with NumPy as its array module (``backend="numpy"``), which is how the CPU-only tests
check the logic of this path.
"""
from __future__ import annotations

import concurrent.futures
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import numpy as np

__all__ = [
    "DEVICES",
    "DEVICE_OPTION",
    "DeviceUnavailable",
    "SeedSpectrum",
    "check_device",
    "cuda_status",
    "gram_products",
    "ridge_from_projections",
    "solve_seed",
]

DEVICE_OPTION = "compute.device"
"""The config key that selects the device (``cpu`` or ``cuda``)."""
DEVICES = ("cpu", "cuda")
BLOCK_ROWS = 8192
"""Feature rows per device block: large enough for syrk to run at the device's rate (memory 2 * 8 * n * rows)."""


class DeviceUnavailable(RuntimeError):
    """The config asks for the GPU path but this machine cannot run it (no CuPy, no CUDA device)."""


def _import_cupy() -> ModuleType:
    try:
        import cupy
    except ImportError as exc:  # also raised when sys.modules['cupy'] is None
        raise DeviceUnavailable(
            f"config key '{DEVICE_OPTION}': 'cuda' needs CuPy, which is not installed ({exc}); install the wheel "
            f"matching the CUDA driver (e.g. `pip install cupy-cuda12x`) or set {DEVICE_OPTION}: cpu"
        ) from None
    return cupy


def cuda_status() -> tuple[bool, str]:
    """``(True, device name)`` when CuPy sees a CUDA device, else ``(False, why not)``; never raises."""
    try:
        cupy = _import_cupy()
    except DeviceUnavailable as exc:
        return False, str(exc)
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError without a driver
        return False, f"CuPy is installed but no CUDA device is usable: {exc}"
    if count < 1:
        return False, "CuPy is installed but sees no CUDA device"
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props.get("name", b"CUDA device")
    return True, name.decode() if isinstance(name, bytes) else str(name)


def check_device(device: str) -> str:
    """Validate the ``compute.device`` setting; for ``cuda``, check that CuPy and a device are there.

    Examples
    --------
    >>> check_device("cpu")
    'cpu'
    """
    if device not in DEVICES:
        raise ValueError(f"config key '{DEVICE_OPTION}': {device!r} is not allowed; allowed values: {', '.join(DEVICES)}")
    if device == "cuda":
        ok, why = cuda_status()
        if not ok:
            raise DeviceUnavailable(why if why.startswith("config key") else
                                    f"config key '{DEVICE_OPTION}': 'cuda' was asked for, but {why}; set {DEVICE_OPTION}: cpu")
    return device


# -- backends -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Backend:
    xp: ModuleType
    on_device: bool

    def asarray(self, a: np.ndarray) -> Any:
        return self.xp.asarray(a)

    def to_host(self, a: Any) -> np.ndarray:
        return self.xp.asnumpy(a) if self.on_device else np.asarray(a)

    def syrk_update(self, F: Any, out: Any) -> None:
        """``upper(out) += F^T F`` for ``F`` of shape (rows, n), C-ordered."""
        if self.on_device:
            cublas = getattr(self.xp, "cublas", None)
            if cublas is not None and hasattr(cublas, "syrk"):
                cublas.syrk("T", F, out=out, alpha=1.0, beta=1.0, lower=False)
            else:  # older CuPy: a full product (twice the flops)
                out += F.T @ F
            return
        from scipy.linalg.blas import dsyrk

        # F is C-contiguous (rows x n) = Fortran (n x rows); out is Fortran: accumulate in place
        dsyrk(1.0, F.T, trans=0, lower=0, c=out, beta=1.0, overwrite_c=1)

    def zeros_gram(self, n: int) -> Any:
        return self.xp.zeros((n, n), order="F" if not self.on_device else "C")

    def activation(self, phi: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``phi`` on device arrays: natively when it dispatches to the array module, else via the host."""
        if not self.on_device:
            return phi
        xp = self.xp
        probe = xp.linspace(-2.0, 2.0, 7)
        try:
            native = isinstance(phi(probe), xp.ndarray)
        except Exception:  # np.asarray on a device array, searchsorted on host tables, ...
            native = False
        if native:
            return phi
        return lambda t: xp.asarray(phi(xp.asnumpy(t)))


def _backend(name: str) -> _Backend:
    if name == "numpy":
        return _Backend(np, on_device=False)
    if name == "cuda":
        check_device("cuda")
        return _Backend(_import_cupy(), on_device=True)
    raise ValueError(f"unknown backend {name!r}; allowed: cuda, numpy")


def _symmetrise(backend: _Backend, G: Any) -> Any:
    """The symmetric matrix whose upper triangle syrk accumulated (CuPy's wrapper keeps the upper
    triangle in the array's own indexing for either memory order)."""
    xp = backend.xp
    upper = xp.triu(G)
    return upper + xp.triu(upper, 1).T


# -- the Gram of one weight draw ------------------------------------------------------------------------
def _accumulate(fmap: Any, X: np.ndarray, X_test: np.ndarray | None, *, backend: _Backend,
                block_rows: int) -> tuple[Any, Any]:
    """Unnormalised ``Phi^T Phi`` (symmetric, on the backend) and ``Phi^T Phi_test`` (or None)."""
    from rmtbench.activations import get_activation
    from rmtbench.rng import PANEL_ROWS

    if block_rows % PANEL_ROWS:
        raise ValueError(f"block_rows must be a multiple of {PANEL_ROWS}, got {block_rows}")
    xp = backend.xp
    p, n = X.shape
    Xd = backend.asarray(X)
    Td = None if X_test is None else backend.asarray(X_test)
    phi = backend.activation(get_activation(fmap.activation).phi)
    G = backend.zeros_gram(n)
    C = None if X_test is None else xp.zeros((n, X_test.shape[1]))
    starts = list(range(0, fmap.width, block_rows))
    workers = max(1, min(8, os.cpu_count() or 1))
    ahead = workers + 1  # weight blocks drawn ahead on the host while the device computes
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        draw = lambda s: pool.submit(fmap.weights, s, min(s + block_rows, fmap.width), p)
        pending = [draw(s) for s in starts[:ahead]]
        for i in range(len(starts)):
            W = backend.asarray(pending[i].result())
            pending[i] = None  # release the host copy
            if i + ahead < len(starts):
                pending.append(draw(starts[i + ahead]))
            F = phi(W @ Xd)
            F = xp.ascontiguousarray(F)
            backend.syrk_update(F, G)
            if C is not None:
                C += F.T @ phi(W @ Td)
            del F, W
    return _symmetrise(backend, G), C


def gram_products(fmap: Any, X: np.ndarray, X_test: np.ndarray | None = None, *, backend: str = "cuda",
                  block_rows: int = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray | None]:
    """``(Phi^T Phi, Phi^T Phi_test)`` of one weight draw, unnormalised, as host arrays (full symmetric Gram).

    The counterpart of :func:`rmtbench.empirical.gram_graph` (whose Gram is the upper triangle only).

    Parameters
    ----------
    fmap
        The :class:`rmtbench.empirical.RandomFeatureMap`.
    X, X_test
        Data ``(p, n)`` and test data ``(p, n_test)`` (or None).
    backend
        ``"cuda"`` (CuPy on the current device) or ``"numpy"`` (the same code on the host, for tests).
    block_rows
        Feature rows per device block (a multiple of the weight panel, 128); never changes a draw.
    """
    b = _backend(backend)
    G, C = _accumulate(fmap, np.asarray(X, dtype=np.float64), None if X_test is None else np.asarray(X_test, dtype=np.float64),
                       backend=b, block_rows=block_rows)
    return b.to_host(G), None if C is None else b.to_host(C)


@dataclass(frozen=True, eq=False)
class SeedSpectrum:
    """What :func:`solve_seed` returns: the same keys as the CPU path's per-seed result."""

    eigenvalues: np.ndarray
    train_mse: np.ndarray
    test_mse: np.ndarray
    ill_conditioned: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"eigenvalues": self.eigenvalues, "train_mse": self.train_mse, "test_mse": self.test_mse,
                "ill_conditioned": self.ill_conditioned}


def ridge_from_projections(eigvals: np.ndarray, a: np.ndarray, B: np.ndarray, y_test: np.ndarray,
                           gammas: np.ndarray) -> SeedSpectrum:
    """Ridge train/test MSE from ``lambda``, ``a = U^T y`` and ``B = U^T C`` (C the cross-Gram over n).

    The formulas of :func:`rmtbench.ridge.ridge_mse` after its projection step, so that U (n x n) never
    has to leave the device.
    """
    from rmtbench.ridge import ILL_CONDITIONED_RATIO

    g = np.atleast_1d(np.asarray(gammas, dtype=np.float64))
    lam = np.clip(np.asarray(eigvals, dtype=np.float64), 0.0, None)
    n = lam.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / (lam[:, None] + g[None, :])
        train = g**2 * np.sum((a[:, None] * inv) ** 2, axis=0) / n
        resid = y_test[:, None] - B.T @ (a[:, None] * inv)
        test = np.sum(resid**2, axis=0) / y_test.shape[0]
        ratio = (lam.min() + g) / (lam.max() + g)
    if not (np.all(np.isfinite(train)) and np.all(np.isfinite(test))):
        raise FloatingPointError(f"non-finite ridge MSE at gamma = {g}; a zero ridge needs a non-singular Gram")
    return SeedSpectrum(eigenvalues=np.asarray(eigvals), train_mse=train, test_mse=test,
                        ill_conditioned=~(ratio >= ILL_CONDITIONED_RATIO))


def solve_seed(fmap: Any, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, gammas: Any, *,
               backend: str = "cuda", block_rows: int = BLOCK_ROWS, timings: dict[str, float] | None = None) -> SeedSpectrum:
    """One seed of an ``rf_ridge`` cell on the device: Gram, ``eigh(G/n)``, ridge errors for all gammas.

    Returns the quantities of ``rmtbench.experiments.rf_ridge._solve_seed`` (eigenvalues ascending,
    train/test MSE per gamma, ill-conditioning flags). ``timings``, when given, receives the seconds of
    the stages ``gram``, ``eigh`` and ``ridge`` (device synchronised).
    """
    import time

    b = _backend(backend)
    xp = b.xp
    sync = (lambda: xp.cuda.Device().synchronize()) if b.on_device else (lambda: None)
    n = X.shape[1]
    t0 = time.perf_counter()
    G, C = _accumulate(fmap, np.asarray(X, dtype=np.float64), np.asarray(X_test, dtype=np.float64), backend=b,
                       block_rows=block_rows)
    G /= n
    C /= n
    sync()
    t1 = time.perf_counter()
    lam, U = xp.linalg.eigh(G)
    del G
    sync()
    t2 = time.perf_counter()
    a = b.to_host(U.T @ b.asarray(np.asarray(y, dtype=np.float64)))
    B = b.to_host(U.T @ C)
    result = ridge_from_projections(b.to_host(lam), a, B, np.asarray(y_test, dtype=np.float64), gammas)
    t3 = time.perf_counter()
    if timings is not None:
        timings.update(gram=t1 - t0, eigh=t2 - t1, ridge=t3 - t2)
    return result
