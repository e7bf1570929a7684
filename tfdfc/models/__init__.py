"""Model registry: a name such as `lenet5`, `lenet5-x0.5` or `wrn-16-2` -> a Keras classifier."""

import re

from tfdfc.errors import ConfigError
from tfdfc.models.attention import (attention_layers, check_attention_points, inferred_points,
                                    with_attention_outputs)
from tfdfc.models.generator import generator
from tfdfc.models.lenet import lenet5
from tfdfc.models.wrn import wide_resnet

_LENET = re.compile(r"lenet5(?:-x(\d+(?:\.\d+)?))?")
_WRN = re.compile(r"wrn-(\d+)-(\d+)")
NAMES_HELP = "lenet5, lenet5-x<width> (e.g. lenet5-x0.5), wrn-<depth>-<widen> (e.g. wrn-16-2)"


def build(name, input_shape, num_classes, **options):
    """Builds the registered classifier `name` (randomly initialised, logits out).

    `options` go to the builder: `widths` and `channel_scales` (network slimming).

    Raises:
      ConfigError: `name` is not a registered architecture.
    """
    lenet = _LENET.fullmatch(name)
    if lenet:
        return lenet5(input_shape, num_classes, width=float(lenet.group(1) or 1.0), **options)
    wrn = _WRN.fullmatch(name)
    if wrn:
        return wide_resnet(input_shape, num_classes, int(wrn.group(1)), int(wrn.group(2)),
                           **options)
    raise ConfigError(f"unknown architecture {name!r}: use {NAMES_HELP}")


def registry_name(model):
    """The registry name of a model these builders made (`lenet5_x0.5` -> `lenet5-x0.5`,
    `wrn_16_2` -> `wrn-16-2`), or None."""
    lenet = re.fullmatch(r"lenet5_x(\d+(?:\.\d+)?)(?:_logits)?", model.name)
    if lenet:
        return "lenet5" if float(lenet.group(1)) == 1.0 else f"lenet5-x{lenet.group(1)}"
    wrn = re.fullmatch(r"wrn_(\d+)_(\d+)(?:_logits)?", model.name)
    return f"wrn-{wrn.group(1)}-{wrn.group(2)}" if wrn else None


__all__ = ["build", "registry_name", "generator", "lenet5", "wide_resnet", "attention_layers",
           "inferred_points", "with_attention_outputs", "check_attention_points", "NAMES_HELP"]
