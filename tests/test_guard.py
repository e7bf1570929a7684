"""The fallback guard's decision: the untrained model is exported only when it agrees more with
the teacher on the same images by more than the paired noise plus the judge's bias margin; and
the swap itself, end to end, for the quantization-aware methods."""

import numpy as np
import pytest

from conftest import quiet
from tfdfc import export, guard, metrics, pipeline, report
from tfdfc.compression import mixed, quantize
from tfdfc.keras_compat import tf
from tfdfc.train import TrainConfig


def _labels(correct, teacher):
    """Predictions that match `teacher` where `correct` is true, and differ elsewhere."""
    return np.where(correct, teacher, (teacher + 1) % 10)


def test_the_untrained_model_is_exported_when_it_agrees_more_beyond_noise_and_margin():
    teacher = np.arange(1000) % 10
    trained = _labels(np.arange(1000) >= 100, teacher)     # 0.90
    untrained = _labels(np.arange(1000) >= 40, teacher)    # 0.96, right wherever trained is
    entry = guard.compare(trained, untrained, teacher)
    assert entry["exported"] == "untrained"
    assert entry["trained_agreement"] == 0.9 and entry["untrained_agreement"] == 0.96
    assert abs(entry["difference"] - 0.06) < 1e-12
    # Paired: 60 of 1000 images differ, all one way: sd of the per-image difference sqrt(.06*.94)
    assert abs(entry["noise"] - 2 * np.sqrt(0.06 * 0.94 / 1000)) < 1e-12


def test_a_gap_within_the_margin_keeps_the_trained_one():
    teacher = np.arange(1000) % 10
    trained = _labels(np.arange(1000) >= 100, teacher)     # 0.90
    untrained = _labels(np.arange(1000) >= 90, teacher)    # 0.91: a point is the judge's bias
    entry = guard.compare(trained, untrained, teacher)
    assert entry["difference"] > entry["noise"] and entry["exported"] == "trained"


def test_a_tie_or_a_better_trained_model_keeps_the_trained_one():
    teacher = np.arange(500) % 10
    same = _labels(np.arange(500) % 7 != 0, teacher)
    assert guard.compare(same, same, teacher)["exported"] == "trained"
    assert guard.compare(same, same, teacher)["noise"] == 0
    better = _labels(np.ones(500, bool), teacher)
    assert guard.compare(better, same, teacher)["exported"] == "trained"
    assert guard.compare(better, same, teacher)["difference"] < 0


def test_where_the_untrained_model_is_the_default_the_trained_one_must_agree_more_beyond_noise():
    teacher = np.arange(1000) % 10
    twin = _labels(np.arange(1000) >= 100, teacher)           # 0.90
    tie = guard.compare(twin, twin, teacher, untrained_by_default=True)
    assert tie["exported"] == "untrained" and tie["default"] == "untrained"
    assert tie["margin"] == 0
    index = np.arange(1000)  # 0.905: right on 35 images the twin misses, wrong on 30 it gets
    slightly = _labels((index >= 130) | (index < 35), teacher)
    assert guard.compare(slightly, twin, teacher, True)["exported"] == "untrained"
    clearly = _labels(np.arange(1000) >= 40, teacher)         # 0.96: 6 points, beyond it
    entry = guard.compare(clearly, twin, teacher, True)
    assert -entry["difference"] > entry["noise"] and entry["exported"] == "trained"
    # The same slight lead keeps the trained model under the ordinary burden.
    assert guard.compare(slightly, twin, teacher)["exported"] == "trained"
    assert guard.compare(twin, twin, teacher)["default"] == "trained"


def _tiny_config(out_dir, teacher_path, quantize_scheme):
    return pipeline.CompressConfig(
        teacher=teacher_path, out_dir=str(out_dir), quantize=quantize_scheme,
        eval_data="digits", generator_channels=8, strategy="one_device",
        with_data_baseline=False,
        train=TrainConfig(steps=2, batch_size=16, student_steps=2, log_every=1, eval_every=2,
                          checkpoint_every=2))


def _damaged_run_exported(out_dir, teacher_path, quantize_scheme, log):
    """Two training iterations on digits, every student kernel then zeroed (the student answers
    one class), exported and measured: (run, report, saved model, (teacher, eval set))."""
    config = _tiny_config(out_dir, teacher_path, quantize_scheme)
    strategy, teacher_model, eval_set, _ = pipeline.load_inputs(config)
    run, _ = pipeline.train_one(config, strategy, teacher_model, eval_set, config.out_dir,
                                log=quiet)
    for variable in run.players.student_model.trainable_variables:
        if "kernel" in variable.name:
            variable.assign(tf.zeros_like(variable))
    result, saved = report.export_and_measure(config, run, eval_set, log=log)
    return run, result, saved, (teacher_model, eval_set)


