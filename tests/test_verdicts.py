"""The benchmarks' verdict code: means and standard deviations over seeds, the noise rule, and
met / missed lines (bench/common.py)."""

import math
import os
import sys

import pytest

from conftest import ROOT, bench_module

# Appended, not prepended: bench/zoo.py must not shadow tests/zoo.py for the other modules.
sys.path.append(os.path.join(ROOT, "bench"))
import common  # pylint: disable=wrong-import-position


def test_noise_is_two_binomial_standard_errors_in_points():
    # 0.9 on 10,000 images: se = sqrt(0.09 / 10000) = 0.003, two of them = 0.6 pt.
    assert common.noise_points(0.9, 10_000) == pytest.approx(0.6)
    assert common.noise_points(0.9, 1_000) == pytest.approx(0.6 * math.sqrt(10))
    assert common.noise_points(1.0, 1_000) == 0


def test_mean_and_sample_standard_deviation_over_seeds():
    mean, sd = common.mean_sd([0.86, 0.87, 0.88])
    assert mean == pytest.approx(0.87) and sd == pytest.approx(0.01)
    assert common.mean_sd([0.5]) == (0.5, None)
    assert common.mean_sd([0.5, None]) == (None, None)
    assert common.mean_std([0.86, 0.87, 0.88]) == "0.8700 ± 0.0100"
    assert common.mean_std([0.5]) == "0.5000 ± n/a"


def test_points_are_exact_to_the_rounding():
    assert common.points(0.985, 0.983) == 0.2
    assert common.points(None, 0.9) is None


def test_a_target_is_met_at_its_limit_and_missed_below_it():
    verdicts = common.Verdicts()
    assert verdicts.check("int8", -0.5, -0.5, True) is True
    assert verdicts.check("int8", -0.51, -0.5, True) is False
    assert verdicts.check("size", 0.5, 0.5, False, strict=True) is False
    assert verdicts.check("missing", None, -0.5, True) is None
    assert verdicts.lines == [
        "- int8: -0.50 (target >= -0.5) — met",
        "- int8: -0.51 (target >= -0.5) — MISSED",
        "- size: +0.50 (target < +0.5) — MISSED",
        "- missing: not measured"]


def test_a_verdict_closer_to_its_target_than_the_noise_says_so():
    verdicts = common.Verdicts()
    verdicts.check("w4a8", -1.2, -1.5, True, noise=0.6)
    verdicts.check("w4a8", -0.2, -1.5, True, noise=0.6)
    assert verdicts.lines[0].endswith("— met (within noise of the target)")
    assert verdicts.lines[1].endswith("(target >= -1.5; noise 0.60) — met")


def test_a_difference_under_the_noise_is_neither_a_gain_nor_a_loss():
    verdicts = common.Verdicts()
    assert verdicts.compare("ticket vs re-init", 0.905, 0.901, noise=0.6) == "within noise"
    assert verdicts.compare("ticket vs re-init", 0.915, 0.901, noise=0.6) == "higher"
    assert verdicts.compare("ticket vs re-init", 0.890, 0.901, noise=0.6) == "lower"
    assert verdicts.lines[0] == "- ticket vs re-init: +0.40 pt (noise 0.60) — within noise"


def test_a_verdict_on_fewer_seeds_than_the_targets_need_says_it_is_provisional():
    assert common.seeds_label(3) == "mean of 3 seeds"
    assert common.seeds_label(2) == "mean of 2 seeds; provisional, targets need 3"
    assert common.seeds_label(1) == "1 seed; provisional, targets need 3"


def test_a_claim_to_beat_something_needs_more_than_the_noise():
    verdicts = common.Verdicts()
    assert verdicts.beats("ticket minus re-init", 4.1, 9.87) is False
    assert verdicts.beats("ticket minus re-init", 1.0, 0.6) is True
    assert verdicts.beats("ticket minus re-init", -1.0, 0.6) is False
    assert verdicts.beats("ticket minus re-init", 1.0, None) is False
    assert verdicts.lines == [
        "- ticket minus re-init: +4.10 (target > 0 by more than the noise 9.87) — not shown "
        "(within noise)",
        "- ticket minus re-init: +1.00 (target > 0 by more than the noise 0.60) — met",
        "- ticket minus re-init: -1.00 (target > 0 by more than the noise 0.60) — MISSED",
        "- ticket minus re-init: +1.00 (target > 0 by more than the noise) — not shown (no "
        "noise estimate: one seed)"]


