"""The Python API: the same run as the CLI from a path or an in-memory model, returning the
trained student, the files and the report."""

import os
import pathlib

import numpy as np
import pytest

from conftest import quiet
from tfdfc import api, data, metrics, models, pipeline, recipes, teacher
from tfdfc.errors import ConfigError

TINY = dict(steps=2, batch_size=16, student_steps=2, generator_channels=8, log_every=1,
            with_data_baseline=False, strategy="one_device")


@pytest.mark.slow  # a whole run with every export
def test_an_in_memory_teacher_compresses_to_a_student_its_files_and_report(
        tmp_path, digits_teacher_path):
    model = teacher.load(digits_teacher_path)
    outcome = api.compress(model, str(tmp_path / "run"), log=quiet, quantize="int8",
                           eval_data="digits", **TINY)
    assert outcome.report["teacher"]["path"] == api.teacher_label(model)
    assert "training" not in outcome.report["teacher"]  # an in-memory model has no record
    assert outcome.report["recipe"]["name"] == "qat"
    with open(os.path.join(str(tmp_path / "run"), "report.md")) as report_md:
        assert "took the `qat` recipe" in report_md.read()
    for path in outcome.files.values():
        assert os.path.exists(path), path
    digits = data.load("digits")
    keras_accuracy = metrics.keras_accuracy(outcome.student, digits.x_test, digits.y_test)
    assert abs(keras_accuracy - outcome.report["student"]["accuracy"]) < 1e-6
    tflite = metrics.tflite_outputs(open(outcome.files["tflite_int8"], "rb").read(),
                                    digits.x_test[:8])
    assert tflite.shape == (8, 10) and np.all(np.isfinite(tflite))


def test_an_in_memory_teacher_is_labelled_by_its_weights(digits_teacher_path):
    """The same model resumes its run; another one of the same name is another teacher."""
    model = teacher.load(digits_teacher_path)
    label = api.teacher_label(model)
    assert label.startswith(f"<in-memory model {model.name}, weights ")
    assert api.teacher_label(teacher.load(digits_teacher_path)) == label
    model.layers[-1].kernel.assign(model.layers[-1].kernel + 1e-3)
    assert api.teacher_label(model) != label


def test_unset_recipe_fields_take_the_schemes_recipe_and_given_ones_win():
    config = api.config_for("t.keras", "out", quantize="int8")
    assert config.recipe == "qat" and config.train.steps == recipes.RECIPES["qat"].steps
    assert config.train.student_lr == recipes.RECIPES["qat"].student_lr
    config = api.config_for("t.keras", "out", quantize="int8", steps=7, seed=3)
    assert config.train.steps == 7 and config.train.seed == 3


def test_the_run_names_its_recipe_and_the_settings_it_trains_with():
    line = recipes.run_line(api.config_for("t.keras", "out", quantize="int8", steps=7))
    assert line.startswith("recipe qat ") and "7 iterations, student rate 5e-05" in line
    assert recipes.run_line(pipeline.CompressConfig(teacher="t.keras", out_dir="out")) is None


@pytest.mark.parametrize("quantize, recipe", [
    ("w4a8", "qat"), ("w8a8", "qat"), ("w4a4", "qat_low_activations"),
    ("w8a6", "qat_low_activations")])
def test_activations_below_8_bits_take_their_own_recipe(quantize, recipe):
    config = api.config_for("t.keras", "out", quantize=quantize)
    assert config.recipe == recipe
    assert config.train.resample_latents == (recipe == "qat_low_activations")
    assert config.activation_ranges == ("from_batches" if recipe == "qat_low_activations"
                                        else "tfmot")
    assert config.quant_spec.range_start == config.activation_ranges
    config = api.config_for("t.keras", "out", quantize=quantize, feature_weight=0.0,
                            activation_ranges="tfmot")
    assert config.train.feature_weight == 0.0  # given settings still win
    assert config.activation_ranges == "tfmot"


@pytest.mark.parametrize("settings, recipe, feature_weight", [
    (dict(student_init="random"), "fresh_copy", 1.0),
    (dict(student="lenet5-x0.5", student_init="random"), "distill", 0.0),
    (dict(ticket="ticket.npz"), "distill", 0.0),
    (dict(student_init="random", prune="slim"), "distill", 0.0)])
def test_only_a_fresh_copy_of_the_teacher_takes_the_feature_map_recipe(
        settings, recipe, feature_weight):
    config = api.config_for("t.keras", "out", **settings)
    assert config.recipe == recipe and config.train.feature_weight == feature_weight
    assert config.train.steps == recipes.RECIPES[recipe].steps


@pytest.mark.parametrize("teacher_name, settings, recipe", [
    ("wrn-16-1", dict(student="wrn-10-1"), "distill_maps"),
    ("wrn-16-1", dict(student="wrn-10-2"), "distill"),  # other widths
    ("wrn-16-1", dict(student="wrn-10-1", quantize="int8"), "distill"),  # compressed
    ("lenet5", dict(student="lenet5-x0.5"), "distill")])
def test_a_fresh_student_with_the_teachers_maps_takes_the_feature_map_distillation(
        teacher_name, settings, recipe):
    """The run chooses on the built models: a shallower WRN of the teacher's widths has its maps
    where attention compares them, a wider one or a half-width LeNet-5 does not."""
    teacher_model = models.build(teacher_name, (28, 28, 1), 10)
    settings = dict(settings, student_init="random")
    config = pipeline.resolve_recipe(api.config_for("t.keras", "out", **settings),
                                     set(settings), teacher_model)
    assert config.recipe == recipe
    assert config.train.feature_weight == recipes.RECIPES[recipe].feature_weight
    assert config.train.resample_latents == (recipe == "distill_maps")
    settings["feature_weight"] = 0.0
    given = pipeline.resolve_recipe(api.config_for("t.keras", "out", **settings),
                                    set(settings), teacher_model)
    assert given.recipe == recipe and given.train.feature_weight == 0.0  # given ones still win


def test_unknown_settings_and_teachers_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) allocation \(did you mean "
                                          r"prune_allocation\?\), sparsty \(did you mean "
                                          r"sparsity\?\), zzz: use the flags"):
        api.config_for("t.keras", "out", sparsty=0.9, allocation="uniform", zzz=1)
    with pytest.raises(ConfigError, match=r"lr \(did you mean generator_lr or student_lr\?\)"):
        api.config_for("t.keras", "out", lr=0.1)
    # paths may be pathlib objects
    from_paths = api.config_for(pathlib.Path("t.keras"), pathlib.Path("out"),
                                eval_data=pathlib.Path("d.npz"))
    assert (from_paths.teacher, from_paths.out_dir, from_paths.eval_data) == ("t.keras", "out",
                                                                              "d.npz")
    from_paths.validate()
    by_flag = api.config_for("t.keras", "out", prune="magnitude", prune_sparsity=0.8)
    assert by_flag.sparsity == 0.8 == api.config_for("t.keras", "out", prune="magnitude",
                                                     sparsity=0.8).sparsity
    with pytest.raises(ConfigError, match="given twice: prune_sparsity and sparsity"):
        api.config_for("t.keras", "out", prune="magnitude", sparsity=0.8, prune_sparsity=0.9)
    with pytest.raises(ConfigError, match="model file path or a Keras model"):
        api.compress(42, str(tmp_path))
    # A pair of schemes no method runs: the same refusal, with its fix, as the command line's.
    with pytest.raises(ConfigError, match=r"quantize the slimmed student in a second run"):
        api.config_for("t.keras", "out", prune="slim", quantize="int8")
    assert not os.listdir(tmp_path)
