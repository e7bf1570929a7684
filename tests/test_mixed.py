"""Data-free mixed precision: the budget solver, the sensitivity measure, and a run end to end
whose file holds the chosen bits within the budget."""

import itertools
import json
import os

import numpy as np
import pytest

from conftest import quiet
from tfdfc import (api, config as config_lib, data, evaluation, export, input_space, metrics,
                   sensitivity, teacher)
from tfdfc.compression import mixed
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras
from tfdfc.methods import mixed_precision
from tfdfc.methods.mixed_precision import MixedPrecision

SIZES = {"a": 1000, "b": 4000, "c": 2000, "d": 300}


def test_the_solver_keeps_the_budget_and_moves_the_least_sensitive_layers():
    packed = set(SIZES)
    sensitivity_of = {"a": 0.5, "b": 0.01, "c": 0.02, "d": 9.0}
    limit = mixed.budget_bytes(0.75, SIZES)  # 75 % of 7,300 int8 bytes
    bits = mixed.solve(SIZES, packed, sensitivity_of, limit)
    assert mixed.weight_bytes(SIZES, bits) <= limit
    assert bits == {"a": 8, "b": 4, "c": 8, "d": 8}  # b alone saves enough, at least harm
    tight = mixed.solve(SIZES, packed, sensitivity_of, mixed.budget_bytes(0.6, SIZES))
    assert tight["d"] == 8 and tight["b"] == 4 and tight["c"] == 4


def test_the_solver_refills_the_slack_and_refuses_an_impossible_budget():
    bits = mixed.solve(SIZES, {"b", "c"}, {"b": 1.0, "c": 0.0}, 7300)
    assert set(bits.values()) == {8}  # the int8 size fits: nothing needs 4 bits
    with pytest.raises(ConfigError, match="below the smallest mixed model"):
        mixed.solve(SIZES, {"b", "c"}, {"b": 1.0, "c": 0.0}, 4000)  # 4,300 at best


def test_the_solver_spends_the_budget_where_an_assignment_can():
    sensitivity_of = {"a": 0.5, "b": 0.01, "c": 0.02, "d": 9.0}
    # Under 5,800 bytes the least sensitive cover is b alone (5,300: 8.6 % under the budget);
    # a and c together (0.52) hold 5,800, within FILL_TOLERANCE, so the solver takes them.
    bits = mixed.solve(SIZES, set(SIZES), sensitivity_of, 5800)
    assert bits == {"a": 4, "b": 8, "c": 4, "d": 8}
    assert mixed.weight_bytes(SIZES, bits) == 5800
    # Where no set lands within the band (under 5,475 the fullest is 5,300, 3.2 % under), the
    # least sensitive cover, as before.
    assert mixed.solve(SIZES, set(SIZES), sensitivity_of, 5475) == {"a": 8, "b": 4, "c": 8,
                                                                     "d": 8}


def test_the_solver_meets_the_smallest_budget_of_large_kernels():
    # Kernels so large that the knapsack counts saved bytes in units of 2: three of 133,335
    # weights each save 66,667 bytes at 4 bits, which rounds down, so the rounded sums fall
    # short of the all-4-bit budget though the exact sum meets it. The solver still answers.
    sizes = {"x": 133_335, "y": 133_335, "z": 133_335}
    smallest = mixed.weight_bytes(sizes, mixed.all_bits(sizes, set(sizes), 4))
    bits = mixed.solve(sizes, set(sizes), {"x": 0.1, "y": 0.2, "z": 0.3}, smallest)
    assert bits == {"x": 4, "y": 4, "z": 4}
    # One byte more is still only met by all three.
    assert set(mixed.solve(sizes, set(sizes), {"x": 0.1, "y": 0.2, "z": 0.3},
                           smallest + 1).values()) == {4}


def test_the_fullest_assignment_within_a_budget_is_found_exactly():
    packed = {"a", "b", "c"}  # d stays at 8 bits
    for limit in (7300, 6000, 5400, 5000, 4500, 3800):
        every = [mixed.weight_bytes(SIZES, dict(zip("abcd", (*choice, 8))))
                 for choice in itertools.product((4, 8), repeat=3)]
        assert mixed.fullest_bytes(SIZES, packed, limit) == max(b for b in every if b <= limit)
    # A budget between what one large kernel and two kernels save is not reachable: 5,300
    # (b at 4 bits) is the fullest under 5,800, 8.6 % below it.
    assert mixed.fullest_bytes(SIZES, {"b", "c"}, 5800) == 5300
    with pytest.raises(ConfigError, match="below the smallest mixed model"):
        mixed.fullest_bytes(SIZES, {"b"}, 5000)


