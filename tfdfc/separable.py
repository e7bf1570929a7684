"""SeparableConv2D split into the two convolutions it computes: a DepthwiseConv2D, then a 1x1
Conv2D, for the schemes that quantize kernels layer by layer (n-bit and mixed precision).

TFLite has no separable convolution: the converter writes one as a depthwise convolution
followed by a pointwise one, and TF-MOT's 8-bit scheme splits it the same way inside its
wrappers. The n-bit and mixed configs (compression/quantize.py, compression/mixed.py) give each
kernel layer its own quantizer and bit width, so they need the two kernels as layers of their
own; the split model computes the same function (the strides and dilation belong to the
depthwise step, the activation and bias to the pointwise one), so a teacher split once when it
is loaded is still the user's teacher. The pointwise convolution keeps the separable layer's
name (it gives the same output tensor, so attention points and feature maps named after it
still line up); the depthwise one is `<name>_depthwise`.
"""

from tfdfc import graph_walk
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


def has_separable(model):
    return any(isinstance(layer, keras.layers.SeparableConv2D) for layer in model.layers)


def split(model):
    """`model` itself when it has no SeparableConv2D, else a Functional copy in which each one
    is a DepthwiseConv2D and a 1x1 Conv2D with its weights; outputs equal `model`'s."""
    if not has_separable(model) or not getattr(model, "_is_graph_network", False):
        return model
    taken = {layer.name for layer in model.layers}
    copies = {}  # original layer name -> (original, [its copies])

    def call(layer, args, kwargs):
        if layer.name not in copies:
            copies[layer.name] = (layer, _copies(layer, taken))
        first, *rest = copies[layer.name][1]
        outputs = first(*args, **kwargs)
        for copy in rest:  # the pointwise convolution after the depthwise one
            outputs = copy(outputs)
        return outputs

    inputs = graph_walk.new_inputs(model)
    result = keras.Model(inputs, graph_walk.run(model, inputs, call), name=model.name)
    for original, layer_copies in copies.values():
        weights = original.get_weights()
        if len(layer_copies) == 2:  # [depthwise kernel], [pointwise kernel, bias?]
            layer_copies[0].set_weights(weights[:1])
            layer_copies[1].set_weights(weights[1:])
        else:
            layer_copies[0].set_weights(weights)
    return result


def _copies(layer, taken):
    """The layers that replace `layer` in the split model, in call order."""
    config = layer.get_config()
    if not isinstance(layer, keras.layers.SeparableConv2D):
        return [layer.__class__.from_config(config)]
    name = f"{layer.name}_depthwise"
    while name in taken:
        name += "_"
    taken.add(name)
    depthwise = keras.layers.DepthwiseConv2D(
        name=name, use_bias=False, trainable=layer.trainable,
        **{key: config[key] for key in _DEPTHWISE_KEYS if key in config})
    pointwise = keras.layers.Conv2D(
        kernel_size=1, name=layer.name, trainable=layer.trainable,
        **{new: config[old] for old, new in _POINTWISE_KEYS.items() if old in config})
    return [depthwise, pointwise]
