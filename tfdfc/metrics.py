"""Accuracy of Keras and TFLite models, and size counters (parameters, zeros, MACs, bytes).

Sparsity is the fraction of zeros among the kernels of convolution and dense layers, the weights
that pruning removes; parameter counts include every weight Keras counts.
"""

import collections
import gzip

import numpy as np

from tfdfc.keras_compat import keras

_KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
_KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def keras_logits(model, images, batch_size=256):
    """Runs `model` in inference mode over `images` in batches; returns logits as numpy."""
    outputs = [np.asarray(model(images[start:start + batch_size], training=False))
               for start in range(0, len(images), batch_size)]
    return np.concatenate(outputs)


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


def parameter_count(model):
    """Every weight Keras counts, trainable or not."""
    return int(sum(np.prod(weight.shape) for weight in model.weights))


def kernel_parameter_count(model):
    """Weights of convolution and dense layers (kernels and biases): the paper's #Params."""
    return int(sum(np.prod(weight.shape) for layer, _ in kernel_layers(model)
                   for weight in _unwrapped(layer).weights))


def nonzero_parameter_count(model):
    """Weights that are not exactly zero."""
    return int(sum(np.count_nonzero(weight.numpy()) for weight in model.weights))


def sparsity(model):
    """Fraction of exact zeros among convolution and dense kernels."""
    kernels = [kernel.numpy() for _, kernel in kernel_layers(model)]
    total = sum(kernel.size for kernel in kernels)
    return float(sum(kernel.size - np.count_nonzero(kernel) for kernel in kernels) / max(total, 1))


def multiply_accumulates(model):
    """MACs of one forward pass (one image) through convolution and dense layers."""
    total = 0
    for layer, kernel in kernel_layers(model):
        kernel_size = int(np.prod(kernel.shape))
        if isinstance(_unwrapped(layer), keras.layers.Dense):
            total += kernel_size
        else:
            height, width = layer.output_shape[1:3]
            total += height * width * kernel_size
    return int(total)


def gzip_size(payload):
    """Bytes after gzip at the highest level: what zeros in a model buy in transfer size."""
    return len(gzip.compress(payload, compresslevel=9))


TFLiteKernel = collections.namedtuple("TFLiteKernel", "name type bytes shape")


def tflite_kernels(payload):
    """[TFLiteKernel(tensor name, TFLite type name such as INT8 or INT4, bytes stored, shape)]
    of the kernel of every convolution, depthwise and fully connected op of a TFLite flatbuffer,
    in the file's op order."""
    from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
    model = schema.Model.GetRootAsModel(payload, 0)
    graph = model.Subgraphs(0)
    op_names = {value: key for key, value in vars(schema.BuiltinOperator).items()
                if not key.startswith("_")}
    type_names = {value: key for key, value in vars(schema.TensorType).items()
                  if not key.startswith("_")}
    found = []
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        code = model.OperatorCodes(op.OpcodeIndex())
        if op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode())) in _KERNEL_OPS:
            tensor = graph.Tensors(op.Inputs(1))
            found.append(TFLiteKernel(tensor.Name().decode(), type_names[tensor.Type()],
                                      model.Buffers(tensor.Buffer()).DataLength(),
                                      tuple(int(d) for d in tensor.ShapeAsNumpy())))
    return found


def tflite_kernel_bytes(payload):
    """Total bytes of the convolution and dense kernels a TFLite flatbuffer stores."""
    return sum(kernel.bytes for kernel in tflite_kernels(payload))
