"""QAT students through TF-MOT: n-bit value counts, int8 TFLite files that run, WRN support,
and clear errors for bad schemes and unsupported layers."""

import os

import numpy as np
import pytest

from conftest import quiet, two_replica_strategy
from tfdfc import baselines, compression, data, export, metrics, models, pipeline, report, teacher
from tfdfc.compression import mixed, quantize
from tfdfc.errors import ConfigError
from tfdfc.methods import nbit_qat
from tfdfc.keras_compat import keras, tf
from tfdfc.loop import Loop
from tfdfc.train import TrainConfig


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def _lenet(seed=0):
    keras.utils.set_random_seed(seed)
    return models.build("lenet5", (8, 8, 1), 10)


def _calibrate(model, images):
    for start in range(0, 128, 32):
        model(images[start:start + 32], training=True)


@pytest.mark.parametrize("weight_bits", [2, 4])
def test_nbit_kernels_hold_at_most_2_pow_b_values_per_output_channel(digits, weight_bits):
    qat = quantize.quantize_nbit(_lenet(), weight_bits, 8)
    _calibrate(qat, digits.x_train)
    qat(digits.x_test[:4], training=False)
    for layer in qat.layers:
        inner = getattr(layer, "layer", None)
        if isinstance(inner, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = np.asarray(inner.kernel)  # the quantized tensor of the last call
            channels = kernel.reshape(-1, kernel.shape[-1])
            counts = [len(np.unique(channels[:, c])) for c in range(channels.shape[1])]
            assert max(counts) <= 2 ** weight_bits, (layer.name, max(counts))


def test_a_four_bit_depthwise_kernel_gets_a_range_per_channel_in_keras_and_in_the_file():
    """Channels whose weights differ 100-fold in size each get their own range (one range for
    the tensor would round the small ones to zero): each channel's largest weight stays on its
    top level and every weight within half a level; the TFLite file stores the kernel as INT4
    with the same values, so its outputs follow the Keras model's."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 8))
    depthwise = keras.layers.DepthwiseConv2D(3, use_bias=False)
    # Between two layers: the converter packs a kernel as INT4 only where the op's input and
    # output both carry fixed ranges (not the first layer's).
    x = keras.layers.ReLU()(depthwise(keras.layers.Conv2D(256, 1)(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    sizes = np.tile(np.array([1.0, 0.1, 0.01, 1.0], np.float32), 64)
    kernel = np.random.default_rng(0).normal(size=(3, 3, 256, 1)).astype(np.float32)
    kernel *= sizes.reshape(1, 1, 256, 1)
    depthwise.set_weights([kernel])
    qat = quantize.quantize_nbit(model, 4, 8)
    images = np.random.default_rng(1).normal(size=(128, 4, 4, 8)).astype(np.float32)
    _calibrate(qat, images)
    qat(images[:4], training=False)
    layer = next(layer for layer in qat.layers
                 if isinstance(getattr(layer, "layer", None), keras.layers.DepthwiseConv2D))
    quantized = np.asarray(layer.layer.depthwise_kernel)
    for channel in range(4):
        values, weights = quantized[..., channel, 0], kernel[..., channel, 0]
        top = np.max(np.abs(weights))
        assert np.max(np.abs(values)) == pytest.approx(top, rel=1e-5), channel
        assert np.max(np.abs(values - weights)) <= top / 14 * (1 + 1e-5), channel
    payload = export.tflite_int8(qat, images, int8_io=False)
    assert [kernel.type for kernel in metrics.tflite_kernels(payload)][1] == "INT4"
    keras_logits = metrics.keras_logits(qat, images)
    np.testing.assert_allclose(metrics.tflite_outputs(payload, images), keras_logits,
                               atol=0.05 * np.ptp(keras_logits))


def test_int8_copies_keep_a_concatenate_input_unquantized_as_tf_mot_left_it():
    """TF-MOT's layout takes the output quantizer off each input of a Concatenate by replacing a
    method on its quantize config; where that input is a layer the default scheme does not know
    (a squeeze-excite Multiply), every copy of the QAT model (ours, the export's) lost it and
    held two more weights than the model it copied: a traceback."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(
        keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)))
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    gate = keras.layers.Conv2D(8, 1, activation="sigmoid")(
        keras.layers.Conv2D(4, 1, activation="relu")(gate))
    x = keras.layers.Concatenate()([keras.layers.Multiply()([x, gate]),
                                    keras.layers.Conv2D(8, 1, activation="relu")(x)])
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x)))
    qat = quantize.quantize_int8(model)
    images = np.random.default_rng(0).random((128, 8, 8, 3)).astype(np.float32)
    _calibrate(qat, images)
    copy = export.plain_copy(qat)
    assert len(copy.weights) == len(qat.weights)
    np.testing.assert_allclose(copy(images), qat(images), atol=1e-5)
    keras_logits = metrics.keras_logits(qat, images)
    np.testing.assert_allclose(metrics.tflite_outputs(export.tflite_int8(qat, images), images),
                               keras_logits, atol=0.05 * np.ptp(keras_logits))


