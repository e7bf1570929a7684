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


def test_a_normalization_never_adapted_is_read_as_absent():
    """keras.applications' EfficientNet built without weights: Rescaling(1/255), then a
    Normalization holding mean 0 and variance 1, which changes nothing: pixels 0..255."""
    space = input_space.infer(_model(layers.Rescaling(1 / 255.0), layers.Normalization(
        mean=[0.0] * 3, variance=[1.0] * 3)))
    assert space.mean == (127.5,) * 3 and space.std == (63.75,) * 3
    assert "never adapted" in space.source
    alone = input_space.infer(_model(layers.Normalization(mean=0.0, variance=1.0)))
    assert alone.is_standard


def test_sequential_models_are_read_too():
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Rescaling(1 / 255.0),
                              layers.Flatten(), layers.Dense(2)])
    assert input_space.infer(model).mean == (127.5,)


def test_augmentation_before_the_preprocessing_is_looked_through():
    """The tutorial shape: RandomFlip and RandomRotation (identity at inference), then
    Rescaling(1/255); also in a Sequential model and behind Dropout."""
    space = input_space.infer(_model(layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
                                     layers.Rescaling(1 / 255.0)))
    assert space.mean == (127.5,) * 3 and "Rescaling" in space.source
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.RandomFlip(), layers.Dropout(0.1),
                              layers.Rescaling(1 / 255.0), layers.Flatten(), layers.Dense(2)])
    assert input_space.infer(model).mean == (127.5,)


def test_per_channel_rescaling_maps_each_channel_back():
    scale = np.array([1 / 255.0, 2 / 255.0, 4 / 255.0])
    normalize = layers.Normalization(mean=[0.2, 0.5, 0.7], variance=[0.01, 0.04, 0.09])
    space = input_space.infer(_model(layers.Rescaling(scale), normalize))
    np.testing.assert_allclose(space.mean, np.array([0.2, 0.5, 0.7]) / scale)
    np.testing.assert_allclose(space.std, np.array([0.1, 0.2, 0.3]) / scale)


def test_preprocessing_without_per_channel_statistics_asks_for_the_flag():
    per_pixel = layers.Normalization(axis=(1, 2, 3), mean=np.zeros((8, 8, 3)),
                                     variance=np.ones((8, 8, 3)))
    with pytest.raises(ConfigError, match="has a mean of 192 values.*--input_range"):
        input_space.infer(_model(per_pixel))
    inverted = layers.Normalization(mean=[0.5] * 3, variance=[0.04] * 3, invert=True)
    with pytest.raises(ConfigError, match="inverted.*--input_range"):
        input_space.infer(_model(inverted))


def test_input_range_flag_overrides_and_bad_values_are_one_line_errors():
    space = input_space.parse_range("0,255", 3)
    assert space.mean == (127.5,) * 3 and "--input_range" in space.source
    for bad in ("255", "a,b", "5,1", "0,inf", "nan,1"):
        with pytest.raises(ConfigError, match="--input_range"):
            input_space.parse_range(bad, 3)


def test_generator_emits_images_in_the_input_space():
    space = input_space.parse_range("0,255", 1)
    generator = models.generator((8, 8, 1), latent_dim=4, channels=4, input_space=space)
    images = generator(np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32),
                       training=True).numpy()
    assert abs(images.mean() - 127.5) < 1.0 and abs(images.std() - 63.75) < 2.0


def test_evaluation_images_outside_the_generators_space_are_named_in_one_line():
    rng = np.random.default_rng(0)
    standard = input_space.standard(1)
    assert input_space.mismatch(standard, rng.normal(size=(200, 8, 8, 1))) is None
    pixels = rng.uniform(0, 1, size=(200, 8, 8, 1))  # a 0..1 teacher's data, no layer saying so
    message = input_space.mismatch(standard, pixels, "the images of d.npz")
    assert message.startswith("the images of d.npz (mean 0.5") and "--input_range" in message
    assert "\n" not in message
    assert input_space.mismatch(input_space.parse_range("0,1", 1), pixels) is None
    shape = (200, 8, 8, 1)
    dark = np.where(rng.uniform(size=shape) < 0.5, 0.0, rng.uniform(0, 255, shape))
    assert input_space.mismatch(input_space.parse_range("0,255", 1), dark) is None  # skewed
    # Where a layer or the flag set the space, the data is what is off: no flag to suggest.
    rescaled = input_space.mismatch(input_space.parse_range("0,255", 1),
                                    rng.normal(size=shape), "the images of digits")
    assert "give --input_range" not in rescaled and rescaled.endswith(
        "give evaluation data in that space (e.g. the pixels before any scaling), or check "
        "--input_range")
