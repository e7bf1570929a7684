"""The models users bring, end to end: each zoo teacher (tests/zoo.py) saved, loaded, compressed
by a scheme for two iterations, exported, and its TFLite file run against the Keras student."""

import dataclasses
import json

import numpy as np
import pytest

import zoo
from conftest import quiet, two_replica_strategy
from tfdfc import (baselines, batchnorm, compression, flatten, losses, metrics, models, pipeline,
                   report, teacher)
from tfdfc.errors import UserInputError
from tfdfc.keras_compat import keras, tf
from tfdfc.loop import Loop
from tfdfc.train import TrainConfig

pytestmark = pytest.mark.slow  # real architectures through QAT and TFLite conversion

# (zoo model, --quantize, extra settings): every model under int8 QAT (the nested one under
# w4a8, which wraps it alike; the Sequential one pruned too), each other scheme on the models
# that exercise what is new for it (w4a8 on squeeze_excite: its SeparableConv2D is split).
RUNS = [
    ("resnet", "int8", {}),
    ("squeeze_excite", "int8", {}),
    ("squeeze_excite", "w4a8", {}),
    ("rescaling_first", "int8", {}),
    ("nested", "w4a8", {}),
    ("resnet", "mixed", {"mixed_budget": 0.8, "mixed_search_steps": 2}),
    ("nested", "binary", {}),
    ("sequential_mlp", "int8", {"prune": "magnitude", "sparsity": 0.8}),
    ("nested", "none", {"student_init": "random"}),
]


@pytest.fixture(scope="module")
def zoo_files(tmp_path_factory):
    """name -> (teacher .keras path, evaluation .npz labelled by the teacher itself)."""
    root = tmp_path_factory.mktemp("zoo")
    files = {}
    for name in sorted({run[0] for run in RUNS} | {"rescaling_first"}):
        model = zoo.trained_teacher(name)
        path = str(root / f"{name}.keras")
        model.save(path)
        space = pipeline.input_space_lib.infer(flatten.flatten(model))
        images = space.images(np.random.default_rng(1).normal(size=(48,) + zoo.SHAPE))
        labels = np.argmax(model.predict(images, verbose=0), axis=-1)
        np.savez(root / f"{name}.npz", x_test=images, y_test=labels)
        files[name] = (path, str(root / f"{name}.npz"))
    return files


def _config(teacher_path, eval_path, out_dir, quantize, **overrides):
    train = TrainConfig(steps=2, batch_size=8, student_steps=2, log_every=1, eval_every=2,
                        checkpoint_every=2, attention_weight=0.0)
    return pipeline.CompressConfig(teacher=teacher_path, out_dir=str(out_dir), eval_data=eval_path,
                                   quantize=quantize, generator_channels=4,
                                   strategy="one_device", train=train, **overrides)


def _train_and_export(config):
    """Trains and exports like pipeline.run, without its baselines (the slow part here):
    (run, report, the exported Keras model)."""
    strategy, teacher_model, eval_set, _ = pipeline.load_inputs(config)
    run, _ = pipeline.train_one(config, strategy, teacher_model, eval_set, config.out_dir,
                                log=quiet)
    return (run, *report.export_and_measure(config, run, eval_set, log=quiet))


def _run_id(run):
    name, quantize, overrides = run
    return "-".join([name, quantize] + [str(value) for value in overrides.values()])


