"""Bundled data sets, their train/val/test splits, and the user .npz and idx loaders."""

import gzip
import hashlib
import os
import time

import numpy as np
import pytest

from conftest import tiny_fashion_dir, write_idx
from tfdfc import data

# The test splits of all results before validation splits existed (computed from the code of
# 0e632e4, before the change): sha256 of the test images as uint8 (0..255 for mnist5k, 0..16
# for digits) in split order, and of the int64 labels. They must never move.
MNIST5K_TEST_IMAGES = "40f926dd5d3562e1f00beb579ad42cf1a4827f2511b6106d8ff1ec4de91f0f43"
MNIST5K_TEST_LABELS = "7af26d7d69271dceded0b916545105b0305d7f2ba95bed028d2606c69954d02f"
MNIST5K_TEST_INDICES = "b0fc63bbfcc6d69cda19069913653a334883e4b6fec65875a886a8ee3e260a53"
DIGITS_TEST_IMAGES = "e7a8fa69ee9072dbb9b2dd83f10b5c1a8c4f22c9e6a20bd35f175afd20eae48b"
DIGITS_TEST_LABELS = "b4da10170d8c772d2995948b2423fce3fac96eea92468169a5ae2639a38c475c"


def _sha256(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _raw_test_images(dataset, scale):
    """The test images as the integers they were stored as, undoing the standardisation."""
    return np.rint((dataset.x_test * dataset.std + dataset.mean) * scale).astype(np.uint8)


def test_mnist5k_is_a_fixed_stratified_3500_500_1000_split():
    first, second = data.load("mnist5k"), data.load("mnist5k")
    assert first.x_train.shape == (3500, 28, 28, 1) and first.x_val.shape == (500, 28, 28, 1)
    assert first.x_test.shape == (1000, 28, 28, 1)
    assert np.bincount(first.y_train).tolist() == [350] * 10
    assert np.bincount(first.y_val).tolist() == [50] * 10
    assert np.bincount(first.y_test).tolist() == [100] * 10
    for split in data.SPLITS:
        np.testing.assert_array_equal(first.split(split)[1], second.split(split)[1])
    assert abs(float(first.x_train.mean())) < 1e-3 and abs(float(first.x_train.std()) - 1) < 1e-3


def test_mnist5k_and_digits_test_splits_are_those_of_all_earlier_results():
    mnist5k, digits = data.load("mnist5k"), data.load("digits")
    assert _sha256(_raw_test_images(mnist5k, 255)) == MNIST5K_TEST_IMAGES
    assert _sha256(mnist5k.y_test) == MNIST5K_TEST_LABELS
    assert _sha256(_raw_test_images(digits, 16)) == DIGITS_TEST_IMAGES
    assert _sha256(digits.y_test) == DIGITS_TEST_LABELS
    labels = data._mnist5k_source()[1]  # pylint: disable=protected-access
    _, _, test = data.split_indices(labels, data.VALIDATION_FRACTION["mnist5k"], 0.2)
    assert _sha256(test.astype(np.int64)) == MNIST5K_TEST_INDICES


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_splits_are_disjoint_complete_and_stratified(name):
    source = {"mnist5k": data._mnist5k_source, "digits": data._digits_source}[name]
    labels = source()[1]  # pylint: disable=protected-access
    train, val, test = data.split_indices(labels, data.VALIDATION_FRACTION[name], 0.2)
    everything = np.concatenate([train, val, test])
    assert len(everything) == len(labels) == len(np.unique(everything))  # disjoint, complete
    per_class = np.bincount(labels)
    np.testing.assert_allclose(np.bincount(labels[test]) / per_class, 0.2, atol=0.01)
    held_out = np.bincount(labels[val]) / (per_class - np.bincount(labels[test]))
    np.testing.assert_allclose(held_out, data.VALIDATION_FRACTION[name], atol=0.01)


def test_digits_shapes_and_classes():
    digits = data.load("digits")
    assert digits.input_shape == (8, 8, 1) and digits.num_classes == 10
    assert len(digits.x_train) + len(digits.x_val) + len(digits.x_test) == 1797
    assert len(digits.x_val) == 143 and len(digits.x_test) == 359


def test_split_names_the_three_splits():
    digits = data.load("digits")
    images, labels = digits.split("val")
    assert images is digits.x_val and labels is digits.y_val
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        digits.split("validation")


def _fashion_mnist_or_skip():
    path = os.path.join(data.FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        pytest.skip(f"{path} absent: apt-get install dataset-fashion-mnist")
    return data.load("fashion_mnist")


def test_fashion_mnist_is_55000_5000_10000_standardised_and_balanced():
    fashion = _fashion_mnist_or_skip()
    assert fashion.input_shape == (28, 28, 1) and fashion.num_classes == 10
    assert fashion.x_train.shape == (55000, 28, 28, 1) and fashion.x_val.shape[0] == 5000
    assert fashion.x_test.shape == (10000, 28, 28, 1) and fashion.x_train.dtype == np.float32
    assert np.bincount(fashion.y_train).tolist() == [5500] * 10
    assert np.bincount(fashion.y_val).tolist() == [500] * 10
    assert np.bincount(fashion.y_test).tolist() == [1000] * 10
    assert abs(float(fashion.x_train.mean())) < 1e-3
    assert abs(float(fashion.x_train.std()) - 1) < 1e-3
    assert 0.2 < float(fashion.mean[0]) < 0.4  # statistics of images in [0, 1]
    assert not fashion.x_train.flags.writeable  # shared through the cache


def test_fashion_mnist_is_parsed_once():
    first = _fashion_mnist_or_skip()
    start = time.perf_counter()
    assert data.load(f"fashion_mnist:{data.FASHION_MNIST_DIR}") is first
    assert time.perf_counter() - start < 0.1


def test_fashion_mnist_from_a_directory(tmp_path):
    fashion = data.load(f"fashion_mnist:{tiny_fashion_dir(tmp_path)}")
    assert fashion.x_train.shape == (110, 28, 28, 1) and fashion.x_val.shape == (10, 28, 28, 1)
    assert fashion.x_test.shape == (20, 28, 28, 1) and fashion.y_test.tolist()[:3] == [0, 1, 2]
    assert np.bincount(fashion.y_val).tolist() == [1] * 10
    assert abs(float(fashion.x_train.mean())) < 1e-3


def test_fashion_mnist_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(data.DataError, match="apt-get install dataset-fashion-mnist.*"
                                             "fashion_mnist:<dir>"):
        data.load(f"fashion_mnist:{tmp_path / 'absent'}")
    tiny_fashion_dir(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz not found"):
        data.load(f"fashion_mnist:{tmp_path}")


def _not_gzip(path):
    path.write_bytes(b"not gzip")


def _labels_magic(path):
    path.write_bytes(gzip.compress((2049).to_bytes(4, "big") + bytes(16)))


def _cut_gzip(path):
    path.write_bytes(path.read_bytes()[:-100])


def _short_data(path):
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-1]))


