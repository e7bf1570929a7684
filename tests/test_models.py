"""Architectures: exact parameter counts, attention points, generator shapes, the registry."""

import numpy as np
import pytest

from tfdfc import models
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras


def _count(model, layer_type):
    return sum(int(np.prod(weight.shape)) for layer in model.layers
               if isinstance(layer, layer_type) for weight in layer.weights)


def test_wrn_16_2_has_the_papers_parameter_counts():
    model = models.build("wrn-16-2", (32, 32, 3), 10)
    assert _count(model, keras.layers.Conv2D) == 688_560
    assert _count(model, keras.layers.Dense) == 1_290


def test_wrn_attention_points_are_the_three_group_outputs():
    model = models.build("wrn-16-1", (32, 32, 3), 10)
    shapes = [tuple(layer.output.shape[1:]) for layer in models.attention_layers(model)]
    assert shapes == [(32, 32, 16), (16, 16, 32), (8, 8, 64)]
    outputs = models.with_attention_outputs(model)(np.zeros((2, 32, 32, 3), np.float32))
    assert [tuple(output.shape) for output in outputs] == [(2, 10), (2, 32, 32, 16),
                                                           (2, 16, 16, 32), (2, 8, 8, 64)]


def test_lenet5_is_the_classic_size_and_scales_with_width():
    assert models.build("lenet5", (28, 28, 1), 10).count_params() == 107_786
    half = models.build("lenet5-x0.5", (28, 28, 1), 10)
    assert half.get_layer("conv_0").filters == 3 and half.get_layer("dense_0").units == 60


@pytest.mark.parametrize("shape", [(28, 28, 1), (8, 8, 1), (32, 32, 3), (30, 30, 3)])
def test_generator_emits_the_requested_shape(shape):
    generator = models.generator(shape, latent_dim=100, channels=16)
    images = generator(np.random.normal(size=(4, 100)).astype(np.float32), training=True)
    assert tuple(images.shape) == (4,) + shape
    if shape[0] % 4 == 0:  # uncropped: the last batch norm (no affine) standardises each channel
        np.testing.assert_allclose(np.mean(images, axis=(0, 1, 2)), 0.0, atol=1e-3)


@pytest.mark.parametrize("name", ["resnet50", "wrn-15-2", "lenet5-x0"])
def test_registry_rejects_unknown_or_invalid_architectures(name):
    with pytest.raises(ConfigError):
        models.build(name, (32, 32, 3), 10)


def test_inferred_points_skip_the_preprocessed_image_before_the_first_kernel():
    """A leading Rescaling at the input's size is the image itself in every student: no point
    there; the points close each size after the first convolution."""
    layers = keras.layers
    inputs = keras.Input((8, 8, 1))
    x = layers.Rescaling(1 / 255, name="scale")(inputs)
    x = layers.ReLU(name="stem")(layers.Conv2D(2, 3, strides=2, padding="same")(x))
    x = layers.ReLU(name="body")(layers.Conv2D(2, 3, padding="same")(x))
    x = layers.MaxPooling2D(name="pool")(x)
    model = keras.Model(inputs, layers.Dense(3)(layers.Flatten()(x)))
    assert models.inferred_points(model) == ["body", "pool"]
