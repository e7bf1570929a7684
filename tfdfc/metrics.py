"""Accuracy of Keras and TFLite models, and size counters (parameters, zeros, MACs, bytes).

Sparsity is the fraction of zeros among the kernels of convolution and dense layers, the weights
that pruning removes; parameter counts include every weight Keras counts.
"""

import collections
import gzip
import math

import numpy as np

from tfdfc.compression import quantize
from tfdfc.errors import first_line
from tfdfc.keras_compat import keras, tfmot, variable_name

_KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
_KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def keras_logits(model, images, batch_size=256):
    """Runs `model` in inference mode over `images` in batches; returns logits as numpy."""
    outputs = [np.asarray(model(images[start:start + batch_size], training=False))
               for start in range(0, len(images), batch_size)]
    return np.concatenate(outputs)


def binomial_noise(accuracies, images, standard_errors=2.0):
    """`standard_errors` binomial standard errors of one accuracy measured on `images` images,
    or of the difference of several (their variances add): a difference under this is noise."""
    return standard_errors * math.sqrt(sum(p * (1 - p) for p in accuracies) / images)


def accuracy(logits, labels):
    """Top-1 accuracy as a fraction."""
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def keras_accuracy(model, images, labels, batch_size=256):
    """Top-1 accuracy of a Keras model on (images, labels)."""
    return accuracy(keras_logits(model, images, batch_size), labels)


