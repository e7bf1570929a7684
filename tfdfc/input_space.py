"""The space a teacher's inputs live in, so that generated and calibration images land in it.

The generator ends in a batch norm without affine parameters, so it emits roughly
standard-normal images: right for a teacher trained on standardised images (the bundled sets),
wrong for one that starts with its own preprocessing. A model whose first layer is
`Rescaling(1/255)` takes 0..255 pixels; standard-normal inputs would reach it as near-black
images the generator could never brighten. So the generator (and the noise that calibrates the
no-training baselines) ends with an affine map `image = mean + std * x` per channel:

- no preprocessing layer: mean 0, std 1 (standardised inputs), as before;
- `Normalization` first (after any Rescaling): its mean and standard deviation, mapped back
  through the Rescaling, so the normalised values are standard-normal, which is exact;
- `Rescaling(scale, offset)` alone: pixels are taken to span 0..255 when |scale| < 0.1 (the
  usual 1/255 or 1/127.5), else 0..1; mean the middle of that range, std a quarter of it;
- `--input_range=low,high` overrides all of these (mean the middle, std a quarter).
"""

import dataclasses
from typing import Tuple

import numpy as np

from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras

_EIGHT_BIT_SCALE = 0.1  # a Rescaling scale below this is taken to expect 0..255 pixels


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


def _range_space(low, high, channels, source):
    return InputSpace((0.5 * (low + high),) * channels, (0.25 * (high - low),) * channels, source)


def parse_range(text, channels):
    """An InputSpace from `--input_range=low,high`; raises ConfigError for anything else."""
    try:
        low, high = (float(value) for value in text.split(","))
    except ValueError as error:
        raise ConfigError(f"--input_range takes two comma-separated numbers low,high (e.g. "
                          f"0,255), got {text!r}") from error
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
    scale, offset, layer = 1.0, 0.0, _first_layer(model)
    rescaling = None
    if isinstance(layer, keras.layers.Rescaling):
        rescaling = layer
        scale, offset = float(np.mean(layer.scale)), float(np.mean(layer.offset))
        layer = _only_consumer(layer)
    if isinstance(layer, keras.layers.Normalization):
        mean = np.broadcast_to(np.asarray(layer.mean, np.float64).reshape(-1), (channels,))
        std = np.sqrt(np.broadcast_to(np.asarray(layer.variance, np.float64).reshape(-1),
                                      (channels,)))
        return InputSpace(tuple(float(v) for v in (mean - offset) / scale),
                          tuple(float(v) for v in std / abs(scale)),
                          f"Normalization layer {layer.name!r}")
    if rescaling is not None:
        high = 255.0 if abs(scale) < _EIGHT_BIT_SCALE else 1.0
        return _range_space(0.0, high, channels,
                            f"Rescaling layer {rescaling.name!r}: pixels 0..{high:g}")
    return InputSpace((0.0,) * channels, (1.0,) * channels, "standardised (no preprocessing)")


def _first_layer(model):
    """The one layer the input feeds (Sequential models list no InputLayer, so ask the input)."""
    input_layer = model.inputs[0]._keras_history.layer  # pylint: disable=protected-access
    return _only_consumer(input_layer)


def _only_consumer(layer):
    consumers = [node.outbound_layer for node in layer._outbound_nodes]  # pylint: disable=protected-access
    return consumers[0] if len(consumers) == 1 else None