@pytest.mark.parametrize("name,quantize,overrides", RUNS, ids=[_run_id(r) for r in RUNS])
def test_zoo_model_compresses_exports_and_tflite_matches_keras(zoo_files, tmp_path, name,
                                                               quantize, overrides):
    teacher_path, eval_path = zoo_files[name]
    config = _config(teacher_path, eval_path, tmp_path, quantize, **overrides)
    run, result, exported = _train_and_export(config)
    assert result["teacher"]["accuracy"] == 1.0  # the evaluation labels are its own answers
    variant = "int8" if quantize not in ("none", "binary") else "float"
    images = np.load(eval_path)["x_test"]
    sparse = overrides.get("prune") == "magnitude"  # XNNPACK cannot run sparse int8 kernels
    if quantize == "int8" and not sparse:
        # These teachers have BatchNorm: the guard exports their calibrated post-training int8
        # unless training measurably agrees more (guard.py), so the trained student's own QAT
        # file is made here: its folding must agree with Keras whichever file ships.
        assert result["guard"]["default"] == "untrained", result["guard"]
        model = run.players.student_model
        samples = report.generated_images(run.players.generator, report.REPRESENTATIVE_SAMPLES,
                                          config.train.latent_dim, config.train.seed)
        payload = run.method.files(config, run, samples)[2][variant]
    else:  # the exported file against the exported Keras model (a guard's twin included)
        model, payload = exported, (tmp_path / f"student_{variant}.tflite").read_bytes()
    keras_logits = metrics.keras_logits(model, images)
    tflite_logits = metrics.tflite_outputs(payload, images, use_default_delegates=not sparse)
    # TFLite runs what Keras trained: float exactly; int8 after two iterations only roughly,
    # because the QAT ranges have barely moved from TF-MOT's initial +-6 (the logits' own range
    # among them), so most predictions, not the logits, must agree. Depthwise convolutions and
    # swish are looser under int8 (docs/real-models.md: Keras quantizes a depthwise kernel
    # per tensor before its batch norm, TFLite the folded kernel per channel).
    if variant == "float":
        np.testing.assert_allclose(tflite_logits, keras_logits, atol=1e-3 * np.ptp(keras_logits))
    else:
        agreement = np.mean(np.argmax(tflite_logits, -1) == np.argmax(keras_logits, -1))
        # The two smallest teachers' random logits are nearly tied on these images: 0.5 there.
        loose = name in ("squeeze_excite", "rescaling_first")
        assert agreement >= (0.5 if loose else 0.7), (agreement, result)
    if (name, quantize) == ("squeeze_excite", "w4a8"):  # both kernels of the split separable
        left = result["tflite"]["int8"]["kernels_left_int8"]  # packed as INT4
        split = [layer.name for layer in run.float_template.layers if "separable" in layer.name]
        assert len(split) == 2 and not set(split) & set(left), (split, left)
        # the sigmoid dense layer's activation is a layer of its own, so its kernel packs too
        sigmoid = [layer.name[:-len("_activation")] for layer in run.float_template.layers
                   if layer.name.endswith("_activation")
                   and layer.activation is keras.activations.sigmoid]
        assert len(sigmoid) == 1 and sigmoid[0] not in left, (sigmoid, left)
    if quantize != "none" and "prune" not in overrides:  # counted like the teacher (report.py)
        for field in ("params", "kernel_params"):  # whether or not n-bit folded a batch norm
            assert result["student"][field] == result["teacher"][field], field
    expected_policy = (None if name == "sequential_mlp"  # no batch norm, so no policy
                       else "trained" if overrides.get("student_init") == "random"
                       else "frozen_statistics")
    assert result["student"]["batch_norm"] == expected_policy


def test_a_whole_run_on_a_model_with_preprocessing_writes_report_and_baselines(zoo_files,
                                                                               tmp_path):
    teacher_path, eval_path = zoo_files["rescaling_first"]
    lines = []
    result = pipeline.run(_config(teacher_path, eval_path, tmp_path, "int8"), log=lines.append)
    assert result == json.loads((tmp_path / "report.json").read_text())
    assert result["teacher"]["input_space"]["mean"] == [127.5] * 3  # its Rescaling(1/255)
    source = result["teacher"]["input_space"]["source"]
    assert f"generated images live in the teacher's input space: {source}" in lines
    assert abs(result["baselines"]["no_training"]["accuracy"] - 1.0) <= 0.1  # noise in 0..255
    assert result["guard"]["checked"] and result["guard"]["exported"] in ("trained", "untrained")
    assert result["recipe"]["settings"]["steps"] == 2


@pytest.mark.parametrize("name,scheme", [("mobilenet_v2", "w4a8"),
                                         ("mobilenet_v3_small", "int8")])
def test_keras_applications_networks_quantize_and_take_a_training_step(name, scheme):
    """The export path is the custom zoo's (above); converting these to TFLite takes minutes.
    MobileNetV2 has depthwise kernels for n-bit; V3 Rescaling, hard-swish and squeeze-excite."""
    model = teacher.as_logits(flatten.flatten(zoo.trained_teacher(name)))
    teacher.validate(model)
    student = compression.compress(model, compression.parse_quantize(scheme)).model
    assert batchnorm.freeze_statistics(student) == len(batchnorm.batch_norms(model)) > 0
    images = pipeline.input_space_lib.infer(model).images(
        np.random.default_rng(0).normal(size=(4,) + zoo.SHAPE))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(student(images, training=True) - model(images)))
    gradients = tape.gradient(loss, student.trainable_variables)
    assert np.isfinite(float(loss)) and sum(g is not None for g in gradients) > 10