def test_zoo_judges_each_run_against_its_own_no_training_baseline():
    """A run below its own baseline by more than noise misses the target even when the mean
    over seeds does not (two guarded seeds at their baselines carry the mean)."""
    with bench_module("bench/zoo.py") as zoo:
        verdicts = common.Verdicts()
        runs = [(0, 0.8409, 0.8409), (1, 0.8400, 0.8400), (2, 0.8317, 0.8409)]
        zoo.worst_run_vs_no_training("mobilenet int8", runs, verdicts, 10_000)
        zoo.worst_run_vs_no_training("mobilenet int8", runs[:2], verdicts, 10_000)
    assert verdicts.lines == [
        "- mobilenet int8: TFLite vs its no-training baseline, worst of 3 runs (seed 2, pt): "
        "-0.92 (target >= -0.73) — MISSED",
        "- mobilenet int8: TFLite vs its no-training baseline, worst of 2 runs (seed 0, pt): "
        "+0.00 (target >= -0.73) — met"]


def _mixed_summary(bits_by_seed, size, budget=1000, fullest=None):
    return {"seeds": len(bits_by_seed), "tflite_mean": 0.9, "bytes": size,
            "budget_bytes": budget, "fullest_bytes": fullest, "keras_gap": 0.0,
            "bits": bits_by_seed}


def test_mixed_budget_is_two_sided_and_a_control_with_the_same_bits_is_no_test():
    with bench_module("bench/mixed.py") as mixed:
        verdicts = common.Verdicts()
        same = {0: {"a": 4, "b": 8}, 1: {"a": 8, "b": 4}}
        summaries = {"mixed@0.65": _mixed_summary(same, 1030),
                     "random@0.65": _mixed_summary(dict(same), 1000)}
        mixed._verdicts("t", "mixed@0.65", summaries["mixed@0.65"], summaries, None, verdicts,
                        10_000)
        assert verdicts.lines[0] == ("- t mixed@0.65: |kernel bytes in the file / budget - 1|: "
                                     "+0.03 (target <= +0.02) — MISSED")
        assert verdicts.lines[-1] == ("- t mixed@0.65: above random at the same budget — not "
                                      "tested: every random draw gave the sensitivity "
                                      "assignment's bits")
        summaries["random@0.65"]["bits"][1] = {"a": 4, "b": 4}
        verdicts.lines.clear()
        mixed._verdicts("t", "mixed@0.65", summaries["mixed@0.65"], summaries, None, verdicts,
                        10_000)
        assert verdicts.lines[-1].startswith("- t mixed@0.65: above random at the same budget "
                                             "(mean of 2 seeds; provisional, targets need 3, "
                                             "pt): +0.00")


def test_a_budget_miss_no_assignment_could_meet_says_so():
    with bench_module("bench/mixed.py") as mixed:
        bits = {0: {"a": 4, "b": 8}}
        for fullest, note in ((940, True), (990, False)):
            verdicts = common.Verdicts()
            summary = _mixed_summary(bits, 940, fullest=fullest)
            mixed._verdicts("t", "random@0.65", summary, {"random@0.65": summary}, None,
                            verdicts, 10_000)
            assert verdicts.lines[0].startswith(
                "- t random@0.65: |kernel bytes in the file / budget - 1|: +0.06 (target <= "
                "+0.02) — MISSED")
            assert verdicts.lines[0].endswith(
                "(no assignment can meet it: the fullest of 4 or 8 bits per layer within the "
                "budget holds 940 bytes, -6.0%)") == note


def test_a_mixed_block_made_on_two_teachers_says_which_points_are_on_which():
    with bench_module("bench/mixed.py") as mixed:
        one = {"int8": {"teacher": 0.981}, "mixed@0.65": {"teacher": 0.981}}
        assert mixed._teachers_apart(one) == []
        two = dict(one, **{"mixed@0.55": {"teacher": 0.982}})
        assert mixed._teachers_apart(two)[-1].endswith(
            "int8, mixed@0.65 on a teacher at 0.9810; mixed@0.55 on a teacher at 0.9820.")


@pytest.fixture(scope="module")
def fashion():
    """bench/fashion.py imported in this process (its flags beside no others while it is)."""
    with bench_module("bench/fashion.py") as module:
        yield module


