"""Pre-activation wide residual network WRN-d-k, as in the reference code of Micaelli & Storkey.

Groups of (d-4)/6 basic blocks with widths 16k, 32k, 64k and strides 1, 2, 2; a 1x1 shortcut
convolution (on the pre-activated input) where a block changes width; BN-ReLU-average-pool-dense
head. The output of each group is an attention point. Batch-norm momentum and epsilon follow
PyTorch's defaults, as in the reference code.
"""

from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras
from tfdfc.models.attention import attention_name

_BN = dict(momentum=0.9, epsilon=1e-5)


def _conv_initializer():
    # N(0, sqrt(2 / (k*k*out_channels))), the reference code's init.
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _conv(filters, kernel, stride, name):
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                               kernel_initializer=_conv_initializer(), name=name)


def _basic_block(x, filters, stride, name):
    pre = keras.layers.BatchNormalization(**_BN, name=f"{name}_bn_0")(x)
    pre = keras.layers.ReLU(name=f"{name}_relu_0")(pre)
    if x.shape[-1] != filters or stride != 1:
        shortcut = _conv(filters, 1, stride, f"{name}_shortcut")(pre)
    else:
        shortcut = x
    y = _conv(filters, 3, stride, f"{name}_conv_0")(pre)
    y = keras.layers.BatchNormalization(**_BN, name=f"{name}_bn_1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu_1")(y)
    y = _conv(filters, 3, 1, f"{name}_conv_1")(y)
    return shortcut, y


def wide_resnet(input_shape, num_classes, depth=16, widen=2):
    """WRN-`depth`-`widen` returning logits; its 3 group outputs are named attention points."""
    if depth < 10 or (depth - 4) % 6:
        raise ConfigError(f"WRN depth must be 6n+4 with n >= 1, got {depth}")
    if widen < 1:
        raise ConfigError(f"WRN widen factor must be >= 1, got {widen}")
    blocks_per_group = (depth - 4) // 6
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(16, 3, 1, "conv_stem")(inputs)
    for group, (filters, stride) in enumerate(zip((16 * widen, 32 * widen, 64 * widen),
                                                  (1, 2, 2))):
        for block in range(blocks_per_group):
            name = f"group_{group}_block_{block}"
            shortcut, residual = _basic_block(x, filters, stride if block == 0 else 1, name)
            last = block == blocks_per_group - 1
            x = keras.layers.Add(name=attention_name(group) if last else f"{name}_add")(
                [shortcut, residual])
    x = keras.layers.BatchNormalization(**_BN, name="head_bn")(x)
    x = keras.layers.ReLU(name="head_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=f"wrn_{depth}_{widen}")