def test_the_random_control_keeps_the_same_budget():
    limit = mixed.budget_bytes(0.7, SIZES)
    for seed in range(5):
        bits = mixed.random_bits(SIZES, set(SIZES), limit, seed)
        assert mixed.weight_bytes(SIZES, bits) <= limit


def test_the_random_control_is_held_to_the_same_band_and_differs_before_it_fills():
    # Under 5,800 bytes only a and c at 4 bits hold within FILL_TOLERANCE of the budget.
    floor = mixed.fill_floor(5800)
    draws = [mixed.random_bits(SIZES, set(SIZES), 5800, seed) for seed in range(5)]
    assert all(mixed.weight_bytes(SIZES, bits) >= floor for bits in draws)
    # When that is the assignment to avoid, a control that differs comes first.
    full = {"a": 4, "b": 8, "c": 4, "d": 8}
    others = [mixed.random_bits(SIZES, set(SIZES), 5800, seed, avoid=full) for seed in range(5)]
    assert all(bits != full and mixed.weight_bytes(SIZES, bits) <= 5800 for bits in others)
    # ...and the run says in one line that the control left the band, with both sizes.
    assert mixed_precision.random_control_warning(SIZES, 5800, full, others[0]) is None
    held = mixed.weight_bytes(SIZES, others[0])
    assert mixed_precision.random_control_warning(SIZES, 5800, others[0], full) == (
        f"WARNING: --mixed_assignment=random: no draw other than the search's held within 2% "
        f"of the budget, so this control holds {held:,} weight bytes against the search's "
        f"{mixed.weight_bytes(SIZES, full):,}: it compares at a smaller size")
    assert "is the same student" in mixed_precision.random_control_warning(SIZES, 5800, full,
                                                                          full)


def test_the_random_control_draws_again_to_differ_from_the_assignment_it_controls():
    limit = mixed.budget_bytes(0.7, SIZES)
    sensitive = mixed.solve(SIZES, set(SIZES), {"a": 0.5, "b": 0.01, "c": 0.02, "d": 9.0}, limit)
    draws = [mixed.random_bits(SIZES, set(SIZES), limit, seed, avoid=sensitive)
             for seed in range(5)]
    assert all(bits != sensitive and mixed.weight_bytes(SIZES, bits) <= limit for bits in draws)
    # Without `avoid`, the first draw: some seeds land on the sensitivity's bits.
    assert any(mixed.random_bits(SIZES, set(SIZES), limit, seed) == sensitive
               for seed in range(5))
    # Where only one set of 4-bit layers fits, the control equals it and says nothing new.
    only = mixed.solve(SIZES, {"b"}, {"b": 1.0}, 5300)  # b at 4 bits: 5,300 bytes
    assert only["b"] == 4 and mixed.random_bits(SIZES, {"b"}, 5300, 0, avoid=only) == only


def test_four_bit_grid_has_at_most_16_levels_per_output_channel():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 6))
    grid = mixed.fake_quantized(kernel, 4, range_axes=(0, 1, 2))
    for channel in range(6):
        assert len(np.unique(grid[..., channel])) <= 15  # narrow range: -7..7
    assert np.max(np.abs(grid - kernel)) < np.max(np.abs(kernel)) / 7