@pytest.mark.parametrize("scheme", [(8, 8), (4, 8)])
def test_an_nbit_file_adds_large_logit_biases_as_keras_does(scheme):
    """The n-bit logits layer has no output quantizer; left to calibrate that range itself, the
    converter gave the layer's int32 bias another scale than input x weight scale, and a file
    with large logit biases answered other classes than its Keras model."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))
    kernel, _ = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel, np.linspace(-5, 5, 10).astype(np.float32)])
    qat = quantize.quantize_nbit(model, *scheme)
    images = np.random.default_rng(0).random((256, 8, 8, 1)).astype(np.float32)
    _calibrate(qat, images)
    keras_logits = metrics.keras_logits(qat, images)
    file_logits = metrics.tflite_outputs(export.tflite_int8(qat, images[:64]), images)
    np.testing.assert_allclose(file_logits, keras_logits, atol=0.05 * np.ptp(keras_logits))
    assert np.mean(file_logits.argmax(1) == keras_logits.argmax(1)) >= 0.95


@pytest.mark.parametrize("scheme", ["int8", "w4a8"])
def test_average_pooling_feeding_a_concatenation_converts_and_matches_keras(scheme):
    """DenseNet's transition: a convolution, an average pooling whose output feeds both the
    next block and a concatenation. TFLite's AVERAGE_POOL_2D keeps its input's scale, so the
    pooling must not carry a range of its own (the conversion failed on one)."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Activation("relu")(layers.BatchNormalization()(inputs))
    pooled = layers.AveragePooling2D(2)(layers.Conv2D(8, 1, use_bias=False)(x))
    x = layers.Activation("relu")(layers.BatchNormalization()(pooled))
    x = layers.Concatenate()([pooled, layers.Conv2D(4, 3, padding="same", use_bias=False)(x)])
    model = keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(x)))
    qat = (quantize.quantize_int8(model) if scheme == "int8" else
           quantize.quantize_nbit(model, 4, 8))
    images = np.random.default_rng(0).normal(size=(128, 8, 8, 3)).astype(np.float32)
    _calibrate(qat, images)
    keras_logits = metrics.keras_logits(qat, images)
    file_logits = metrics.tflite_outputs(export.tflite_int8(qat, images[:64]), images)
    # The file rounds the pooled values to its input's grid, which the Keras model does not:
    # close on average (the largest gap is one step of the logits' 8-bit grid).
    assert np.mean(np.abs(file_logits - keras_logits)) <= 0.05 * np.ptp(keras_logits)
    assert np.mean(file_logits.argmax(1) == keras_logits.argmax(1)) >= 0.95


