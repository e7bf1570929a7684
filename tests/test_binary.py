"""The paper's binary weights: straight-through gradient, clipping, exactly two values, exports."""

import numpy as np
import pytest

from conftest import quiet, two_replica_strategy
from tfdfc import distribute, export, models, pipeline, teacher
from tfdfc.compression import binary
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras, tf
from tfdfc.loop import Loop
from tfdfc.train import TrainConfig

DELTA = 0.05
F32_DELTA = float(np.float32(DELTA))  # what a float32 weight holds


def test_quantizer_forward_is_plus_minus_delta_and_gradient_is_identity():
    weights = tf.Variable(np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))
    weights[0, 0].assign(0.0)
    upstream = tf.constant(np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32))
    quantizer = binary.BinaryWeightQuantizer(DELTA)
    with tf.GradientTape() as tape:
        quantized = quantizer(weights, training=True, weights={})
        loss = tf.reduce_sum(quantized * upstream)
    assert sorted(np.unique(quantized.numpy()).tolist()) == [-F32_DELTA, F32_DELTA]
    assert quantized[0, 0] == F32_DELTA  # sign(0) = +1
    np.testing.assert_array_equal(tape.gradient(loss, weights), upstream)


def _lenet():
    keras.utils.set_random_seed(0)
    return models.build("lenet5", (8, 8, 1), 10)


def test_binarise_keeps_first_and_last_layers_and_starts_at_delta_sign():
    model = _lenet()
    qat = binary.binarise(model, DELTA)
    assert binary.binarised_layer_names(model) == ["conv_1", "dense_0", "dense_1"]
    for name in ("conv_0", "logits"):
        for original, kept in zip(model.get_layer(name).get_weights(),
                                  qat.get_layer(name).get_weights()):
            np.testing.assert_array_equal(original, kept)
    buffers = binary.binary_buffers(qat)
    assert len(buffers) == 3
    for buffer, name in zip(buffers, ("conv_1", "dense_0", "dense_1")):
        np.testing.assert_array_equal(
            buffer.numpy(),
            np.float32(DELTA) * np.where(model.get_layer(name).kernel.numpy() >= 0, 1, -1))


def test_default_delta_is_the_mean_absolute_binarised_weight():
    model = _lenet()
    kernels = [model.get_layer(name).kernel.numpy().ravel()
               for name in ("conv_1", "dense_0", "dense_1")]
    assert binary.default_delta(model) == pytest.approx(np.abs(np.concatenate(kernels)).mean())


def test_too_few_weight_layers_is_a_clear_error():
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ConfigError, match="at least 3"):
        binary.binarise(model, DELTA)


@pytest.mark.parametrize("replicas", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_loop_steps_keep_buffers_clipped_and_export_exactly_two_values(
        tmp_path, digits_teacher_path, replicas):
    strategy = (two_replica_strategy() if replicas == 2
                else distribute.make_strategy("one_device"))
    config = pipeline.CompressConfig(
        teacher=digits_teacher_path, out_dir=str(tmp_path), quantize="binary", delta=DELTA,
        generator_channels=8, train=TrainConfig(steps=2, batch_size=16, student_steps=3,
                                                student_lr=0.05, log_every=1))
    with strategy.scope():
        model = teacher.load(digits_teacher_path)
    run = pipeline.build(strategy, config, model, log=quiet)
    before = [buffer.numpy().copy() for buffer in binary.binary_buffers(run.players.student_model)]
    Loop(strategy, run.players, config.train, str(tmp_path / "ckpt"), log=quiet).run()
    buffers = [buffer.numpy() for buffer in binary.binary_buffers(run.players.student_model)]
    assert all(np.abs(b).max() <= DELTA + 1e-7 for b in buffers)
    assert any(not np.array_equal(a, b) for a, b in zip(before, buffers))
    assert any((np.abs(b) < DELTA - 1e-4).any() for b in buffers), "no buffer moved inside"

    view = export.float_view(run.float_template, run.players.student_model)
    for name in binary.binarised_layer_names(run.float_template):
        values = np.unique(view.get_layer(name).kernel.numpy()).tolist()
        assert values == [-F32_DELTA, F32_DELTA]
    images = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(view(images), run.players.student_model(images), atol=1e-5)
