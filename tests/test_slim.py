"""Network slimming: the re-parameterised batch norm, channel surgery, the counters, R_p with its
warm-up, a data-free slimming run with exports, and bad settings rejected."""

import re

import numpy as np
import pytest

from conftest import quiet, two_replica_strategy
from tfdfc import metrics, models, pipeline, teacher
from tfdfc.compression import slim
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras, tf
from tfdfc.loop import Loop
from tfdfc.models.channels import ChannelScale
from tfdfc.train import TrainConfig

_RNG = np.random.default_rng(0)


def _randomise(model):
    """Random scales (some near zero), shifts and batch-norm statistics."""
    for weight in model.weights:
        name = weight.name
        if "scale" in name:
            weight.assign(_RNG.uniform(-1, 1, weight.shape))
        elif "moving_variance" in name:
            weight.assign(_RNG.uniform(0.5, 2.0, weight.shape))
        elif any(key in name for key in ("beta", "moving_mean", "bias")):
            weight.assign(0.3 * _RNG.normal(size=weight.shape))


def test_reparameterised_batch_norm_equals_the_original():
    gamma, beta = _RNG.uniform(0.2, 2.0, 5), _RNG.normal(size=5)
    mean, variance = _RNG.normal(size=5), _RNG.uniform(0.5, 2.0, 5)
    original = keras.layers.BatchNormalization(epsilon=1e-5)
    original.build((None, 5))
    original.set_weights([gamma, beta, mean, variance])
    shift_only = keras.layers.BatchNormalization(scale=False, epsilon=1e-5)
    shift_only.build((None, 5))
    shift_only.set_weights([beta / gamma, mean, variance])  # y = s * (x_hat + b), b = beta/gamma
    scale = ChannelScale()
    scale.build((None, 5))
    scale.set_weights([gamma])
    x = _RNG.normal(size=(7, 5)).astype(np.float32)
    np.testing.assert_allclose(scale(shift_only(x, training=False)),
                               original(x, training=False), atol=1e-5)


@pytest.mark.parametrize("architecture, shape", [("lenet5", (28, 28, 1)),
                                                 ("wrn-10-2", (16, 16, 3)),
                                                 ("wrn-10-1", (16, 16, 3))])
def test_rebuilt_network_equals_the_thresholded_one_and_is_smaller(architecture, shape):
    model = models.build(architecture, shape, 10, channel_scales=True)
    _randomise(model)
    images = _RNG.normal(size=(4,) + shape).astype(np.float32)
    small = slim.cut(model, architecture, threshold=0.5)
    np.testing.assert_allclose(small(images, training=False),
                               slim.thresholded(model, 0.5)(images, training=False), atol=1e-5)
    assert not any(isinstance(layer, ChannelScale) for layer in small.layers)
    assert metrics.kernel_parameter_count(small) < 0.6 * metrics.kernel_parameter_count(model)
    kept = slim.channel_summary(model, 0.5)
    assert all(1 <= count <= total for count, total in kept.values())
    # Nothing is cut at a threshold below every scale: the network keeps its size.
    assert metrics.parameter_count(slim.cut(model, architecture, 1e-9)) == \
        metrics.parameter_count(models.build(architecture, shape, 10))


def test_shared_stream_scale_is_one_variable_read_by_every_block():
    model = models.build("wrn-16-1", (16, 16, 3), 10, channel_scales=True)
    scales = slim.scale_layers(model)
    # wrn-16-1: the stem and group 0 share one stream (identity shortcuts), then two more.
    assert sorted(group for group in scales if group.startswith("stream")) == \
        ["stream_0", "stream_1", "stream_2"]
    assert len(model.get_layer("stream_0_scale")._inbound_nodes) == 3  # 2 blocks + group 1


def test_counters_match_hand_counts_on_a_tiny_network():
    small = models.build("lenet5", (8, 8, 1), 3,
                         widths={"conv_0": 2, "conv_1": 3, "dense_0": 4, "dense_1": 5})
    # conv_0 5*5*1*2+2, conv_1 5*5*2*3+3, dense_0 (2*2*3)*4+4, dense_1 4*5+5, logits 5*3+3
    assert metrics.kernel_parameter_count(small) == 52 + 153 + 52 + 25 + 18
    # MACs: conv_0 at 8x8, conv_1 at 4x4, then the dense kernels
    assert metrics.multiply_accumulates(small) == 64 * 50 + 16 * 150 + 48 + 20 + 15
    assert metrics.multiply_accumulates(models.build("wrn-16-2", (32, 32, 3), 10)) == 101_106_944


def test_regularizer_matches_numpy_and_warms_up():
    model = models.build("lenet5", (8, 8, 1), 3, channel_scales=True)
    _randomise(model)
    counter = tf.Variable(0, dtype=tf.int64)
    spec = slim.SlimSpec(l1_gamma=0.01, weight_decay=1e-3, warmup_steps=4)
    regularizer = slim.make_regularizer(model, spec, counter)
    widths = {"conv_0": 8, "conv_1": 4, "dense_0": 1, "dense_1": 1}
    l1 = sum(0.01 / widths[group] * np.abs(layer.scale.numpy()).sum()
             for group, layer in slim.scale_layers(model).items())
    l2 = sum(np.square(w.numpy()).sum() for w in model.trainable_weights if "scale" not in w.name)
    assert float(regularizer()) == pytest.approx(0.0)
    counter.assign(2)
    assert float(regularizer()) == pytest.approx(0.5 * (l1 + 1e-3 * l2), rel=1e-5)
    counter.assign(10)
    assert float(regularizer()) == pytest.approx(l1 + 1e-3 * l2, rel=1e-5)


