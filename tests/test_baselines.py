"""The warning a run gives when real images show its student worse than no training at all."""

from tfdfc import baselines


def _result(files, untrained, keras=None, verdict=None):
    return {"student": {"accuracy": max(files.values()) if keras is None else keras},
            "tflite": {variant: {"accuracy": accuracy} for variant, accuracy in files.items()},
            "baselines": {"no_training": None if untrained is None else
                          {"accuracy": untrained, "method": "m"}},
            "guard": verdict or {"checked": False}}


def test_a_student_below_its_no_training_baseline_beyond_noise_is_named_with_its_file():
    # 1,000 images at 0.45 and 0.5: two binomial standard errors of the difference are 0.0446.
    line = baselines.below_no_training_warning(
        _result({"float": 0.44, "int8": 0.45}, 0.50, keras=0.45), 1000)
    assert line == ("WARNING: on the evaluation data the student scores 0.4500 (Keras), 0.4500 "
                    "(student_int8.tflite), below the no-training baseline's 0.5000 by more "
                    "than the noise (0.0446): training made it worse")
    # without an int8 file the float file is the student's; where the guard judged and kept the
    # trained student, it is named
    judged = _result({"float": 0.2778, "dynamic": 0.9}, 0.4806, keras=0.2778,
                     verdict={"checked": True, "exported": "trained"})
    assert baselines.below_no_training_warning(judged, 360).endswith(
        "(student_float.tflite), below the no-training baseline's 0.4806 by more than the "
        "noise (0.0707): training made it worse, and the fallback guard, which judges without "
        "data, kept it (report.json `guard`)")


def test_no_warning_within_noise_above_the_baseline_or_without_a_trained_export():
    assert baselines.below_no_training_warning(_result({"int8": 0.48}, 0.50), 1000) is None
    assert baselines.below_no_training_warning(_result({"int8": 0.60}, 0.50), 1000) is None
    assert baselines.below_no_training_warning(_result({"int8": 0.10}, None), 1000) is None
    # a perfect baseline does not make one image a warning: the student's variance counts too
    assert baselines.below_no_training_warning(_result({"int8": 0.997}, 1.0), 1000) is None
    # the file lost to its own post-training int8, the Keras student did not
    assert baselines.below_no_training_warning(
        _result({"int8": 0.30, "float": 0.5}, 0.50, keras=0.50), 1000) is None
    # the guard exported the untrained student: training's result does not ship
    fell_back = _result({"int8": 0.10}, 0.50, verdict={"checked": True, "exported": "untrained"})
    assert baselines.below_no_training_warning(fell_back, 1000) is None