@pytest.mark.parametrize("damage, message", [
    (_not_gzip, "not a readable gzip"), (_labels_magic, "magic number 2051"),
    (_cut_gzip, "not a readable gzip"), (_short_data, "truncated or corrupt")])
def test_a_corrupt_idx_file_is_named(tmp_path, damage, message):
    tiny_fashion_dir(tmp_path)
    damage(tmp_path / "train-images-idx3-ubyte.gz")
    with pytest.raises(data.DataError, match=f"train-images-idx3-ubyte.gz.*{message}"):
        data.load(f"fashion_mnist:{tmp_path}")


def test_fashion_mnist_images_and_labels_must_agree(tmp_path):
    tiny_fashion_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 2049, np.zeros(7, np.uint8))
    with pytest.raises(data.DataError, match="t10k has 20 images and 7 labels"):
        data.load(f"fashion_mnist:{tmp_path}")


def test_unknown_name_is_a_clear_error():
    with pytest.raises(data.DataError, match="unknown data set 'cifar'"):
        data.load("cifar")


def _write(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_round_trip_adds_channel_axis_and_accepts_one_hot(tmp_path):
    images = np.random.rand(6, 5, 5).astype(np.float32)
    labels = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    loaded = data.load(_write(tmp_path / "a.npz", x_test=images, y_test=labels))
    assert loaded.x_test.shape == (6, 5, 5, 1)
    assert loaded.y_test.tolist() == [0, 1, 2, 0, 1, 2]
    assert len(loaded.x_train) == 0 and loaded.x_val.shape == (0, 5, 5, 1)
    assert loaded.y_val.shape == (0,) and loaded.num_classes == 3


def test_npz_with_a_validation_split(tmp_path):
    rng = np.random.default_rng(0)
    loaded = data.load(_write(tmp_path / "v.npz", x_test=rng.random((4, 5, 5)),
                              y_test=np.arange(4), x_val=rng.random((3, 5, 5, 1)),
                              y_val=np.array([0, 1, 7])))
    assert loaded.split("val")[0].shape == (3, 5, 5, 1) and loaded.y_val.tolist() == [0, 1, 7]
    assert loaded.num_classes == 8 and loaded.x_val.dtype == np.float32
    with pytest.raises(data.DataError, match="x_val without its pair"):
        data.load(_write(tmp_path / "half.npz", x_test=rng.random((4, 5, 5)),
                         y_test=np.arange(4), x_val=rng.random((3, 5, 5))))
    with pytest.raises(data.DataError, match=r"x_val images are \(6, 6, 1\)"):
        data.load(_write(tmp_path / "shape.npz", x_test=rng.random((4, 5, 5)),
                         y_test=np.arange(4), x_val=rng.random((3, 6, 6)), y_val=np.arange(3)))
    with pytest.raises(data.DataError, match="x_val has 3 images but y_val has 2"):
        data.load(_write(tmp_path / "count.npz", x_test=rng.random((4, 5, 5)),
                         y_test=np.arange(4), x_val=rng.random((3, 5, 5)), y_val=np.arange(2)))


@pytest.mark.parametrize("arrays, message", [
    (dict(x_test=np.zeros((3, 4, 4, 1))), "no array 'y_test'"),
    (dict(x_test=np.zeros((3, 4, 4, 1)), y_test=np.zeros(2, int)), "3 images but y_test has 2"),
    (dict(x_test=np.zeros((3, 4)), y_test=np.zeros(3, int)), "NHW or NHWC"),
    (dict(x_test=np.zeros((3, 4, 4)), y_test=np.zeros(3)), "integer class labels"),
    (dict(x_test=np.full((3, 4, 4), np.nan), y_test=np.zeros(3, int)), "NaN"),
])
def test_bad_npz_arrays_are_clear_errors(tmp_path, arrays, message):
    with pytest.raises(data.DataError, match=message):
        data.load(_write(tmp_path / "bad.npz", **arrays))


def test_missing_and_corrupt_npz(tmp_path):
    with pytest.raises(data.DataError, match="not found"):
        data.load(str(tmp_path / "missing.npz"))
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file")
    with pytest.raises(data.DataError, match="not a readable .npz"):
        data.load(str(corrupt))


def _cifar_like(path, train=20, test=10):
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (train, 32, 32, 3), dtype=np.uint8),
             y_train=rng.integers(0, 10, (train, 1)),
             x_test=rng.integers(0, 256, (test, 32, 32, 3), dtype=np.uint8),
             y_test=rng.integers(0, 10, (test, 1)))