def _entry(experiment, seed, shipped, teacher=0.9, with_data=None, no_training=None, minutes=5,
           extra=(), params=1000, curve=()):
    """A run entry as bench/fashion.py stores it, with just the report fields the table reads."""
    tflite = {"float": {"accuracy": shipped}}
    if any(part in experiment for part in ("int8", "w4a", "binary")):
        tflite = {"float": {"accuracy": 0.0}, "int8": {"accuracy": shipped}}
    report = {"tflite": tflite, "teacher": {"accuracy": teacher, "params": 1000},
              "baselines": {"with_data": with_data and {"accuracy": with_data},
                            "no_training": no_training and {"accuracy": no_training}},
              "student": {"params": params, "nonzero_params": params, "macs": 10 * params},
              "train": {"steps": 600, "seconds": 60 * minutes,
                        "evaluations": [list(point) for point in curve]}}
    return {"experiment": experiment, "seed": seed, "extra": list(extra), "report": report,
            "out_dir": f"runs/{experiment}_seed{seed}", "command": "python bench/fashion.py"}


def test_fashion_table_judges_the_mean_of_seeds_against_each_target(fashion):
    runs = {f"s{seed}": _entry("distill_lenet5_half", seed, value, with_data=0.89 if seed == 0
                               else None)
            for seed, value in enumerate((0.88, 0.89, 0.90))}
    text = "\n".join(fashion.render({"split": "test", "eval_images": 10_000, "runs": runs}))
    assert "| distill_lenet5_half | — | 3 | 600 | 1,000 | 0.9000 | 0.8900 ± 0.0100 | n/a | " \
           "0.8900 (1 of 3 seeds) | -1.0 | 5.0 |" in text
    assert "- distill_lenet5_half: accuracy (mean of 3 seeds, %): +89.00 (target >= +88.5; noise " \
           "0.64) — met (within noise of the target)" in text
    assert "- distill_lenet5_half: vs with data (mean of 3 seeds, pt): +0.00 (target >= -1.5; " \
           "noise 0.63) — met" in text
    assert "accuracy after 5.0 min of training (mean of 3 seeds, %): +89.00 (target >= +85; " \
           "noise 0.71) — met" in text


def test_a_fashion_row_whose_seeds_were_made_on_different_teachers_is_not_judged(fashion):
    runs = {f"s{seed}": _entry("int8_wrn16_1", seed, 0.92, teacher=teacher)
            for seed, teacher in enumerate((0.9247, 0.9265, 0.9265))}
    text = "\n".join(fashion.render({"split": "test", "eval_images": 10_000, "runs": runs}))
    assert "| int8_wrn16_1 | — | 3 | 600 | 1,000 | 0.9247 / 0.9265 | 0.9200 ± 0.0000 |" in text
    assert "- int8_wrn16_1: not judged: its seeds were made on teachers of different accuracy " \
           "(0.9247 / 0.9265); run them all on one" in text
    assert "int8_wrn16_1: vs teacher" not in text
    runs["s0"]["report"]["teacher"]["accuracy"] = 0.9265
    text = "\n".join(fashion.render({"split": "test", "eval_images": 10_000, "runs": runs}))
    assert "- int8_wrn16_1: vs teacher (mean of 3 seeds, pt): -0.65" in text


def test_a_fashion_row_below_8_bit_activations_shows_the_trained_keras_student_beside_files(
        fashion):
    """A w4a4 row's file runs 8-bit activations, its with-data column the Keras model at 4:
    the section shows each seed's trained Keras accuracy even where the guard shipped the
    untrained twin (whose Keras accuracy is then the report's)."""
    runs = {}
    for seed, (keras_trained, file_trained, file_twin) in enumerate(
            ((0.79, 0.86, 0.81), (0.87, 0.65, 0.81))):
        entry = _entry("w4a4_wrn16_1", seed, max(file_trained, file_twin),
                       curve=[(300, 0.5), (600, keras_trained)])
        twin = file_twin > file_trained
        entry["report"]["student"].update(act_bits=4, accuracy=0.73 if twin else keras_trained)
        entry["report"]["guard"] = {"default": "trained",
                                    "exported": "untrained" if twin else "trained",
                                    "eval_accuracy": {"file": "int8", "trained": file_trained,
                                                      "untrained": file_twin}}
        runs[f"s{seed}"] = entry
    # Where the guard judged the SavedModels apart, its measure wins over the curve (which a
    # run resumed from copied state may not have measured on this split).
    runs["s1"]["report"]["train"]["evaluations"][-1][1] = 0.55
    runs["s1"]["report"]["guard"]["saved_model"] = {
        "exported": "trained", "eval_accuracy": {"trained": 0.87, "untrained": 0.8}}
    runs["int8"] = _entry("int8_wrn16_1", 0, 0.92)
    runs["int8"]["report"]["student"]["act_bits"] = 8
    text = "\n".join(fashion.render({"split": "test", "eval_images": 10_000, "runs": runs}))
    assert "## w4a4_wrn16_1: the 4-bit activations in Keras and in the file" in text
    assert "| 0 | 0.7900 | 0.8600 | 0.8100 | trained |" in text
    assert "| 1 | 0.8700 | 0.6500 | 0.8100 | twin |" in text
    assert "| mean ± sd | 0.8300 ± 0.0566 | 0.7550 ± 0.1485 | 0.8100 ± 0.0000 | |" in text
    assert "int8_wrn16_1: the" not in text  # 8-bit activations: no such section