def test_teacher_initialised_student_keeps_the_teachers_batch_norm_statistics(zoo_files, tmp_path):
    teacher_path, eval_path = zoo_files["resnet"]
    config = _config(teacher_path, eval_path, tmp_path, "int8", with_data_baseline=False)
    strategy, teacher_model, _, _ = pipeline.load_inputs(config)
    run, _ = pipeline.train_one(config, strategy, teacher_model, None, str(tmp_path), log=quiet)
    teacher_norms = batchnorm.batch_norms(teacher_model)
    student_norms = batchnorm.batch_norms(run.players.student_model)
    assert len(student_norms) == len(teacher_norms) > 0
    for before, after in zip(teacher_norms, student_norms):
        np.testing.assert_array_equal(after.moving_mean.numpy(), before.moving_mean.numpy())
        np.testing.assert_array_equal(after.moving_variance.numpy(),
                                      before.moving_variance.numpy())
    assert any(np.abs(bn.moving_mean.numpy()).max() > 1e-3 for bn in teacher_norms)  # not init


def test_recalibration_gives_a_pruned_student_the_statistics_of_generated_images(zoo_files,
                                                                                 tmp_path):
    teacher_path, eval_path = zoo_files["resnet"]
    config = _config(teacher_path, eval_path, tmp_path, "none", prune="magnitude", sparsity=0.8,
                     recalibrate_batch_norm=True, with_data_baseline=False)
    strategy, teacher_model, _, _ = pipeline.load_inputs(config)
    lines = []
    run, _ = pipeline.train_one(config, strategy, teacher_model, None, str(tmp_path),
                                log=lines.append)
    teacher_norms = batchnorm.batch_norms(teacher_model)
    student_norms = batchnorm.batch_norms(run.players.student_model)
    assert f"batch norms: {len(teacher_norms)} recalibrated on 4,096 generated images" in lines
    first = student_norms[0]  # its inputs depend on no batch norm: exactly theirs
    images = report.generated_images(run.players.generator, 4096, config.train.latent_dim,
                                     config.train.seed + pipeline.RECALIBRATION_SEED_OFFSET)
    with strategy.scope():
        inputs = np.asarray(keras.Model(run.players.student_model.inputs, first.input)(images))
    np.testing.assert_allclose(first.moving_mean.numpy(), inputs.mean(axis=(0, 1, 2)),
                               rtol=1e-3, atol=1e-4)
    for before, after in zip(teacher_norms, student_norms):
        assert batchnorm.is_frozen(after)
        assert not np.allclose(after.moving_variance.numpy(), before.moving_variance.numpy())


def test_recalibration_during_training_gives_frozen_norms_generated_statistics(zoo_files,
                                                                               tmp_path):
    """Without the recalibration after training, the student's frozen statistics change only
    by the one after iteration 1 of 2; otherwise they stay the teacher's
    (test_teacher_initialised_student_keeps_the_teachers_batch_norm_statistics)."""
    teacher_path, eval_path = zoo_files["resnet"]
    config = _config(teacher_path, eval_path, tmp_path, "none", prune="magnitude", sparsity=0.8,
                     with_data_baseline=False)
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, recalibrate_batch_norm_every=1))
    strategy, teacher_model, _, _ = pipeline.load_inputs(config)
    lines = []
    run, _ = pipeline.train_one(config, strategy, teacher_model, None, str(tmp_path),
                                log=lines.append)
    teacher_norms = batchnorm.batch_norms(teacher_model)
    assert [line for line in lines if "recalibrated" in line] == [
        f"recalibrate_batch_norm_every=1: {len(teacher_norms)} batch norms recalibrated after "
        "iteration 1"]
    for before, after in zip(teacher_norms, batchnorm.batch_norms(run.players.student_model)):
        assert batchnorm.is_frozen(after)
        assert not np.allclose(after.moving_variance.numpy(), before.moving_variance.numpy())


