"""Bundled data sets and the user .npz loader."""

import numpy as np
import pytest

from tfdfc import data


def test_mnist5k_is_a_fixed_stratified_4000_1000_split():
    first, second = data.load("mnist5k"), data.load("mnist5k")
    assert first.x_train.shape == (4000, 28, 28, 1) and first.x_test.shape == (1000, 28, 28, 1)
    assert np.bincount(first.y_train).tolist() == [400] * 10
    assert np.bincount(first.y_test).tolist() == [100] * 10
    np.testing.assert_array_equal(first.y_test, second.y_test)
    assert abs(float(first.x_train.mean())) < 1e-3 and abs(float(first.x_train.std()) - 1) < 1e-3


def test_digits_shapes_and_classes():
    digits = data.load("digits")
    assert digits.input_shape == (8, 8, 1) and digits.num_classes == 10
    assert len(digits.x_train) + len(digits.x_test) == 1797


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
    assert len(loaded.x_train) == 0


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
    assert cifar.input_shape == (32, 32, 3) and cifar.y_train.shape == (20,)
    np.testing.assert_allclose(cifar.x_train.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    assert 0.0 < float(cifar.mean.max()) < 1.0  # statistics of images in [0, 1]


def test_cifar10_errors_name_the_fix(tmp_path):
    with pytest.raises(data.DataError, match="not found"):
        data.load(f"cifar10:{tmp_path / 'missing.npz'}")
    np.savez(tmp_path / "small.npz", x_train=np.zeros((2, 8, 8, 3)), y_train=np.zeros(2, int),
             x_test=np.zeros((2, 8, 8, 3)), y_test=np.zeros(2, int))
    with pytest.raises(data.DataError, match="32x32x3"):
        data.load(f"cifar10:{tmp_path / 'small.npz'}")
    with pytest.raises(data.DataError, match="tensorflow-datasets|does not hold"):
        data.load(f"cifar10:{tmp_path}")  # a directory: read through tensorflow-datasets
