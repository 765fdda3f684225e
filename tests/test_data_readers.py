"""File readers and the file-based kinds (mnist, cifar10, adult), on tiny files in the exact formats."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from rmtbench.data import DataError, make_dataset, read_adult_csv, read_cifar_batch, read_csv_table, read_idx
from rmtbench.data.readers import ADULT_CATEGORIES

SEED = np.random.SeedSequence(11)

# ------------------------------------------------------------ file writers


def write_idx(path: Path, arr: np.ndarray, *, gz: bool | None = None) -> Path:
    """An IDX file: 0x0000, type byte 0x08 (ubyte), ndim, big-endian uint32 dims, data."""
    arr = np.asarray(arr, dtype=np.uint8)
    payload = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    gz = path.name.endswith(".gz") if gz is None else gz
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def _py2(o: object) -> bytes:
    """Python 2 cPickle protocol-2 opcodes (str as SHORT_BINSTRING), as in the real CIFAR batches."""
    if isinstance(o, bytes):
        return b"U" + bytes([len(o)]) + o if len(o) < 256 else b"T" + struct.pack("<i", len(o)) + o
    if isinstance(o, bool):
        return b"\x88" if o else b"\x89"
    if isinstance(o, int):
        return b"K" + bytes([o]) if 0 <= o < 256 else b"J" + struct.pack("<i", o)
    if o is None:
        return b"N"
    if isinstance(o, list):
        return b"]" + (b"(" + b"".join(map(_py2, o)) + b"e" if o else b"")
    if isinstance(o, tuple):
        return b"(" + b"".join(map(_py2, o)) + b"t"
    if isinstance(o, dict):
        return b"}(" + b"".join(_py2(k) + _py2(v) for k, v in o.items()) + b"u"
    assert isinstance(o, np.ndarray) and o.dtype == np.uint8
    dtype = b"cnumpy\ndtype\n" + _py2((b"u1", 0, 1)) + b"R" + _py2((3, b"|", None, None, None, -1, -1, 0)) + b"b"
    array = b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _py2((0,)) + _py2(b"b") + b"\x87R"
    state = b"(" + _py2(1) + _py2(o.shape) + dtype + b"\x89" + _py2(o.tobytes()) + b"t"
    return array + state + b"b"


def write_cifar_batch(path: Path, data: np.ndarray, labels: list[int], *, py2: bool = True) -> Path:
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": labels, b"data": data,
             b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}  # fmt: skip
    path.write_bytes(b"\x80\x02" + _py2(batch) + b"." if py2 else pickle.dumps(batch, protocol=4))
    return path


ADULT_ROWS = [  # lines as in the real files
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K",  # noqa: E501
    "50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, >50K",  # noqa: E501
    "54, ?, 180211, Some-college, 10, Married-civ-spouse, ?, Husband, Asian-Pac-Islander, Male, 0, 0, 60, South, >50K",
    "31, Private, 45781, Masters, 14, Never-married, Prof-specialty, Not-in-family, White, Female, 14084, 0, 50, United-States, <=50K",  # noqa: E501
]  # fmt: skip


def write_adult(folder: Path, n_rows: int = 12) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [ADULT_ROWS[i % len(ADULT_ROWS)] for i in range(n_rows)]
    (folder / "adult.data").write_text("\n".join(rows) + "\n\n")
    test = [r + "." for r in rows]  # adult.test: junk first line, labels end with '.'
    (folder / "adult.test").write_text("|1x3 Cross validator\n" + "\n".join(test) + "\n")


def write_mnist(folder: Path, *, n_train: int = 60, n_test: int = 30, gz: bool = True) -> None:
    """Tiny MNIST files. Pixel 0 = index in the file, pixel 1 = 10 * label, pixel 2 = 0 (train) / 200 (test)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ext = ".gz" if gz else ""
    for part, count, flag in (("train", n_train, 0), ("t10k", n_test, 200)):
        labels = np.arange(count) % 10
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(count)
        images[:, 0, 1] = 10 * labels
        images[:, 0, 2] = flag
        write_idx(folder / f"{part}-images-idx3-ubyte{ext}", images)
        write_idx(folder / f"{part}-labels-idx1-ubyte{ext}", labels)


# --------------------------------------------------------------------- IDX


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path: Path, name: str) -> None:
    images = np.random.default_rng(1).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    got = read_idx(write_idx(tmp_path / name, images))
    np.testing.assert_array_equal(got.array, images)
    assert got.array.dtype == np.uint8 and not got.array.flags.writeable
    assert got.sha256 == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    labels = read_idx(write_idx(tmp_path / "labels.gz", np.arange(7))).array
    np.testing.assert_array_equal(labels, np.arange(7))


