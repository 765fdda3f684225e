"""GPU path in one go: correctness against the CPU code, device rates, and a paper-size cell.

Runs on a machine with one CUDA device and CuPy (it needs numpy, scipy, threadpoolctl, psutil and
CuPy; not Dask), from the repository root with ``PYTHONPATH=.``; about 2-5 minutes on one H200. It
prints one table:

1. a check cell (n = 2048, d = 8192, n_test = 512, erf and relu): :func:`rmtbench.gpu.solve_seed` on the
   device against the same code on the host (``backend="numpy"``, the logic the CPU tests cover): largest
   relative difference of eigenvalues and MSEs, required <= 1e-10;
2. the device's float64 matmul rate (CuPy, 16384^3), the reference for the Gram stage;
3. the issue's cell, n = 32768, p = 784, d = 65536, n_test = 1024, relu, one seed: Gram, eigh and ridge
   stage times, the Gram's effective rate (2dpn + 2dn^2 flops) over the matmul rate, and the total
   against the target of 30 s.

Data are Gaussian (p = 784, samples as columns, norm ~ 1) drawn here with numpy, so that rmtbench's
data layer (and its optional readers) need not be installed on the GPU machine.

Usage (see bench/README.md for the device-tool command)::

    PYTHONPATH=. python3 bench/gpu.py            # the issue's sizes
    PYTHONPATH=. python3 bench/gpu.py --quick    # n = 8192, d = 16384 for the big cell
"""
from __future__ import annotations

import time

import numpy as np

from common import Table, parser, verdict

TARGET_SECONDS = 30.0
AGREEMENT = 1e-10


def data(n: int, n_test: int, p: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((p, n)) / np.sqrt(p)
    X_test = rng.standard_normal((p, n_test)) / np.sqrt(p)
    teacher = rng.standard_normal(p)
    return X, np.sign(teacher @ X), X_test, np.sign(teacher @ X_test)


def main() -> None:
    args_p = parser(__doc__.splitlines()[0])
    args_p.add_argument("--n", type=int)
    args_p.add_argument("--d", type=int)
    args_p.add_argument("--p", type=int, default=784)
    args_p.add_argument("--n-test", type=int, default=1024)
    args_p.add_argument("--block-rows", type=int, default=8192)
    args_p.add_argument("--matmul-size", type=int, default=16384)
    args = args_p.parse_args()
    n = args.n or (8192 if args.quick else 32768)
    d = args.d or (16384 if args.quick else 65536)

    from rmtbench import gpu
    from rmtbench.empirical import RandomFeatureMap
    from rmtbench.weights import WeightLaw

    ok, name = gpu.cuda_status()
    if not ok:
        raise SystemExit(f"bench/gpu.py: {name}")
    import cupy

    free, total = cupy.cuda.runtime.memGetInfo()
    table = Table(f"gpu: rmtbench's CuPy path on {name}", ["what", "sizes", "seconds", "result"])
    table.notes.append(f"CuPy {cupy.__version__}, device memory {total / 2**30:.0f} GiB ({free / 2**30:.0f} free at start); "
                       f"block_rows = {args.block_rows}")
    gammas = np.geomspace(1e-3, 1.0, 10)

    # 1. correctness: the device against the same code on the host
    X, y, Xt, yt = data(2048, 512, args.p, 0)
    worst = 0.0
    for act in ("erf", "relu"):
        fmap = RandomFeatureMap(act, WeightLaw("gaussian"), 8192, 1, ("bench-gpu", act))
        t0 = time.perf_counter()
        host = gpu.solve_seed(fmap, X, y, Xt, yt, gammas, backend="numpy", block_rows=2048)
        t1 = time.perf_counter()
        dev = gpu.solve_seed(fmap, X, y, Xt, yt, gammas, backend="cuda", block_rows=2048)
        t2 = time.perf_counter()
        diff = max(np.max(np.abs(dev.eigenvalues - host.eigenvalues)) / np.max(np.abs(host.eigenvalues)),
                   np.max(np.abs(dev.train_mse - host.train_mse) / host.train_mse),
                   np.max(np.abs(dev.test_mse - host.test_mse) / host.test_mse))
        worst = max(worst, float(diff))
        table.add(f"check {act}: device vs host", "n=2048 d=8192 n_test=512", f"{t2 - t1:.2f} (host {t1 - t0:.2f})",
                  f"max relative difference {diff:.1e} ({verdict(diff, AGREEMENT, at_most=True)} {AGREEMENT:g})")

    # 2. the device's float64 matmul rate
    m = args.matmul_size
    A = cupy.random.standard_normal((m, m))
    B = cupy.random.standard_normal((m, m))
    A @ B
    cupy.cuda.Device().synchronize()
    reps, t0 = 3, time.perf_counter()
    for _ in range(reps):
        A @ B
    cupy.cuda.Device().synchronize()
    mm_rate = reps * 2.0 * m**3 / (time.perf_counter() - t0)
    del A, B
    cupy.get_default_memory_pool().free_all_blocks()
    table.add("float64 matmul (CuPy)", f"{m}^3", "", f"{mm_rate / 1e12:.1f} TFLOP/s")

    # 3. the cell
    X, y, Xt, yt = data(n, args.n_test, args.p, 1)
    fmap = RandomFeatureMap("relu", WeightLaw("gaussian"), d, 1, ("bench-gpu", "big"))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    res = gpu.solve_seed(fmap, X, y, Xt, yt, gammas, backend="cuda", block_rows=args.block_rows, timings=timings)
    total_s = time.perf_counter() - t0
    flops = 2.0 * d * args.p * n + 2.0 * d * n * n
    gram_rate = flops / timings["gram"]
    sizes = f"n={n} p={args.p} d={d} n_test={args.n_test}"
    table.add("cell: Gram (weights on host, syrk on device)", sizes, f"{timings['gram']:.2f}",
              f"{gram_rate / 1e12:.1f} TFLOP/s effective = {gram_rate / mm_rate:.2f} x matmul rate")
    table.add("cell: eigh(G/n) (cuSOLVER)", sizes, f"{timings['eigh']:.2f}", f"lambda in [{res.eigenvalues[0]:.2e}, {res.eigenvalues[-1]:.2e}]")
    table.add("cell: ridge, 10 gammas", sizes, f"{timings['ridge']:.2f}", f"test MSE {res.test_mse.min():.4f} .. {res.test_mse.max():.4f}")
    table.add("cell: total", sizes, f"{total_s:.2f}", f"target <= {TARGET_SECONDS:g} s: {verdict(total_s, TARGET_SECONDS, at_most=True)}")
    table.print(f"**gpu: cell n={n}, d={d} in {total_s:.1f} s (target <= {TARGET_SECONDS:g} s: "
                f"{verdict(total_s, TARGET_SECONDS, at_most=True)}); device vs host agree to {worst:.1e} "
                f"(required <= {AGREEMENT:g}: {verdict(worst, AGREEMENT, at_most=True)})**")


if __name__ == "__main__":
    main()
