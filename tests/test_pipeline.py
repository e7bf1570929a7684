"""A whole compression run on digits: the output contract, exports that match Keras, resume."""

import dataclasses
import json
import math
import os
import shutil

import numpy as np
import pytest

from conftest import quiet
from tfdfc import data, figures, metrics, models, pipeline, run_dir
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras
from tfdfc.teacher import TeacherError
from tfdfc.train import TrainConfig


def _run_config(teacher_path, out_dir, **overrides):
    train = TrainConfig(steps=3, batch_size=16, student_steps=2, log_every=1, eval_every=3,
                        checkpoint_every=3)
    values = dict(teacher=teacher_path, out_dir=str(out_dir), eval_data="digits",
                  generator_channels=8, strategy="one_device", train=train)
    values.update(overrides)
    return pipeline.CompressConfig(**values)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, digits_teacher_path):
    out_dir = tmp_path_factory.mktemp("run")
    report = pipeline.run(_run_config(digits_teacher_path, out_dir), log=quiet,
                          flags_text="--steps=3\n")
    return out_dir, report


def test_run_writes_the_output_contract(finished_run):
    out_dir, report = finished_run
    for name in ("flags.txt", "config.json", "report.json", "student_float.tflite",
                 "saved_model", "checkpoints", "tensorboard"):
        assert os.path.exists(out_dir / name), name
    assert json.loads((out_dir / "report.json").read_text()) == json.loads(json.dumps(report))
    student = report["student"]
    assert 0.0 <= student["accuracy"] <= 1.0 and report["teacher"]["accuracy"] > 0.5
    assert student["params"] == report["teacher"]["params"]
    # Which training of the teacher this came from: what teacher.train wrote beside it.
    training = report["teacher"]["training"]
    assert training["architecture"] == "lenet5-x0.5" and training["data"] == "digits"
    assert training["params"] == report["teacher"]["params"]
    # A few biases may still be exactly 0 (their init) after 3 iterations; no kernel is.
    assert 0.99 * student["params"] < student["nonzero_params"] <= student["params"]
    assert student["macs"] > 0 and student["weight_bits"] == 32 and student["sparsity"] == 0.0
    assert report["train"]["steps"] == 3
    iteration, accuracy = report["train"]["evaluations"][-1]  # the curve ends at the last
    assert iteration == 3 and 0.0 <= accuracy <= 1.0
    tflite = report["tflite"]["float"]
    assert tflite["bytes"] == os.path.getsize(out_dir / "student_float.tflite")
    assert 0 < tflite["gzip_bytes"] < tflite["bytes"]


def test_report_md_shows_accuracy_against_size_and_generated_images(finished_run):
    out_dir, report = finished_run
    markdown = (out_dir / "report.md").read_text()
    for name in report["figures"].values():
        assert f"]({name})" in markdown
        assert (out_dir / name).read_bytes().startswith(b"\x89PNG"), name
    labels = [label for label, _, _ in figures.size_accuracy_points(report)]
    assert labels[0] == "teacher" and "student float" in labels and "with data" in labels


def test_exported_saved_model_and_tflite_match_keras(finished_run):
    out_dir, report = finished_run
    digits = data.load("digits")
    saved = keras.models.load_model(str(out_dir / "saved_model"), compile=False)
    keras_logits = metrics.keras_logits(saved, digits.x_test)
    tflite_logits = metrics.tflite_outputs((out_dir / "student_float.tflite").read_bytes(),
                                           digits.x_test)
    np.testing.assert_allclose(tflite_logits, keras_logits, atol=1e-4)
    assert metrics.accuracy(keras_logits, digits.y_test) == report["student"]["accuracy"]
    assert report["tflite"]["float"]["accuracy"] == report["student"]["accuracy"]


@pytest.mark.slow
def test_a_finished_run_started_again_resumes_without_training(finished_run, digits_teacher_path):
    out_dir, report = finished_run
    lines = []
    again = pipeline.run(_run_config(digits_teacher_path, out_dir), log=lines.append)
    assert any("resumed" in line and "iteration 3" in line for line in lines)
    assert not any(line.startswith("iteration ") and "/3" in line for line in lines)
    assert again["student"]["accuracy"] == report["student"]["accuracy"]
    assert again["train"]["seconds"] == report["train"]["seconds"] > 0


@pytest.mark.slow
def test_a_run_resumes_with_another_collapse_action_or_recalibration_not_other_settings(
        finished_run, digits_teacher_path, tmp_path):
    out_dir = tmp_path / "run"
    shutil.copytree(finished_run[0], out_dir)
    train = dict(steps=3, batch_size=16, student_steps=2, log_every=1, eval_every=3,
                 checkpoint_every=3)
    lines = []
    pipeline.run(_run_config(digits_teacher_path, out_dir, recalibrate_batch_norm=True,
                             train=TrainConfig(on_collapse="warn", **train)), log=lines.append)
    assert any("resumed" in line and "iteration 3" in line for line in lines)
    assert "batch norms: none to recalibrate (none frozen outside QAT)" in lines  # LeNet-5
    with pytest.raises(ConfigError, match="settings differ: --student_lr"):
        pipeline.run(_run_config(digits_teacher_path, out_dir,
                                 train=TrainConfig(student_lr=1e-3, **train)), log=quiet)