def test_idx_cache_follows_the_file(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "l", np.arange(4))
    assert read_idx(path) is read_idx(path)  # parsed once per process
    write_idx(path, np.arange(6))
    os.utime(path, ns=(1, 1))  # a different mtime and size: parsed again
    assert read_idx(path).array.shape == (6,)


def test_idx_truncated_raw_and_gz(tmp_path: Path) -> None:
    raw = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28)))
    raw.write_bytes(raw.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated IDX file.*need 2368 bytes.*has 2358"):
        read_idx(raw)
    gz = write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28)))
    gz.write_bytes(gz.read_bytes()[:-12])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: corrupt or truncated gzip"):
        read_idx(gz)
    short = write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(3))
    short.write_bytes(gzip.compress(gzip.decompress(short.read_bytes())[:-1]))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: truncated"):
        read_idx(short)


def test_idx_bad_magic_missing_file_and_fake_gz(tmp_path: Path) -> None:
    bad = tmp_path / "train-labels-idx1-ubyte"
    bad.write_bytes(b"\x12\x34\x56\x78" + bytes(10))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: bad magic number 0x12345678"):
        read_idx(bad)
    with pytest.raises(DataError, match=r"nothere-idx1-ubyte: cannot read IDX"):
        read_idx(tmp_path / "nothere-idx1-ubyte")
    fake = tmp_path / "x-idx1-ubyte.gz"
    fake.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]))
    with pytest.raises(DataError, match=r"x-idx1-ubyte\.gz: expected gzip-compressed"):
        read_idx(fake)


# ------------------------------------------------------------------ CIFAR


@pytest.mark.parametrize("py2", [True, False], ids=["python2-pickle", "numpy2-pickle"])
def test_cifar_batch_round_trip(tmp_path: Path, py2: bool) -> None:
    data = np.random.default_rng(2).integers(0, 256, size=(4, 3072), dtype=np.uint8)
    batch = read_cifar_batch(write_cifar_batch(tmp_path / "data_batch_1", data, [3, 1, 4, 1], py2=py2))
    np.testing.assert_array_equal(batch.data, data)
    np.testing.assert_array_equal(batch.labels, [3, 1, 4, 1])


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # sanity: a plain unpickler would run the command
    evil = pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=4)
    path = tmp_path / "data_batch_1"
    path.write_bytes(evil)
    with pytest.raises(
        DataError, match=r"data_batch_1: not a valid CIFAR-10 python batch.*refused global (posix|os|nt)\.system"
    ):
        read_cifar_batch(path)
    assert not marker.exists()
    pickle.loads(evil)
    assert marker.exists()


def test_cifar_malformed_batches(tmp_path: Path) -> None:
    path = write_cifar_batch(tmp_path / "test_batch", np.zeros((2, 100), np.uint8), [0, 1])
    with pytest.raises(DataError, match=r"test_batch: expected a CIFAR-10 python batch.*shape \(2, 100\)"):
        read_cifar_batch(path)
    path = write_cifar_batch(tmp_path / "data_batch_2", np.zeros((2, 3072), np.uint8), [0])
    with pytest.raises(DataError, match=r"data_batch_2: .*b'labels' must be 2 ints"):
        read_cifar_batch(path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match=r"data_batch_2: corrupt CIFAR-10"):
        read_cifar_batch(path)


# -------------------------------------------------------------------- CSV


def test_csv_table(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"1,2,3\n4,5,6\n\n"))
    np.testing.assert_array_equal(read_csv_table(path, n_columns=3).values, [[1, 2, 3], [4, 5, 6]])
    (tmp_path / "f.csv").write_text("1.5,2\n3,4e1\n")
    np.testing.assert_array_equal(read_csv_table(tmp_path / "f.csv", n_columns=2).values, [[1.5, 2], [3, 40]])
    # unsigned integers take a faster reader: values bitwise those of the general (loadtxt) path
    ints = "0,255,9007199254740993\n17,0,18446744073709551616\n"
    (tmp_path / "ints.csv").write_text(ints)
    expected = np.loadtxt(io.StringIO(ints), delimiter=",")
    got = read_csv_table(tmp_path / "ints.csv", n_columns=3).values
    assert got.tobytes() == expected.tobytes() and got[0, 2] == 2.0**53
    (tmp_path / "signed.csv").write_text("-0,1\n2,3\n")
    assert np.signbit(read_csv_table(tmp_path / "signed.csv", n_columns=2).values[0, 0])
    (tmp_path / "gap.csv").write_text("1,2\n3,\n")
    with pytest.raises(DataError, match=r"gap\.csv: expected headerless numeric CSV"):
        read_csv_table(tmp_path / "gap.csv", n_columns=2)
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    with pytest.raises(DataError, match=r"ragged\.csv: .*line 2 has 2 fields"):
        read_csv_table(tmp_path / "ragged.csv", n_columns=3)
    (tmp_path / "text.csv").write_text("1,a,3\n")
    with pytest.raises(DataError, match=r"text\.csv: expected headerless numeric CSV"):
        read_csv_table(tmp_path / "text.csv", n_columns=3)


