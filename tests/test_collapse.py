"""The generator-collapse watch: its counting, the class measure, and a real collapsed run."""

import json

import numpy as np
import pytest

from conftest import quiet, tiny_players, tiny_train_config
from tfdfc import distribute
from tfdfc import collapse
from tfdfc.collapse import CollapseWatch
from tfdfc.keras_compat import keras, tf
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
    assert "iteration 6" in warnings[5] and "1.00 effective classes" in warnings[5]
    assert watch.summary() == {"iteration": 6, "iterations": [6], "resets": 0,
                               "threshold": 1.2, "patience": 3}
    assert CollapseWatch().summary() is None


def test_watch_warns_again_only_after_a_recovery():
    watch = CollapseWatch(threshold=1.2, patience=2)
    values = [1.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0]
    warned, unanswered = [], []
    for done, value in enumerate(values, start=1):
        if watch.update(done, value):
            warned.append(done)
        unanswered.append(watch.unanswered)
    assert warned == [2, 7] and watch.summary()["iterations"] == [2, 7]
    assert unanswered == [False, True, True, True, False, False, True]


def test_after_an_answer_the_watch_counts_afresh_and_can_warn_again():
    watch = CollapseWatch(patience=2)
    assert watch.update(1, 1.0) is None and watch.update(2, 1.0)
    watch.answer()  # a reset that does not help: still below the threshold
    assert not watch.unanswered and watch.resets == 1
    assert watch.update(3, 1.0) is None and watch.update(4, 1.0) and watch.unanswered
    assert watch.summary()["iterations"] == [2, 4] and watch.summary()["resets"] == 1


def test_advice_says_what_happens_when_the_loop_does_not_reset():
    assert collapse.advice("reset", collapse.MAX_RESETS - 1) is None
    assert "resets are used" in collapse.advice("reset", collapse.MAX_RESETS)
    assert "this run only warns" in collapse.advice("warn", 0)
    assert "--student_lr" in collapse.advice("warn", 0)


def test_saved_states_keep_the_newest_and_survive_a_bad_file(tmp_path):
    watch = CollapseWatch(run_length=4, collapsed_at=[7], unanswered=True, resets=2)
    for done in (10, 20, 30, 40):
        collapse.save_state(str(tmp_path), done, watch, keep=3)
    states = json.loads((tmp_path / collapse.STATE_FILE).read_text())
    assert sorted(states, key=int) == ["20", "30", "40"]
    restored = CollapseWatch()
    assert collapse.restore_state(str(tmp_path), 40, restored)
    assert (restored.run_length, restored.collapsed_at, restored.unanswered,
            restored.resets) == (4, [7], True, 2)
    assert not collapse.restore_state(str(tmp_path), 10, CollapseWatch())

    del states["40"]["unanswered"]  # as written before that field existed
    (tmp_path / collapse.STATE_FILE).write_text(json.dumps(states))
    restored = CollapseWatch()
    assert collapse.restore_state(str(tmp_path), 40, restored) and not restored.unanswered
    assert restored.resets == 2
    del states["40"]["resets"]  # a hand-edited file: the watch starts afresh, no KeyError
    (tmp_path / collapse.STATE_FILE).write_text(json.dumps(states))
    assert not collapse.restore_state(str(tmp_path), 40, CollapseWatch())
    (tmp_path / collapse.STATE_FILE).write_text("{not json")
    assert not collapse.restore_state(str(tmp_path), 40, CollapseWatch())
    watch.resets = 0
    collapse.save_state(str(tmp_path), 50, watch, keep=3)  # overwrites the bad file
    restored = CollapseWatch(resets=5)
    assert collapse.restore_state(str(tmp_path), 50, restored) and restored.resets == 0


def test_reinitialise_draws_seeded_fresh_weights_and_reset_moments_keeps_the_step(seeded):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization()])
    for weight in model.weights:
        weight.assign(tf.fill(weight.shape, 5.0))
    collapse.reinitialise(model, seed=1)
    first = [w.numpy() for w in model.weights]
    collapse.reinitialise(model, seed=1)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(first, model.weights))
    kernel, bias, gamma, beta, mean, variance = first
    assert np.all(np.abs(kernel) < 2) and np.std(kernel) > 0
    assert not bias.any() and np.all(gamma == 1) and not beta.any() and not mean.any()
    assert np.all(variance == 1)

    optimizer = keras.optimizers.Adam(0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(tf.ones((2, 3)), training=True) ** 2)
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                  model.trainable_variables))
    collapse.reset_moments(optimizer)
    assert int(optimizer.iterations.numpy()) == 1
    slots = [v for v in optimizer.variables() if v is not optimizer.iterations]
    assert slots and all(not v.numpy().any() for v in slots)