@pytest.mark.slow
def test_smaller_student_from_the_registry(tmp_path, digits_teacher_path):
    report = pipeline.run(_run_config(digits_teacher_path, tmp_path, student="lenet5-x0.25"),
                          log=quiet)
    assert report["student"]["params"] < report["teacher"]["params"]


def test_a_fresh_student_does_not_start_from_its_teachers_initial_weights(tmp_path):
    """A teacher built right after set_random_seed(0), as most scripts do, and a fresh copy of
    it at training seed 0: the copy is a new draw, not the teacher's own initialisation."""
    keras.utils.set_random_seed(0)
    teacher = models.build("lenet5-x0.5", (8, 8, 1), 10)
    path = str(tmp_path / "untrained.keras")
    teacher.save(path)
    config = _run_config(path, tmp_path / "out", student_init="random", eval_data=None)
    strategy, teacher_model, _, _ = pipeline.load_inputs(config)
    built = pipeline.seeded_build(strategy, config, teacher_model, log=quiet)
    student = built.players.student_model
    kernels = [(layer.kernel.numpy(), teacher.get_layer(layer.name).kernel.numpy())
               for layer in student.layers if hasattr(layer, "kernel")]
    assert len(kernels) >= 4
    for fresh, original in kernels:
        assert fresh.shape == original.shape and not np.allclose(fresh, original)


@pytest.mark.parametrize("overrides, error, message", [
    (dict(eval_data="mnist5k"), TeacherError, r"takes images of shape \(8, 8, 1\)"),
    (dict(student="wrn-16-1"), ConfigError, "attention_weight=0"),
    (dict(student="lenet5-x0.25", train=TrainConfig(steps=1, batch_size=16,
                                                    feature_weight=1.0)), ConfigError,
     "feature_weight=0"),
    (dict(student="resnet"), ConfigError, "unknown architecture"),
    (dict(student_init="zeros"), ConfigError, "student_init"),
    (dict(teacher="missing.keras"), TeacherError, "not found"),
])
def test_bad_input_fails_before_anything_is_written(tmp_path, digits_teacher_path, overrides,
                                                    error, message):
    out_dir = tmp_path / "out"
    with pytest.raises(error, match=message):
        pipeline.run(_run_config(digits_teacher_path, out_dir, **overrides), log=quiet,
                     flags_text="x")
    assert not out_dir.exists()


@pytest.mark.slow  # a whole run with every export and both baselines
def test_int8_run_reports_bits_int8_tflite_and_both_baselines(tmp_path, digits_teacher_path):
    lines = []
    report = pipeline.run(_run_config(digits_teacher_path, tmp_path, quantize="int8"),
                          log=lines.append)
    assert report["student"]["weight_bits"] == 8 and report["student"]["act_bits"] == 8
    assert report["student"]["init"] == "teacher"
    int8 = report["tflite"]["int8"]
    # About half the float file: int8 weights (the guard's untrained fallback, which may be the
    # one exported after two iterations, adds float input and output conversion ops).
    assert int8["bytes"] < 0.55 * report["tflite"]["float"]["bytes"]
    assert report["guard"]["checked"]
    assert report["guard"]["default"] == "trained"  # LeNet-5 has no BatchNorm (guard.py)
    assert report["recipe"]["name"] is None  # pipeline.run takes the config as given
    assert abs(int8["accuracy"] - report["student"]["accuracy"]) <= 0.05
    assert "Gaussian noise" in report["baselines"]["no_training"]["method"]
    assert 0.0 <= report["baselines"]["with_data"]["accuracy"] <= 1.0
    assert report["baselines"]["with_data"]["seconds"] > 0
    # Progress of the with-data baseline, as long as the run: every --log_every=1 but the last.
    progress = [line for line in lines if line.startswith("with-data baseline: iteration")]
    assert [line.split()[3] for line in progress] == ["1/3", "2/3"]
    assert all("it/s  ETA " in line for line in progress)
    assert (tmp_path / "student_int8.tflite").exists()


