"""The method registry: every valid configuration has exactly one method, and a method added as
one module (docs/adding-a-method.md's float16 example) runs end to end."""

import itertools
import os

import numpy as np
import pytest

from conftest import quiet
from float16_method import Float16
from tfdfc import methods, metrics, pipeline
from tfdfc.errors import ConfigError
from tfdfc.train import TrainConfig

EXPECTED = {("none", "none", ""): "distill", ("int8", "none", ""): "int8",
            ("w4a8", "none", ""): "nbit", ("binary", "none", ""): "binary",
            ("none", "magnitude", ""): "magnitude", ("int8", "magnitude", ""): "magnitude_int8",
            ("none", "slim", ""): "slim", ("none", "none", "t.npz"): "ticket"}


def _config(quantize, prune, ticket, **overrides):
    return pipeline.CompressConfig(teacher="t.keras", out_dir="out", quantize=quantize,
                                   prune=prune, ticket=ticket,
                                   sparsity=0.5 if prune == "magnitude" else 0.0, **overrides)


@pytest.mark.parametrize("quantize,prune,ticket", itertools.product(
    ("none", "binary", "int8", "w4a8", "w4a4"), ("none", "magnitude", "slim"), ("", "t.npz")))
def test_a_valid_configuration_has_exactly_one_method(quantize, prune, ticket):
    config = _config(quantize, prune, ticket)
    try:
        config.validate()
    except ConfigError:
        assert (quantize, prune, ticket) not in EXPECTED
        return
    selecting = [method.name for method in methods.METHODS if method.selects(config)]
    assert len(selecting) == 1, selecting
    expected = EXPECTED.get((quantize, prune, ticket), "nbit")
    assert config.method.name == expected


def test_an_unknown_quantize_value_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown --quantize value 'float16': use none, binary"):
        _config("float16", "none", "").validate()


@pytest.mark.slow  # a whole run with every export
def test_a_method_added_as_one_module_runs_end_to_end(tmp_path, digits_teacher_path,
                                                      monkeypatch):
    monkeypatch.setattr(methods, "METHODS", methods.METHODS + (Float16(),))
    train = TrainConfig(steps=2, batch_size=16, student_steps=2, log_every=1, eval_every=2,
                        checkpoint_every=2, student_lr=2e-4)
    config = pipeline.CompressConfig(teacher=digits_teacher_path, out_dir=str(tmp_path),
                                     quantize="float16", eval_data="digits",
                                     generator_channels=8, strategy="one_device", train=train)
    outcome = pipeline.compress(config, log=quiet)

    report = outcome.report
    assert report["student"]["method"] == "float16" and report["student"]["weight_bits"] == 16
    assert report["student"]["init"] == "teacher"
    half, full = report["tflite"]["float16"], report["tflite"]["float"]
    assert os.path.getsize(outcome.files["tflite_float16"]) == half["bytes"]
    assert 0.4 < half["bytes"] / full["bytes"] < 0.7  # float16 weights: about half
    assert abs(half["accuracy"] - full["accuracy"]) <= 0.01
    assert half["accuracy"] >= report["teacher"]["accuracy"] - 0.05
    assert half["max_abs_diff_vs_keras"] < 0.05
    np.testing.assert_allclose(report["student"]["accuracy"], full["accuracy"], atol=0.01)
    assert report["baselines"]["no_training"] is None  # the base Method defines none
    assert metrics.parameter_count(outcome.student) == report["student"]["params"]


def test_the_worked_example_in_the_docs_is_the_tested_module():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "tests", "float16_method.py")) as file:
        code = file.read()
    with open(os.path.join(root, "docs", "adding-a-method.md")) as file:
        assert code in file.read()
