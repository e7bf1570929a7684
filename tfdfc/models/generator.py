"""The generator of Micaelli & Storkey (2019), for any output shape.

Dense(z -> c*(h/4)*(w/4)) -> BN -> up x2 -> Conv3x3(c) -> BN -> LeakyReLU(0.2) -> up x2 ->
Conv3x3(c/2) -> BN -> LeakyReLU(0.2) -> Conv3x3(channels) -> BN without affine; no tanh, so
samples live in the standardised input space, unless a final affine layer maps them into a
teacher's own input space (input_space.py). Sizes not divisible by 4 are built one step larger
and centre-cropped. `channels` is 128 in the paper; small inputs train as well with fewer.
"""

import math

from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras

_BN = dict(momentum=0.9, epsilon=1e-5)


def generator(output_shape, latent_dim=100, channels=128, input_space=None):
    """Builds the generator mapping z of shape (latent_dim,) to images of `output_shape`;
    `input_space` (an input_space.InputSpace) maps its standardised images into the teacher's
    input space with a final per-channel affine layer."""
    height, width, out_channels = output_shape
    if min(height, width) < 4:
        raise ConfigError(f"generator needs images of at least 4x4, got {output_shape}")
    if channels < 2:
        raise ConfigError(f"generator channels must be >= 2, got {channels}")
    seed_h, seed_w = math.ceil(height / 4), math.ceil(width / 4)
    z = keras.Input(shape=(latent_dim,), name="z")
    x = keras.layers.Dense(channels * seed_h * seed_w, name="project")(z)
    x = keras.layers.Reshape((seed_h, seed_w, channels), name="reshape")(x)
    x = keras.layers.BatchNormalization(**_BN, name="bn_0")(x)
    for index, filters in enumerate((channels, channels // 2), start=1):
        x = keras.layers.UpSampling2D(2, name=f"up_{index}")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"conv_{index}")(x)
        x = keras.layers.BatchNormalization(**_BN, name=f"bn_{index}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu_{index}")(x)
    x = keras.layers.Conv2D(out_channels, 3, padding="same", name="conv_out")(x)
    x = keras.layers.BatchNormalization(center=False, scale=False, **_BN, name="bn_out")(x)
    crop_h, crop_w = 4 * seed_h - height, 4 * seed_w - width
    if crop_h or crop_w:
        x = keras.layers.Cropping2D(((crop_h // 2, crop_h - crop_h // 2),
                                     (crop_w // 2, crop_w - crop_w // 2)), name="crop")(x)
    if input_space is not None and not input_space.is_standard:
        x = keras.layers.Rescaling(list(input_space.std), list(input_space.mean),
                                   name="to_input_space")(x)
    return keras.Model(z, x, name="generator")
