"""Magnitude pruning in the data-free loop: scheduled sparsity reached under one and two
replicas, kept through SavedModel and TFLite, and bad values rejected."""

import dataclasses
import os
import re

import numpy as np
import pytest

from conftest import quiet, two_replica_strategy
from tfdfc import data, distribute, metrics, pipeline, teacher
from tfdfc.compression import prune, quantize
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras, tf
from tfdfc.loop import Loop
from tfdfc.train import TrainConfig


def _config(out_dir, teacher_path, **overrides):
    values = dict(teacher=teacher_path, out_dir=str(out_dir), prune="magnitude", sparsity=0.8,
                  sparsity_schedule="constant", generator_channels=8, eval_data="digits",
                  strategy="one_device", with_data_baseline=False,
                  train=TrainConfig(steps=2, batch_size=16, student_steps=2, log_every=1))
    values.update(overrides)
    return pipeline.CompressConfig(**values)


@pytest.mark.parametrize("replicas", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_loop_reaches_the_scheduled_sparsity_and_teacher_is_untouched(
        tmp_path, digits_teacher_path, replicas):
    strategy = (two_replica_strategy() if replicas == 2
                else distribute.make_strategy("one_device"))
    config = _config(tmp_path, digits_teacher_path)
    with strategy.scope():
        model = teacher.load(digits_teacher_path)
    run = pipeline.build(strategy, config, model, log=quiet)
    teacher_before = [w.copy() for w in run.teacher_logits.get_weights()]
    Loop(strategy, run.players, config.train, str(tmp_path / "ckpt"), log=quiet).run()
    with strategy.scope():
        prune.apply_masks(run.players.student_model)
    rates = prune.layer_sparsities(model, config.prune_spec)
    assert prune.layer_sparsity(run.players.student_model, config.prune_spec) == pytest.approx(
        rates, abs=0.01)
    stripped = prune.strip(run.players.student_model)
    assert metrics.sparsity(stripped) == pytest.approx(0.8, abs=0.01)
    for before, after in zip(teacher_before, run.teacher_logits.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_polynomial_schedule_grows_to_the_target_over_the_ramp_fraction_of_updates():
    spec = prune.PruneSpec("magnitude", 0.9, "polynomial")
    schedule, ramp_end = prune.schedule_for(spec, 1000), round(spec.ramp * 1000)
    assert float(schedule(0)[1]) == pytest.approx(0.0)
    assert float(schedule(ramp_end // 2)[1]) < 0.9
    assert float(schedule(ramp_end - 50)[1]) < 0.9
    assert float(schedule(ramp_end)[1]) == pytest.approx(0.9)
    assert float(schedule(1000)[1]) == pytest.approx(0.9)


def test_sparsity_survives_saved_model_and_tflite_export(tmp_path, digits_teacher_path):
    lines = []
    report = pipeline.run(_config(tmp_path, digits_teacher_path), log=lines.append)
    assert report["student"]["sparsity"] == pytest.approx(0.8, abs=0.01)
    # each pruned layer's rate, announced at the start and measured in report.json
    rates = prune.layer_sparsities(teacher.load(digits_teacher_path),
                                   prune.PruneSpec("magnitude", 0.8))
    assert report["student"]["layer_sparsity"] == pytest.approx(rates, abs=0.01)
    assert any(line.startswith("pruning 0.8 of all kernel weights, global allocation over "
                               f"{len(rates)} layers") for line in lines)
    assert f"Sparsity of the {len(rates)} pruned layers" in (tmp_path / "report.md").read_text()
    # the no-training baseline is the teacher pruned once to the same rates
    eval_set = data.load("digits")
    pruned = prune.prune_once(teacher.load(digits_teacher_path), prune.PruneSpec("magnitude", 0.8))
    assert report["baselines"]["no_training"]["accuracy"] == pytest.approx(
        metrics.keras_accuracy(pruned, eval_set.x_test, eval_set.y_test), abs=1e-6)
    assert "pruned once" in report["baselines"]["no_training"]["method"]
    assert report["student"]["nonzero_params"] < 0.3 * report["student"]["params"]
    saved = keras.models.load_model(str(tmp_path / "saved_model"), compile=False)
    assert metrics.sparsity(saved) == pytest.approx(0.8, abs=0.01)
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
    interpreter = Interpreter(model_path=str(tmp_path / "student_float.tflite"))
    interpreter.allocate_tensors()
    kernels = [interpreter.get_tensor(op["inputs"][1])
               for op in interpreter._get_ops_details()  # pylint: disable=protected-access
               if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
    zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
    assert zeros == pytest.approx(0.8, abs=0.01)
    tflite = report["tflite"]
    assert tflite["int8"]["bytes"] < 0.6 * tflite["float"]["bytes"]  # tiny: headers dominate
    assert tflite["float"]["gzip_bytes"] < 0.5 * tflite["float"]["bytes"]
    for variant in ("float", "dynamic", "int8"):  # sparse int8 runs without XNNPACK
        assert abs(tflite[variant]["accuracy"] - report["student"]["accuracy"]) <= 0.05


def _small_dense_net():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="first")(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="middle")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


@pytest.mark.parametrize("dense_layer", ["depthwise", "separable"])
def test_depthwise_kernels_stay_dense_and_the_others_reach_the_target_over_all_kernels(
        dense_layer):
    """report.json's sparsity counts every kernel, depthwise and separable ones too; pruning
    leaves those dense, so the other layers give their share and the whole reaches the target."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="first")(inputs)
    x = (keras.layers.DepthwiseConv2D(3, depth_multiplier=4, name="dw")(x)
         if dense_layer == "depthwise" else keras.layers.SeparableConv2D(32, 3, name="dw")(x))
    x = keras.layers.Conv2D(16, 1, activation="relu", name="middle")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    assert metrics.sparsity(model) == 0.0
    rates = prune.layer_sparsities(model, prune.PruneSpec("magnitude", 0.8, prune_ends=True))
    assert "dw" not in rates
    prune.prune_once(model, prune.PruneSpec("magnitude", 0.8, prune_ends=True))
    assert metrics.sparsity(model) == pytest.approx(0.8, abs=0.005)
    dense = [w for w in model.get_layer("dw").weights if "kernel" in w.name]
    assert dense and all(np.count_nonzero(w.numpy()) == w.shape.num_elements() for w in dense)
    line = prune.describe_allocation(model, prune.PruneSpec("magnitude", 0.8, prune_ends=True))
    assert re.search(r"; the depthwise kernels stay whole \(\d+\.\d% of the kernel weights\)$",
                     line)
    with pytest.raises(ConfigError, match="and the depthwise kernels dense"):
        prune.layer_sparsities(model, prune.PruneSpec("magnitude", 0.97, prune_ends=False))


def test_the_allocation_line_names_the_range_the_capped_layers_and_what_stays_dense():
    model = _small_dense_net()
    hidden = model.get_layer("hidden")
    hidden.kernel.assign(hidden.kernel * 1e-3)  # the smallest weights: global allocation caps it
    spec = prune.PruneSpec("magnitude", 0.9)
    rates = prune.layer_sparsities(model, spec)
    line = prune.describe_allocation(model, spec)
    assert rates["hidden"] == pytest.approx(0.99) and 0 < rates["middle"] < 0.9
    assert line == (f"pruning 0.9 of all kernel weights, global allocation over 2 layers: rates "
                    f"{rates['middle']:.3f} (middle) to 0.990 (hidden); at the 0.990 cap: hidden; "
                    f"left unpruned: first, logits")
    uniform = prune.describe_allocation(model, dataclasses.replace(spec, allocation="uniform"))
    assert uniform.startswith("pruning 0.9 of all kernel weights, uniform allocation over 2 "
                              "layers, each at 0.932; left unpruned: first, logits")
    # Past the cap the cap rises to the average the layers need; the smallest capped layer
    # (fewest weights kept) is named first; ends pruned by necessity are said to be.
    spec = prune.PruneSpec("magnitude", 0.998)
    rates = prune.layer_sparsities(model, spec)
    line = prune.describe_allocation(model, spec)
    cap = max(rates.values())
    assert cap > 0.99 and f"at the {cap:.3f} cap: " in line
    capped = re.sub(r" \(\+\d+ more\)", "", line.split("cap: ")[1].split(";")[0]).split(", ")
    sizes = [model.get_layer(name).kernel.shape.num_elements() for name in capped]
    assert sizes == sorted(sizes) and len(capped) >= 2
    assert line.endswith("; the first and last layers are pruned too (the others alone could "
                         "not reach the target)")


def test_first_and_last_layers_stay_dense_while_the_whole_reaches_the_target():
    model = _small_dense_net()
    spec = prune.PruneSpec("magnitude", 0.8)
    rates = prune.layer_sparsities(model, spec)
    assert set(rates) == {"middle", "hidden"} and all(0 < rate < 1 for rate in rates.values())
    prune.prune_once(model, spec)
    assert metrics.sparsity(model) == pytest.approx(0.8, abs=0.005)
    for name, rate in rates.items():
        kernel = model.get_layer(name).kernel.numpy()
        assert np.mean(kernel == 0) == pytest.approx(rate, abs=1 / kernel.size)
    for name in ("first", "logits"):
        assert np.count_nonzero(model.get_layer(name).kernel.numpy() == 0) == 0


def test_global_allocation_prunes_the_smallest_weights_of_all_pruned_layers_together():
    keras.utils.set_random_seed(0)
    model = _small_dense_net()
    rates = prune.layer_sparsities(model, prune.PruneSpec("magnitude", 0.8))
    uniform = prune.layer_sparsities(model, prune.PruneSpec("magnitude", 0.8,
                                                            allocation="uniform"))
    assert rates["hidden"] > uniform["hidden"] > rates["middle"]  # the big layer gives more
    kept, dropped = [], []
    for name, rate in rates.items():
        magnitudes = np.abs(model.get_layer(name).kernel.numpy())
        mask = prune.magnitude_mask(model.get_layer(name).kernel, rate).numpy().astype(bool)
        kept.append(magnitudes[mask])
        dropped.append(magnitudes[~mask])
    assert np.concatenate(dropped).max() <= np.concatenate(kept).min()
    total = sum(model.get_layer(name).kernel.shape.num_elements() for name in uniform)
    assert sum(rates[name] * model.get_layer(name).kernel.shape.num_elements()
               for name in rates) == pytest.approx(uniform["hidden"] * total, abs=1)


def test_global_allocation_never_empties_a_layer_and_keeps_the_total():
    model = _small_dense_net()
    hidden = model.get_layer("hidden").kernel
    hidden.assign(hidden * 1e-3)  # every weight below the others': the threshold would empty it
    rates = prune.layer_sparsities(model, prune.PruneSpec("magnitude", 0.85))
    assert rates["hidden"] == pytest.approx(0.99)
    sizes = {name: model.get_layer(name).kernel.shape.num_elements() for name in rates}
    total = sum(layer.kernel.shape.num_elements() for layer in model.layers
                if hasattr(layer, "kernel"))
    assert sum(rates[name] * sizes[name] for name in rates) == pytest.approx(0.85 * total, abs=1)


def test_gradual_pruner_follows_the_schedule_inside_an_int8_qat_model():
    model = _small_dense_net()
    spec = prune.PruneSpec("magnitude", 0.8, allocation="uniform")
    rates = prune.layer_sparsities(model, spec)
    qat = quantize.quantize_int8(model)
    counter = tf.Variable(0, dtype=tf.int64)
    prune_step = prune.make_gradual_pruner(qat, rates, spec, 100, counter)
    kernels = prune.qat_kernels(qat, ["first", "middle", "hidden", "logits"])

    def zeros():
        return {name: float(np.mean(kernel.numpy() == 0)) for name, kernel in kernels.items()}

    prune_step()
    assert max(zeros().values()) == 0.0  # the schedule starts at 0
    counter.assign(20)
    prune_step()
    assert all(0.0 < zeros()[name] < rate - 0.1 for name, rate in rates.items())
    counter.assign(40)  # the polynomial schedule ends at 40 % of the updates
    prune_step()
    assert {name: zeros()[name] for name in rates} == pytest.approx(rates, abs=0.01)
    assert zeros()["first"] == 0.0 and zeros()["logits"] == 0.0
    # what TensorBoard and report.json show: the pruned layers, not the QAT model's others
    assert prune.layer_sparsity(qat, spec) == {name: zeros()[name] for name in rates}


@pytest.mark.parametrize("ramp", [0.4, 0.7])
def test_polynomial_schedule_reaches_the_target_after_the_ramp(ramp):
    schedule = prune.schedule_for(prune.PruneSpec("magnitude", 0.9, ramp=ramp), 1000)
    _, before = schedule(tf.constant(int(ramp * 1000) - 100, tf.int64))
    _, after = schedule(tf.constant(int(ramp * 1000), tf.int64))
    assert float(before) < 0.9 and float(after) == pytest.approx(0.9)


def test_prune_ends_prunes_every_layer_at_the_target_and_unreachable_targets_fail():
    model = _small_dense_net()
    rates = prune.layer_sparsities(model, prune.PruneSpec("magnitude", 0.5, prune_ends=True,
                                                          allocation="uniform"))
    assert rates == {name: 0.5 for name in ("first", "middle", "hidden", "logits")}
    with pytest.raises(ConfigError, match=r"the others would need 1\.031\): drop --noprune_ends, "
                                          r"or ask for at most 0\.95$"):
        prune.layer_sparsities(model, prune.PruneSpec("magnitude", 0.995, prune_ends=False))
    with pytest.raises(ConfigError, match="--noprune_ends leaves nothing to prune: the model "
                                          "has 2 convolution or dense layer"):
        prune.layer_sparsities(keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
                                                 keras.layers.Dense(3)]),
                               prune.PruneSpec("magnitude", 0.5, prune_ends=False))
    # Where the inner layers can hold no useful share, no target is offered, only the fix.
    mlp = keras.Sequential([keras.Input((784,)), keras.layers.Dense(8), keras.layers.Dense(8),
                            keras.layers.Dense(10)])
    with pytest.raises(ConfigError, match=r"would need 50\.125\): drop --noprune_ends$"):
        prune.layer_sparsities(mlp, prune.PruneSpec("magnitude", 0.5, prune_ends=False))
    with pytest.raises(ConfigError, match="the model has no convolution or dense layer"):
        prune.layer_sparsities(keras.Sequential([keras.Input((4, 4)), keras.layers.Flatten()]),
                               prune.PruneSpec("magnitude", 0.5))


def test_unset_prune_ends_prunes_the_ends_only_when_the_target_needs_them():
    model = _small_dense_net()
    reachable = prune.layer_sparsities(model, prune.PruneSpec("magnitude", 0.5))
    assert set(reachable) == {"middle", "hidden"}
    needs_ends = prune.layer_sparsities(model, prune.PruneSpec("magnitude", 0.995,
                                                               allocation="uniform"))
    assert set(needs_ends) == {"first", "middle", "hidden", "logits"}
    assert all(rate == pytest.approx(0.995) for rate in needs_ends.values())


@pytest.mark.parametrize("overrides, message", [
    (dict(sparsity=1.0), "--prune_sparsity must be below 1"),
    (dict(sparsity=0.0), "--prune=magnitude needs --prune_sparsity, the fraction"),
    (dict(sparsity="0.5"), "--prune_sparsity must be a number, got '0.5'"),
    (dict(sparsity_schedule="cubic"), "--prune_schedule must be one of"),
    (dict(sparsity_allocation="random"), "--prune_allocation must be one of"),
    (dict(sparsity_ramp=0.0), r"--prune_ramp must be in \(0, 1\]"),
    (dict(prune="none", sparsity=0.5), "need --prune=magnitude"),
    (dict(prune="none", prune_ends=True), "need --prune=magnitude"),
    (dict(quantize="w4a8"), "combines only with --quantize=int8"),
])
def test_bad_pruning_values_fail_before_any_work(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, "t.keras", **overrides).validate()


@pytest.mark.slow
def test_pruning_with_int8_qat_keeps_the_zeros_and_exports_the_smaller_int8_encoding(
        tmp_path, digits_teacher_path):
    report = pipeline.run(_config(tmp_path, digits_teacher_path, quantize="int8", sparsity=0.7),
                          log=quiet)
    assert report["student"]["weight_bits"] == 8
    assert report["student"]["sparsity"] == pytest.approx(0.7, abs=0.01)  # kept through QAT
    int8 = report["tflite"]["int8"]
    assert int8["gzip_bytes"] < report["tflite"]["float"]["gzip_bytes"]
    assert abs(int8["accuracy"] - report["student"]["accuracy"]) <= 0.05  # runs in litert
    with open(os.path.join(tmp_path, "student_int8.tflite"), "rb") as handle:
        sparse_file = metrics.is_sparse_encoded(handle.read())
    # XNNPACK refuses sparse int8 kernels; at 0.7 the dense encoding is the smaller here.
    assert (int8["delegate"] == metrics.BUILTIN_KERNELS) == sparse_file
    assert report["tflite"]["float"]["delegate"] == metrics.XNNPACK
