"""A teacher rewritten as the ops TFLite runs, for the schemes that quantize kernels layer by
layer (n-bit and mixed precision): a SeparableConv2D becomes a DepthwiseConv2D and a 1x1
Conv2D, and a kernel layer's own activation that TFLite does not fuse into it (swish, sigmoid,
LeakyReLU, ...; anything but ReLU and ReLU6) becomes an Activation layer after it.

Why: the n-bit and mixed configs (compression/quantize.py, compression/mixed.py) give each
kernel its own quantizer and bit width and each op's output its own range. TFLite has no
separable convolution (the converter writes a depthwise then a pointwise one, and TF-MOT's
8-bit scheme splits it the same way inside its wrappers), and it runs an unfused activation as
an op of its own, whose input (the kernel's output) needs a range of its own: without one, the
converter calibrates it and leaves a 4-bit kernel unpacked INT8 (the squeeze-excite
convolutions of EfficientNet, with swish and sigmoid inside).

The rewritten model computes the same function, so a teacher split once when it is loaded is
still the user's teacher. Kernel layers keep their names (the names a mixed-precision plan and
the report list); a separable layer's pointwise convolution keeps its name and the depthwise
one is `<name>_depthwise`; a split activation is `<name>_activation`. The model's output layer
keeps its activation (the logits head is the teacher loader's).
"""

from tfdfc import graph_walk
from tfdfc.compression import quantize
from tfdfc.keras_compat import keras

_DEPTHWISE_KEYS = ("kernel_size", "strides", "padding", "data_format", "dilation_rate",
                   "depth_multiplier", "depthwise_initializer", "depthwise_regularizer",
                   "depthwise_constraint", "dtype")
_POINTWISE_KEYS = {"filters": "filters", "data_format": "data_format",
                   "activation": "activation", "use_bias": "use_bias",
                   "pointwise_initializer": "kernel_initializer",
                   "bias_initializer": "bias_initializer",
                   "pointwise_regularizer": "kernel_regularizer",
                   "bias_regularizer": "bias_regularizer",
                   "activity_regularizer": "activity_regularizer",
                   "pointwise_constraint": "kernel_constraint",
                   "bias_constraint": "bias_constraint", "dtype": "dtype"}
_KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D,
                  keras.layers.SeparableConv2D)


def _unfused_activation(layer, output_layer):
    """Whether `layer` is a kernel layer (not the model's output) with an activation of its
    own that TFLite runs as a separate op."""
    if not isinstance(layer, _KERNEL_LAYERS) or layer is output_layer:
        return False
    activation = getattr(layer, "activation", None)
    if activation is None:
        return False
    if isinstance(activation, keras.layers.Layer):  # LeakyReLU(0.1), PReLU(), ReLU(6.0)
        return not quantize.fuses_into_kernel(activation)
    return getattr(activation, "__name__", None) not in ("linear",) + quantize.FUSED_ACTIVATIONS


def needs_split(model):
    """Whether `split` would change `model`."""
    output_layer = model.layers[-1]
    return any(isinstance(layer, keras.layers.SeparableConv2D)
               or _unfused_activation(layer, output_layer) for layer in model.layers)


def split(model):
    """`model` itself when nothing splits, else a Functional copy with each SeparableConv2D a
    DepthwiseConv2D and a 1x1 Conv2D, and each unfused activation a layer of its own, with
    `model`'s weights; outputs equal `model`'s."""
    if not getattr(model, "_is_graph_network", False) or not needs_split(model):
        return model
    taken = {layer.name for layer in model.layers}
    output_layer, copies = model.layers[-1], {}  # original name -> (original, [its copies])

    def call(layer, args, kwargs):
        if layer.name not in copies:
            copies[layer.name] = (layer, _copies(layer, taken, output_layer))
        first, *rest = copies[layer.name][1]
        outputs = first(*args, **kwargs)
        for copy in rest:  # the pointwise convolution, then the activation
            outputs = copy(outputs)
        return outputs

    inputs = graph_walk.new_inputs(model)
    result = keras.Model(inputs, graph_walk.run(model, inputs, call), name=model.name)
    for original, layer_copies in copies.values():
        weights = original.get_weights()
        for copy in layer_copies:  # in call order, as the original holds them: [depthwise
            count = len(copy.weights)  # kernel], kernel, bias?, [the activation's (PReLU)]
            copy.set_weights(weights[:count])
            weights = weights[count:]
    return result


def _free_name(name, taken):
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _copies(layer, taken, output_layer):
    """The layers that replace `layer` in the split model, in call order."""
    config = layer.get_config()
    activation = None
    if _unfused_activation(layer, output_layer):
        # A function as it is (a lambda has no config); an activation layer made again from
        # its config (its weights, as PReLU's, set from the original's with the kernel's).
        activation = (layer.activation if not isinstance(layer.activation, keras.layers.Layer)
                      else keras.layers.deserialize(config["activation"]))
        config["activation"] = "linear"
    if isinstance(layer, keras.layers.SeparableConv2D):
        copies = [keras.layers.DepthwiseConv2D(
                      name=_free_name(f"{layer.name}_depthwise", taken), use_bias=False,
                      trainable=layer.trainable,
                      **{key: config[key] for key in _DEPTHWISE_KEYS if key in config}),
                  keras.layers.Conv2D(
                      kernel_size=1, name=layer.name, trainable=layer.trainable,
                      **{new: config[old] for old, new in _POINTWISE_KEYS.items()
                         if old in config})]
    else:
        copies = [layer.__class__.from_config(config)]
    if activation is not None:
        copies.append(keras.layers.Activation(
            activation, name=_free_name(f"{layer.name}_activation", taken),
            dtype=config.get("dtype")))
    return copies