def tflite_outputs(model_content, images, batch_size=256, use_default_delegates=True):
    """Runs a .tflite flatbuffer over `images` with ai-edge-litert; returns float outputs.

    Integer inputs and outputs are quantized and dequantized with the model's own parameters.
    Sparse quantized models need `use_default_delegates=False` (XNNPACK rejects them).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType  # pylint: disable=g-import-not-at-top
    resolver = (OpResolverType.AUTO if use_default_delegates
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter = Interpreter(model_content=model_content,
                              experimental_op_resolver_type=resolver)
    input_detail = interpreter.get_input_details()[0]
    results = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        interpreter.resize_tensor_input(input_detail["index"], list(batch.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(input_detail["index"], _to_tensor(batch, input_detail))
        interpreter.invoke()
        output_detail = interpreter.get_output_details()[0]
        results.append(_from_tensor(interpreter.get_tensor(output_detail["index"]),
                                    output_detail))
    return np.concatenate(results)


def tflite_signature(model_content):
    """(image shape without the batch axis, number of classes) of a .tflite classifier."""
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
    interpreter = Interpreter(model_content=model_content)
    image = interpreter.get_input_details()[0]["shape"][1:]
    return tuple(int(size) for size in image), int(interpreter.get_output_details()[0]["shape"][-1])


XNNPACK = "default (XNNPACK)"
BUILTIN_KERNELS = "builtin kernels (XNNPACK refused the model)"
BUILTIN_KERNELS_XNNPACK_WRONG = "builtin kernels (XNNPACK computed other outputs)"
# XNNPACK is checked against the builtin kernels on this many of the images: outputs of a file
# computing in float (full-integer files are not compared) apart by more than XNNPACK_TOLERANCE
# of the builtin outputs' largest magnitude (plus a float floor) are a wrong computation.
XNNPACK_CHECK_IMAGES, XNNPACK_TOLERANCE, XNNPACK_FLOOR = 8, 0.1, 1e-6


def tflite_outputs_any_kernels(model_content, images, batch_size=256):
    """`tflite_outputs` under TFLite's default delegate, XNNPACK, or where XNNPACK refuses the
    model (sparse quantized kernels; quantization scales outside its range), with the builtin
    kernels every TFLite runtime has.

    A file computing in float has XNNPACK's outputs on the first images checked against the
    builtin kernels': some files it accepts, it computes wrongly (very sparse dynamic-range
    kernels, TFLite 2.21), and then the builtin kernels' outputs are returned. A full-integer
    file is not compared: the two runtimes round each layer's requantization their own way,
    and over tens of layers the gaps add up to more than any fixed share of the outputs, with
    neither runtime the closer to the Keras model.

    Returns:
      (outputs, what ran them (XNNPACK, BUILTIN_KERNELS or BUILTIN_KERNELS_XNNPACK_WRONG), the
      one-line reason for the builtin kernels (XNNPACK's error or the difference) or None).
    """
    try:
        outputs = tflite_outputs(model_content, images, batch_size)
    except (RuntimeError, ValueError) as error:
        outputs = tflite_outputs(model_content, images, batch_size, use_default_delegates=False)
        return outputs, BUILTIN_KERNELS, first_line(error)
    if computes_in_integers(model_content):
        return outputs, XNNPACK, None
    checked = outputs[:XNNPACK_CHECK_IMAGES]
    builtin = tflite_outputs(model_content, images[:XNNPACK_CHECK_IMAGES],
                             use_default_delegates=False)
    apart = float(np.max(np.abs(checked - builtin)))
    if not apart <= XNNPACK_TOLERANCE * float(np.max(np.abs(builtin))) + XNNPACK_FLOOR:  # NaN
        outputs = tflite_outputs(model_content, images, batch_size, use_default_delegates=False)
        if np.isnan(checked).any() and not np.isnan(builtin).any():
            return outputs, BUILTIN_KERNELS_XNNPACK_WRONG, (
                f"its outputs on {len(builtin)} images hold NaN, the builtin kernels' none")
        return outputs, BUILTIN_KERNELS_XNNPACK_WRONG, (
            f"its outputs on {len(builtin)} images differ from the builtin kernels' by up to "
            f"{apart:.3g}, where those reach {float(np.max(np.abs(builtin))):.3g}")
    return outputs, XNNPACK, None


def _to_tensor(batch, detail):
    if np.issubdtype(detail["dtype"], np.integer):
        scale, zero_point = detail["quantization"]
        limits = np.iinfo(detail["dtype"])
        batch = np.clip(np.round(batch / scale + zero_point), limits.min, limits.max)
    return batch.astype(detail["dtype"])


def _from_tensor(values, detail):
    if np.issubdtype(detail["dtype"], np.integer):
        scale, zero_point = detail["quantization"]
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)


def _unwrapped(layer):
    while hasattr(layer, "layer") and isinstance(layer.layer, keras.layers.Layer):
        layer = layer.layer
    return layer


def stored_kernel_shapes(model):
    """[(layer name, shape)] of `model`'s kernel layers (wrappers looked through, in the model's
    order) with the shape TFLite stores each kernel in: output channels first for convolutions
    (O, H, W, I) and dense layers (O, I), (1, H, W, I * multiplier) for a depthwise one."""
    found = []
    for layer, kernel in kernel_layers(model):
        inner, shape = _unwrapped(layer), tuple(int(d) for d in kernel.shape)
        if isinstance(inner, keras.layers.DepthwiseConv2D):
            found.append((inner.name, (1, shape[0], shape[1], shape[2] * shape[3])))
        else:
            found.append((inner.name, (shape[-1],) + shape[:-1]))
    return found


def kernel_layers(model):
    """(layer, kernel variable) for every convolution and dense layer, wrappers looked through."""
    found = []
    for layer in model.layers:
        inner = _unwrapped(layer)
        if isinstance(inner, _KERNEL_LAYERS):
            kernel = getattr(inner, "depthwise_kernel", None)
            kernel = inner.kernel if kernel is None else kernel
            found.append((layer, kernel))
    return found


def _counted_kernels(model):
    """`kernel_layers` and the two kernels (depthwise, pointwise) of every SeparableConv2D: the
    weights the size counters (kernel parameters, sparsity, MACs) count. kernel_layers, which
    lines up with the TFLite file's conv ops, leaves SeparableConv2D out."""
    found = list(kernel_layers(model))
    for layer in model.layers:
        inner = _unwrapped(layer)
        if isinstance(inner, keras.layers.SeparableConv2D):
            found += [(layer, inner.depthwise_kernel), (layer, inner.pointwise_kernel)]
    return found


def parameter_count(model):
    """Every weight Keras counts, trainable or not, but a QAT model's quantizer state."""
    return int(sum(np.prod(weight.shape) for weight in model.weights
                   if not quantize.is_quantizer_state(weight)))


def kernel_parameter_count(model):
    """Weights of convolution and dense layers (kernels and biases): the paper's #Params.
    Kernels are counted as `_counted_kernels` finds them and biases on the layers, not through
    each layer's `weights`: a QAT wrapper takes its layer's kernel out of those."""
    counted = _counted_kernels(model)
    layers = {id(layer): _unwrapped(layer) for layer, _ in counted}
    biases = [layer.bias for layer in layers.values()
              if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None]
    return int(sum(np.prod(kernel.shape) for _, kernel in counted)
               + sum(np.prod(bias.shape) for bias in biases))


def nonzero_parameter_count(model):
    """Weights that are not exactly zero, of those `parameter_count` counts."""
    return int(sum(np.count_nonzero(weight.numpy()) for weight in model.weights
                   if not quantize.is_quantizer_state(weight)))


def sparsity(model):
    """Fraction of exact zeros among convolution and dense kernels; of a QAT model, among its
    kernel variables: once called, its wrappers put fake-quantized kernels (zeros where a
    weight rounds to 0) in their layers' place."""
    quantized = any(isinstance(layer, tfmot.quantization.keras.QuantizeWrapper)
                    for layer in model.layers)
    zeros, entries = (trained_kernel_zeros(model) if quantized else
                      _zeros_and_entries(kernel for _, kernel in _counted_kernels(model)))
    return float(zeros / max(entries, 1))


_KERNEL_VARIABLES = ("kernel", "depthwise_kernel", "pointwise_kernel")


def trained_kernel_zeros(model):
    """(exact zeros, entries) of the kernel variables of a wrapped (QAT or pruning) model,
    trainable or frozen: a wrapper replaces its layer's `kernel` by a computed tensor, so read
    the variables."""
    return _zeros_and_entries(weight for weight in model.weights
                              if variable_name(weight.name) in _KERNEL_VARIABLES)


def _zeros_and_entries(kernels):
    """(exact zeros, entries) over kernel variables."""
    arrays = [kernel.numpy() for kernel in kernels]
    return (int(sum(array.size - np.count_nonzero(array) for array in arrays)),
            int(sum(array.size for array in arrays)))


def multiply_accumulates(model):
    """MACs of one forward pass (one image) through convolution and dense layers."""
    total = 0
    for layer, kernel in _counted_kernels(model):
        kernel_size, inner = int(np.prod(kernel.shape)), _unwrapped(layer)
        if isinstance(inner, keras.layers.Dense):
            total += kernel_size
        else:  # each kernel position once per output pixel (per input pixel when transposed)
            transposed = isinstance(inner, keras.layers.Conv2DTranspose)
            height, width = (layer.input_shape if transposed else layer.output_shape)[1:3]
            total += height * width * kernel_size
    return int(total)


def gzip_size(payload):
    """Bytes after gzip at the highest level: what zeros in a model buy in transfer size."""
    return len(gzip.compress(payload, compresslevel=9))


TFLiteKernel = collections.namedtuple("TFLiteKernel", "name type bytes shape")


def _flatbuffer(payload):
    """(schema module, model, first subgraph, its ops, their op names, {tensor type: name}) of
    a TFLite flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
    model = schema.Model.GetRootAsModel(payload, 0)
    graph = model.Subgraphs(0)
    op_names = {value: key for key, value in vars(schema.BuiltinOperator).items()
                if not key.startswith("_")}
    type_names = {value: key for key, value in vars(schema.TensorType).items()
                  if not key.startswith("_")}
    ops = [graph.Operators(index) for index in range(graph.OperatorsLength())]
    codes = [model.OperatorCodes(op.OpcodeIndex()) for op in ops]
    names = [op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
             for code in codes]
    return schema, model, graph, ops, names, type_names


def computes_in_integers(payload):
    """Whether a TFLite flatbuffer's convolution and dense ops take integer activations (a
    full-integer file), as opposed to float ones (float and dynamic-range files)."""
    _, _, graph, ops, names, type_names = _flatbuffer(payload)
    return any(type_names[graph.Tensors(op.Inputs(0)).Type()] in ("INT8", "INT16", "UINT8")
               for op, name in zip(ops, names) if name in _KERNEL_OPS)


def is_sparse_encoded(payload):
    """Whether a TFLite flatbuffer stores any kernel in the sparse encoding (a DENSIFY op
    expands it), which XNNPACK refuses for quantized kernels."""
    return "DENSIFY" in _flatbuffer(payload)[4]


def tflite_kernels(payload):
    """[TFLiteKernel(tensor name, TFLite type name such as INT8 or INT4, bytes stored, shape)]
    of the kernel of every convolution, depthwise and fully connected op of a TFLite flatbuffer,
    in the file's op order."""
    schema, model, graph, ops, names, type_names = _flatbuffer(payload)
    # A sparse kernel is a DENSIFY op's output, with no data of its own: the stored tensor is
    # the DENSIFY's input (its nonzero values and the sparsity metadata that indexes them).
    densified = {op.Outputs(0): op.Inputs(0) for op, name in zip(ops, names)
                 if name == "DENSIFY"}
    found = []
    for op, name in zip(ops, names):
        if name in _KERNEL_OPS:
            tensor = graph.Tensors(op.Inputs(1))
            stored = graph.Tensors(densified.get(op.Inputs(1), op.Inputs(1)))
            found.append(TFLiteKernel(tensor.Name().decode(), type_names[stored.Type()],
                                      model.Buffers(stored.Buffer()).DataLength()
                                      + _sparsity_bytes(stored, schema),
                                      tuple(int(d) for d in tensor.ShapeAsNumpy())))
    return found


def _sparsity_bytes(tensor, schema):
    """Bytes of a sparse tensor's index metadata (segments and indices per dimension)."""
    sparsity = tensor.Sparsity()
    if sparsity is None:
        return 0
    vectors = {schema.SparseIndexVector.Int32Vector: (schema.Int32Vector, 4),
               schema.SparseIndexVector.Uint16Vector: (schema.Uint16Vector, 2),
               schema.SparseIndexVector.Uint8Vector: (schema.Uint8Vector, 1)}
    total = 0
    for index in range(sparsity.DimMetadataLength()):
        dimension = sparsity.DimMetadata(index)
        for kind, table in ((dimension.ArraySegmentsType(), dimension.ArraySegments()),
                            (dimension.ArrayIndicesType(), dimension.ArrayIndices())):
            if table is not None and kind in vectors:
                vector_class, item_bytes = vectors[kind]
                vector = vector_class()
                vector.Init(table.Bytes, table.Pos)
                total += vector.ValuesLength() * item_bytes
    return total


def tflite_kernel_bytes(payload):
    """Total bytes of the convolution and dense kernels a TFLite flatbuffer stores (for a
    sparse kernel: its nonzero values and their index metadata)."""
    return sum(kernel.bytes for kernel in tflite_kernels(payload))