def _config(out_dir, teacher_path, **overrides):
    values = dict(teacher=teacher_path, out_dir=str(out_dir), prune="slim", l1_gamma=0.05,
                  weight_decay=1e-4, threshold=0.9, student_init="teacher",
                  generator_channels=8, eval_data="digits", strategy="one_device",
                  with_data_baseline=False,
                  train=TrainConfig(steps=2, batch_size=16, student_steps=3, log_every=1,
                                    student_lr=0.05, divergence="skl"))
    values.update(overrides)
    return pipeline.CompressConfig(**values)


@pytest.mark.slow
def test_two_replica_steps_shrink_scales_and_leave_the_teacher(tmp_path, digits_teacher_path,
                                                               seeded):
    strategy = two_replica_strategy()
    config = _config(tmp_path, digits_teacher_path)
    with strategy.scope():
        model = teacher.load(digits_teacher_path)
    run = pipeline.build(strategy, config, model, log=quiet)
    teacher_before = [w.copy() for w in run.teacher_logits.get_weights()]
    scales = slim.scale_layers(run.players.student_model)
    assert all(np.all(layer.scale.numpy() == 1.0) for layer in scales.values())
    loop = Loop(strategy, run.players, config.train, str(tmp_path / "ckpt"), log=quiet)
    loop.run()
    assert np.isfinite(loop.last_metrics["regularizer"]) and loop.last_metrics["regularizer"] > 0
    # The L1 term pulls every group's scales down (the divergence may lift a few). Over seeds
    # 0-7 each group's mean stayed at or under 0.953, but in one full-suite run a small group
    # (3 or 8 channels) reached 0.97, so the bound per group is loose and the mean over all
    # scales (0.84 at seeds 0-3) carries the margin.
    assert all(layer.scale.numpy().mean() < 0.99 for layer in scales.values())
    assert np.concatenate([layer.scale.numpy() for layer in scales.values()]).mean() < 0.95
    for before, after in zip(teacher_before, run.teacher_logits.get_weights()):
        np.testing.assert_array_equal(before, after)


@pytest.mark.slow
def test_slimming_run_exports_the_smaller_network(tmp_path, digits_teacher_path):
    lines = []
    report = pipeline.run(_config(tmp_path, digits_teacher_path), log=lines.append)
    student = report["student"]
    # the start line counts the channel scales apart: they are not the teacher's parameters
    scales = re.search(r"student \(slim\): ([\d,]+) parameters \(([\d,]+) of them channel "
                       r"scales", "\n".join(lines))
    assert scales and 0 < int(scales[2].replace(",", "")) < int(scales[1].replace(",", ""))
    assert student["kernel_params"] < student["slim"]["kernel_params_before"]
    assert student["macs"] < student["slim"]["macs_before"]
    assert student["generated_classes"]["teacher"] > 1 and student["generated_classes"]["student"] > 1
    saved = keras.models.load_model(str(tmp_path / "saved_model"), compile=False)
    assert metrics.parameter_count(saved) == student["params"]
    for variant in ("float", "dynamic", "int8"):
        assert report["tflite"][variant]["accuracy"] is not None
    assert report["tflite"]["float"]["accuracy"] == pytest.approx(student["accuracy"], abs=0.002)


@pytest.mark.parametrize("overrides, message", [
    (dict(quantize="int8"), "does not combine with --quantize"),
    (dict(threshold=0.0), "--slim_threshold must be positive"),
    (dict(warmup_steps=-1), "--slim_warmup_steps"),
    (dict(prune="none", student_init="auto"), "apply only to --prune=slim"),
    (dict(prune="slim", sparsity=0.5), "--prune_sparsity and --prune_ends need --prune=magnitude"),
])
def test_bad_slimming_settings_are_refused(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, "teacher.keras", **overrides).validate()


@pytest.mark.parametrize("architecture, shape", [("wrn-10-2", (16, 16, 3)),
                                                 ("lenet5", (28, 28, 1))])
def test_student_from_teacher_weights_has_the_teachers_outputs(architecture, shape):
    teacher_model = models.build(architecture, shape, 10)
    for weight in teacher_model.weights:  # trained-looking batch norms: gains > 0
        if "gamma" in weight.name:
            weight.assign(_RNG.uniform(0.3, 2.0, weight.shape))
        elif any(key in weight.name for key in ("beta", "moving_mean")):
            weight.assign(0.3 * _RNG.normal(size=weight.shape))
    student = slim.build_student(architecture, teacher_model, "teacher")
    images = _RNG.normal(size=(3,) + shape).astype(np.float32)
    np.testing.assert_allclose(student(images, training=False),
                               teacher_model(images, training=False), atol=1e-4)
    assert all(np.all(layer.scale.numpy() == 1.0)
               for layer in slim.scale_layers(student).values())


def test_teacher_init_refuses_non_positive_gains_and_unknown_teachers():
    wrn = models.build("wrn-10-1", (16, 16, 3), 10)
    gamma = wrn.get_layer("head_bn").gamma
    gamma.assign(np.where(np.arange(gamma.shape[0]) == 0, -0.5, 1.0))
    with pytest.raises(ConfigError, match="student_init=random"):
        slim.build_student("wrn-10-1", wrn, "teacher")
    with pytest.raises(ConfigError, match="not a registry architecture"):
        slim.student_architecture("same", keras.Sequential([keras.Input((4,)),
                                                            keras.layers.Dense(2)],
                                                           name="mine"))
