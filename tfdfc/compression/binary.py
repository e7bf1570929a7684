"""Binary weights as in the paper (modified BinaryConnect), as a TF-MOT quantizer.

The layer's kernel variable is the full-precision buffer theta_b. The forward pass uses
delta * sign(theta_b) with a straight-through (identity) gradient to theta_b; after every student
update theta_b is clipped to [-delta, delta]. One fixed delta serves every binarised layer. The
first convolution and the last dense layer stay full precision, as do activations, biases and
batch norms; 1x1 shortcut convolutions are binarised (the paper is silent; XNOR-Net practice).

Decisions where the paper is silent:
- sign(0) is +1, so every exported weight is exactly +delta or -delta;
- `delta=None` picks the mean |weight| of the teacher's binarised kernels (the L1-optimal scale
  for one shared delta); the paper grid-searches delta, which `--binary_delta_grid` does.
"""

import numpy as np

from tfdfc.compression import quantize
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras, tf, tfmot

_qk = tfmot.quantization.keras
_KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)


def binary_values(weights, delta):
    """delta * sign(weights), with sign(0) = +1."""
    return delta * tf.where(weights >= 0, 1.0, -1.0)


class BinaryWeightQuantizer(_qk.quantizers.Quantizer):
    """Forward: delta * sign(w). Backward: the identity (straight-through)."""

    def __init__(self, delta):
        self.delta = float(delta)

    def build(self, tensor_shape, name, layer):
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        delta = self.delta

        # Not `w + stop_gradient(b - w)`: in float32 that is not exactly +-delta.
        @tf.custom_gradient
        def straight_through(weights_in):
            return binary_values(weights_in, delta), lambda upstream: upstream

        return straight_through(tf.convert_to_tensor(inputs))  # a tensor, not the variable

    def get_config(self):
        return {"delta": self.delta}

    def __eq__(self, other):
        return isinstance(other, BinaryWeightQuantizer) and other.delta == self.delta

    def __ne__(self, other):
        return not self == other


class BinaryQuantizeConfig(_qk.QuantizeConfig):
    """Binarises a layer's kernel; nothing else in the layer is quantized."""

    def __init__(self, delta):
        self.delta = float(delta)

    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, BinaryWeightQuantizer(self.delta))]

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        layer.kernel = quantize_weights[0]

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {"delta": self.delta}


def custom_objects():
    """Every class a saved or cloned quantized model may need: n-bit and binary."""
    return {**quantize.custom_objects(), "BinaryWeightQuantizer": BinaryWeightQuantizer,
            "BinaryQuantizeConfig": BinaryQuantizeConfig}


def binarised_layer_names(model):
    """Every convolution and dense layer except the first and the last."""
    names = [layer.name for layer in model.layers if isinstance(layer, _KERNEL_LAYERS)]
    if len(names) < 3:
        raise ConfigError(
            f"binary weights keep the first and last weight layers in full precision, so the "
            f"student needs at least 3 convolution/dense layers; {model.name} has {len(names)}")
    return names[1:-1]


def default_delta(model):
    """Mean |w| over the kernels that will be binarised."""
    names = set(binarised_layer_names(model))
    kernels = [np.abs(layer.kernel.numpy()).ravel() for layer in model.layers
               if layer.name in names]
    return float(np.concatenate(kernels).mean())


def binarise(model, delta):
    """A QAT copy of `model` whose inner weight layers are binary; theta_b starts at
    delta * sign(teacher weights), the paper's initialisation."""
    if delta <= 0:
        raise ConfigError(f"delta must be positive, got {delta}")
    quantize.check_kernels_supported(model, "binary")
    names = set(binarised_layer_names(model))
    qat = quantize.apply_configs(
        model, lambda layer: BinaryQuantizeConfig(delta) if layer.name in names else None,
        custom_objects())
    for kernel in binary_buffers(qat):
        kernel.assign(binary_values(kernel, delta))
    return qat


def binary_buffers(qat_model):
    """The full-precision kernels theta_b of the binarised layers."""
    return [quantize.stored_kernel(layer) for layer in qat_model.layers
            if isinstance(getattr(layer, "quantize_config", None), BinaryQuantizeConfig)]


def make_clip(qat_model, delta):
    """A function projecting every theta_b onto [-delta, delta] (run after each student step)."""
    buffers = binary_buffers(qat_model)

    def clip():
        for kernel in buffers:
            kernel.assign(tf.clip_by_value(kernel, -delta, delta))

    return clip


def sign_only(model, delta):
    """The no-training baseline: a float copy of `model` with its inner kernels set to
    delta * sign(w)."""
    names = set(binarised_layer_names(model))
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for layer in copy.layers:
        if layer.name in names:
            layer.kernel.assign(binary_values(layer.kernel, delta))
    return copy
