"""Nested models made flat: the same outputs from one graph of plain layers."""

import numpy as np

from tfdfc import flatten
from tfdfc.keras_compat import keras

layers = keras.layers


def _base_and_head():
    """A base and a head built apart, as models saved separately are: both name a layer
    "dense" (and the outer model's own layer takes it again)."""
    inputs = keras.Input((6,))
    base = keras.Model(inputs, layers.Dense(5, activation="relu", name="dense")(inputs),
                       name="base")
    head_inputs = keras.Input((5,))
    head = keras.Model(head_inputs, layers.Dense(3, name="dense")(head_inputs), name="head")
    return base, head


def test_layer_names_repeated_across_nested_models_are_made_unique():
    base, head = _base_and_head()
    inputs = keras.Input((6,))
    model = keras.Model(inputs, layers.Dense(2, name="dense")(head(base(inputs))), name="outer")
    flat = flatten.flatten(model)
    names = [layer.name for layer in flat.layers]
    assert len(names) == len(set(names)) and not flatten.is_nested(flat)
    assert {"dense", "head_dense", "outer_dense"} <= set(names)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_allclose(flat(x).numpy(), model(x).numpy(), atol=1e-6)


def test_a_model_without_nesting_is_returned_as_it_is():
    base, _ = _base_and_head()
    assert flatten.flatten(base) is base


def test_augmentation_and_identity_layers_are_dropped_also_inside_a_nested_block():
    """The tutorial shape: an augmentation block (a nested Sequential) before the network."""
    augment = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2),
                                layers.RandomContrast(0.3)], name="augment")
    inputs = keras.Input((8, 8, 1))
    x = layers.Identity()(layers.Rescaling(1 / 255)(augment(inputs)))
    x = layers.RandomZoom(0.2)(layers.Conv2D(2, 3)(x))
    model = keras.Model(inputs, layers.Dense(3)(layers.Flatten()(x)))
    flat = flatten.flatten(model)
    kinds = [type(layer).__name__ for layer in flat.layers]
    assert kinds == ["InputLayer", "Rescaling", "Conv2D", "Flatten", "Dense"]
    x = np.random.default_rng(0).uniform(0, 255, size=(4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(flat(x).numpy(), model(x, training=False).numpy(), atol=1e-6)