def test_four_bit_kernels_before_activations_tflite_does_not_fuse_are_packed():
    """A convolution followed by swish, sigmoid or LeakyReLU (ops of their own in TFLite) gets
    an output range of its own, so its 4-bit kernel is packed as one before ReLU is; the file
    still computes what the Keras model does."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="first")(inputs)
    x = layers.Activation("swish")(layers.Conv2D(8, 3, padding="same", name="swish")(x))
    x = layers.Activation("sigmoid")(layers.Conv2D(8, 1, name="sigmoid")(x))
    x = layers.LeakyReLU(0.1)(layers.Conv2D(8, 1, name="leaky")(x))
    x = layers.ReLU(6.0)(layers.Conv2D(8, 1, name="relu6")(x))
    model = keras.Model(inputs, layers.Dense(3, name="logits")(layers.GlobalAveragePooling2D()(x)))
    qat = quantize.quantize_nbit(model, 4, 8)
    images = np.random.default_rng(0).normal(size=(128, 8, 8, 3)).astype(np.float32)
    _calibrate(qat, images)
    payload = export.tflite_int8(qat, images[:64])
    assert mixed.file_bits(payload, model) == {"first": 8, "swish": 4, "sigmoid": 4, "leaky": 4,
                                               "relu6": 4, "logits": 4}
    keras_logits = metrics.keras_logits(qat, images)
    file_logits = metrics.tflite_outputs(payload, images)
    assert np.mean(np.abs(file_logits - keras_logits)) <= 0.05 * np.ptp(keras_logits)
    assert np.mean(file_logits.argmax(1) == keras_logits.argmax(1)) >= 0.95


@pytest.mark.parametrize("hidden", [0, 1])
def test_four_bit_kernels_the_converter_leaves_int8_are_named_in_one_warning(hidden):
    """The first layer of a w4a8 file stays INT8 (its op's input, the float image, has no QAT
    range); a layer after it is packed, the logits layer too (export fixes its output range)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(8, 3, activation="relu", name="first")(inputs))
    for _ in range(hidden):
        x = keras.layers.Dense(32, activation="relu", name="between")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    qat = quantize.quantize_nbit(model, 4, 8)
    images = np.random.default_rng(0).normal(size=(128, 6, 6, 1)).astype(np.float32)
    _calibrate(qat, images)
    lines = []
    left = nbit_qat.unpacked_kernels(export.tflite_int8(qat, images), model, "w4a8",
                                     log=lines.append)
    assert left == ["first"]
    assert len(lines) == 1 and lines[0].startswith("WARNING: --quantize=w4a8: TFLite keeps 1 of "
                                                   f"{2 + hidden} kernels as INT8")
    assert "(first)" in lines[0]
    first, logits = 3 * 3 * 8, (4 * 4 * 8 if hidden == 0 else 32) * 3
    int8_bytes = first + hidden * 4 * 4 * 8 * 32 + logits
    packed_bytes = first + hidden * 4 * 4 * 8 * 32 // 2 + logits // 2
    assert f"take {packed_bytes:,} bytes against int8's {int8_bytes:,}" in lines[0]
    assert "--quantize=int8 makes a file about as small" not in lines[0]