def test_the_with_data_baseline_is_recalibrated_on_real_training_images(zoo_files, tmp_path):
    teacher_path, eval_path = zoo_files["resnet"]
    arrays = dict(np.load(eval_path))
    with_train = tmp_path / "with_train.npz"
    np.savez(with_train, x_train=arrays["x_test"], y_train=arrays["y_test"], **arrays)
    config = _config(teacher_path, str(with_train), tmp_path / "run", "none", prune="magnitude",
                     sparsity=0.8, recalibrate_batch_norm=True)
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, recalibrate_batch_norm_every=1))  # and after iteration 1 of 2
    strategy, teacher_model, eval_set, _ = pipeline.load_inputs(config)
    fresh = pipeline.seeded_build(strategy, config, teacher_model, log=quiet)
    result = baselines.with_data(config, strategy, fresh, eval_set, log=quiet)
    assert result["method"].endswith("; batch norms recalibrated on real training images every "
                                     "1 iterations and after training")
    first = batchnorm.batch_norms(fresh.players.student_model)[0]
    with strategy.scope():
        inputs = np.asarray(keras.Model(fresh.players.student_model.inputs, first.input)(
            eval_set.x_train))
    np.testing.assert_allclose(first.moving_mean.numpy(), inputs.mean(axis=(0, 1, 2)),
                               rtol=1e-3, atol=1e-4)


def test_the_with_data_baseline_of_a_folded_student_is_counted_as_the_teacher(zoo_files,
                                                                               tmp_path):
    """n-bit QAT folds a teacher-initialised student's batch norms (fold.py): the baseline's
    counts, like the student's, are of the network before folding."""
    teacher_path, eval_path = zoo_files["resnet"]
    arrays = dict(np.load(eval_path))
    with_train = tmp_path / "with_train.npz"
    np.savez(with_train, x_train=arrays["x_test"], y_train=arrays["y_test"], **arrays)
    config = _config(teacher_path, str(with_train), tmp_path / "run", "w4a8")
    strategy, teacher_model, eval_set, _ = pipeline.load_inputs(config)
    fresh = pipeline.seeded_build(strategy, config, teacher_model, log=quiet)
    assert len(batchnorm.batch_norms(fresh.float_template)) < len(
        batchnorm.batch_norms(fresh.teacher_logits))  # folded
    result = baselines.with_data(config, strategy, fresh, eval_set, log=quiet)
    assert result["kernel_params"] == metrics.kernel_parameter_count(fresh.teacher_logits)
    assert result["macs"] == metrics.multiply_accumulates(fresh.teacher_logits)


