"""Batch norms folded into the convolution before them, for the n-bit and mixed QAT schemes.

TF-MOT's 8-bit scheme folds a batch norm into its convolution inside the QAT wrapper; the n-bit
configs (compression/quantize.py) wrap layers one by one, so without this a batch norm stayed a
layer of its own: Keras rounded the convolution's output, scaled it, and rounded again, while
TFLite ran the batch norm as an int8 multiply and add. Folding first gives the student the
graph the file executes (convolution with bias, then its activation), one rounding per layer.

It changes no weight the quantizer sees: a convolution's kernel is quantized with one symmetric
range per output channel (a depthwise one per channel and multiplier), and a batch norm in
inference mode scales each output channel by a constant, so the grid of the folded kernel is
the folded grid of the original. It needs the batch norm's moving statistics to stay fixed,
which they do for a teacher-initialised student (batchnorm.py: frozen statistics); under
`--batch_norm=trained` nothing is folded (methods/base.py).
"""

import numpy as np

from tfdfc import graph_walk
from tfdfc.keras_compat import keras

_FOLDABLE = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)  # Conv2D covers Conv2DTranspose
_NOT_FOLDABLE = (keras.layers.Conv2DTranspose, keras.layers.SeparableConv2D)


def foldable_pairs(model):
    """{batch norm name: convolution name} of every batch norm of flat Functional `model` that
    normalises the last axis of a Conv2D or DepthwiseConv2D output used by nothing else."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer.inbound_nodes) != 1:
            continue
        axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
        if axis not in (-1, 3, (3,), (-1,)):
            continue
        producers = layer.inbound_nodes[0].inbound_layers
        conv = producers[0] if isinstance(producers, list) and len(producers) == 1 else producers
        if (isinstance(conv, _FOLDABLE) and not isinstance(conv, _NOT_FOLDABLE)
                and len(conv.inbound_nodes) == 1 and len(conv.outbound_nodes) == 1
                and conv.activation in (None, keras.activations.linear)):
            pairs[layer.name] = conv.name
    return pairs


def fold_batch_norms(model):
    """`model` itself when no batch norm folds, else a copy without the folded batch norms: each
    one's convolution gets the scaled kernel and a bias; outputs equal `model`'s in inference."""
    if not getattr(model, "_is_graph_network", False):
        return model
    pairs = foldable_pairs(model)
    if not pairs:
        return model
    convs, copies = set(pairs.values()), {}

    def call(layer, args, kwargs):
        if layer.name in pairs:  # the batch norm: its convolution already gives its output
            return args[0]
        if layer.name not in copies:
            config = layer.get_config()
            if layer.name in convs:
                config["use_bias"] = True
            copies[layer.name] = layer.__class__.from_config(config)
        return copies[layer.name](*args, **kwargs)

    inputs = graph_walk.new_inputs(model)
    folded = keras.Model(inputs, graph_walk.run(model, inputs, call), name=model.name)
    by_conv = {conv: norm for norm, conv in pairs.items()}
    for name, copy in copies.items():
        original = model.get_layer(name)
        if name in by_conv:
            copy.set_weights(_folded_weights(original, model.get_layer(by_conv[name])))
        else:
            copy.set_weights(original.get_weights())
    return folded


def _folded_weights(conv, norm):
    """[kernel, bias] of `conv` with inference-mode batch norm `norm` folded in."""
    channels = conv.output.shape[-1]
    gamma = norm.gamma.numpy() if norm.scale else np.ones(channels, np.float32)
    beta = norm.beta.numpy() if norm.center else np.zeros(channels, np.float32)
    scale = gamma / np.sqrt(norm.moving_variance.numpy() + norm.epsilon)
    bias = conv.bias.numpy() if conv.use_bias else np.zeros(channels, np.float32)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        kernel = conv.depthwise_kernel.numpy()
        kernel = kernel * scale.reshape(1, 1, kernel.shape[2], kernel.shape[3])
    else:
        kernel = conv.kernel.numpy() * scale  # the output channel is the kernel's last axis
    return [kernel.astype(np.float32),
            ((bias - norm.moving_mean.numpy()) * scale + beta).astype(np.float32)]
