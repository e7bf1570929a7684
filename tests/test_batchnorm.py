"""Batch-norm policies and recalibration (tfdfc/batchnorm.py) on tiny real models."""

import numpy as np

from tfdfc import batchnorm
from tfdfc.compression import quantize
from tfdfc.keras_compat import keras


def _two_norm_model():
    """conv -> BN -> relu -> conv -> BN -> logits; the BNs start on statistics far from any
    input's (mean 3, variance 9), as a pruned student's frozen ones are."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(3, 3, name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    for norm in batchnorm.batch_norms(model):
        norm.moving_mean.assign(np.full(norm.moving_mean.shape, 3.0, np.float32))
        norm.moving_variance.assign(np.full(norm.moving_variance.shape, 9.0, np.float32))
        norm.gamma.assign(np.linspace(0.5, 2.0, norm.gamma.shape[0]).astype(np.float32))
        norm.beta.assign(np.linspace(-1.0, 1.0, norm.beta.shape[0]).astype(np.float32))
    return model


def _input_statistics(model, layer_name, images):
    """Mean and variance per channel of what `layer_name` receives, in inference mode."""
    inputs = np.asarray(keras.Model(model.inputs, model.get_layer(layer_name).input)(images))
    return inputs.mean(axis=(0, 1, 2)), inputs.var(axis=(0, 1, 2))


def test_recalibrate_gives_each_frozen_norm_the_statistics_its_inputs_then_have():
    model = _two_norm_model()
    assert batchnorm.freeze_statistics(model) == 2
    images = np.random.default_rng(1).normal(2.0, 1.5, size=(64, 8, 8, 1)).astype(np.float32)
    # One batch: every norm normalises with exactly the statistics it will keep, so the second
    # norm's inputs are those the first one's new statistics give in inference mode.
    assert batchnorm.recalibrate(model, [images]) == 2
    for name in ("bn_a", "bn_b"):
        mean, variance = _input_statistics(model, name, images)
        norm = model.get_layer(name)
        np.testing.assert_allclose(norm.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(norm.moving_variance.numpy(), variance, rtol=1e-3,
                                   atol=1e-4)
        assert batchnorm.is_frozen(norm)  # still inference mode when called to train
        assert "call" not in norm.__dict__  # the recording call is gone again
    # On other images the norms now use their moving statistics, not the batch's own.
    others = np.random.default_rng(6).normal(-1.0, 0.5, size=(16, 8, 8, 1)).astype(np.float32)
    norm = model.get_layer("bn_a")
    inputs = np.asarray(keras.Model(model.inputs, norm.input)(others))
    expected = ((inputs - norm.moving_mean.numpy())
                / np.sqrt(norm.moving_variance.numpy() + norm.epsilon) * norm.gamma.numpy()
                + norm.beta.numpy())
    np.testing.assert_allclose(keras.Model(model.inputs, norm.output)(others, training=True),
                               expected, rtol=1e-4, atol=1e-4)


def test_recalibrate_weighs_uneven_batches_by_their_images():
    """The first norm's inputs do not depend on any norm, so batches of 24, 24 and 16 images
    must give exactly the statistics of all 64 (the pooled variance included)."""
    model = _two_norm_model()
    batchnorm.freeze_statistics(model)
    images = np.concatenate([np.random.default_rng(seed).normal(shift, 1.0, size=(n, 8, 8, 1))
                             for seed, shift, n in ((2, -1.0, 24), (3, 0.0, 24), (4, 3.0, 16))])
    images = images.astype(np.float32)
    mean, variance = _input_statistics(model, "bn_a", images)
    batchnorm.recalibrate(model, [images[:24], images[24:48], images[48:]])
    norm = model.get_layer("bn_a")
    np.testing.assert_allclose(norm.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(norm.moving_variance.numpy(), variance, rtol=1e-3, atol=1e-4)


def test_recalibrate_leaves_norms_that_train_their_own_statistics():
    model = _two_norm_model()
    assert batchnorm.apply(model, "trained") == 2
    images = np.random.default_rng(5).normal(size=(16, 8, 8, 1)).astype(np.float32)
    assert batchnorm.recalibrate(model, [images]) == 0
    for norm in batchnorm.batch_norms(model):
        np.testing.assert_array_equal(norm.moving_mean.numpy(), 3.0)


def test_recalibrate_leaves_norms_whose_output_int8_qat_quantizes():
    """Their output ranges were learned on the old statistics: new ones would leave them stale."""
    model = quantize.quantize_int8(_two_norm_model())
    assert batchnorm.freeze_statistics(model) == 2
    images = np.random.default_rng(7).normal(size=(16, 8, 8, 1)).astype(np.float32)
    assert batchnorm.recalibratable(model) == []
    assert batchnorm.recalibrate(model, [images]) == 0
    for norm in batchnorm.batch_norms(model):
        np.testing.assert_array_equal(norm.moving_variance.numpy(), 9.0)


def test_recalibrate_leaves_norms_with_virtual_batches():
    """Their statistics are per virtual batch: one pass over whole batches would mix them."""
    inputs = keras.Input((4, 4, 2))
    outputs = keras.layers.BatchNormalization(virtual_batch_size=4, name="ghost")(inputs)
    model = keras.Model(inputs, keras.layers.Flatten()(outputs))
    batchnorm.freeze_statistics(model)
    images = np.random.default_rng(8).normal(3.0, 1.0, size=(16, 4, 4, 2)).astype(np.float32)
    assert batchnorm.recalibrate(model, [images]) == 0
    np.testing.assert_array_equal(model.get_layer("ghost").moving_mean.numpy(), 0.0)