# ------------------------------------------------------------------ Adult


def test_adult_reader_handles_the_test_file_quirks(tmp_path: Path) -> None:
    write_adult(tmp_path, n_rows=4)
    train, test = read_adult_csv(tmp_path / "adult.data"), read_adult_csv(tmp_path / "adult.test")
    for table in (train, test):
        assert table.numeric.shape == (4, 6) and table.categorical.shape == (4, 8)
        np.testing.assert_array_equal(table.labels, [0, 1, 1, 0])
        np.testing.assert_array_equal(table.numeric[:, 0], [39, 50, 54, 31])
    cats = list(ADULT_CATEGORIES)
    assert train.categorical[2, cats.index("workclass")] == -1  # '?'
    assert train.categorical[2, cats.index("native-country")] == ADULT_CATEGORIES["native-country"].index("South")
    bad = tmp_path / "bad.data"
    bad.write_text(ADULT_ROWS[0] + "\n" + ADULT_ROWS[1].replace("Husband", "Spouse") + "\n")
    with pytest.raises(DataError, match=r"bad\.data: line 2: unknown value 'Spouse'"):
        read_adult_csv(bad)
    bad.write_text("39, State-gov, 77516\n")
    with pytest.raises(DataError, match=r"bad\.data: line 1 has 3 fields"):
        read_adult_csv(bad)


# --------------------------------------------------------- kinds on files


