"""The space a teacher's inputs live in, so that generated and calibration images land in it.

The generator ends in a batch norm without affine parameters, so it emits roughly
standard-normal images: right for a teacher trained on standardised images (the bundled sets),
wrong for one that starts with its own preprocessing. A model whose first layer is
`Rescaling(1/255)` takes 0..255 pixels; standard-normal inputs would reach it as near-black
images the generator could never brighten. So the generator (and the noise that calibrates the
no-training baselines) ends with an affine map `image = mean + std * x` per channel:

- no preprocessing layer: mean 0, std 1 (standardised inputs), as before;
- `Normalization` first (after any Rescaling): its mean and standard deviation, mapped back
  through the Rescaling, so the normalised values are standard-normal, which is exact; one
  holding mean 0 and variance 1 (never adapted) changes nothing and is read as absent;
- `Rescaling(scale, offset)` alone: pixels are taken to span 0..255 when |scale| < 0.1 (the
  usual 1/255 or 1/127.5), else 0..1; mean the middle of that range, std a quarter of it;
- `--input_range=low,high` overrides all of these (mean the middle, std a quarter).

Layers that leave values as they are at inference (augmentation such as RandomFlip, Dropout,
GaussianNoise, Resizing) may stand before the preprocessing, as in the usual tutorial model, and
are looked through. Preprocessing this cannot read as per-channel statistics (a per-pixel
Normalization, an inverted one) is refused in one line that asks for `--input_range`.
"""

import dataclasses
import math
from typing import Tuple

import numpy as np

from tfdfc import flatten
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras

_STANDARD = "standardised (no preprocessing)"  # the source of a space no layer or flag set
_EIGHT_BIT_SCALE = 0.1  # a Rescaling scale below this is taken to expect 0..255 pixels
# Layers whose inference-time output keeps the input's values: those that do nothing at
# inference (augmentation, Identity: a loaded teacher has lost them already, flatten.py), and
# these.
_PASS_THROUGH = flatten.INFERENCE_NO_OPS + tuple(getattr(keras.layers, name) for name in (
    "RandomCrop", "Resizing", "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "ActivityRegularization", "Reshape", "Flatten")
    if hasattr(keras.layers, name))


@dataclasses.dataclass(frozen=True)
class InputSpace:
    """Per-channel mean and std of the images a model takes, and where they were read from."""

    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    source: str

    @property
    def is_standard(self):
        return all(m == 0 for m in self.mean) and all(s == 1 for s in self.std)

    def images(self, standard_normal):
        """Standard-normal arrays mapped into this space."""
        return (np.asarray(self.mean, np.float32) + np.asarray(self.std, np.float32)
                * np.asarray(standard_normal, np.float32)).astype(np.float32)

    def as_dict(self):
        return {"mean": list(self.mean), "std": list(self.std), "source": self.source}


def mismatch(space, images, what="the evaluation images"):
    """One line saying how `images` (NHWC) lie outside `space`, or None when they fit: a
    channel's std outside 0.4 to 2.5 times the space's, or its mean more than two of the
    space's stds from the space's. Loose on purpose: real images are skewed (mostly dark
    backgrounds put Fashion-MNIST's mean far below the middle of its 0..255 range), and the
    mistake this catches is one of scale, e.g. 0..1 pixels (std about 0.3) where the generator
    makes standardised images. Only a warning: a run never takes anything from its evaluation
    data, but such a teacher loses accuracy unless --input_range says where its pixels lie."""
    sample = np.asarray(images[:1000], np.float64)
    axes = tuple(range(sample.ndim - 1))
    mean, std = sample.mean(axis=axes), sample.std(axis=axes)
    expected_mean, expected_std = np.asarray(space.mean), np.asarray(space.std)
    if (np.all(np.abs(mean - expected_mean) <= 2.0 * expected_std)
            and np.all((std >= 0.4 * expected_std) & (std <= 2.5 * expected_std))):
        return None
    fix = ("if the teacher takes e.g. 0..1 or 0..255 pixels with no Rescaling layer saying so, "
           "give --input_range=low,high" if space.source == _STANDARD
           else "give evaluation data in that space (e.g. the pixels before any scaling)"
           + (", or check --input_range" if space.source.startswith("--input_range") else ""))
    return (f"{what} (mean {_values(mean)}, std {_values(std)} per channel) do not look like "
            f"the images the generator makes (mean {_values(expected_mean)}, std "
            f"{_values(expected_std)}: {space.source}); {fix}")


def _values(array):
    return "/".join(f"{value:.3g}" for value in np.asarray(array).reshape(-1))


def standard(channels, source=_STANDARD):
    """Standardised inputs: mean 0, std 1 per channel."""
    return InputSpace((0.0,) * channels, (1.0,) * channels, source)


def _range_space(low, high, channels, source):
    return InputSpace((0.5 * (low + high),) * channels, (0.25 * (high - low),) * channels, source)


def parse_range(text, channels):
    """An InputSpace from `--input_range=low,high`; raises ConfigError for anything else."""
    try:
        low, high = (float(value) for value in text.split(","))
    except ValueError as error:
        raise ConfigError(f"--input_range takes two comma-separated numbers low,high (e.g. "
                          f"0,255), got {text!r}") from error
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"--input_range takes finite numbers low,high (e.g. 0,255), got "
                          f"{text!r}")
    if not high > low:
        raise ConfigError(f"--input_range: high must exceed low, got {text!r}")
    return _range_space(low, high, channels, f"--input_range={text}")


