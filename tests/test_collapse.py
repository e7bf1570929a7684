"""The generator-collapse watch: its counting, the class measure, and a real collapsed run."""

import numpy as np

from conftest import quiet, tiny_players, tiny_train_config
from tfdfc import distribute
from tfdfc.collapse import CollapseWatch
from tfdfc.keras_compat import tf
from tfdfc.loop import Loop
from tfdfc.train import effective_classes


def test_effective_classes_is_one_for_one_class_and_n_for_an_even_spread():
    assert float(effective_classes(tf.constant([0.0, 1.0, 0.0]))) == 1.0
    np.testing.assert_allclose(float(effective_classes(tf.fill([10], 0.1))), 10.0, rtol=1e-5)
    assert 1.0 < float(effective_classes(tf.constant([0.9, 0.1]))) < 1.5


def test_watch_warns_once_after_patience_consecutive_iterations_below_the_threshold():
    watch = CollapseWatch(threshold=1.2, patience=3)
    values = [1.0, 1.0, 5.0, 1.0, 1.1, 1.0, 1.0, 1.0]  # the run of three ends at iteration 6
    warnings = [watch.update(done, value) for done, value in enumerate(values, start=1)]
    assert [done for done, line in enumerate(warnings, start=1) if line] == [6]
    assert "iteration 6" in warnings[5] and "--divergence=skl" in warnings[5]
    assert watch.summary() == {"iteration": 6, "threshold": 1.2, "patience": 3}
    assert CollapseWatch().summary() is None


def test_a_generator_that_makes_one_image_is_reported_as_collapsed(tmp_path, digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(steps=4, generator_lr=1e-12)
    players = tiny_players(strategy, digits_teacher_path, config)
    for weight in players.generator.trainable_variables:  # constant images: one class
        weight.assign(tf.zeros_like(weight))
    lines = []
    loop = Loop(strategy, players, config, str(tmp_path / "ckpt"), log=lines.append)
    loop.collapse = CollapseWatch(patience=3)
    metrics = loop.run()

    assert metrics["teacher_classes"] < 1.01
    assert [line for line in lines if "generator collapse at iteration 3" in line], lines
    assert loop.collapse.summary()["iteration"] == 3


def test_a_training_generator_is_not_reported(tmp_path, digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(steps=4)
    players = tiny_players(strategy, digits_teacher_path, config)
    lines = []
    loop = Loop(strategy, players, config, str(tmp_path / "ckpt"), log=lines.append)
    loop.collapse = CollapseWatch(patience=3)
    metrics = loop.run()

    assert 1.2 < metrics["teacher_classes"] <= 10.0
    assert not [line for line in lines if "collapse" in line] and loop.collapse.summary() is None