def test_fashion_runs_longer_than_ten_minutes_do_not_count_for_the_fast_target(fashion):
    runs = {"s0": _entry("distill_lenet5_half", 0, 0.9, minutes=12)}
    text = "\n".join(fashion.render({"split": "val", "eval_images": 5_000, "runs": runs}))
    assert "accuracy after 12.0 min of training (1 seed; provisional, targets need 3, %): not " \
           "measured" in text
    assert "for tuning; targets are judged on the test split" in text


def test_fashion_quantized_rows_ship_the_int8_file_and_tuning_rows_get_no_verdict(fashion):
    runs = {"a": _entry("int8_wrn16_1", 0, 0.897, no_training=0.895),
            "b": _entry("int8_wrn16_1", 0, 0.5, extra=["--student_lr=1"])}
    text = "\n".join(fashion.render({"split": "test", "eval_images": 10_000, "runs": runs}))
    assert "| int8_wrn16_1 | — | 1 | 600 | 1,000 | 0.9000 | 0.8970 ± n/a | 0.8950 |" in text
    assert "- int8_wrn16_1: vs teacher (1 seed; provisional, targets need 3, pt): -0.30 " \
           "(target >= -0.5; noise 0.60) — met (within noise of the target)" in text
    assert text.count("- int8_wrn16_1:") == 1  # the --student_lr=1 row is tuning: no verdict


def test_fashion_slimming_sweep_is_judged_on_its_best_point_at_half_the_teachers_size(fashion):
    def runs(points):  # {lambda: (params, accuracies over seeds)}
        return {f"{value}s{seed}": _entry("slim_wrn16_1", seed, accuracy, params=params,
                                          extra=[f"--slim_weight_decay={value}"])
                for value, (params, accuracies) in points.items()
                for seed, accuracy in enumerate(accuracies)}

    text = "\n".join(fashion.render({"split": "test", "eval_images": 10_000, "runs": runs({
        "1e-4": (900, (0.90, 0.90, 0.90)), "3e-4": (500, (0.89, 0.895, 0.885)),
        "1e-3": (300, (0.85, 0.85, 0.85))})}))
    assert "## slim_wrn16_1: the slim_weight_decay sweep" in text
    assert "| 3e-4 | 3 | 500 | 50.0% | 5,000 | 0.8900 ± 0.0050 | -1.0 | n/a |" in text
    # 1e-4 is more accurate but too large; 3e-4 is the best point at <= 50 %.
    assert "- slim_wrn16_1: best point at <= 50 % of the teacher's parameters vs teacher (mean " \
           "of 3 seeds, pt): -1.00 (target >= -1; noise 0.60) — met (within noise of the " \
           "target)" in text
    assert "- slim_wrn16_1: vs" not in text  # a sweep's rows get no per-row verdict
    # No point small enough: the target says so rather than judging a large one.
    text = "\n".join(fashion.render({"split": "test", "eval_images": 10_000,
                                     "runs": runs({"1e-4": (900, (0.9,))})}))
    assert "not measured (no point of the sweep is that small)" in text


