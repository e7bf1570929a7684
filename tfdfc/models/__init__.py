"""Model registry: a name such as `lenet5`, `lenet5-x0.5` or `wrn-16-2` -> a Keras classifier."""

import re

from tfdfc.errors import ConfigError
from tfdfc.models.attention import attention_layers, with_attention_outputs
from tfdfc.models.generator import generator
from tfdfc.models.lenet import lenet5
from tfdfc.models.wrn import wide_resnet

_LENET = re.compile(r"lenet5(?:-x(\d+(?:\.\d+)?))?")
_WRN = re.compile(r"wrn-(\d+)-(\d+)")
NAMES_HELP = "lenet5, lenet5-x<width> (e.g. lenet5-x0.5), wrn-<depth>-<widen> (e.g. wrn-16-2)"


def build(name, input_shape, num_classes):
    """Builds the registered classifier `name` (randomly initialised, logits out).

    Raises:
      ConfigError: `name` is not a registered architecture.
    """
    lenet = _LENET.fullmatch(name)
    if lenet:
        return lenet5(input_shape, num_classes, width=float(lenet.group(1) or 1.0))
    wrn = _WRN.fullmatch(name)
    if wrn:
        return wide_resnet(input_shape, num_classes, int(wrn.group(1)), int(wrn.group(2)))
    raise ConfigError(f"unknown architecture {name!r}: use {NAMES_HELP}")


__all__ = ["build", "generator", "lenet5", "wide_resnet", "attention_layers",
           "with_attention_outputs", "NAMES_HELP"]
