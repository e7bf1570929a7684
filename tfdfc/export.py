"""Exports of a trained student: SavedModel and TFLite (float, dynamic-range, full-integer int8),
each written atomically.

Exports work on plain copies built outside any distribution strategy, so the converter sees
ordinary variables. A quantization-aware (QAT) student is converted as it is: its fake-quant
ranges become the int8 parameters; the representative data set (samples from the *trained*
generator) only fills in ranges the QAT model does not define. A float "view" of a QAT or binary
student (same architecture, its weights as trained, binary kernels as exactly +-delta) gives the
float and dynamic-range files to compare against.

Which files each compression method produces is that method's (tfdfc/methods/).
"""

import numpy as np

from tfdfc import artifacts
from tfdfc.compression import binary, quantize
from tfdfc.keras_compat import keras, tf, tfmot

# Share of a QAT model's representative values clipped at each end, per channel, before the
# converter calibrates on them (calibration_images).
CALIBRATION_TAIL = 1e-3


def plain_copy(model):
    """The same architecture and weights, built outside any strategy scope."""
    with tfmot.quantization.keras.quantize_scope(binary.custom_objects()):
        copy = keras.models.clone_model(model, clone_function=quantize.copy_layer)
    copy.set_weights(model.get_weights())
    return copy


def float_view(template, trained):
    """`template` (a float model) with the weights of `trained` (a QAT or binary model of the
    same architecture); binary kernels become exactly +-delta. None if the layouts differ
    (e.g. TF-MOT folded a batch norm into a convolution)."""
    view = plain_copy(template)
    for layer in view.layers:
        if not layer.weights:
            continue
        source = quantize.qat_layer(trained, layer.name)
        if source is None:
            return None
        values = [weight.numpy() for weight in source.weights
                  if not quantize.is_quantizer_state(weight)]
        if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            return None
        config = getattr(source, "quantize_config", None)
        if isinstance(config, binary.BinaryQuantizeConfig):
            values[0] = binary.binary_values(values[0], config.delta).numpy()
        layer.set_weights(values)
    return view


def save_saved_model(model, path):
    """Writes `model` as a SavedModel directory at `path` (atomically)."""
    artifacts.save_keras_model(model, path)


def converter(model, output_range=None):
    """A TFLite converter for `model`'s inference call (`training=False`), its output
    fake-quantized at 8 bits over `output_range` (low, high) when given.

    `TFLiteConverter.from_keras_model` first saves the whole Keras model as a temporary
    SavedModel, which costs seconds per conversion for a model of any size. Saving only the
    traced inference function with the variables it reads gives the same flatbuffer contents:
    the same `serving_default` signature, input and output names, shapes and values.
    """
    specs = [tf.TensorSpec(tensor.shape, tensor.dtype, name=name)
             for tensor, name in zip(model.inputs, model.input_names)]

    @tf.function(input_signature=specs)
    def serve(*inputs):
        outputs = model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        if output_range is not None:
            outputs = [tf.quantization.fake_quant_with_min_max_args(
                output, min=output_range[0], max=output_range[1], num_bits=8)
                for output in outputs]
        return dict(zip(model.output_names, outputs))

    holder = tf.Module()
    holder.model_variables = list(model.variables)  # what the saved function reads
    return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()],
                                                          holder)


def tflite_float(model):
    """Float32 TFLite flatbuffer of `model`."""
    return converter(model).convert()


def float_file(view):
    """{"float": the float TFLite file of a QAT student's float `view`}, or {} when it has none
    (TF-MOT renamed a layer)."""
    return {} if view is None else {"float": tflite_float(view)}


