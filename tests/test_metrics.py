"""Counts, MACs, sparsity and accuracies of metrics.py on small models whose numbers are known
by hand."""

import gzip

import numpy as np

from tfdfc import export, metrics
from tfdfc.keras_compat import keras


def _conv_dense():
    """8x8x1 -> Conv 3x3x4 (same) -> Flatten -> Dense 3: numbers countable by hand."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="dense")(x))


def test_counts_and_macs_match_the_hand_count():
    model = _conv_dense()
    conv, dense, norm = 3 * 3 * 4 + 4, 8 * 8 * 4 * 3 + 3, 4 * 4
    assert metrics.parameter_count(model) == conv + dense + norm
    assert metrics.kernel_parameter_count(model) == conv + dense  # the paper's #Params
    assert metrics.multiply_accumulates(model) == 8 * 8 * 3 * 3 * 4 + 8 * 8 * 4 * 3


def test_sparsity_counts_zeros_of_kernels_only():
    model = _conv_dense()
    kernel = model.get_layer("dense").kernel
    values = kernel.numpy()
    values[: values.shape[0] // 2] = 0.0
    kernel.assign(values)
    total = 3 * 3 * 4 + 8 * 8 * 4 * 3
    assert np.isclose(metrics.sparsity(model), values.size / 2 / total)
    # Fresh biases, batch-norm offsets and moving means are zero too: 4 + 3 + 4 + 4.
    zeros = values.size // 2 + 15
    assert metrics.nonzero_parameter_count(model) == metrics.parameter_count(model) - zeros


def test_accuracy_and_tflite_outputs_agree_with_keras():
    model = _conv_dense()
    images = np.random.default_rng(0).normal(size=(40, 8, 8, 1)).astype(np.float32)
    logits = metrics.keras_logits(model, images, batch_size=16)  # batches that do not divide
    labels = np.argmax(logits, axis=-1)
    labels[:10] = (labels[:10] + 1) % 3
    assert metrics.accuracy(logits, labels) == 0.75
    assert metrics.keras_accuracy(model, images, labels) == 0.75
    tflite = metrics.tflite_outputs(export.tflite_float(model), images, batch_size=16)
    np.testing.assert_allclose(tflite, logits, atol=1e-4)


def test_gzip_size_is_what_gzip_gives_and_shrinks_zeros():
    zeros, noise = bytes(10_000), np.random.default_rng(0).bytes(10_000)
    assert metrics.gzip_size(noise) == len(gzip.compress(noise, compresslevel=9))
    assert metrics.gzip_size(zeros) < 100 < metrics.gzip_size(noise)