def test_mnist_kind_from_idx_files(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist")
    ds = make_dataset({"kind": "mnist", "classes": [3, 7]}, n=9, n_test=4, seed=SEED, data_dir=tmp_path)
    assert ds.X.shape == (784, 9) and ds.X_test.shape == (784, 4)
    assert np.bincount(ds.labels).tolist() == [5, 4] and np.bincount(ds.labels_test).tolist() == [2, 2]
    np.testing.assert_array_equal(ds.y, np.where(ds.labels == 1, 1.0, -1.0))  # 3 -> -1, 7 -> +1
    assert np.mean(np.sum(ds.X**2, axis=0)) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(ds.X.mean(axis=1), 0, atol=1e-12)
    raw, raw_test = ds.X * ds.meta["scale"], ds.X_test * ds.meta["scale"]  # raw pixels minus the training mean
    digit = np.array([3, 7])
    np.testing.assert_allclose(raw[1] + 10 * digit[ds.labels].mean(), 10 * digit[ds.labels], atol=1e-9)
    np.testing.assert_allclose(raw_test[1] + 10 * digit[ds.labels].mean(), 10 * digit[ds.labels_test], atol=1e-9)
    np.testing.assert_allclose(raw[2], 0, atol=1e-9)  # training samples from train-*
    np.testing.assert_allclose(raw_test[2], 200, atol=1e-9)  # test samples from t10k-*
    assert len(np.unique(np.round(raw[0], 6))) == 9  # no sample drawn twice
    files = {f["path"]: f["sha256"] for f in json.loads(json.dumps(ds.meta))["files"]}
    assert set(files) == {f"mnist/{n}-{k}-idx{d}-ubyte.gz" for n in ("train", "t10k")
                          for k, d in (("images", 3), ("labels", 1))}  # fmt: skip
    digest = hashlib.sha256((tmp_path / "mnist/train-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    assert files["mnist/train-labels-idx1-ubyte.gz"] == digest
    again = make_dataset({"kind": "mnist", "classes": [3, 7], "sha256": {"train-labels-idx1-ubyte.gz": digest}},
                         n=9, n_test=4, seed=SEED, data_dir=tmp_path)  # fmt: skip
    assert again.X.tobytes() == ds.X.tobytes() and again.X_test.tobytes() == ds.X_test.tobytes()


def test_mnist_kind_errors(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"mnist: files not found \(no data_dir was given\).*train-images-idx3-ubyte\[\.gz\]"
    ):
        make_dataset({"kind": "mnist"}, n=4, n_test=2, seed=SEED)
    write_mnist(tmp_path / "elsewhere", gz=False)
    with pytest.raises(DataError, match=r"mnist lacks train-images-idx3-ubyte, train-labels"):
        make_dataset({"kind": "mnist"}, n=4, n_test=2, seed=SEED, data_dir=tmp_path)
    spec = {"kind": "mnist", "path": "elsewhere"}
    assert make_dataset(spec, n=4, n_test=2, seed=SEED, data_dir=tmp_path).meta["files"][0]["path"] == (
        "elsewhere/train-images-idx3-ubyte"
    )
    wrong = "0" * 64
    with pytest.raises(
        DataError, match=rf"t10k-images-idx3-ubyte: sha256 mismatch: expected {wrong}, file has [0-9a-f]{{64}}"
    ):
        make_dataset({**spec, "sha256": {"t10k-images-idx3-ubyte": wrong}}, n=4, n_test=2, seed=SEED, data_dir=tmp_path)
    with pytest.raises(
        DataError, match=r"has only 6 samples of class 1, the cell asks for 7 \(n=14 split over 2 classes\)"
    ):
        make_dataset(spec, n=14, n_test=2, seed=SEED, data_dir=tmp_path)
    with pytest.raises(
        DataError,
        match=r"\(t10k-labels-idx1-ubyte\) has only 3 samples of class 1, "
        r"the cell asks for 4 \(n_test=8 split over 2 classes\)",
    ):
        make_dataset(spec, n=4, n_test=8, seed=SEED, data_dir=tmp_path)
    write_idx(tmp_path / "elsewhere" / "t10k-labels-idx1-ubyte", np.arange(29) % 10)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: 29 labels but t10k-images-idx3-ubyte has 30"):
        make_dataset(spec, n=4, n_test=2, seed=SEED, data_dir=tmp_path)


def test_cifar10_kind(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(10, 3072), dtype=np.uint8)
        write_cifar_batch(folder / name, data, list(range(10)))
    ds = make_dataset({"kind": "cifar10", "classes": [3, 5]}, n=10, n_test=2, seed=SEED, data_dir=tmp_path)
    assert ds.X.shape == (3072, 10) and ds.meta["class_names"] == ["cat", "dog"]
    assert [f["path"] for f in ds.meta["files"]][-1] == "cifar-10-batches-py/test_batch"
    gray = make_dataset({"kind": "cifar10", "classes": [3, 5], "grayscale": True}, n=10, n_test=2, seed=SEED,
                        data_dir=tmp_path)  # fmt: skip
    assert gray.X.shape == (1024, 10)
    json.dumps(gray.meta)
    assert np.mean(np.sum(gray.X**2, axis=0)) == pytest.approx(1.0)
    with pytest.raises(
        DataError, match=r"cifar10 \(data_batch_1\.\.5\) has only 5 samples of class 3, the cell asks for 6"
    ):
        make_dataset({"kind": "cifar10", "classes": [3, 5]}, n=12, n_test=2, seed=SEED, data_dir=tmp_path)
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataError, match=r"cifar-10-batches-py lacks data_batch_4.*CIFAR-10 python batches"):
        make_dataset({"kind": "cifar10"}, n=2, n_test=2, seed=SEED, data_dir=tmp_path)


def test_adult_kind(tmp_path: Path) -> None:
    write_adult(tmp_path / "adult", n_rows=16)
    ds = make_dataset({"kind": "adult"}, n=6, n_test=4, seed=SEED, data_dir=tmp_path)
    assert ds.X.shape == (103, 6) and len(ds.meta["feature_names"]) == 103
    assert ds.meta["class_names"] == ["<=50K", ">50K"]
    np.testing.assert_array_equal(ds.y, np.where(ds.labels == 1, 1.0, -1.0))  # +1 for '>50K'
    assert np.mean(np.sum(ds.X**2, axis=0)) == pytest.approx(1.0)
    assert [f["path"] for f in json.loads(json.dumps(ds.meta))["files"]] == ["adult/adult.data", "adult/adult.test"]
    # 16 rows: 8 '<=50K', 8 '>50K', of which 4 have a '?': 'drop' leaves 4 of class 1
    with pytest.raises(DataError, match=r"adult \(adult\.data\) has only 4 samples of class 1, the cell asks for 5"):
        make_dataset({"kind": "adult"}, n=10, n_test=2, seed=SEED, data_dir=tmp_path)
    kept = make_dataset({"kind": "adult", "missing": "zeros"}, n=10, n_test=2, seed=SEED, data_dir=tmp_path)
    assert kept.X.shape == (103, 10)
