"""The input space read off a teacher's preprocessing layers, and the generator that lands in it."""

import numpy as np
import pytest

from tfdfc import input_space, models
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras

layers = keras.layers


def _model(*preprocessing):
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for layer in preprocessing:
        x = layer(x)
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(x))
    return keras.Model(inputs, layers.Dense(2)(x))


def test_no_preprocessing_means_standardised_inputs():
    space = input_space.infer(_model())
    assert space.is_standard and space.mean == (0.0,) * 3


def test_rescaling_by_one_over_255_means_pixels_from_0_to_255():
    space = input_space.infer(_model(layers.Rescaling(1 / 255.0)))
    assert space.mean == (127.5,) * 3 and space.std == (63.75,) * 3
    unit = input_space.infer(_model(layers.Rescaling(2.0, offset=-1.0)))
    assert unit.mean == (0.5,) * 3  # a scale of 0.1 or more: pixels 0..1


def test_normalization_after_rescaling_makes_its_outputs_standard_normal():
    mean, variance = np.array([0.2, 0.5, 0.7]), np.array([0.01, 0.04, 0.09])
    rescale = layers.Rescaling(1 / 255.0)
    normalize = layers.Normalization(mean=mean, variance=variance)
    model = _model(rescale, normalize)
    space = input_space.infer(model)
    images = space.images(np.random.default_rng(0).normal(size=(4000, 8, 8, 3)))
    normalised = normalize(rescale(images)).numpy()
    np.testing.assert_allclose(normalised.mean(axis=(0, 1, 2)), 0.0, atol=0.01)
    np.testing.assert_allclose(normalised.std(axis=(0, 1, 2)), 1.0, atol=0.01)


def test_sequential_models_are_read_too():
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Rescaling(1 / 255.0),
                              layers.Flatten(), layers.Dense(2)])
    assert input_space.infer(model).mean == (127.5,)


def test_input_range_flag_overrides_and_bad_values_are_one_line_errors():
    space = input_space.parse_range("0,255", 3)
    assert space.mean == (127.5,) * 3 and "--input_range" in space.source
    for bad in ("255", "a,b", "5,1"):
        with pytest.raises(ConfigError, match="--input_range"):
            input_space.parse_range(bad, 3)


def test_generator_emits_images_in_the_input_space():
    space = input_space.parse_range("0,255", 1)
    generator = models.generator((8, 8, 1), latent_dim=4, channels=4, input_space=space)
    images = generator(np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32),
                       training=True).numpy()
    assert abs(images.mean() - 127.5) < 1.0 and abs(images.std() - 63.75) < 2.0