def test_a_w4a8_file_whose_int8_first_layer_holds_the_weights_points_to_int8():
    """A wide first dense layer (left INT8) holds nearly every weight: the 4-bit kernels save
    almost nothing, and the file with per-output scales can outgrow int8's; the warning says so
    and names the file sizes it compared."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Dense(64, activation="relu", name="first")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    qat = quantize.quantize_nbit(model, 4, 8)
    images = np.random.default_rng(0).normal(size=(128, 16, 16, 1)).astype(np.float32)
    _calibrate(qat, images)
    lines, payload = [], export.tflite_int8(qat, images)
    assert nbit_qat.unpacked_kernels(payload, model, "w4a8", log=lines.append) == ["first"]
    int8 = quantize.quantize_int8(model)
    _calibrate(int8, images)
    assert len(payload) > len(export.tflite_int8(int8, images))  # per-output scales cost more
    assert len(lines) == 1
    assert f"take {256 * 64 + 64 * 3 // 2:,} bytes against int8's {256 * 64 + 64 * 3:,}" \
        in lines[0]
    assert "(1% less); --quantize=int8 makes a file about as small" in lines[0]


@pytest.mark.parametrize("scheme, warned", [("w4a4", True), ("w2a6", True), ("w4a8", False),
                                            ("int8", False)])
def test_activations_below_8_bits_warn_once_before_training_that_tflite_runs_them_at_8(
        scheme, warned, digits_teacher_path):
    config = pipeline.CompressConfig(teacher=digits_teacher_path, out_dir="unused",
                                     quantize=scheme)
    lines = []
    assert pipeline.prepare(config, teacher.load(digits_teacher_path), lines.append) is None
    assert len(lines) == int(warned)
    if warned:
        bits = config.quant_spec
        assert lines[0].startswith(f"WARNING: --quantize={scheme}: TFLite has no "
                                   f"{bits.act_bits}-bit activation kernels")
        assert f"--quantize=w{bits.weight_bits}a8 trains a file of the same size" in lines[0]


def test_tail_quantiles_skip_the_k_most_extreme_values():
    values = tf.range(10_000, dtype=tf.float32)
    low, high = quantize.tail_quantiles(values, 1e-3)  # k = 10
    assert (float(low), float(high)) == (9.0, 9990.0)


def test_robust_range_ignores_a_rare_outlier_that_moves_the_max_range():
    values = np.linspace(0.0, 1.0, 10_000, dtype=np.float32).reshape(10, 1000)
    values[0, 0] = 100.0
    layer = keras.layers.Layer()
    robust = quantize.RobustRangeQuantizer(4, tail=1e-3, ema_decay=0.0)
    weights = robust.build(tf.TensorShape([None, 1000]), "out", layer)
    quantized = robust(tf.constant(values), True, weights).numpy()
    assert float(weights["max_var"]) == pytest.approx(0.9991, abs=1e-3)
    assert len(np.unique(quantized)) <= 16 and quantized.max() <= 1.0 + 1e-6
    max_tracking = quantize.tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
        4, per_axis=False, symmetric=False, narrow_range=False)
    tracked = max_tracking.build(tf.TensorShape([None, 1000]), "out", keras.layers.Layer())
    for _ in range(20):
        max_tracking(tf.constant(values), True, tracked)
    assert float(tracked["max_var"]) > 6.0  # TF-MOT's range grows from 6 toward the outlier


def _ranges_after(start, batches):
    """(min, max) of a 4-bit RobustRangeQuantizer starting as `start` after training calls on
    each of `batches`."""
    quantizer = quantize.RobustRangeQuantizer(4, tail=1e-3, start=start)
    weights = quantizer.build(tf.TensorShape([None, 1000]), "out", keras.layers.Layer())
    for batch in batches:
        quantizer(tf.constant(batch), True, weights)
    return float(weights["min_var"]), float(weights["max_var"])


def test_ranges_from_batches_are_the_first_batch_then_the_running_mean():
    low = np.linspace(-1.0, 2.0, 1000, dtype=np.float32)[None]  # tail quantiles about -1, 2
    high = 2.0 * low
    first = quantize.tail_quantiles(low, 1e-3)
    second = quantize.tail_quantiles(high, 1e-3)
    assert _ranges_after("from_batches", [low]) == pytest.approx(
        (float(first[0]), float(first[1])), abs=1e-6)
    assert _ranges_after("from_batches", [low, high]) == pytest.approx(
        ((float(first[0]) + float(second[0])) / 2, (float(first[1]) + float(second[1])) / 2),
        abs=1e-6)
    # TF-MOT's start moves a thousandth of the way from +-6 per batch.
    assert _ranges_after("tfmot", [low]) == pytest.approx(
        (0.999 * -6 + 0.001 * float(first[0]), 0.999 * 6 + 0.001 * float(first[1])), abs=1e-5)
    # A range keeps 0 inside it (TFLite needs that) from the first batch on.
    assert _ranges_after("from_batches", [np.full((1, 1000), 3.0, np.float32)]) == (0.0, 3.0)


def test_ranges_from_batches_hold_the_datas_range_after_a_run_and_export(tmp_path,
                                                                         digits_teacher_path):
    """A w4a4 run with --activation_ranges=from_batches: each activation quantizer counted the
    run's student updates, its range is its batches' and not +-6, and the files export: the
    float file too (the counters are quantizer state, not weights of the float view)."""
    config = pipeline.CompressConfig(
        teacher=digits_teacher_path, out_dir=str(tmp_path), quantize="w4a4",
        activation_ranges="from_batches", eval_data="digits", generator_channels=8,
        strategy="one_device", with_data_baseline=False,
        train=TrainConfig(steps=2, batch_size=16, student_steps=2, log_every=1, eval_every=2,
                          checkpoint_every=2))
    strategy, teacher_model, eval_set, _ = pipeline.load_inputs(config)
    run, _ = pipeline.train_one(config, strategy, teacher_model, eval_set, config.out_dir,
                                log=quiet)
    weights = {w.name.split("/")[-1].split(":")[0]: w
               for w in run.players.student_model.weights}
    counters = [name for name in weights if name.endswith(quantize.RANGE_BATCHES)]
    assert counters and all(float(weights[name]) == config.total_updates for name in counters)
    for name in counters:
        stem = name[:-len(quantize.RANGE_BATCHES)]
        low, high = float(weights[stem + "min"]), float(weights[stem + "max"])
        # TF-MOT's start would still be within 0.03 of +-6 after these few updates.
        assert low <= 0.0 <= high and (abs(high - 6.0) > 0.05 or abs(low + 6.0) > 0.05), name
    result, _ = report.export_and_measure(config, run, eval_set, log=quiet)
    assert result["tflite"]["int8"]["accuracy"] > 0.5
    assert result["tflite"]["float"]["accuracy"] > 0.5
    assert os.path.exists(os.path.join(config.out_dir, "student_float.tflite"))
    untrained = baselines.no_training(config, run, eval_set)
    assert "the running mean of" in untrained["method"] and untrained["accuracy"] > 0.5


def _weight_types(payload):
    """TFLite types of the weight inputs of every convolution and fully connected op."""
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
    interpreter = Interpreter(model_content=payload)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    return [np.dtype(details[op["inputs"][1]]["dtype"]).name
            for op in interpreter._get_ops_details()  # pylint: disable=protected-access
            if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]


def test_int8_tflite_has_int8_weights_and_matches_keras_qat(digits):
    qat = quantize.quantize_int8(_lenet())
    _calibrate(qat, digits.x_train)
    payload = export.tflite_int8(export.plain_copy(qat), digits.x_train[:64])
    weight_types = _weight_types(payload)
    assert len(weight_types) == 5 and set(weight_types) == {"int8"}, weight_types
    keras_logits = metrics.keras_logits(qat, digits.x_test)
    tflite_logits = metrics.tflite_outputs(payload, digits.x_test)
    agreement = np.mean(keras_logits.argmax(1) == tflite_logits.argmax(1))
    assert agreement > 0.95, agreement
    float_size = len(export.tflite_float(_lenet()))
    assert len(payload) < 0.5 * float_size


def test_int8_io_gives_integer_inputs_and_outputs(digits):
    qat = quantize.quantize_int8(_lenet())
    _calibrate(qat, digits.x_train)
    payload = export.tflite_int8(export.plain_copy(qat), digits.x_train[:64], int8_io=True)
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
    interpreter = Interpreter(model_content=payload)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert metrics.tflite_outputs(payload, digits.x_test[:5]).shape == (5, 10)


@pytest.mark.slow
def test_wrn_with_preactivation_batch_norm_quantizes_and_trains_on_two_replicas(tmp_path):
    strategy = two_replica_strategy()
    with strategy.scope():
        keras.utils.set_random_seed(0)
        teacher_model = models.build("wrn-10-1", (8, 8, 3), 10)
    for scheme, ranges in (("int8", "tfmot"), ("w4a4", "tfmot"), ("w4a4", "from_batches")):
        config = pipeline.CompressConfig(
            teacher="in-memory", out_dir=str(tmp_path), quantize=scheme, generator_channels=8,
            activation_ranges=ranges,
            train=TrainConfig(steps=2, batch_size=8, student_steps=2, log_every=1))
        run = pipeline.build(strategy, config, teacher_model, log=quiet)
        metrics_ = Loop(strategy, run.players, config.train, str(tmp_path / scheme / ranges),
                        log=quiet).run()
        assert all(np.isfinite(value) for value in metrics_.values())
        assert metrics_["attention"] > 0
        for variable in run.players.student_model.variables:  # replicas stay identical
            if variable.synchronization == tf.VariableSynchronization.ON_READ:
                continue  # per-replica by design (batch-norm statistics), averaged on read
            first, second = (np.asarray(v) for v in variable.values)
            np.testing.assert_array_equal(first, second, err_msg=variable.name)


def test_int8_takes_a_batch_norm_after_a_convolution_with_its_own_activation():
    """Conv2D(activation="relu") then BatchNormalization, as many tutorials build it: TF-MOT
    folds only a batch norm after a linear convolution, so this one gets an output quantizer."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.BatchNormalization(name="norm")(
        keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    student = quantize.quantize_int8(model)
    images = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype(np.float32)
    assert student.get_layer("quant_norm") is not None
    assert np.all(np.isfinite(student(images, training=False)))


