"""Pre-activation wide residual network WRN-d-k, as in the reference code of Micaelli & Storkey.

Groups of (d-4)/6 basic blocks with widths 16k, 32k, 64k and strides 1, 2, 2; a 1x1 shortcut
convolution (on the pre-activated input) where a block changes width; BN-ReLU-average-pool-dense
head. The output of each group is an attention point. Batch-norm momentum and epsilon follow
PyTorch's defaults, as in the reference code.

With `channel_scales=True` (network slimming) each batch norm loses its own scale and is followed
by a `ChannelScale`: y = s * (x_hat + b). The batch norms that read one residual stream (the stem
output, or the output of a run of blocks joined by identity shortcuts) share one scale, so a
pruned stream channel is silenced wherever it is read; the inner batch norm of each block has its
own. `widths` gives each channel group's count after surgery; which blocks have shortcut
convolutions always follows the nominal architecture.
"""

from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras
from tfdfc.models.attention import attention_name
from tfdfc.models.channels import ChannelPlan, attach_plan, width_of

_BN = dict(momentum=0.9, epsilon=1e-5)


def _conv_initializer():
    # N(0, sqrt(2 / (k*k*out_channels))), the reference code's init.
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _conv(filters, kernel, stride, name):
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                               kernel_initializer=_conv_initializer(), name=name)


class _Builder:
    """Builds the network, recording channel groups when slimming scales are asked for."""

    def __init__(self, widths, channel_scales):
        self.widths, self.channel_scales, self.plan = widths, channel_scales, ChannelPlan()

    def norm(self, x, name, group):
        if not self.channel_scales:
            return keras.layers.BatchNormalization(**_BN, name=name)(x)
        x = keras.layers.BatchNormalization(scale=False, **_BN, name=name)(x)
        self.plan.connect(name, group, group)
        return self.plan.scale(x, group)

    def conv(self, x, group, nominal, kernel, stride, name, input_group, input_norm=None):
        x = _conv(width_of(self.widths, group, nominal), kernel, stride, name)(x)
        self.plan.connect(name, input_group, group, input_norm=input_norm)
        return x

    def block(self, x, stream, new_stream, filters, stride, name):
        """One pre-activation block reading `stream`; `new_stream` is set when it has a shortcut
        convolution (a change of width or stride), which starts a new residual stream."""
        pre = self.norm(x, f"{name}_bn_0", stream)
        pre = keras.layers.ReLU(name=f"{name}_relu_0")(pre)
        out_stream = new_stream or stream
        if new_stream:
            shortcut = self.conv(pre, new_stream, filters, 1, stride, f"{name}_shortcut", stream,
                                 f"{name}_bn_0")
        else:
            shortcut = x
        inner = f"{name}_inner"
        y = self.conv(pre, inner, filters, 3, stride, f"{name}_conv_0", stream, f"{name}_bn_0")
        y = self.norm(y, f"{name}_bn_1", inner)
        y = keras.layers.ReLU(name=f"{name}_relu_1")(y)
        y = self.conv(y, out_stream, filters, 3, 1, f"{name}_conv_1", inner, f"{name}_bn_1")
        return shortcut, y, out_stream


def wide_resnet(input_shape, num_classes, depth=16, widen=2, widths=None, channel_scales=False):
    """WRN-`depth`-`widen` returning logits; its 3 group outputs are named attention points.

    `widths` ({channel group: count}) and `channel_scales` are for network slimming (see the
    module docstring).
    """
    if depth < 10 or (depth - 4) % 6:
        raise ConfigError(f"WRN depth must be 6n+4 with n >= 1, got {depth}")
    if widen < 1:
        raise ConfigError(f"WRN widen factor must be >= 1, got {widen}")
    builder = _Builder(widths, channel_scales)
    blocks_per_group = (depth - 4) // 6
    inputs = keras.Input(shape=input_shape, name="image")
    stream, streams, nominal_width = "stream_0", 1, 16
    x = builder.conv(inputs, stream, 16, 3, 1, "conv_stem", None)
    for group, (filters, stride) in enumerate(zip((16 * widen, 32 * widen, 64 * widen),
                                                  (1, 2, 2))):
        for block in range(blocks_per_group):
            name = f"group_{group}_block_{block}"
            block_stride = stride if block == 0 else 1
            new_stream = None
            if nominal_width != filters or block_stride != 1:
                new_stream, streams = f"stream_{streams}", streams + 1
            shortcut, residual, stream = builder.block(x, stream, new_stream, filters,
                                                       block_stride, name)
            nominal_width = filters
            last = block == blocks_per_group - 1
            x = keras.layers.Add(name=attention_name(group) if last else f"{name}_add")(
                [shortcut, residual])
    x = builder.norm(x, "head_bn", stream)
    x = keras.layers.ReLU(name="head_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    builder.plan.connect("logits", stream, None, input_norm="head_bn")
    model = keras.Model(inputs, logits, name=f"wrn_{depth}_{widen}")
    return attach_plan(model, builder.plan) if channel_scales else model
