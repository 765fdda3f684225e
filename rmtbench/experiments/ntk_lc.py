"""NTK-LC (Gu+22): accuracy against memory of compressed networks with the original's NTK equivalent.

Seed slides "Fully-connected deep nets: CK, NTK, and beyond" and the NTK-LC figure; formula sheet
sections 4.5 and 5. Per cell (data set, hidden width d; depth L hidden layers of width d each) and
per seed, eight networks of the same widths are built and their read-out trained with the same
optimiser and budget (Adam on softmax cross-entropy; hidden weights fixed, as in Gu+22's code,
:mod:`rmtbench.train`):

``original``            Gaussian dense weights (float32), the original activation (float32 values);
``ntk_lc_eps<e>``        sparse ternary weights of sparsity e, matched quantised activations (:mod:`rmtbench.ntk_lc`);
``ntk_lc_noquant``       sparse ternary weights of sparsity ``noquant_eps``, original activations;
``magnitude_pruning``    the original's weights with the smallest |W| zeroed to sparsity ``noquant_eps``;
``uniform_sparse``       the original's weights with a uniformly random 80% (``uniform_sparsity``) zeroed;
``heuristic_binary``     sparse ternary weights (sparsity max eps), activation 1{t<−1} + 1{t>1} everywhere.

Pruned Gaussian weights are rescaled to unit variance so every network sees the nominal scales τ_ℓ.
Memory counts the hidden weights as stored (float32 dense; float32 values + uint16 column indices
for pruned float matrices; :class:`rmtbench.compact.TernaryMatrix` bytes for ternary) plus the
float32 read-out, and the activations as bits per stored value times the hidden units.
The empirical NTK (all parameters, surrogate derivatives for steps) of the original and of the
sparsest NTK-LC net is measured at initialisation and after training on ``ntk_samples`` test points.
The theory is the matching itself: per-layer coefficients of both networks (``rmtbench.ntk_lc``).
"""
from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rmtbench.canonical import canonical_json, short_hash
from rmtbench.experiments.base import Cell, Experiment, RunContext
from rmtbench.experiments.common import ACTIVATION, DATASET, N_TEST, SEEDS, SIZE, cell_data, data_key, list_of

EPS = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}


@functools.lru_cache(maxsize=64)
def _matching_error(activation: str, depth: int) -> str | None:
    """Why NTK-LC cannot match ``depth`` layers of ``activation`` (canonical JSON) at τ0 = 1; None if it can.

    τ0 = 1 is the scale the data sets are normalised to (``mean ||x_i||² = 1``). An odd hidden φ and a
    step as the original fail at every scale; other failures may depend on it.
    """
    from rmtbench.ntk_lc import match_network

    try:
        match_network([json.loads(activation)] * depth, tau0=1.0)
    except (ValueError, RuntimeError) as err:
        return str(err)
    return None


def _tau0(X: np.ndarray) -> float:
    """τ_0 estimated from the training columns: sqrt(mean ‖x_i‖²) (formula sheet P1)."""
    return float(np.sqrt(np.mean(np.einsum("ij,ij->j", X, X))))


def method_names(eps: list[float]) -> list[str]:
    """The methods of one cell, in plotting order."""
    return ["original", *[f"ntk_lc_eps{e:g}" for e in eps], "ntk_lc_noquant", "magnitude_pruning", "uniform_sparse",
            "heuristic_binary"]


def _float_sparse_bits(W: np.ndarray) -> int:
    nnz = int(np.count_nonzero(W))
    return nnz * (32 + 16) + 32 * (W.shape[0] + 1)