def for_teacher(input_range, teacher):
    """The teacher's input space: `input_range` ("low,high", the --input_range flag) if given,
    else inferred from its layers."""
    if input_range:
        return parse_range(input_range, int(teacher.inputs[0].shape[-1]))
    return infer(teacher)


def infer(model):
    """The input space `model`'s leading preprocessing layers imply (see the module docstring)."""
    channels = int(model.inputs[0].shape[-1])
    scale, offset = np.ones(channels), np.zeros(channels)
    layer, rescaling = _first_layer(model), None
    if isinstance(layer, keras.layers.Rescaling):
        rescaling = layer
        scale = _per_channel(layer.scale, channels, layer, "scale")
        offset = _per_channel(layer.offset, channels, layer, "offset")
        layer = _skip_pass_through(_only_consumer(layer))
    note = ""
    if isinstance(layer, keras.layers.Normalization):
        if getattr(layer, "invert", False):
            raise ConfigError(f"Normalization layer {layer.name!r} is inverted (invert=True): "
                              "tfdfc cannot read the input space from it; give --input_range="
                              "low,high")
        mean = _per_channel(layer.mean, channels, layer, "mean")
        variance = _per_channel(layer.variance, channels, layer, "variance")
        # Mean 0 and variance 1 are a never-adapted layer's (keras.applications' EfficientNets
        # built with weights=None): it changes nothing and says nothing of the data, so the
        # space is read as if it were absent. An adapted layer's statistics are the data's own.
        if not (np.all(mean == 0.0) and np.all(variance == 1.0)):
            return InputSpace(tuple(float(v) for v in (mean - offset) / scale),
                              tuple(float(v) for v in np.sqrt(variance) / np.abs(scale)),
                              f"Normalization layer {layer.name!r}")
        note = (f" (Normalization layer {layer.name!r} holds mean 0 and variance 1, as one "
                "never adapted does, and changes nothing)")
    if rescaling is not None:
        high = 255.0 if np.max(np.abs(scale)) < _EIGHT_BIT_SCALE else 1.0
        return _range_space(0.0, high, channels,
                            f"Rescaling layer {rescaling.name!r}: pixels 0..{high:g}{note}")
    return standard(channels)


def _per_channel(values, channels, layer, what):
    """`values` (a scalar or one per channel) as `channels` floats; ConfigError for any other
    shape, e.g. the per-pixel statistics of Normalization(axis=(1, 2, 3))."""
    flat = np.asarray(values, np.float64).reshape(-1)
    if flat.size not in (1, channels):
        raise ConfigError(f"{type(layer).__name__} layer {layer.name!r} has a {what} of "
                          f"{flat.size} values, not one per channel ({channels}): tfdfc cannot "
                          "read the input space from it; give --input_range=low,high")
    return np.broadcast_to(flat, (channels,)).astype(np.float64)


def _skip_pass_through(layer):
    """The first layer from `layer` on that is not one of _PASS_THROUGH (None if none)."""
    while isinstance(layer, _PASS_THROUGH):
        layer = _only_consumer(layer)
    return layer


def _first_layer(model):
    """The one layer the input feeds, past any _PASS_THROUGH layers (Sequential models list no
    InputLayer, so ask the input)."""
    input_layer = model.inputs[0]._keras_history.layer  # pylint: disable=protected-access
    return _skip_pass_through(_only_consumer(input_layer))


def _only_consumer(layer):
    consumers = [node.outbound_layer for node in layer._outbound_nodes]  # pylint: disable=protected-access
    return consumers[0] if len(consumers) == 1 else None