def test_a_local_copy_of_a_two_replica_run_holds_its_weights_outside_the_strategy(zoo_files,
                                                                                  tmp_path):
    """What follows multi-worker training runs on this copy (batch norms read through
    collectives there); two replicas in one process stand in for the workers."""
    teacher_path, eval_path = zoo_files["resnet"]
    config = _config(teacher_path, eval_path, tmp_path, "int8")
    strategy = two_replica_strategy()
    with strategy.scope():
        teacher_model = teacher.load(teacher_path)
    run = pipeline.seeded_build(strategy, config, teacher_model, log=quiet)
    Loop(strategy, run.players, config.train, str(tmp_path / "checkpoints"), log=quiet).run()
    copy = pipeline.local_copy(config, run)
    assert copy.strategy.num_replicas_in_sync == 1
    pairs = [(getattr(run.players, name), getattr(copy.players, name))
             for name in ("student_model", "generator")]
    for trained, copied in pairs + [(run.teacher_logits, copy.teacher_logits)]:
        assert not any(isinstance(v, tf.distribute.DistributedValues) for v in copied.variables)
        for a, b in zip(trained.get_weights(), copied.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    images = np.load(eval_path)["x_test"][:16]
    with strategy.scope():
        expected = np.asarray(run.players.student_model(images, training=False))
    np.testing.assert_allclose(np.asarray(copy.players.student_model(images, training=False)),
                               expected, atol=1e-5)


def test_randomly_initialised_student_trains_its_batch_norm_statistics(zoo_files, tmp_path):
    teacher_path, eval_path = zoo_files["nested"]
    config = _config(teacher_path, eval_path, tmp_path, "none", student_init="random")
    strategy, teacher_model, _, _ = pipeline.load_inputs(config)
    run, _ = pipeline.train_one(config, strategy, teacher_model, None, str(tmp_path), log=quiet)
    means = [bn.moving_mean.numpy() for bn in batchnorm.batch_norms(run.players.student_model)]
    assert means and all(np.abs(mean).max() > 0 for mean in means)  # moved off their zero init


def test_nested_and_sequential_teachers_flatten_with_identical_outputs():
    images = np.random.default_rng(0).normal(size=(4,) + zoo.SHAPE).astype(np.float32)
    for name in ("nested", "sequential_mlp", "mobilenet_v3_small"):
        model = zoo.BUILDERS[name]()
        flat = flatten.flatten(model)
        assert not flatten.is_nested(flat)
        np.testing.assert_allclose(flat(images).numpy(), model(images).numpy(), atol=1e-5)
    assert len(flatten.flatten(zoo.nested()).layers) > len(zoo.nested().layers)


def test_an_unsupported_layer_is_one_line_naming_layer_and_scheme(zoo_files, tmp_path):
    teacher_path, eval_path = zoo_files["squeeze_excite"]
    with pytest.raises(UserInputError) as caught:
        pipeline.run(_config(teacher_path, eval_path, tmp_path, "binary"), log=quiet)
    message = str(caught.value)
    assert "\n" not in message and "DepthwiseConv2D" in message and "binary" in message
    assert not list(tmp_path.iterdir())  # nothing written


def test_inferred_attention_points_close_each_feature_map_size_and_line_up_in_students():
    """MobileNetV2 has no attention_<i> layers: the inferred points are the last layer at each
    feature-map size (no padding layer, no 1x1 map), and a QAT student of it finds them all."""
    model = teacher.as_logits(flatten.flatten(zoo.trained_teacher("mobilenet_v2")))
    names = models.inferred_points(model)
    sizes = [tuple(model.get_layer(name).output.shape[1:3]) for name in names]
    assert sizes == [(16, 16), (8, 8), (4, 4), (2, 2)]
    order = [layer.name for layer in model.layers]
    for name in names:  # the next layer with a feature map is a padding or a smaller map
        later = [layer for layer in model.layers[order.index(name) + 1:]
                 if len(layer.output.shape) == 4]
        assert not later or later[0].output.shape[1:3] != model.get_layer(name).output.shape[1:3] \
            or isinstance(later[0], keras.layers.ZeroPadding2D)
    student = compression.compress(model, compression.parse_quantize("int8")).model
    points = models.attention_layers(student, names)
    assert [layer.name for layer in points] == [f"quant_{name}" for name in names]
    assert models.attention_layers(models.build("lenet5", (32, 32, 3), 4), names) is None
    # inferred_final: the 1x1 map the head pools closes the list, and the student has it too.
    final = models.inferred_points(model, final=True)
    pooled = next(layer for layer in model.layers
                  if isinstance(layer, keras.layers.GlobalAveragePooling2D))
    assert final[:-1] == names and model.get_layer(final[-1]).output is pooled.input
    assert tuple(model.get_layer(final[-1]).output.shape[1:3]) == (1, 1)
    assert len(models.attention_layers(student, final)) == len(names) + 1


@pytest.mark.parametrize("name", ["resnet", "squeeze_excite", "nested"])
def test_inferred_final_adds_nothing_where_the_head_pools_a_larger_map(name):
    model = teacher.as_logits(flatten.flatten(getattr(zoo, name)()))
    assert models.inferred_points(model, final=True) == models.inferred_points(model)


def test_inferred_attention_points_put_attention_transfer_into_a_pruning_run(zoo_files, tmp_path):
    teacher_path, eval_path = zoo_files["resnet"]
    config = _config(teacher_path, eval_path, tmp_path, "int8", prune="magnitude", sparsity=0.5,
                     with_data_baseline=False)
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, attention_weight=250.0, attention_points="inferred"))
    lines = []
    strategy, teacher_model, _, _ = pipeline.load_inputs(config)
    run, _ = pipeline.train_one(config, strategy, teacher_model, None, str(tmp_path),
                                log=lines.append)
    assert any(line.startswith("attention transfer at 3 inferred points") for line in lines)
    images = np.random.default_rng(0).normal(size=(4,) + zoo.SHAPE).astype(np.float32)
    student, teacher_outputs = run.players.student(images), run.players.teacher(images)
    assert len(student) == len(teacher_outputs) == 1 + 3
    assert float(tf.reduce_mean(losses.attention_transfer(teacher_outputs[1:], student[1:],
                                                          250.0))) > 0  # pruned: maps differ
