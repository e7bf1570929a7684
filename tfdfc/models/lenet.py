"""A LeNet-5-style CNN with a width multiplier: the small teacher and student for digit data."""

from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras
from tfdfc.models.attention import attention_name


def lenet5(input_shape, num_classes, width=1.0):
    """LeNet-5 with 'same' padding (so it fits any input of at least 4x4), logits out.

    Args:
      input_shape: (height, width, channels).
      num_classes: number of logits.
      width: multiplier on every layer's channels and units (1.0 is 6/16 conv, 120/84 dense).
    """
    if width <= 0:
        raise ConfigError(f"width must be positive, got {width}")

    def scaled(units):
        return max(1, int(round(units * width)))

    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Conv2D(scaled(6), 5, padding="same", name="conv_0")(inputs)
    x = keras.layers.Activation("relu", name=attention_name(0))(x)
    x = keras.layers.MaxPooling2D(2, name="pool_0")(x)
    x = keras.layers.Conv2D(scaled(16), 5, padding="same", name="conv_1")(x)
    x = keras.layers.Activation("relu", name=attention_name(1))(x)
    x = keras.layers.MaxPooling2D(2, name="pool_1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(scaled(120), activation="relu", name="dense_0")(x)
    x = keras.layers.Dense(scaled(84), activation="relu", name="dense_1")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=f"lenet5_x{width:g}")
