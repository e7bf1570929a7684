"""report.md from a report.json dictionary, and the image view of the TensorBoard grid."""

import numpy as np

from tfdfc import data, guard, report


def _result(**student_extra):
    tflite = {variant: {"bytes": size, "gzip_bytes": size // 2, "accuracy": accuracy}
              for variant, size, accuracy in (("int8", 4_000, 0.91), ("float", 12_000, 0.92))}
    return {
        "teacher": {"path": "t.keras", "params": 1_000, "kernel_params": 900, "accuracy": 0.93},
        "student": {"architecture": "same (t)", "quantize": "int8", "prune": "none",
                    "accuracy": 0.915, "params": 1_000, "kernel_params": 900,
                    "nonzero_params": 990, "macs": 5_000, "weight_bits": 8, "act_bits": 8,
                    **student_extra},
        "tflite": tflite, "eval_data": "digits",
        "baselines": {"no_training": {"accuracy": 0.88, "method": "post-training int8"},
                      "with_data": None},
        "train": {"steps": 3, "student_steps": 2, "batch_size": 16, "seconds": 1.5,
                  "replicas": 1, "generator_collapse": None},
        "figures": {"generated": "generated.png", "size_accuracy": None},
    }


def test_markdown_lists_every_file_baseline_and_size():
    text = report.to_markdown(_result())
    assert "| student, SavedModel (Keras) | 91.50 % | this run |" in text
    assert "| student, TFLite int8 | 91.00 % |" in text
    assert "| student, TFLite float | 92.00 % |" in text
    assert "| baseline: no training | 88.00 % | post-training int8 |" in text
    assert "baseline: with data" not in text  # not run: no row
    assert "| student_int8.tflite | 4,000 | 2,000 |" in text
    assert "| weight / activation bits | 32 / 32 | 8 / 8 |" in text
    assert "![generated images](generated.png)" in text and "accuracy against" not in text


def test_markdown_says_which_exports_the_fallback_guard_replaced_and_why():
    teacher = np.arange(100) % 10
    trained, untrained = np.where(np.arange(100) < 30, 0, teacher), teacher
    result = _result()
    assert "fallback guard" not in report.to_markdown(result)
    result["guard"] = dict(guard.compare(trained, untrained, teacher),
                           untrained="post-training int8 of the teacher",
                           eval_accuracy={"file": "int8", "trained": 0.62, "untrained": 0.91})
    text = report.to_markdown(result)
    assert ("| student, SavedModel (Keras) | 91.50 % | post-training int8 of the teacher, which "
            "the fallback guard exported |") in text
    assert "`student_int8.tflite` in ai-edge-litert (post-training int8 of the teacher" in text
    assert ("**The fallback guard exported the untrained student** (post-training int8 of the "
            "teacher) as every export: on 100 generated images it agrees with the teacher "
            "100.0%, the trained student 73.0%. On the evaluation data (not used for the choice)"
            " the trained one scores 62.00 %, the untrained 91.00 %.") in text
    # judged apart (activations below 8 bits): the SavedModel kept, the files replaced
    result["guard"]["saved_model"] = guard.compare(untrained, trained, teacher)
    text = report.to_markdown(result)
    assert "| student, SavedModel (Keras) | 91.50 % | this run |" in text
    assert "as the TFLite files: on 100" in text and "as the SavedModel" not in text
    # ...and the reverse: the files kept, the SavedModel replaced, with its own agreement
    result["guard"] = dict(guard.compare(untrained, trained, teacher),
                           untrained="the QAT teacher",
                           saved_model=guard.compare(trained, untrained, teacher))
    text = report.to_markdown(result)
    assert "| student, SavedModel (Keras) | 91.50 % | the QAT teacher, which the fallback" in text
    assert "`student_int8.tflite` in ai-edge-litert |" in text
    assert ("(the QAT teacher) as the SavedModel: on 100 generated images it agrees with the "
            "teacher 100.0%, the trained student 73.0%.") in text
    assert "as the TFLite files" not in text
    # mixed precision's baselines say their size
    result["baselines"]["no_training_random"] = {"accuracy": 0.9, "method": "random",
                                                 "weight_bytes": 5_584}
    assert "| baseline: no training random | 90.00 % | random (5,584 weight bytes) |" in \
        report.to_markdown(result)


def test_markdown_shows_method_fields_and_a_collapse():
    result = _result(delta=0.0512, slim={"threshold": 0.1, "channels": {"conv": [3, 8]}})
    result["train"]["generator_collapse"] = {"iteration": 40, "patience": 10, "threshold": 1.2,
                                             "iterations": [40], "resets": 1}
    text = report.to_markdown(result)
    assert "Binary scale delta = 0.0512." in text
    assert "Channels kept at threshold 0.1: conv 3/8." in text
    assert "**Warning: the generator collapsed at iteration 40**" in text


def test_image_view_undoes_a_bundled_sets_standardisation_and_scales_others():
    images = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype(np.float32)
    digits = data.load("digits")
    np.testing.assert_allclose(report.image_view(digits)(images),
                               images * digits.std + digits.mean, rtol=1e-6)
    scaled = report.image_view(None)(images)
    np.testing.assert_allclose(scaled.min(axis=(1, 2, 3)), 0.0, atol=1e-6)
    np.testing.assert_allclose(scaled.max(axis=(1, 2, 3)), 1.0, atol=1e-6)


def test_a_student_with_one_answer_for_every_image_is_named():
    """A student whose logits ignore its input (all but a bias cut away) gives one class where
    the teacher gives several: counted, and the warning names slimming's fix for a slim run."""
    from tfdfc import pipeline  # pylint: disable=import-outside-toplevel
    from tfdfc.keras_compat import keras  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    student = keras.models.clone_model(teacher)
    student.layers[-1].set_weights([np.zeros((6, 4)), np.array([0.0, 1.0, 0.0, 0.0])])
    samples = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    classes = report.generated_classes(student, teacher, samples)
    assert classes["student"] == 1 < classes["teacher"]
    assert report.generated_classes(teacher, teacher, samples)["student"] == classes["teacher"]
    slim = pipeline.CompressConfig(teacher="t", out_dir="o", prune="slim")
    line = report._one_class_line(slim, classes, 16)  # pylint: disable=protected-access
    assert line.startswith("WARNING: the exported SavedModel gives one class for all 16 generated "
                           f"images, where the teacher gives {classes['teacher']}")
    assert "--slim_threshold" in line
    assert "--slim_threshold" not in report._one_class_line(  # pylint: disable=protected-access
        pipeline.CompressConfig(teacher="t", out_dir="o", quantize="int8"), classes, 16)
