"""The warning a run gives when real images show its student worse than no training at all."""

from tfdfc import baselines


def _result(files, untrained):
    return {"tflite": {variant: {"accuracy": accuracy} for variant, accuracy in files.items()},
            "baselines": {"no_training": None if untrained is None else
                          {"accuracy": untrained, "method": "m"}}}


def test_a_student_below_its_no_training_baseline_beyond_noise_is_named_with_its_file():
    # 1,000 images at 0.5: two binomial standard errors are 0.0316.
    line = baselines.below_no_training_warning(
        _result({"float": 0.90, "int8": 0.45}, 0.50), 1000)
    assert line.startswith("WARNING: on the evaluation data student_int8.tflite scores 0.4500, "
                           "below the no-training baseline's 0.5000 by more than the noise "
                           "(0.0316)")
    assert line.endswith("training made this student worse")  # no guard ran
    # without an int8 file the float file is the student's; where the guard judged, it is named
    judged = dict(_result({"float": 0.2778, "dynamic": 0.9}, 0.4806), guard={"checked": True})
    assert baselines.below_no_training_warning(judged, 360).endswith(
        "student_float.tflite scores 0.2778, below the no-training baseline's 0.4806 by more "
        "than the noise (0.0527): training made this student worse, and the fallback guard, "
        "which judges without data, kept it (report.json `guard`)")


def test_no_warning_within_noise_above_the_baseline_or_without_one():
    assert baselines.below_no_training_warning(_result({"int8": 0.48}, 0.50), 1000) is None
    assert baselines.below_no_training_warning(_result({"int8": 0.60}, 0.50), 1000) is None
    assert baselines.below_no_training_warning(_result({"int8": 0.10}, None), 1000) is None
    assert baselines.below_no_training_warning(_result({"int8": None}, 0.5), 1000) is None
