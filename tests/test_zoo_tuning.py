"""bench/zoo.py's logic, in process: its tuning flags replace the recipe's value in every run,
tag its directory, and are refused outside a validation run with its own table; a pruning row
checks its no-training baseline only where that baseline was pruned."""

import pytest
from absl import app, flags

from conftest import bench_module


def test_tuning_values_replace_the_recipes_and_leave_the_rest_to_it():
    with bench_module("bench/zoo.py") as zoo:
        recipe = zoo.run_config("prune90_int8", 0, "teacher.keras", "eval.npz", False, 0)
        tuned = zoo.run_config("prune90_int8", 0, "teacher.keras", "eval.npz", False, 0,
                               tuning={"bn_prior_weight": 0.5})
    assert recipe.recipe == tuned.recipe == "magnitude"
    assert recipe.train.bn_prior_weight == 1.0 and tuned.train.bn_prior_weight == 0.5
    assert recipe.train.attention_points == tuned.train.attention_points == "inferred"
    assert tuned.train.student_lr == recipe.train.student_lr == 2e-3
    assert tuned.train.steps == recipe.train.steps


def test_pruning_and_boolean_tuning_values_reach_their_configs():
    with bench_module("bench/zoo.py") as zoo:
        recipe = zoo.run_config("prune90_int8", 0, "teacher.keras", "eval.npz", False, 0)
        tuned = zoo.run_config("prune90_int8", 0, "teacher.keras", "eval.npz", False, 0,
                               tuning={"sparsity_allocation": "uniform", "sparsity_ramp": 0.2,
                                       "resample_latents": False})
    assert recipe.sparsity_allocation == "global" and tuned.sparsity_allocation == "uniform"
    assert recipe.sparsity_ramp == 0.4 and tuned.sparsity_ramp == 0.2
    assert recipe.train.resample_latents and not tuned.train.resample_latents
    assert tuned.train.bn_prior_weight == recipe.train.bn_prior_weight == 1.0


def test_generator_tuning_values_reach_the_config_as_their_types():
    with bench_module("bench/zoo.py") as zoo:
        tuned = zoo.run_config("prune90_int8", 0, "teacher.keras", "eval.npz", False, 0,
                               generator_channels=64,
                               tuning={"replay_batches": 50, "generator_ema": 0.99,
                                       "generator_reset_every": 100})
    assert tuned.generator_channels == 64
    assert tuned.train.replay_batches == 50 and isinstance(tuned.train.replay_batches, int)
    assert tuned.train.generator_ema == 0.99 and tuned.train.generator_reset_every == 100


def test_run_names_differ_wherever_the_settings_do():
    plain = {"tuning": {}, "generator_channels": 0, "tiny": False}
    with bench_module("bench/zoo.py") as zoo:
        names = [zoo.run_name("prune90_int8", 400, 0, dict(plain, **change)) for change in (
            {}, {"generator_channels": 64}, {"tuning": {"replay_batches": 50}},
            {"tuning": {"attention_weight": 50.0}})]
    assert names[0] == "prune90_int8_400it_seed0"
    assert names[3] == "prune90_int8_400it_aw50_seed0"
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("args", [["--bn_prior_weight=1"],
                                  ["--student_lr=1e-4", "--split=val"]])
def test_tuning_flags_need_the_validation_split_and_their_own_table(args):
    with bench_module("bench/zoo.py") as zoo:
        with pytest.raises(app.UsageError, match="for tuning only"):
            zoo.main(flags.FLAGS(["zoo.py", *args]))


@pytest.mark.parametrize("prune, method, dense", [
    ("magnitude", "TFLite post-training int8 calibrated on Gaussian noise", True),
    ("magnitude", "the teacher pruned once to the run's rates, TFLite post-training int8", False),
    ("none", "TFLite post-training int8 calibrated on Gaussian noise", False)])
def test_only_old_pruning_reports_have_a_dense_no_training_baseline(prune, method, dense):
    report = {"student": {"prune": prune}, "baselines": {"no_training": {"method": method}}}
    with bench_module("bench/zoo.py") as zoo:
        assert bool(zoo._dense_baseline(report)) is dense  # pylint: disable=protected-access
