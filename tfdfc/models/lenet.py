"""A LeNet-5-style CNN with a width multiplier: the small teacher and student for digit data.

With `channel_scales=True` every hidden convolution and dense layer is followed by a
`ChannelScale` (before its ReLU), for network slimming; `widths` sets the exact channel count of
each of them (as surgery leaves them).
"""

from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras
from tfdfc.models.attention import attention_name
from tfdfc.models.channels import ChannelPlan, attach_plan, width_of


def lenet5(input_shape, num_classes, width=1.0, widths=None, channel_scales=False):
    """LeNet-5 with 'same' padding (so it fits any input of at least 4x4), logits out.

    Args:
      input_shape: (height, width, channels).
      num_classes: number of logits.
      width: multiplier on every layer's channels and units (1.0 is 6/16 conv, 120/84 dense).
      widths: optional {layer name: channels} overriding the multiplier (conv_0, conv_1,
        dense_0, dense_1), e.g. after channel pruning.
      channel_scales: add slimming scales (see module docstring) and attach a channel plan.
    """
    if width <= 0:
        raise ConfigError(f"width must be positive, got {width}")
    plan = ChannelPlan()

    def units(name, nominal):
        return width_of(widths, name, max(1, int(round(nominal * width))))

    def activate(x, name, activation_name):
        if channel_scales:
            x = plan.scale(x, name)
        return keras.layers.Activation("relu", name=activation_name)(x)

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    previous = None
    for index, filters in enumerate((6, 16)):
        name = f"conv_{index}"
        x = keras.layers.Conv2D(units(name, filters), 5, padding="same", name=name)(x)
        plan.connect(name, previous, name, scaled_output=True)
        x = activate(x, name, attention_name(index))
        x = keras.layers.MaxPooling2D(2, name=f"pool_{index}")(x)
        previous = name
    repeat = int(x.shape[1]) * int(x.shape[2])
    x = keras.layers.Flatten(name="flatten")(x)
    for index, hidden in enumerate((120, 84)):
        name = f"dense_{index}"
        x = keras.layers.Dense(units(name, hidden), name=name,
                               activation=None if channel_scales else "relu")(x)
        plan.connect(name, previous, name, input_repeat=repeat if index == 0 else 1,
                     scaled_output=True)
        if channel_scales:
            x = activate(x, name, f"{name}_relu")
        previous = name
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    plan.connect("logits", previous, None)
    model = keras.Model(inputs, logits, name=f"lenet5_x{width:g}")
    return attach_plan(model, plan) if channel_scales else model