def test_fashion_ticket_is_judged_against_its_control_seed_by_seed_with_the_curve(fashion):
    def pair(seed, ticket, control, late_gain):
        curve = lambda end, gain: [(300, end - 0.1), (400, end - gain), (600, end)]
        return {f"t{seed}": _entry("ticket_lenet5", seed, ticket, curve=curve(ticket, 0.0)),
                f"c{seed}": _entry("ticket_reinit_lenet5", seed, control,
                                   curve=curve(control, late_gain))}

    runs = {**pair(0, 0.85, 0.82, 0.002), **pair(1, 0.86, 0.83, 0.004),
            **pair(2, 0.84, 0.81, 0.003)}
    runs["lonely"] = _entry("ticket_lenet5", 3, 0.99)  # no control at seed 3: not paired
    text = "\n".join(fashion.render({"split": "test", "eval_images": 10_000, "runs": runs}))
    assert "## ticket_lenet5: the lottery ticket against its re-initialised control" in text
    assert "| 1 | 0.8600 | 0.8300 | +3.00 |" in text and "| 3 | 0.9900 |" not in text
    assert "| mean ± sd | 0.8500 ± 0.0100 | 0.8200 ± 0.0100 | 3.00 ± 0.00 |" in text
    assert "| 400 | 0.8500 | 0.8170 |" in text  # the means of the curves
    assert "- ticket_lenet5: ticket minus re-init (mean of 3 seeds, pt): +3.00 (target > 0 by " \
           "more than the noise 0.77) — met" in text
    assert "- ticket_lenet5: the control's gain over the last third of its iterations (mean of " \
           "3 seeds, pt; it has plateaued when within noise): +0.30 (target <= +0.77) — met" \
           in text
    assert "- ticket_reinit_lenet5:" not in text and "- ticket_lenet5: vs" not in text
    # A control still climbing: the table says it has not plateaued.
    climbing = {**pair(0, 0.85, 0.82, 0.05)}
    text = "\n".join(fashion.render({"split": "test", "eval_images": 10_000, "runs": climbing}))
    assert "(1 seed; provisional, targets need 3, pt; it has plateaued when within noise): " \
           "+5.00 (target <= +0.77) — MISSED" in text


def test_fashion_teachers_are_judged_on_their_test_accuracy_and_training_minutes(fashion):
    training = {"architecture": "wrn-16-1", "params": 175_706, "config": {"epochs": 8},
                "val_accuracy": 0.935, "test_accuracy": 0.9265, "train_seconds": 960}
    results = {"split": "test", "eval_images": 10_000, "runs": {},
               "teachers": {"exported/teachers/wrn16_1_fashion.keras": training}}
    text = "\n".join(fashion.render(results))
    assert "| wrn16_1_fashion | wrn-16-1 | 175,706 | 8 | 0.9350 | 0.9265 | 16.0 |" in text
    assert "- teacher wrn16_1_fashion: test accuracy (%): +92.65 (target >= +92.5; noise 0.53) " \
           "— met (within noise of the target)" in text
    assert "- teacher wrn16_1_fashion: minutes of training: +16.00 (target <= +15) — MISSED" in text
    # A tuning table leaves the teachers to the reported one.
    assert "Fashion-MNIST teachers" not in "\n".join(fashion.render(dict(results, split="val")))


def test_a_plan_without_its_fullest_bytes_gets_them_from_the_teacher_file(tmp_path):
    from tfdfc import artifacts  # pylint: disable=import-outside-toplevel
    from tfdfc.keras_compat import keras  # pylint: disable=import-outside-toplevel
    # Kernels of 160, 2,000 and 400 weights (2,560 int8 bytes), the first two packable. Under a
    # 1,500-byte budget packing the 2,000 alone (1,560) is too much; both packed hold 1,480.
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, name="a"), keras.layers.Dense(200, name="b"),
                              keras.layers.Dense(2, name="c")])
    path = str(tmp_path / "t.keras")
    artifacts.save_keras_model(model, path)
    with bench_module("bench/mixed.py") as mixed:
        sizes = mixed.mixed.kernel_sizes(keras.models.load_model(path))
        packed = {"a", "b"}
        limit = 1500
        assert sizes == {"a": 160, "b": 2000, "c": 400}
        plan = {"packed": sorted(packed), "budget_bytes": limit}
        mixed.TEACHERS["t"] = (path, None)
        assert mixed._fullest_bytes(plan, "t") == 1480
        assert mixed._fullest_bytes(dict(plan, fullest_bytes=7), "t") == 7
        mixed.TEACHERS["t"] = (str(tmp_path / "absent.keras"), None)
        assert mixed._fullest_bytes(plan, "t") is None
        assert mixed._fullest_bytes(None, "t") is None