def build_networks(*, p: int, width: int, depth: int, classes: int, activation: Any, eps: list[float],
                   noquant_eps: float, uniform_sparsity: float, tau0: float, root_seed: int,
                   key: tuple[Any, ...]) -> dict[str, tuple[Any, int, int]]:
    """{method: (MLP, weight_bits, activation_bits_per_sample)} for one seed (module docstring)."""
    from rmtbench.activations import get_activation
    from rmtbench.compact import TernaryMatrix
    from rmtbench.deepnet import centring_constants
    from rmtbench.ntk_lc import heuristic_binary, match_network, step_activation
    from rmtbench.rng import generator
    from rmtbench.train import MLP
    from rmtbench.weights import WeightLaw, weight_rows

    acts = [get_activation(activation)] * depth
    fan = [p] + [width] * depth
    hidden_units = width * depth
    readout = weight_rows(WeightLaw("gaussian"), root_seed=root_seed, key=(*key, "readout"), start=0, stop=classes,
                          columns=width)
    readout_bits = 32 * (classes * width + classes)

    def net(weights: list[np.ndarray], activations: list[Any], surrogates: list[Any] | None = None) -> Any:
        masks = [(W != 0).astype(float) if np.any(W == 0) else None for W in weights]
        return MLP(weights=weights, activations=list(activations), shifts=list(centring_constants(activations, tau0=tau0)),
                   readout=readout.copy(), bias=np.zeros(classes), surrogates=surrogates, masks=masks)

    def draw(law: WeightLaw, tag: str) -> list[np.ndarray]:
        return [weight_rows(law, root_seed=root_seed, key=(*key, tag, "layer", l), start=0, stop=fan[l], columns=fan[l - 1])
                for l in range(1, depth + 1)]

    def ternary_bits(weights: list[np.ndarray]) -> int:
        return sum(8 * TernaryMatrix.from_dense(W).nbytes for W in weights)

    gauss = draw(WeightLaw("gaussian"), "gaussian")
    out: dict[str, tuple[Any, int, int]] = {
        "original": (net(gauss, acts), 32 * sum(W.size for W in gauss) + readout_bits, 32 * hidden_units)}
    matched = match_network(acts, tau0=tau0)
    for e in eps:
        ternary = draw(WeightLaw("ternary", eps=float(e)), f"ternary-{e:g}")
        bits = sum(b * width for b in matched.activation_bits)
        out[f"ntk_lc_eps{e:g}"] = (net(ternary, matched.compressed_activations, surrogates=acts),
                                   ternary_bits(ternary) + readout_bits, bits)
    ternary = draw(WeightLaw("ternary", eps=float(noquant_eps)), f"ternary-{noquant_eps:g}")
    out["ntk_lc_noquant"] = (net(ternary, acts), ternary_bits(ternary) + readout_bits, 32 * hidden_units)
    pruned = []
    for W in gauss:
        cut = np.quantile(np.abs(W), noquant_eps)
        Wp = np.where(np.abs(W) > cut, W, 0.0)
        pruned.append(Wp / math.sqrt(np.mean(Wp**2)))
    out["magnitude_pruning"] = (net(pruned, acts), sum(_float_sparse_bits(W) for W in pruned) + readout_bits,
                                32 * hidden_units)
    uniform = []
    for l, W in enumerate(gauss, start=1):
        keep = generator(root_seed, *key, "uniform_mask", l).random(W.shape) >= uniform_sparsity
        uniform.append(np.where(keep, W, 0.0) / math.sqrt(1.0 - uniform_sparsity))
    out["uniform_sparse"] = (net(uniform, acts), sum(_float_sparse_bits(W) for W in uniform) + readout_bits,
                             32 * hidden_units)
    e_max = max(eps)
    ternary = draw(WeightLaw("ternary", eps=float(e_max)), f"ternary-{e_max:g}")
    binary = [step_activation(heuristic_binary())] * depth
    out["heuristic_binary"] = (net(ternary, binary, surrogates=acts), ternary_bits(ternary) + readout_bits, hidden_units)
    return out


def _centred_rel(A: np.ndarray, B: np.ndarray) -> float:
    """‖P(A − B)P‖_F / ‖PBP‖_F with P = I − 11ᵀ/n (constant directions removed, pitfall P11)."""
    def centre(K: np.ndarray) -> np.ndarray:
        return K - K.mean(axis=0, keepdims=True) - K.mean(axis=1, keepdims=True) + K.mean()
    return float(np.linalg.norm(centre(A - B)) / np.linalg.norm(centre(B)))