def test_cifar10_npz_is_scaled_and_standardised(tmp_path):
    _cifar_like(tmp_path / "cifar.npz")
    cifar = data.load(f"cifar10:{tmp_path / 'cifar.npz'}")
    assert cifar.input_shape == (32, 32, 3) and len(cifar.y_train) + len(cifar.y_val) == 20
    np.testing.assert_allclose(cifar.x_train.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    assert 0.0 < float(cifar.mean.max()) < 1.0  # statistics of images in [0, 1]


def test_cifar10_validation_is_carved_from_train_unless_given(tmp_path):
    _cifar_like(tmp_path / "cifar.npz", train=200)
    cifar = data.load(f"cifar10:{tmp_path / 'cifar.npz'}")
    assert len(cifar.y_train) + len(cifar.y_val) == 200 and 15 <= len(cifar.y_val) <= 25
    arrays = dict(np.load(tmp_path / "cifar.npz"))
    np.savez(tmp_path / "given.npz", x_val=arrays["x_test"][:3], y_val=arrays["y_test"][:3],
             **arrays)
    given = data.load(f"cifar10:{tmp_path / 'given.npz'}")
    assert len(given.y_train) == 200 and len(given.y_val) == 3
    np.testing.assert_allclose(given.x_val, given.x_test[:3], atol=1e-6)


def test_cifar10_errors_name_the_fix(tmp_path):
    with pytest.raises(data.DataError, match="not found"):
        data.load(f"cifar10:{tmp_path / 'missing.npz'}")
    np.savez(tmp_path / "small.npz", x_train=np.zeros((2, 8, 8, 3)), y_train=np.zeros(2, int),
             x_test=np.zeros((2, 8, 8, 3)), y_test=np.zeros(2, int))
    with pytest.raises(data.DataError, match="32x32x3"):
        data.load(f"cifar10:{tmp_path / 'small.npz'}")
    with pytest.raises(data.DataError, match="tensorflow-datasets|does not hold"):
        data.load(f"cifar10:{tmp_path}")  # a directory: read through tensorflow-datasets


def test_val_suffix_evaluates_on_the_validation_split():
    """`<set>@val` puts the validation split where evaluation reads the test split, so that a
    recipe is tuned without looking at the test split."""
    full, tuning = data.load("digits"), data.load("digits@val")
    np.testing.assert_array_equal(tuning.x_test, full.x_val)
    np.testing.assert_array_equal(tuning.y_test, full.y_val)
    np.testing.assert_array_equal(tuning.x_train, full.x_train)
    assert len(tuning.y_val) == 0 and tuning.name == "digits@val"


def test_val_suffix_needs_a_validation_split(tmp_path):
    path = tmp_path / "no_val.npz"
    np.savez(path, x_train=np.zeros((4, 8, 8, 1)), y_train=np.arange(4) % 2,
             x_test=np.zeros((2, 8, 8, 1)), y_test=np.arange(2))
    with pytest.raises(data.DataError, match="no validation split"):
        data.load(f"{path}@val")