@pytest.mark.parametrize("text, message", [("w9a8", "between 2 and 8"), ("int4", "unknown"),
                                           ("w4", "unknown"), ("", "unknown")])
def test_bad_quantize_values_are_clear_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        compression.parse_quantize(text)


@pytest.mark.parametrize("overrides, message", [
    (dict(quantize="int8", delta=0.1), "only to --quantize=binary"),
    (dict(quantize="binary", delta_grid=(0.1, -1.0)), "positive"),
    (dict(quantize="binary", int8_io=True), "int8_io"),
    (dict(quantize="w4a4", student="lenet5-x0.5", student_init="teacher"), "student=same"),
    (dict(quantize="int8", activation_ranges="from_batches"), "only to --quantize=w<b>a<c>"),
])
def test_invalid_combinations_fail_before_any_work(overrides, message):
    config = pipeline.CompressConfig(teacher="t.keras", out_dir="o", **overrides)
    with pytest.raises(ConfigError, match=message):
        config.validate()


class Doubler(keras.layers.Layer):
    def call(self, inputs):
        return 2.0 * inputs


def test_custom_layer_is_an_unsupported_layer_error():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(Doubler()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    for scheme in ("int8", "w4a8"):
        with pytest.raises(ConfigError, match="custom layer"):
            compression.compress(model, compression.parse_quantize(scheme))
