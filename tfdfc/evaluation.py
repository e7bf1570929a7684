"""Accuracy of a saved student of any format (.keras, .h5, SavedModel, .tflite) on a data set:
what `python -m tfdfc.evaluate` prints, and what a user checks a shipped file with.

A .tflite file runs in ai-edge-litert; when the default XNNPACK delegate refuses it (sparse
quantized kernels) or computes it wrongly (its outputs on the first images far from the builtin
kernels'), it runs again with the builtin kernels only, and the result says which.
"""

import os

from tfdfc import metrics
from tfdfc import teacher as teacher_lib
from tfdfc.compression import binary
from tfdfc.errors import ModelFileError, first_line
from tfdfc.keras_compat import tfmot


def evaluate(path, eval_set, unsafe_load=False):
    """{format, accuracy, examples, ...sizes} of the model at `path` on `eval_set`'s test split.

    Raises:
      ModelFileError: missing or unreadable file, or a model whose input shape is not the data's.
      TeacherError: a Keras file that is not a usable classifier.
    """
    if not os.path.exists(path):
        raise ModelFileError(f"model not found: {path}")
    if path.endswith(".tflite"):
        return _evaluate_tflite(path, eval_set)
    with tfmot.quantization.keras.quantize_scope(binary.custom_objects()):
        model = teacher_lib.load(path, safe_mode=not unsafe_load)  # QAT SavedModels need the scope
    teacher_lib.check_eval_set(model, eval_set, eval_set.name, role=path)
    return {"path": path, "format": "keras", "examples": len(eval_set.y_test),
            "accuracy": metrics.keras_accuracy(model, eval_set.x_test, eval_set.y_test),
            "params": metrics.parameter_count(model),
            "kernel_params": metrics.kernel_parameter_count(model),
            "sparsity": metrics.sparsity(model),
            "macs": metrics.multiply_accumulates(model)}


def _without_ones(shape):
    """`shape` without its axes of size 1: a (28, 28) input takes (28, 28, 1) images."""
    return tuple(size for size in shape if size != 1)


def _evaluate_tflite(path, eval_set):
    with open(path, "rb") as handle:
        payload = handle.read()
    try:
        image_shape, classes = metrics.tflite_signature(payload)
    except (RuntimeError, ValueError) as error:
        raise ModelFileError(f"{path} is not a TFLite model: {first_line(error)}") from error
    if _without_ones(image_shape) != _without_ones(eval_set.input_shape):
        raise ModelFileError(f"{path} takes images of shape {image_shape}, but "
                             f"{eval_set.name} has shape {tuple(eval_set.input_shape)}")
    teacher_lib.check_labels(classes, eval_set.y_test, eval_set.name)
    try:
        outputs, delegate, _ = metrics.tflite_outputs_any_kernels(payload, eval_set.x_test)
    except (RuntimeError, ValueError) as error:
        raise ModelFileError(f"{path} could not be run as a TFLite model on images of "
                             f"shape {eval_set.input_shape}: {first_line(error)}") from error
    return {"path": path, "format": "tflite", "examples": len(eval_set.y_test),
            "accuracy": metrics.accuracy(outputs, eval_set.y_test), "bytes": len(payload),
            "gzip_bytes": metrics.gzip_size(payload), "delegate": delegate}