def _optimizations(sparse):
    """DEFAULT quantization, plus sparse weight encoding for pruned models (which makes the
    zeros shrink the file itself, not only its gzip)."""
    if sparse:
        return [tf.lite.Optimize.DEFAULT, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return [tf.lite.Optimize.DEFAULT]


def _smaller_encoding(convert, sparse):
    """`convert(sparse_encoding)`'s file; with `sparse`, the smaller of the sparse and dense
    encodings (the sparse one where the dense one fails to convert). At moderate sparsity the
    sparse format's indices cost more than its zeros save; the zeros stay either way (gzip
    shrinks them), and XNNPACK runs a dense int8 file where it refuses a sparse one."""
    payload = convert(sparse)
    if not sparse:
        return payload
    try:
        dense = convert(False)
    except Exception:  # pylint: disable=broad-except  # the converter's errors vary by version
        return payload
    return dense if len(dense) <= len(payload) else payload


def tflite_dynamic(model, sparse=False):
    """Dynamic-range TFLite: int8 weights, float activations (no calibration data needed);
    `sparse`: the zeros of a pruned model encoded sparsely where that makes the file smaller."""
    def convert(sparse_encoding):
        dynamic = converter(model)
        dynamic.optimizations = _optimizations(sparse_encoding)
        return dynamic.convert()

    return _smaller_encoding(convert, sparse)


def calibration_images(images, tail=CALIBRATION_TAIL):
    """`images` with each channel clipped to its `tail` and `1 - tail` quantiles.

    Generated images are heavy-tailed: a handful of pixels lie far outside anything real. A
    range set by their min and max spreads the int8 levels over values real inputs never take,
    so real inputs get only a fraction of the 256 levels. Clipping the extreme tail keeps the
    range where nearly all generated (and real) values are.
    """
    images = np.asarray(images, np.float32)
    if images.size == 0:
        return images
    axes = tuple(range(images.ndim - 1))
    low, high = (np.quantile(images, q, axis=axes) for q in (tail, 1.0 - tail))
    return np.clip(images, low, high).astype(np.float32)


def _is_quantization_aware(model):
    """Whether `model` holds TF-MOT quantizers (a QAT model), as opposed to a float one."""
    return any(isinstance(layer, (tfmot.quantization.keras.QuantizeWrapper,
                                  quantize.QuantizeLayer)) for layer in model.layers)


def _unquantized_output(model):
    """Whether `model` is a QAT model whose last layer is wrapped but leaves its output
    unquantized (the logits layer of the n-bit and mixed schemes)."""
    last = model.layers[-1]
    if not isinstance(last, tfmot.quantization.keras.QuantizeWrapper):
        return False
    config = last.quantize_config
    return not (config.get_output_quantizers(last.layer)
                or config.get_activations_and_quantizers(last.layer))


# The narrowest output range `output_range` gives: outputs that hardly vary (a damaged or
# constant model) still get a valid range and a scale XNNPACK accepts.
MIN_OUTPUT_RANGE = 1e-2


def output_range(model, images, batch_size=256):
    """The (low, high) range, 0 included and at least MIN_OUTPUT_RANGE wide, of `model`'s
    outputs on `images`."""
    low, high = 0.0, 0.0
    for start in range(0, len(images), batch_size):
        outputs = model(images[start:start + batch_size], training=False).numpy()
        low, high = min(low, float(outputs.min())), max(high, float(outputs.max()))
    return low, max(high, low + MIN_OUTPUT_RANGE)


def tflite_int8(model, representative_images, int8_io=False, sparse=False):
    """Full-integer int8 TFLite; `representative_images` calibrate any range `model` lacks.

    A QAT model's quantizers fix its ranges; the converter calibrates only what they leave
    out, above all the model's input where the scheme has no input quantizer (n-bit and mixed).
    The Keras student takes that input in float, so the file should round real inputs finely:
    its representative images are clipped to their tails first (calibration_images). A float
    model is calibrated on the images as given (post-training quantization, every range).

    Args:
      model: a float or QAT Keras model.
      representative_images: float array of inputs, e.g. samples of the trained generator.
      int8_io: make the model's input and output int8 too (else float, quantized inside).
      sparse: encode the zeros of a pruned model sparsely, where that makes the file smaller.
    """
    quantization_aware = _is_quantization_aware(model)
    batches = (calibration_images(representative_images) if quantization_aware
               else np.asarray(representative_images, np.float32))
    # Where a QAT model's last layer has quantized weights but no output range, the converter
    # calibrates that range itself and then gives the layer's int32 bias another scale than
    # input scale x weight scale, so the file adds every bias multiplied by their ratio (seen
    # with TensorFlow 2.21). The range is set here instead, over the same images.
    fixed_range = (output_range(model, batches)
                   if quantization_aware and _unquantized_output(model) else None)

    def representative_dataset():
        for image in batches:
            yield [image[np.newaxis]]

    def convert(sparse_encoding):
        full_integer = converter(model, fixed_range)
        full_integer.optimizations = _optimizations(sparse_encoding)
        full_integer.representative_dataset = representative_dataset
        full_integer.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            full_integer.inference_input_type = tf.int8
            full_integer.inference_output_type = tf.int8
        return full_integer.convert()

    return _smaller_encoding(convert, sparse)


def write_tflite(payload, path):
    """Writes a TFLite flatbuffer to `path` atomically."""
    artifacts.write_bytes(path, payload)
