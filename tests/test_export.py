"""The TFLite and SavedModel exports of export.py on a small model: each file runs in LiteRT and
gives the Keras model's outputs within what its quantization allows."""

import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from tfdfc import compression, export, metrics
from tfdfc.keras_compat import keras, tf


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))


def _images(count=64, seed=1):
    return np.random.default_rng(seed).normal(size=(count, 8, 8, 1)).astype(np.float32)


def test_float_dynamic_and_int8_files_agree_with_keras():
    model, images = _model(), _images()
    logits = metrics.keras_logits(model, images)
    float_file = export.tflite_float(model)
    np.testing.assert_allclose(metrics.tflite_outputs(float_file, images), logits, atol=1e-4)
    dynamic = export.tflite_dynamic(model)
    int8 = export.tflite_int8(model, images)
    assert len(dynamic) < 0.5 * len(float_file) and len(int8) < 0.5 * len(float_file)
    for payload in (dynamic, int8):
        agree = np.mean(np.argmax(metrics.tflite_outputs(payload, images), -1)
                        == np.argmax(logits, -1))
        assert agree >= 0.9, agree


def _input_scale(payload):
    interpreter = Interpreter(model_content=payload)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    quantize = next(op for op in interpreter._get_ops_details()  # pylint: disable=protected-access
                    if op["op_name"] == "QUANTIZE")
    return details[quantize["outputs"][0]]["quantization"][0]


def test_a_qat_file_rounds_its_float_input_on_the_bulk_of_the_images_not_their_outliers():
    """An n-bit QAT model has no input quantizer (its Keras student takes float input), so the
    file's input range comes from the representative images: one far pixel among them must not
    stretch it. A float model's post-training calibration keeps every value."""
    images = _images()
    images[0, 0, 0, 0] = 50.0  # one pixel far beyond the rest, as generators sometimes draw
    qat = compression.compress(_model(), compression.parse_quantize("w8a8")).model
    bulk_scale = (np.quantile(images, 0.999) - np.quantile(images, 0.001)) / 255
    assert _input_scale(export.tflite_int8(qat, images)) <= 1.05 * bulk_scale
    assert _input_scale(export.tflite_int8(_model(), images)) >= 50.0 / 255


def test_every_file_has_a_serving_signature_named_after_the_model():
    """Apps call a file through its signature: each file names the Keras input and output."""
    model = _model()
    for payload in (export.tflite_float(model), export.tflite_dynamic(model),
                    export.tflite_int8(model, _images())):
        interpreter = Interpreter(model_content=payload)
        assert interpreter.get_signature_list() == {
            "serving_default": {"inputs": [model.input_names[0]], "outputs": ["logits"]}}
        runner = interpreter.get_signature_runner("serving_default")
        assert runner(**{model.input_names[0]: _images(2)})["logits"].shape == (2, 4)


def test_int8_io_gives_int8_inputs_and_outputs():
    interpreter = Interpreter(model_content=export.tflite_int8(_model(), _images(), int8_io=True))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8


def test_sparse_encoding_shrinks_a_pruned_model():
    model = _model()
    kernel = model.get_layer("hidden").kernel
    values = kernel.numpy()
    values[np.abs(values) < np.quantile(np.abs(values), 0.9)] = 0.0
    kernel.assign(values)
    dense, sparse = export.tflite_dynamic(model), export.tflite_dynamic(model, sparse=True)
    assert len(sparse) < 0.7 * len(dense)
    assert metrics.is_sparse_encoded(sparse) and not metrics.is_sparse_encoded(dense)
    # XNNPACK, the default delegate, rejects sparse kernels: the plain interpreter runs both.
    np.testing.assert_allclose(
        metrics.tflite_outputs(sparse, _images(), use_default_delegates=False),
        metrics.tflite_outputs(dense, _images(), use_default_delegates=False), atol=1e-4)


def test_a_pruned_model_keeps_the_dense_encoding_where_the_sparse_one_is_larger():
    """At half sparsity the sparse format's indices cost more than its zeros save: the export
    keeps the dense encoding (the zeros still in it), as large as an unpruned file's."""
    model = _model()
    kernel = model.get_layer("hidden").kernel
    values = kernel.numpy()
    values[np.abs(values) < np.quantile(np.abs(values), 0.5)] = 0.0
    kernel.assign(values)
    sparse_only = export.converter(model)
    sparse_only.optimizations = [tf.lite.Optimize.DEFAULT, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    dense = export.tflite_dynamic(model)
    assert len(sparse_only.convert()) > len(dense)
    kept = export.tflite_dynamic(model, sparse=True)
    assert len(kept) == len(dense) and not metrics.is_sparse_encoded(kept)
    assert len(export.tflite_int8(model, _images(), sparse=True)) == len(
        export.tflite_int8(model, _images()))


def test_plain_copy_and_saved_model_keep_the_weights(tmp_path):
    model = _model()
    copy = export.plain_copy(model)
    assert copy is not model
    for a, b in zip(model.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
    path = str(tmp_path / "saved_model")
    export.save_saved_model(copy, path)
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]  # no staging left behind
