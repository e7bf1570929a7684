"""Channel scales for network slimming, and the channel plan that says which scale governs which
weights.

A builder asked for `channel_scales=True` puts a `ChannelScale` (y = s * x, s per channel) where
the paper re-parameterises batch norm as y = s * (x_hat + b): after a batch norm without its own
scale (WRN), or directly after a convolution or dense layer that has no batch norm (LeNet-5, where
the layer's bias plays the role of b). One scale layer may be *shared* by several batch norms (the
residual stream of a WRN group), so s = 0 silences that channel everywhere it is read.

The builder also records a `ChannelPlan`: for every weight layer, the channel group (the name of a
scale layer, or None) of its input channels and of its output channels. Channel surgery
(compression/slim.py) needs nothing else to cut a trained network down.
"""

import dataclasses
from typing import Dict, Optional

from tfdfc.keras_compat import keras, tf


@keras.saving.register_keras_serializable(package="tfdfc")
class ChannelScale(keras.layers.Layer):
    """y = x * scale, one trainable scale per channel (the last axis), initialised to 1."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(int(input_shape[-1]),),
                                     initializer="ones", trainable=True)
        super().build(input_shape)

    def call(self, inputs):
        return inputs * tf.cast(self.scale, inputs.dtype)


@dataclasses.dataclass(frozen=True)
class LayerChannels:
    """Channel groups of one weight layer's input and output (None: never pruned).

    `input_repeat` > 1 means the input was flattened from a feature map: each channel of the
    input group appears once per spatial position, channels fastest (NHWC order).
    `scaled_output` means the output group's scale acts on this layer's output directly (no
    batch norm in between), so surgery folds the scale into this layer's kernel and bias.
    `input_norm` names the batch norm whose (scaled, ReLU-activated) output this layer reads.
    """

    input_group: Optional[str]
    output_group: Optional[str]
    input_repeat: int = 1
    scaled_output: bool = False
    input_norm: Optional[str] = None


@dataclasses.dataclass
class ChannelPlan:
    """What channel surgery needs to know about a network built with channel scales.

    `layers` maps weight layers (conv, dense, batch norm) to their channel groups; a batch norm's
    input and output group are the same. `scales` maps a group to the names of the scale layers
    it shares one weight with (the first holds it). `feature_width` maps a group to the spatial
    width of the feature map it scales (1 for dense layers): the paper divides the L1 weight of
    a layer's scales by it.
    """

    layers: Dict[str, LayerChannels] = dataclasses.field(default_factory=dict)
    scales: Dict[str, str] = dataclasses.field(default_factory=dict)
    feature_width: Dict[str, int] = dataclasses.field(default_factory=dict)
    _scale_layers: Dict[str, ChannelScale] = dataclasses.field(default_factory=dict)

    def connect(self, name, input_group, output_group, input_repeat=1, scaled_output=False,
                input_norm=None):
        """Records the channel groups of weight layer `name`."""
        self.layers[name] = LayerChannels(input_group, output_group, input_repeat, scaled_output,
                                          input_norm)

    def scale(self, x, group):
        """Applies (creating on first use) the scale layer of `group` to `x`."""
        if group not in self._scale_layers:
            self._scale_layers[group] = ChannelScale(name=f"{group}_scale")
            self.scales[group] = f"{group}_scale"
            self.feature_width[group] = int(x.shape[2]) if len(x.shape) == 4 else 1
        return self._scale_layers[group](x)

    def groups(self):
        """The channel groups, in creation order."""
        return list(self.scales)


def width_of(widths, group, nominal):
    """The channel count of `group`: `widths[group]` when rebuilding after surgery, else nominal."""
    return int(widths.get(group, nominal)) if widths else int(nominal)


def attach_plan(model, plan):
    """Stores `plan` on `model` (a Python attribute: kept in this process, not saved)."""
    object.__setattr__(model, "_tfdfc_channel_plan", plan)
    return model


def plan_of(model) -> Optional[ChannelPlan]:
    """The channel plan a builder attached to `model`, or None."""
    return getattr(model, "_tfdfc_channel_plan", None)


__all__ = ["ChannelScale", "ChannelPlan", "LayerChannels", "width_of", "attach_plan", "plan_of"]