def test_a_generator_that_makes_one_image_is_reported_as_collapsed(tmp_path, digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(steps=4, generator_lr=1e-12, on_collapse="warn")
    players = tiny_players(strategy, digits_teacher_path, config)
    for weight in players.generator.trainable_variables:  # constant images: one class
        weight.assign(tf.zeros_like(weight))
    lines = []
    loop = Loop(strategy, players, config, str(tmp_path / "ckpt"), log=lines.append)
    loop.collapse = CollapseWatch(patience=3)
    metrics = loop.run()

    assert metrics["teacher_classes"] < 1.01
    warned = [line for line in lines if "generator collapse at iteration 3" in line]
    assert warned and "this run only warns" in warned[0], lines
    assert loop.collapse.summary()["iteration"] == 3
    assert loop.collapse.resets == 0 and not [line for line in lines if "re-initialised" in line]
    assert max(np.abs(w.numpy()).max() for w in players.generator.trainable_variables) < 1e-6


def test_on_collapse_reset_re_initialises_the_generator(tmp_path, digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(steps=3, generator_lr=1e-12, on_collapse="reset")
    players = tiny_players(strategy, digits_teacher_path, config)
    for weight in players.generator.trainable_variables:
        weight.assign(tf.zeros_like(weight))
    lines = []
    loop = Loop(strategy, players, config, str(tmp_path / "ckpt"), log=lines.append)
    loop.collapse = CollapseWatch(patience=2)
    loop.run()

    assert loop.collapse.resets == 1
    assert [line for line in lines if "re-initialised (reset 1 of at most 3)" in line], lines
    kernels = [w.numpy() for w in players.generator.trainable_variables if w.shape.rank > 1]
    assert all(np.std(kernel) > 0 for kernel in kernels)


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


def _collapsed_loop(tmp_path, teacher_path, steps, lines, **overrides):
    """A Loop over constant images (one class) whose checkpoints go to tmp_path/ckpt."""
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(steps=steps, generator_lr=1e-12, **overrides)
    players = tiny_players(strategy, teacher_path, config)
    for weight in players.generator.trainable_variables:
        weight.assign(tf.zeros_like(weight))
    return Loop(strategy, players, config, str(tmp_path / "ckpt"), log=lines.append)


@pytest.mark.slow
def test_a_resumed_run_warns_where_an_uninterrupted_one_would(tmp_path, digits_teacher_path):
    lines = []
    first = _collapsed_loop(tmp_path, digits_teacher_path, 2, lines, on_collapse="warn")
    first.collapse = CollapseWatch(patience=3)
    first.run()  # two iterations below the threshold: no warning yet
    resumed = _collapsed_loop(tmp_path, digits_teacher_path, 4, lines, on_collapse="warn")
    resumed.collapse = CollapseWatch(patience=3)
    resumed.run()

    warnings = [line for line in lines if "generator collapse at iteration" in line]
    assert len(warnings) == 1 and "iteration 3:" in warnings[0], lines
    assert resumed.collapse.summary()["iterations"] == [3]


@pytest.mark.slow
def test_a_resumed_run_keeps_its_resets_and_old_checkpoints_still_restore(
        tmp_path, digits_teacher_path):
    lines = []
    first = _collapsed_loop(tmp_path, digits_teacher_path, 2, lines, on_collapse="reset")
    first.collapse = CollapseWatch(patience=2)
    first.run()
    assert first.collapse.resets == 1
    resumed = _collapsed_loop(tmp_path, digits_teacher_path, 3, lines, on_collapse="reset")
    assert resumed.restore() == 2
    assert resumed.collapse.resets == 1 and resumed.collapse.summary()["iterations"] == [2]

    (tmp_path / "ckpt" / collapse.STATE_FILE).unlink()  # as written before the state was saved
    lines.clear()
    earlier = _collapsed_loop(tmp_path, digits_teacher_path, 3, lines, on_collapse="reset")
    assert earlier.restore() == 2
    assert earlier.collapse.resets == 0 and earlier.collapse.summary() is None
    assert [line for line in lines if "collapse watch starts afresh" in line], lines


@pytest.mark.slow
def test_a_run_that_warned_resets_when_resumed_under_reset(tmp_path, digits_teacher_path):
    lines = []
    first = _collapsed_loop(tmp_path, digits_teacher_path, 3, lines, on_collapse="warn")
    first.collapse = CollapseWatch(patience=2)
    first.run()
    assert first.collapse.resets == 0 and first.collapse.unanswered
    lines.clear()
    resumed = _collapsed_loop(tmp_path, digits_teacher_path, 4, lines, on_collapse="reset")
    resumed.collapse = CollapseWatch(patience=2)
    resumed.run()

    assert resumed.collapse.resets == 1 and not resumed.collapse.unanswered
    assert [line for line in lines if "re-initialised (reset 1 of at most 3) after the collapse "
            "reported at iteration 2" in line], lines
    assert not [line for line in lines if "generator collapse at iteration" in line]