class NTKLossless(Experiment):
    """NTK-LC compression (Gu+22): test accuracy against memory, with heuristic baselines."""

    kind = "ntk_lc"
    description = "NTK-LC (Gu+22): sparse ternary weights + matched quantised activations vs original and heuristic baselines."
    axes = ("activation", "dataset", "width")
    uses_dask = False
    grid_schema = {
        "activation": list_of(ACTIVATION, "Activation of every hidden layer of the original network."),
        "dataset": list_of(DATASET, "Data sets (class labels are the targets)."),
        "width": list_of(SIZE, "Hidden width d of every hidden layer (memory varies with it)."),
    }
    options_schema = {
        "seeds": SEEDS,
        "n": {"type": "integer", "minimum": 2, "default": 2000, "description": "Training samples."},
        "n_test": N_TEST,
        "depth": {"type": "integer", "minimum": 1, "default": 2, "description": "Number of hidden layers L."},
        "eps": list_of(EPS, "Sparsities of the NTK-LC ternary weights.", default=[0.0, 0.5, 0.9]),
        "noquant_eps": {**EPS, "default": 0.9, "description": "Sparsity of NTK-LC without activation quantisation and of magnitude pruning."},
        "uniform_sparsity": {**EPS, "default": 0.8, "description": "Fraction of weights zeroed by the heuristic uniform sparsification."},
        "epochs": {"type": "integer", "minimum": 1, "default": 20, "description": "Training epochs (same budget for every network)."},
        "lr": {"type": "number", "exclusiveMinimum": 0, "default": 0.01, "description": "Adam learning rate."},
        "batch_size": {"type": "integer", "minimum": 1, "default": 128, "description": "Minibatch size."},
        "ntk_samples": {"type": "integer", "minimum": 0, "default": 128, "description": "Test points of the empirical NTK comparison (0 skips it)."},
    }

    # -- config -----------------------------------------------------------------------------------
    def check(self, point: Mapping[str, Any], options: Mapping[str, Any], where: str) -> None:
        from rmtbench.config import ConfigError

        depth = int(options.get("depth", 2))
        error = _matching_error(canonical_json(point["activation"]), depth)
        if error:
            raise ConfigError(f"config key '{where}.grid.activation': {point['activation']!r} in all {depth} layers "
                              f"cannot be matched at input scale τ0 = 1: {error}")

    def theory_key(self, cell: Cell) -> str:
        return short_hash({"data": data_key(cell), "activation": cell["activation"], "depth": cell["depth"],
                           "seed": cell.root_seed})

    def resource_estimate(self, cells: list[Cell], *, step: str) -> dict[str, float]:
        """Features of every layer of each trained network (no n-by-n matrix); the theory is per-layer scalars."""
        from rmtbench.resources import BYTES, FLOPS_PER_SECOND, input_dim

        if step != "simulate":
            return {"threads": 1, "memory": 100e6, "seconds": 30.0}
        cell = cells[0]
        n, n_test, width, depth = int(cell["n"]), int(cell["n_test"]), int(cell["width"]), int(cell["depth"])
        m, p, classes = n + n_test, input_dim(cell), 10
        networks = 5 + len(cell["eps"])  # original, NTK-LC per eps, without quantisation, 3 heuristic baselines
        memory = BYTES * (p * m + 4 * depth * width * m + 8 * (p * width + depth * width * width) + 4 * int(cell["ntk_samples"]) ** 2)
        forward = 2 * m * (p * width + (depth - 1) * width * width)
        readout = 6 * int(cell["epochs"]) * n * width * classes
        flops = int(cell["seeds"]) * networks * (forward + readout)
        return {"threads": 1, "memory": float(memory), "seconds": flops / FLOPS_PER_SECOND}

    def simulate(self, cell: Cell, ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.store import provenance
        from rmtbench.train import accuracy, empirical_ntk, train

        data = cell_data(cell, ctx)
        X, Xt = data.X, data.X_test
        labels, labels_t = np.asarray(data.labels, np.int64), np.asarray(data.labels_test, np.int64)
        classes = int(max(labels.max(), labels_t.max()) + 1)
        eps = [float(e) for e in cell["eps"]]
        methods = method_names(eps)
        seeds = int(cell["seeds"])
        acc = np.full((seeds, len(methods)), np.nan)
        wbits = np.zeros((seeds, len(methods)))
        abits = np.zeros((seeds, len(methods)))
        ntk_methods = ["original", f"ntk_lc_eps{max(eps):g}"]
        moved = np.full((seeds, 2), np.nan)
        gap = np.full((seeds, 2), np.nan)
        m_ntk = min(int(cell["ntk_samples"]), Xt.shape[1])
        tau0 = _tau0(X)
        for s in range(seeds):
            key = ("ntk_lc", data_key(cell), str(cell["activation"]), int(cell["width"]), s)
            nets = build_networks(p=X.shape[0], width=int(cell["width"]), depth=int(cell["depth"]), classes=classes,
                                  activation=cell["activation"], eps=eps, noquant_eps=float(cell["noquant_eps"]),
                                  uniform_sparsity=float(cell["uniform_sparsity"]), tau0=tau0,
                                  root_seed=cell.root_seed, key=key)
            kernels: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for j, name in enumerate(methods):
                net, wb, ab = nets[name]
                before = empirical_ntk(net, Xt[:, :m_ntk]) if (m_ntk and name in ntk_methods) else None
                train(net, X, labels, trainable="readout", epochs=int(cell["epochs"]), lr=float(cell["lr"]),
                      batch_size=int(cell["batch_size"]), root_seed=cell.root_seed, key=(*key, "train"))
                acc[s, j], wbits[s, j], abits[s, j] = accuracy(net, Xt, labels_t), wb, ab
                if before is not None:
                    kernels[name] = (before, empirical_ntk(net, Xt[:, :m_ntk]))
            if m_ntk:
                for i, name in enumerate(ntk_methods):
                    moved[s, i] = _centred_rel(kernels[name][1], kernels[name][0])
                gap[s, 0] = _centred_rel(kernels[ntk_methods[1]][0], kernels["original"][0])
                gap[s, 1] = _centred_rel(kernels[ntk_methods[1]][1], kernels["original"][1])
        return xr.Dataset(
            {
                "accuracy": (("seed", "method"), acc, {"long_name": "test accuracy"}),
                "weight_bits": (("seed", "method"), wbits, {"long_name": "bits of the stored weights (hidden + float32 read-out)"}),
                "activation_bits": (("seed", "method"), abits, {"long_name": "bits of one sample's hidden activations"}),
                "ntk_moved": (("seed", "ntk_net"), moved, {"long_name": "||P(NTK_trained - NTK_init)P||_F / ||P NTK_init P||_F"}),
                "ntk_gap": (("seed", "stage"), gap, {"long_name": "||P(NTK_compressed - NTK_original)P||_F / ||P NTK_original P||_F"}),
                "tau0": ((), tau0, {"long_name": "sqrt(mean ||x_i||^2) of the training data"}),
            },
            coords={"seed": np.arange(seeds), "method": methods, "ntk_net": ntk_methods, "stage": ["init", "trained"]},
            attrs=provenance(cell=cell.to_json(), data=data.meta),
        )

    def theory(self, cells: list[Cell], ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.ntk_lc import COEFFICIENTS, match_network
        from rmtbench.store import provenance

        first = cells[0]
        data = cell_data(first, ctx)
        depth = int(first["depth"])
        match = match_network([first["activation"]] * depth, tau0=_tau0(data.X))
        shape = (depth, len(COEFFICIENTS))
        values = {k: np.zeros(shape) for k in ("original", "compressed", "relative_mismatch")}
        for row in match.table:
            for k in values:
                values[k][row["layer"] - 1, COEFFICIENTS.index(row["coefficient"])] = row[k]
        attrs = {"source": "Gu+22 coefficient recursions, formula sheet sec. 5 (corrected form)"}
        return xr.Dataset(
            {f"coefficient_{k}": (("layer", "coefficient"), v, attrs) for k, v in values.items()},
            coords={"layer": np.arange(1, depth + 1), "coefficient": list(COEFFICIENTS)},
            attrs=provenance(cells=[c.id for c in cells], activations=[str(a) for a in match.activations],
                             steps=[m.params.to_dict() for m in match.layers]),
        )

    def compare(self, gathered: Any) -> Any:
        import pandas as pd

        rows = []
        stacked = gathered.stack(_cell=[a for a in self.axes if a in gathered.dims])
        for i in range(stacked.sizes["_cell"]):
            sub = stacked.isel(_cell=i)
            point = {a: sub[a].item() for a in self.axes if a in sub.coords}
            methods = [str(m) for m in sub["method"].values]
            acc = np.nanmean(sub["accuracy"].transpose("seed", "method").values, axis=0)
            memory = np.mean((sub["weight_bits"] + sub["activation_bits"]).transpose("seed", "method").values, axis=0)
            ref = float(acc[methods.index("original")])
            for j, m in enumerate(methods):
                rows.append({**point, "quantity": "accuracy", "method": m, "value": float(acc[j]),
                             "distance": ref - float(acc[j]), "memory_bits": float(memory[j]),
                             "note": "distance = original accuracy - this accuracy (seed means)"})
            if "coefficient_relative_mismatch" in sub:
                coeffs = [str(c) for c in sub["coefficient"].values]
                mis = np.abs(sub["coefficient_relative_mismatch"].transpose("layer", "coefficient").values)
                for group, names in (("ntk_alpha_beta", ["alpha1", "alpha2", "alpha3", "beta1", "beta2", "beta3"]),
                                     ("identity_terms", ["ck_identity", "ntk_identity"])):
                    rows.append({**point, "quantity": f"coefficients_{group}", "method": "ntk_lc",
                                 "distance": float(mis[:, [coeffs.index(c) for c in names]].max()),
                                 "note": "max over layers of |compressed - original| / |original|"})
        return pd.DataFrame(rows)

    def plot(self, gathered: Any, outdir: Path) -> list[Path]:
        from rmtbench.plots import COLORS, legend_below, log_axis, pyplot, save_figure

        plt = pyplot()
        paths = []
        colors = {"original": COLORS[1], "ntk_lc_noquant": COLORS[4], "magnitude_pruning": COLORS[5],
                  "uniform_sparse": COLORS[3], "heuristic_binary": COLORS[2]}
        markers = ["o", "s", "^", "D", "v"]
        for act in gathered["activation"].values:
            for ds in gathered["dataset"].values:
                sub = gathered.sel(activation=act, dataset=ds)
                fig, ax = plt.subplots(figsize=(6.0, 4.2))
                k = 0
                accs = sub["accuracy"].transpose("seed", "method", "width").values
                mems = (sub["weight_bits"] + sub["activation_bits"]).transpose("seed", "method", "width").values.mean(axis=0) / 8e6
                for j, m in enumerate(sub["method"].values):
                    name = str(m)
                    mean = np.nanmean(accs[:, j], axis=0)
                    err = np.nanstd(accs[:, j], axis=0, ddof=1) / math.sqrt(accs.shape[0]) if accs.shape[0] > 1 else None
                    mem = mems[j]
                    if name.startswith("ntk_lc_eps"):
                        color, marker = COLORS[0], markers[k % len(markers)]
                        k += 1
                    else:
                        color, marker = colors.get(name, COLORS[7]), "o"
                    ax.errorbar(mem, mean, yerr=err, fmt=f"{marker}-", ms=4, color=color, label=name)
                log_axis(ax, "x")
                ax.set_xlabel("memory (MB): hidden + read-out weights, plus one sample's hidden activations")
                ax.set_ylabel("test accuracy")
                ax.set_title(f"NTK-LC · {ds} · {act} hidden layers")
                legend_below(fig, ax, ncol=3)
                n, seeds = int(sub.attrs.get("n", 0) or 0), sub.sizes["seed"]
                widths = ", ".join(str(int(w)) for w in sub["width"].values)
                caption = (
                    f"Test accuracy against memory on {ds} for networks with hidden widths {widths} ({act}); read-out trained "
                    "with Adam on softmax cross-entropy, the same budget for every network, hidden weights fixed (as in Gu+22's code). "
                    "Blue: NTK-LC (Gu+22; seed slides 'Fully-connected deep nets: CK, NTK, and beyond') with sparse ternary weights "
                    "of sparsity eps and quantised activations matched so that the per-layer NTK coefficients alpha, beta "
                    "(formula sheet sec. 5) equal the original's; red: original (Gaussian float32 weights); orange: NTK-LC "
                    "without activation quantisation; brown: magnitude pruning at the same sparsity; purple: uniform "
                    "zeroing of 80% of the weights; green: binary activation 1{t<-1}+1{t>1} with the sparsest ternary weights. "
                    f"Points are seed means ({seeds} seed(s)) with standard errors."
                )
                paths.append(save_figure(fig, outdir, f"ntk_lc-{ds}-{act}", caption))
        return paths
