"""A teacher rewritten as the ops TFLite runs (a SeparableConv2D as a DepthwiseConv2D and a 1x1
Conv2D, an unfused activation as a layer of its own) computes the same function."""

import numpy as np
import pytest

from tfdfc import kernel_split
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


def _with_random_weights(model):
    for weight in model.weights:  # nonzero biases and batch-norm statistics
        weight.assign(np.random.default_rng(1).normal(0.5, 0.3, weight.shape))
    return model


def test_split_gives_the_same_outputs_with_two_convolutions_per_separable_one():
    keras.utils.set_random_seed(0)
    model = _with_random_weights(_model())
    split = kernel_split.split(model)
    images = np.random.default_rng(2).normal(size=(4, 9, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(split(images), model(images), rtol=1e-4, atol=1e-4)
    assert not kernel_split.needs_split(split) and kernel_split.needs_split(model)
    kinds = {layer.name: type(layer).__name__ for layer in split.layers}
    assert kinds["sep_depthwise"] == "DepthwiseConv2D" and kinds["sep"] == "Conv2D"
    assert kinds["sep2_depthwise_"] == "DepthwiseConv2D"  # its name was taken by the head
    assert split.get_layer("sep").kernel.shape == (1, 1, 6, 6)
    assert split.get_layer("sep").activation is keras.activations.relu  # fused: kept
    assert split.get_layer("sep_depthwise").strides == (2, 2)
    assert split.get_layer("sep2_depthwise_").dilation_rate == (2, 2)
    assert split.get_layer("sep2").use_bias is False


def test_an_unfused_activation_becomes_a_layer_after_its_kernel_and_the_head_keeps_its_own():
    """Squeeze-excite as EfficientNet builds it: convolutions with swish and sigmoid inside."""
    layers = keras.layers
    inputs = keras.Input((8, 8, 4))
    x = layers.Conv2D(4, 3, padding="same", activation="relu6", name="stem")(inputs)
    squeeze = layers.GlobalAveragePooling2D(keepdims=True)(x)
    squeeze = layers.Conv2D(2, 1, activation="swish", name="se_reduce")(squeeze)
    squeeze = layers.Conv2D(4, 1, activation="sigmoid", name="se_expand")(squeeze)
    x = layers.Multiply()([x, squeeze])
    x = layers.SeparableConv2D(4, 3, activation=keras.layers.LeakyReLU(0.1), name="sep")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = _with_random_weights(keras.Model(inputs, layers.Dense(3, activation="softmax",
                                                                  name="head")(x)))
    split = kernel_split.split(model)
    images = np.random.default_rng(2).normal(size=(4, 8, 8, 4)).astype(np.float32)
    np.testing.assert_allclose(split(images), model(images), rtol=1e-4, atol=1e-5)
    for name, activation in (("se_reduce", "swish"), ("se_expand", "sigmoid")):
        assert split.get_layer(name).activation is keras.activations.linear
        after = split.get_layer(f"{name}_activation")
        assert after.activation.__name__ == activation
        assert after.input is split.get_layer(name).output
    assert split.get_layer("sep").activation is keras.activations.linear
    assert isinstance(split.get_layer("sep_activation").activation, keras.layers.LeakyReLU)
    assert split.get_layer("stem").activation.__name__ == "relu6"  # TFLite fuses it
    assert split.get_layer("head").activation.__name__ == "softmax"  # the logits head's own
    assert not kernel_split.needs_split(split)


@pytest.mark.filterwarnings("ignore:The object being serialized includes a `lambda`")
def test_activations_given_as_layers_or_functions_split_with_their_weights():
    """PReLU's weights follow the kernel's in the original layer; a lambda has no config; a
    ReLU(6.0) layer is fused by TFLite, as the relu6 function is, so it stays."""
    layers = keras.layers
    inputs = keras.Input((6, 6, 2))
    x = layers.Conv2D(3, 3, activation=layers.PReLU(), name="prelu_conv")(inputs)
    x = layers.Conv2D(3, 1, activation=lambda t: t * keras.activations.sigmoid(t),
                      name="lambda_conv")(x)
    x = layers.Conv2D(3, 1, activation=layers.ReLU(6.0), name="relu6_conv")(x)
    model = _with_random_weights(keras.Model(inputs, layers.Dense(2)(layers.Flatten()(x))))
    split = kernel_split.split(model)
    images = np.random.default_rng(2).normal(size=(4, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(split(images), model(images), rtol=1e-5, atol=1e-5)
    assert len(split.get_layer("prelu_conv_activation").weights) == 1  # PReLU's alpha
    assert split.get_layer("lambda_conv").activation is keras.activations.linear
    assert "relu6_conv_activation" not in [layer.name for layer in split.layers]


def test_a_model_with_nothing_to_split_is_returned_as_it_is():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3),
                              keras.layers.Conv2D(2, 1, activation="relu")])
    assert kernel_split.split(model) is model
