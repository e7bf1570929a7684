"""SeparableConv2D split into a DepthwiseConv2D and a 1x1 Conv2D computes the same function."""

import numpy as np

from tfdfc import separable
from tfdfc.keras_compat import keras


def _model():
    layers = keras.layers
    inputs = keras.Input((9, 9, 3))
    x = layers.SeparableConv2D(6, 3, strides=2, depth_multiplier=2, padding="same",
                               activation="relu", name="sep")(inputs)
    x = layers.BatchNormalization()(x)
    y = layers.SeparableConv2D(6, 3, dilation_rate=2, padding="same", use_bias=False,
                               name="sep2")(x)
    x = layers.Flatten()(layers.Add()([x, y]))
    return keras.Model(inputs, layers.Dense(3, name="sep2_depthwise")(x))


def test_split_gives_the_same_outputs_with_two_convolutions_per_separable_one():
    keras.utils.set_random_seed(0)
    model = _model()
    for weight in model.weights:  # nonzero biases and batch-norm statistics
        weight.assign(np.random.default_rng(1).normal(0.5, 0.3, weight.shape))
    split = separable.split(model)
    images = np.random.default_rng(2).normal(size=(4, 9, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(split(images), model(images), rtol=1e-4, atol=1e-4)
    assert not separable.has_separable(split) and separable.has_separable(model)
    kinds = {layer.name: type(layer).__name__ for layer in split.layers}
    assert kinds["sep_depthwise"] == "DepthwiseConv2D" and kinds["sep"] == "Conv2D"
    assert kinds["sep2_depthwise_"] == "DepthwiseConv2D"  # its name was taken by the head
    assert split.get_layer("sep").kernel.shape == (1, 1, 6, 6)
    assert split.get_layer("sep_depthwise").strides == (2, 2)
    assert split.get_layer("sep2_depthwise_").dilation_rate == (2, 2)
    assert split.get_layer("sep2").use_bias is False


def test_a_model_without_separable_convolutions_is_returned_as_it_is():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3)])
    assert separable.split(model) is model
