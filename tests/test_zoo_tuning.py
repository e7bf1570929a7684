"""bench/zoo.py's tuning flags: they replace the recipe's value in every run, tag its
directory, and are refused outside a validation run with its own table."""

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
    assert tuned.train.student_lr == recipe.train.student_lr == 2e-3
    assert tuned.train.steps == recipe.train.steps


@pytest.mark.parametrize("args", [["--bn_prior_weight=1"],
                                  ["--student_lr=1e-4", "--split=val"]])
def test_tuning_flags_need_the_validation_split_and_their_own_table(args):
    with bench_module("bench/zoo.py") as zoo:
        with pytest.raises(app.UsageError, match="for tuning only"):
            zoo.main(flags.FLAGS(["zoo.py", *args]))