@pytest.mark.slow  # two iterations, then every export twice
def test_a_damaged_nbit_student_is_replaced_by_the_untrained_qat_teacher(tmp_path,
                                                                        digits_teacher_path):
    """n-bit runs have an untrained twin of the same artefact, the QAT-wrapped teacher (mixed
    runs too: test_mixed.py): a student whose kernels training zeroed (it answers one class) is
    swapped for it, with one warning line, and the exported file is that twin (4-bit kernels
    packed, teacher-like)."""
    lines = []
    run, result, _, _ = _damaged_run_exported(tmp_path, digits_teacher_path, "w4a8",
                                              lines.append)
    assert result["guard"]["exported"] == "untrained", result["guard"]
    assert sum("WARNING: the trained student" in line for line in lines) == 1
    # The accuracy line says whose Keras accuracy it gives: the untrained twin's.
    assert sum("student (Keras, the guard exported the untrained one)" in line
               for line in lines) == 1
    # Every export and the measured Keras model are the untrained twin's, not the damaged
    # student's: the float file is the teacher's weights, the Keras model agrees with the files.
    teacher_accuracy = result["teacher"]["accuracy"]
    assert result["student"]["accuracy"] > teacher_accuracy - 0.15
    assert result["tflite"]["int8"]["accuracy"] > teacher_accuracy - 0.15
    assert abs(result["tflite"]["float"]["accuracy"] - teacher_accuracy) <= 0.01
    assert abs(result["student"]["accuracy"] - result["tflite"]["int8"]["accuracy"]) <= 0.05
    int8_kernel_bytes = mixed.int8_bytes(mixed.kernel_sizes(run.teacher_logits))
    assert result["tflite"]["int8"]["kernel_bytes"] < int8_kernel_bytes  # INT4 kernels packed
    kernels = list(mixed.kernel_sizes(run.teacher_logits))
    assert result["tflite"]["int8"]["kernels_left_int8"] == [kernels[0]]  # the first layer


def _activation_bits(model):
    """The bit widths of a QAT model's output (activation) quantizers."""
    return {config.act_bits for config in (getattr(layer, "quantize_config", None)
                                           for layer in model.layers)
            if isinstance(config, quantize.NBitQuantizeConfig) and config.act_bits}


@pytest.mark.slow  # two iterations, then every export twice
def test_below_8_bit_activations_the_savedmodel_is_judged_apart_and_keeps_its_bits(
        tmp_path, digits_teacher_path):
    """w4a4: the files run 8-bit activations, the SavedModel 4. A damaged student loses both:
    the shipped SavedModel is the twin at the run's own 4 bits (not its 8-bit file's model),
    and the report measures it."""
    run, result, saved, (_, eval_set) = _damaged_run_exported(tmp_path, digits_teacher_path,
                                                              "w4a4", quiet)
    entry = result["guard"]
    assert entry["exported"] == "untrained" and entry["saved_model"]["exported"] == "untrained"
    assert _activation_bits(saved) == {4}
    apart = entry["saved_model"]["eval_accuracy"]
    assert result["student"]["accuracy"] == apart["untrained"] > apart["trained"] + 0.3
    assert result["student"]["accuracy"] == metrics.keras_accuracy(saved, eval_set.x_test,
                                                                   eval_set.y_test)
    # A SavedModel that agrees with the teacher as the twin does (the twin itself) stays the
    # trained one, while the damaged student's file beside it is replaced: apart choices.
    config = _tiny_config(tmp_path, digits_teacher_path, "w4a4")
    samples = report.generated_images(run.players.generator, 64, config.train.latent_dim, 0)
    twin, twin_files, _ = run.method.untrained(config, run, samples)
    damaged = {"int8": export.tflite_int8(run.method.deployable(config, run), samples),
               "float": twin_files["float"]}
    lines = []
    kept, files, entry = guard.check(config, run, samples,
                                     guard.judge_images(run, config, report.generated_images),
                                     twin, damaged, lines.append)
    assert entry["saved_model"]["exported"] == "trained" and kept is twin
    assert entry["saved_model"]["difference"] == 0
    assert entry["exported"] == "untrained" and files["int8"] == twin_files["int8"]
    assert sum("exporting the trained SavedModel, judged apart" in line for line in lines) == 1


@pytest.mark.slow  # two iterations, then every export twice
def test_an_int8_fallback_ships_the_teachers_post_training_int8_and_float_files(
        tmp_path, digits_teacher_path):
    """int8's untrained twin is post-training int8 of the teacher: on a fallback the float file
    and the Keras model the report measures are the teacher, never the damaged QAT student."""
    _, result, saved, (teacher_model, eval_set) = _damaged_run_exported(
        tmp_path, digits_teacher_path, "int8", quiet)
    assert result["guard"]["exported"] == "untrained", result["guard"]
    assert sorted(result["tflite"]) == ["float", "int8"]
    assert result["student"]["accuracy"] == result["teacher"]["accuracy"]
    assert result["tflite"]["float"]["max_abs_diff_vs_keras"] < 1e-4
    assert result["tflite"]["int8"]["accuracy"] > result["teacher"]["accuracy"] - 0.1
    # What the fallback saved, on the run's evaluation data: the exported (untrained) file's
    # accuracy, and the damaged student's, which answers one class.
    measured = result["guard"]["eval_accuracy"]
    assert measured["file"] == "int8"
    assert measured["untrained"] == result["tflite"]["int8"]["accuracy"]
    assert measured["trained"] < measured["untrained"] - 0.3
    np.testing.assert_allclose(saved(eval_set.x_test[:8]), teacher_model(eval_set.x_test[:8]),
                               atol=1e-5)