def _fragile_mlp():
    """Three dense layers; the middle one holds one weight 200x the others, so its per-tensor
    4-bit grid rounds every other weight to zero."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(32, activation="relu", name="fragile"),
                              keras.layers.Dense(10)])
    kernel = model.get_layer("fragile").kernel.numpy()
    kernel[0, 0] = 200 * np.max(np.abs(kernel))
    model.get_layer("fragile").kernel.assign(kernel)
    return model


def test_a_deliberately_fragile_layer_is_ranked_most_sensitive():
    model = _fragile_mlp()
    config = config_lib.CompressConfig(teacher="t", out_dir="o", quantize="mixed",
                                       mixed_search_steps=3, generator_channels=8)
    sizes = mixed.kernel_sizes(model)
    scores, _ = sensitivity.measure(model, sizes, set(sizes), config,
                                    input_space.infer(model), log=quiet)
    assert max(scores, key=scores.get) == "fragile", scores


def test_the_random_control_runs_the_search_and_takes_other_bits(digits_teacher_path):
    """At 0.85 of the int8 bytes either dense layer alone may go to 4 bits: two choices."""
    model = teacher.as_logits(teacher.load(digits_teacher_path))
    config = config_lib.CompressConfig(teacher="t", out_dir="o", quantize="mixed",
                                       mixed_budget=0.85, mixed_assignment="random",
                                       mixed_search_steps=3, generator_channels=8)
    plan = MixedPrecision().prepare(config, model, log=quiet)
    sizes = mixed.kernel_sizes(model)
    searched = mixed.solve(sizes, set(plan["packed"]), plan["sensitivity"], plan["budget_bytes"])
    assert plan["bits"] != searched and plan["same_as_sensitivity"] is False
    assert mixed.weight_bytes(sizes, plan["bits"]) <= plan["budget_bytes"]


TINY = dict(steps=2, batch_size=16, student_steps=2, generator_channels=8, log_every=1,
            with_data_baseline=False, strategy="one_device", mixed_search_steps=3)


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, digits_teacher_path):
    out_dir = str(tmp_path_factory.mktemp("mixed") / "run")
    outcome = api.compress(digits_teacher_path, out_dir, log=quiet, quantize="mixed",
                           mixed_budget=0.7, eval_data="digits", **TINY)
    return outcome, out_dir


@pytest.mark.slow  # a whole mixed run (shared)
def test_the_file_holds_the_chosen_bits_within_the_budget(mixed_run):
    outcome, _ = mixed_run
    plan = outcome.report["student"]["mixed"]
    payload = open(outcome.files["tflite_int8"], "rb").read()
    assert metrics.tflite_kernel_bytes(payload) == plan["weight_bytes"] <= plan["budget_bytes"]
    assert plan["weight_bytes"] <= plan["fullest_bytes"] <= plan["budget_bytes"]
    assert outcome.report["tflite"]["int8"]["kernel_bytes"] == plan["weight_bytes"]
    assert mixed.file_bits(payload, outcome.student) == plan["bits"]
    assert 4 in plan["bits"].values() and 8 in plan["bits"].values()
    outcome.student(np.zeros((1, 8, 8, 1), np.float32))  # wrappers hold the quantized kernels
    fours = 0
    for layer in outcome.student.layers:
        name = layer.name.removeprefix("quant_")
        if plan["bits"].get(name) == 4:
            values = np.asarray(layer.layer.kernel)
            flat = values.reshape(-1, values.shape[-1])
            assert max(len(np.unique(flat[:, c])) for c in range(flat.shape[1])) <= 16, name
            fours += 1
    assert fours == sum(bits == 4 for bits in plan["bits"].values())


@pytest.mark.slow  # a whole mixed run (shared)
def test_the_report_gives_the_uniform_random_and_untrained_baselines(mixed_run):
    outcome, _ = mixed_run
    baselines = outcome.report["baselines"]
    plan = outcome.report["student"]["mixed"]
    sizes = baselines["no_training_uniform_int8"]["weight_bytes"]
    assert sizes == plan["int8_bytes"]
    assert baselines["no_training_uniform_w4a8"]["weight_bytes"] < plan["weight_bytes"]
    assert baselines["no_training_random"]["weight_bytes"] <= plan["budget_bytes"]
    assert baselines["no_training"]["weight_bytes"] == plan["weight_bytes"]
    for entry in baselines.values():
        if entry and "weight_bytes" in entry:
            assert 0.0 <= entry["accuracy"] <= 1.0
    keras_accuracy = outcome.report["student"]["accuracy"]
    assert abs(outcome.report["tflite"]["int8"]["accuracy"] - keras_accuracy) < 0.05


@pytest.mark.slow  # a whole mixed run (shared)
def test_evaluate_counts_the_saved_model_as_the_report_does(mixed_run):
    """The QAT SavedModel holds quantizer state beside its weights, and its wrappers put
    4-bit kernels (many zeros) in their layers' place once called: neither is the student's
    size."""
    outcome, out_dir = mixed_run
    measured = evaluation.evaluate(os.path.join(out_dir, "saved_model"), data.load("digits"))
    for field in ("params", "kernel_params", "sparsity", "macs"):
        assert measured[field] == pytest.approx(outcome.report["student"][field]), field


@pytest.mark.slow  # a whole mixed run (shared)
def test_the_fallback_guard_weighs_the_student_against_the_untrained_assignment(mixed_run):
    outcome, _ = mixed_run
    entry = outcome.report["guard"]
    assert entry["checked"] and entry["untrained"].startswith("QAT-wrapped teacher at this "
                                                              "assignment")
    assert 0.0 <= entry["untrained_agreement"] <= 1.0 and entry["exported"] in ("trained",
                                                                                "untrained")


@pytest.mark.slow  # a whole mixed run (shared)
def test_a_resumed_run_keeps_its_saved_assignment(mixed_run, digits_teacher_path):
    outcome, out_dir = mixed_run
    plan_path = os.path.join(out_dir, "plan.json")
    saved = json.load(open(plan_path))
    assert saved["bits"] == outcome.report["student"]["mixed"]["bits"]
    saved["sensitivity"] = {name: -1.0 for name in saved["bits"]}  # a mark a re-search drops
    json.dump(saved, open(plan_path, "w"))
    resumed = api.compress(digits_teacher_path, out_dir, log=quiet, quantize="mixed",
                           mixed_budget=0.7, eval_data="digits", **TINY)
    assert resumed.report["student"]["mixed"]["sensitivity"] == saved["sensitivity"]
    assert resumed.report["student"]["mixed"]["bits"] == saved["bits"]
    lines = []  # another budget in the same directory: refused before the search's minutes
    with pytest.raises(ConfigError, match="settings differ: --mixed_budget"):
        api.compress(digits_teacher_path, out_dir, log=lines.append, quantize="mixed",
                     mixed_budget=0.8, eval_data="digits", **TINY)
    assert not any("search" in line for line in lines), lines


@pytest.mark.parametrize("overrides, message", [
    (dict(quantize="int8", mixed_budget=0.5), "apply only to --quantize=mixed"),
    (dict(quantize="mixed", mixed_budget=0.01), "below the smallest mixed model"),
    (dict(quantize="mixed", mixed_budget=1.0), "hold the whole int8 model"),
    (dict(quantize="mixed", mixed_budget=10 ** 7), "hold the whole int8 model"),
    (dict(quantize="mixed", mixed_budget=1.5), "above 1 it counts bytes, a whole number"),
    (dict(quantize="mixed", mixed_budget=float("inf")), "must be a positive number, got inf"),
    (dict(quantize="mixed", mixed_budget=float("nan")), "must be a positive number, got nan"),
    (dict(quantize="mixed", student="lenet5-x0.5"), "needs --student=same"),
])
def test_bad_mixed_settings_are_one_line_errors(tmp_path, digits_teacher_path, overrides,
                                                message):
    out_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        api.compress(teacher.load(digits_teacher_path), str(out_dir), log=quiet,
                     **dict(TINY, **overrides))
    assert not out_dir.exists()


def test_a_model_with_no_kernel_tflite_packs_at_4_bits_is_refused(tmp_path):
    """One dense layer reading the image: the only kernel stays INT8 in the file, so no
    budget below int8's can be met, and any budget at int8's is refused as well."""
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    out_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match="packs none of this model's kernels at 4 bits"):
        api.compress(model, str(out_dir), log=quiet, quantize="mixed", mixed_budget=0.7,
                     **TINY)
    assert not out_dir.exists()


@pytest.mark.slow
def test_the_file_tells_apart_the_kernels_of_repeated_same_shaped_blocks():
    """In MobileNetV2 the converter names the kernels of repeated blocks after the first block
    (block_3_depthwise's kernel reads `block_1_depthwise/...`): the bits must still go to the
    right layers, and every kernel but the first convolution and the head packs. The network's
    first six blocks (a fraction of the conversion time) hold such repeats."""
    import zoo  # pylint: disable=import-outside-toplevel
    full = zoo.mobilenet_v2()
    pooled = keras.layers.GlobalAveragePooling2D()(full.get_layer("block_5_add").output)
    model = keras.Model(full.input, keras.layers.Dense(zoo.CLASSES, name="head")(pooled))
    sizes = mixed.kernel_sizes(model)
    ends = {next(iter(sizes)), list(sizes)[-1]}
    bits = {name: 8 if name in ends or index % 2 else 4 for index, name in enumerate(sizes)}
    images = np.random.default_rng(0).normal(size=(8,) + zoo.SHAPE).astype(np.float32)
    payload = export.tflite_int8(mixed.quantize_mixed(export.plain_copy(model), bits), images)
    assert mixed.file_bits(payload, model) == bits
    assert metrics.tflite_kernel_bytes(payload) == mixed.weight_bytes(sizes, bits)