@pytest.mark.slow  # a training run per delta, then every export
def test_delta_grid_trains_each_delta_and_chooses_by_generated_agreement(
        tmp_path, digits_teacher_path):
    report = pipeline.run(_run_config(digits_teacher_path, tmp_path, quantize="binary",
                                      delta_grid=(0.02, 0.2), with_data_baseline=False),
                          log=quiet)
    grid = report["delta_grid"]
    assert [row["delta"] for row in grid] == [0.02, 0.2]
    chosen = [row for row in grid if row["chosen"]]
    assert len(chosen) == 1
    assert chosen[0]["agreement"] == max(row["agreement"] for row in grid)
    assert all(math.isfinite(row["kl"]) and row["kl"] >= 0 for row in grid)
    assert grid[0]["kl"] != grid[1]["kl"]  # each row scores its own student
    assert report["student"]["delta"] == chosen[0]["delta"]
    assert (tmp_path / "delta_grid" / "delta_0.02" / "checkpoints").is_dir()
    assert report["baselines"]["with_data"] is None


@pytest.mark.slow
def test_binary_run_exports_tflite_kernels_of_exactly_two_values(tmp_path, digits_teacher_path):
    report = pipeline.run(_run_config(digits_teacher_path, tmp_path, quantize="binary",
                                      delta=0.05, with_data_baseline=False), log=quiet)
    assert report["student"]["weight_bits"] == 1 and report["student"]["delta"] == 0.05
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
    interpreter = Interpreter(model_path=str(tmp_path / "student_float.tflite"))
    interpreter.allocate_tensors()
    kernels = {}
    for op in interpreter._get_ops_details():  # pylint: disable=protected-access
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED"):
            kernels[len(kernels)] = interpreter.get_tensor(op["inputs"][1])
    assert len(kernels) == 5
    two_values = [sorted(np.unique(k).tolist()) == [-np.float32(0.05), np.float32(0.05)]
                  for k in kernels.values()]
    assert two_values == [False, True, True, True, False]  # first and last stay float
    assert report["baselines"]["no_training"]["accuracy"] is not None


def test_a_binary_delta_grid_run_is_a_run_to_resume_or_refuse(tmp_path):
    """Its checkpoints live under delta_grid/, not checkpoints/: another run's settings are
    refused there too, by flag name."""
    run_dir.claim(_run_config("t.keras", tmp_path, quantize="binary"))
    (tmp_path / "delta_grid" / "delta_0.1" / "checkpoints").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"settings differ: --steps\)"):
        run_dir.claim(_run_config("t.keras", tmp_path, quantize="binary",
                                  train=TrainConfig(steps=7, batch_size=16, student_steps=2)))
    run_dir.claim(_run_config("t.keras", tmp_path, quantize="binary"))  # the same: resumes
    assert (tmp_path / "delta_grid" / "delta_0.1" / "checkpoints").is_dir()


def test_a_run_of_an_earlier_version_resumes_unless_a_newer_setting_is_set(tmp_path):
    """Its config.json lacks the settings added since: they count as their defaults."""
    run_dir.claim(_run_config("t.keras", tmp_path))
    (tmp_path / "checkpoints").mkdir()
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["train"]["generator_reset_every"], saved["input_range"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    reset = dataclasses.replace(_run_config("t.keras", tmp_path).train, generator_reset_every=5)
    with pytest.raises(ConfigError, match=r"settings differ: --generator_reset_every\)"):
        run_dir.claim(_run_config("t.keras", tmp_path, train=reset))
    run_dir.claim(_run_config("t.keras", tmp_path))  # at the defaults: resumes
    assert (tmp_path / "checkpoints").is_dir()


def test_a_run_whose_recipe_was_renamed_resumes_but_not_one_whose_settings_changed(tmp_path):
    """The recipe only names where the settings came from; they are compared one by one."""
    run_dir.claim(dataclasses.replace(_run_config("t.keras", tmp_path), recipe="qat"))
    (tmp_path / "checkpoints").mkdir()
    renamed = dataclasses.replace(_run_config("t.keras", tmp_path), recipe="qat_low_activations")
    run_dir.claim(renamed)
    assert (tmp_path / "checkpoints").is_dir()
    changed = dataclasses.replace(renamed, train=dataclasses.replace(renamed.train, steps=9))
    with pytest.raises(ConfigError, match=r"settings differ: --steps\)"):
        run_dir.claim(changed)


def test_a_new_run_leaves_no_file_of_an_earlier_one(tmp_path):
    for name in ("student_dynamic.tflite", "report.json", "report_generated.png", "flags.txt"):
        (tmp_path / name).write_text("old")
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "mine.txt").write_text("the user's")
    run_dir.claim(_run_config("t.keras", tmp_path, quantize="int8"))
    assert sorted(os.listdir(tmp_path)) == ["config.json", "mine.txt"]


def test_an_out_dir_with_checkpoints_but_no_config_is_refused_saying_so(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ConfigError, match=r"settings differ: no config\.json\); pass "
                                          "--overwrite"):
        run_dir.claim(_run_config("t.keras", tmp_path))
    assert not (tmp_path / "config.json").exists()
