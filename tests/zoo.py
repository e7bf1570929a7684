"""A test zoo of tiny teachers in the shapes users bring: keras.applications networks, residual
and squeeze-excite blocks, a Sequential MLP, a nested model, preprocessing layers inside.

Each builder returns an untrained tf-keras classifier on 32x32x3 images (few channels, so a test
runs in seconds); `trained_teacher` gives its batch norms statistics away from their start, so a
wrong batch-norm policy shows.
"""

import numpy as np

from tfdfc.keras_compat import keras

SHAPE = (32, 32, 3)
CLASSES = 4
layers = keras.layers


def mobilenet_v2():
    return keras.applications.MobileNetV2(input_shape=SHAPE, alpha=0.35, weights=None,
                                          classes=CLASSES)


def mobilenet_v3_small():
    """Starts with Rescaling(1/127.5, -1); hard-swish, squeeze-excite, a softmax head."""
    return keras.applications.MobileNetV3Small(input_shape=SHAPE, alpha=0.75, weights=None,
                                               classes=CLASSES, dropout_rate=0.0)


def _conv_bn(x, filters, strides=1, activation="relu"):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation(activation)(x) if activation else x


def resnet():
    """Add shortcuts (one with a projection), BN after conv, BN after an Add, pre-activation
    BN, LeakyReLU, max pooling, Dropout, a logits head."""
    inputs = keras.Input(SHAPE)
    x = _conv_bn(inputs, 8)
    y = _conv_bn(_conv_bn(x, 8), 8, activation=None)
    x = layers.ReLU()(layers.Add()([x, y]))
    y = _conv_bn(_conv_bn(x, 16, strides=2), 16, activation=None)
    shortcut = layers.Conv2D(16, 1, strides=2)(x)
    x = layers.BatchNormalization()(layers.Add()([shortcut, y]))  # BN after an Add
    x = layers.LeakyReLU(0.1)(x)
    x = layers.BatchNormalization()(layers.MaxPooling2D()(x))  # pre-activation style
    x = layers.Dropout(0.1)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, layers.Dense(CLASSES)(x), name="zoo_resnet")


def squeeze_excite():
    """Depthwise and separable convolutions, ZeroPadding2D, swish, a squeeze-excite Multiply,
    Concatenate, average pooling, Flatten and a softmax head."""
    inputs = keras.Input(SHAPE)
    x = layers.ZeroPadding2D(1)(inputs)
    x = layers.Conv2D(8, 3, activation="swish")(x)
    x = layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same")(x))
    x = layers.ReLU(6.0)(x)
    squeeze = layers.GlobalAveragePooling2D()(x)
    squeeze = layers.Dense(4, activation="relu")(squeeze)
    squeeze = layers.Reshape((1, 1, 8))(layers.Dense(8, activation="sigmoid")(squeeze))
    x = layers.Multiply()([x, squeeze])
    x = layers.Concatenate()([x, layers.SeparableConv2D(8, 3, padding="same")(x)])
    x = layers.AveragePooling2D(4)(x)
    outputs = layers.Dense(CLASSES, activation="softmax")(layers.Flatten()(x))
    return keras.Model(inputs, outputs, name="zoo_se")


def sequential_mlp():
    return keras.Sequential([keras.Input(SHAPE), layers.Flatten(),
                             layers.Dense(32, activation="relu"), layers.Dense(CLASSES)],
                            name="zoo_mlp")


def nested():
    """The transfer-learning shape: a Functional base inside a Sequential model."""
    base_in = keras.Input(SHAPE)
    x = layers.MaxPooling2D()(_conv_bn(_conv_bn(base_in, 8), 8))
    base = keras.Model(base_in, x, name="base")
    return keras.Sequential([keras.Input(SHAPE), base, layers.GlobalAveragePooling2D(),
                             layers.Dense(CLASSES)], name="zoo_nested")


def rescaling_first():
    """Takes 0..255 pixels: Rescaling(1/255) then a conv net."""
    inputs = keras.Input(SHAPE)
    x = layers.Rescaling(1 / 255.0)(inputs)
    x = layers.MaxPooling2D()(_conv_bn(x, 8))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(CLASSES)(x), name="zoo_rescaling")


BUILDERS = {"mobilenet_v2": mobilenet_v2, "mobilenet_v3_small": mobilenet_v3_small,
            "resnet": resnet, "squeeze_excite": squeeze_excite, "sequential_mlp": sequential_mlp,
            "nested": nested, "rescaling_first": rescaling_first}


def trained_teacher(name, seed=0):
    """Builds zoo model `name` with batch-norm statistics moved off their 0 / 1 start (as
    training on real data leaves them), so that a wrong batch-norm policy shows."""
    keras.utils.set_random_seed(seed)
    model = BUILDERS[name]()
    rng = np.random.default_rng(seed)
    for layer in model.submodules:
        if isinstance(layer, layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0.0, 0.3, shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))
    head = model.layers[-1]
    head = getattr(head, "layers", [head])[-1]  # the last layer of a Sequential's last model
    if getattr(head, "kernel", None) is not None:  # decisive answers: int8 rounding cannot flip
        head.kernel.assign(head.kernel * 3.0)  # the test labels, which are the teacher's own
    return model
