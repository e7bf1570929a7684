"""The alternating loop on a tiny teacher: real steps, one and two replicas, resume."""

import contextlib
import os

import numpy as np
import pytest

from conftest import quiet, tiny_players, tiny_train_config, two_replica_strategy
from tfdfc import distribute, replay
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras, tf
from tfdfc.loop import Loop, TrainingDiverged
from tfdfc.train import make_generator_step, sample_latent


def _weights(model):
    return [np.array(weight) for weight in model.get_weights()]


STRATEGIES = {"one_replica": lambda: distribute.make_strategy("one_device"),
              "two_replicas": two_replica_strategy}


@pytest.mark.parametrize("strategy_name", [
    "one_replica", pytest.param("two_replicas", marks=pytest.mark.slow)])
def test_two_iterations_train_student_and_generator_but_not_teacher(
        tmp_path, digits_teacher_path, strategy_name):
    strategy = STRATEGIES[strategy_name]()
    config = tiny_train_config()
    players = tiny_players(strategy, digits_teacher_path, config)
    before = {name: _weights(getattr(players, name))
              for name in ("teacher", "student_model", "generator")}
    metrics = Loop(strategy, players, config, str(tmp_path / "ckpt"), log=quiet).run()

    assert all(np.isfinite(value) for value in metrics.values()), metrics
    assert metrics["student_divergence"] > 0 and metrics["attention"] > 0
    assert 1.0 <= metrics["teacher_classes"] <= 10.0  # the replicas' shares are averaged
    for name, changes in (("teacher", False), ("student_model", True), ("generator", True)):
        after = _weights(getattr(players, name))
        changed = any(not np.array_equal(b, a) for b, a in zip(before[name], after))
        assert changed == changes, f"{name} changed={changed}"
    assert strategy.num_replicas_in_sync == (2 if strategy_name == "two_replicas" else 1)


def test_feature_distillation_enters_the_student_loss_without_attention(tmp_path,
                                                                        digits_teacher_path):
    """--feature_weight alone still gives the student the attention points' outputs, and its
    term is reported and trained on."""
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(attention_weight=0.0, feature_weight=1.0, student_lr=1e-2)
    players = tiny_players(strategy, digits_teacher_path, config)
    assert len(players.student.outputs) > 1
    metrics = Loop(strategy, players, config, str(tmp_path / "ckpt"), log=quiet).run()
    assert metrics["attention"] == 0 and metrics["features"] > 0
    assert np.isclose(metrics["student_loss"],
                      metrics["student_divergence"] + metrics["features"], rtol=1e-4)


def test_an_sgd_student_takes_momentum_steps_and_the_generator_keeps_adam(tmp_path,
                                                                          digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(student_optimizer="sgd", student_lr=0.1)
    players = tiny_players(strategy, digits_teacher_path, config)
    assert isinstance(players.student_optimizer, keras.optimizers.SGD)
    assert players.student_optimizer.momentum == 0.9
    assert isinstance(players.generator_optimizer, keras.optimizers.Adam)
    before = _weights(players.student_model)
    metrics = Loop(strategy, players, config, str(tmp_path / "ckpt"), log=quiet).run()
    assert all(np.isfinite(value) for value in metrics.values()), metrics
    moved = [np.max(np.abs(a - b)) for a, b in zip(_weights(players.student_model), before)]
    assert max(moved) > 0


def test_generator_step_increases_the_divergence(digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(generator_lr=1e-2, attention_weight=0.0)
    players = tiny_players(strategy, digits_teacher_path, config)
    step = make_generator_step(strategy, players, config)
    first = float(step(tf.constant(0, tf.int64))["generator_divergence"])
    for _ in range(5):
        last = float(step(tf.constant(0, tf.int64))["generator_divergence"])
    assert last > first


def test_later_draws_give_fresh_latents_and_draw_zero_is_the_generator_steps():
    config, iteration = tiny_train_config(), tf.constant(5, tf.int64)
    draws = [sample_latent(iteration, config, 4, tf.constant(d, tf.int64)) for d in (0, 1, 2)]
    np.testing.assert_array_equal(draws[0], sample_latent(iteration, config, 4))
    np.testing.assert_array_equal(draws[1], sample_latent(iteration, config, 4,
                                                          tf.constant(1, tf.int64)))
    assert not np.allclose(draws[0], draws[1]) and not np.allclose(draws[1], draws[2])


@pytest.mark.slow
def test_resampled_latents_train_the_student_on_other_images(tmp_path, digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    students = {}
    for resample in (False, True):
        config = tiny_train_config(resample_latents=resample)
        players = tiny_players(strategy, digits_teacher_path, config)
        metrics = Loop(strategy, players, config, str(tmp_path / str(resample)),
                       log=quiet).run()
        assert all(np.isfinite(value) for value in metrics.values()), metrics
        students[resample] = _weights(players.student_model)
    assert any(not np.allclose(a, b) for a, b in zip(students[False], students[True]))


@pytest.mark.slow
def test_the_slow_generator_moves_by_its_decay_and_is_kept_in_checkpoints(
        tmp_path, digits_teacher_path):
    strategy, decay = two_replica_strategy(), 0.75
    config = tiny_train_config(steps=1, generator_ema=decay)
    players = tiny_players(strategy, digits_teacher_path, config)
    trainable = [weight.trainable for weight in players.generator.weights]
    start = _weights(players.generator)
    for a, b in zip(start, _weights(players.slow_generator)):
        np.testing.assert_array_equal(a, b)
    metrics = Loop(strategy, players, config, str(tmp_path / "ckpt"), log=quiet).run()

    assert all(np.isfinite(value) for value in metrics.values()), metrics
    moved = _weights(players.generator)
    assert any(not np.allclose(a, b) for a, b in zip(start, moved))
    slow_weights = _weights(players.slow_generator)
    for slow, old, new in [(s, o, n) for s, o, n, t in zip(slow_weights, start, moved, trainable)
                           if t]:
        np.testing.assert_allclose(slow, decay * old + (1 - decay) * new, rtol=1e-5, atol=1e-6)
    restored = tiny_players(strategy, digits_teacher_path, config)
    Loop(strategy, restored, config, str(tmp_path / "ckpt"), log=quiet).restore()
    for a, b in zip(_weights(players.slow_generator), _weights(restored.slow_generator)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_the_replay_memory_holds_the_last_batches_and_is_kept_in_checkpoints(
        tmp_path, digits_teacher_path):
    strategy = two_replica_strategy()
    config = tiny_train_config(steps=3, replay_batches=2)  # the ring of 2 wraps at iteration 2
    players = tiny_players(strategy, digits_teacher_path, config)
    memory = players.replay_memory
    metrics = Loop(strategy, players, config, str(tmp_path / "ckpt"), log=quiet).run()

    assert all(np.isfinite(value) for value in metrics.values()), metrics
    assert int(memory.filled.numpy()) == memory.capacity == 2 * config.batch_size
    # Slot 0 holds iteration 2's batch: each replica's half, from the final generator.
    local = config.batch_size // 2
    expected = []
    for replica in range(2):
        z = tf.random.stateless_normal(
            [local, config.latent_dim], seed=tf.constant([config.seed, 2 * 2 + replica],
                                                         tf.int64))
        expected.append(players.generator(z, training=True).numpy())
    stored = memory.images.numpy()
    np.testing.assert_allclose(stored[:config.batch_size], np.concatenate(expected), atol=1e-5)
    assert not np.allclose(stored[config.batch_size:], stored[:config.batch_size])
    restored = tiny_players(strategy, digits_teacher_path, config)
    Loop(strategy, restored, config, str(tmp_path / "ckpt"), log=quiet).restore()
    np.testing.assert_array_equal(stored, restored.replay_memory.images.numpy())
    assert int(restored.replay_memory.filled.numpy()) == memory.capacity


def test_the_replay_ring_replaces_its_oldest_batch_and_samples_only_stored_rows():
    memory = replay.ReplayMemory(batches=2, batch_size=4, image_shape=(1, 1, 1))
    for value in (1.0, 2.0, 3.0):  # the third batch replaces the first
        memory.write(tf.fill([4, 1, 1, 1], value))
        drawn = memory.sample(tf.constant([0, int(value)], tf.int64), 256).numpy().ravel()
        assert set(drawn) == ({1.0} if value == 1.0 else {value - 1.0, value})
    assert int(memory.filled.numpy()) == memory.capacity == 8


@pytest.mark.parametrize("generator_ema", [1.0, -0.1])
def test_a_generator_ema_outside_0_to_1_is_refused(generator_ema):
    with pytest.raises(ConfigError, match="--generator_ema must be (<= 0.999999|>= 0.0)"):
        tiny_train_config(generator_ema=generator_ema).validate()


@pytest.mark.slow  # three training loops per scheme
@pytest.mark.parametrize("quantize", ["none", "binary", "int8"])
def test_resume_continues_the_count_and_reproduces_an_uninterrupted_run(
        tmp_path, digits_teacher_path, quantize):
    strategy = distribute.make_strategy("one_device")
    straight = tiny_players(strategy, digits_teacher_path, tiny_train_config(steps=4), quantize)
    Loop(strategy, straight, tiny_train_config(steps=4), str(tmp_path / "straight"),
         log=quiet).run()

    class Interrupted(Exception):
        pass

    def stop_after_two(done):
        if done == 2:
            raise Interrupted()

    interrupted = tiny_players(strategy, digits_teacher_path, tiny_train_config(steps=4),
                               quantize)
    with pytest.raises(Interrupted):
        Loop(strategy, interrupted, tiny_train_config(steps=4), str(tmp_path / "resumed"),
             log=quiet, on_iteration=stop_after_two).run()
    resumed = tiny_players(strategy, digits_teacher_path, tiny_train_config(steps=4), quantize)
    lines = []
    loop = Loop(strategy, resumed, tiny_train_config(steps=4), str(tmp_path / "resumed"),
                log=lines.append)
    loop.run()

    assert int(loop.iteration.numpy()) == 4
    assert any("resumed" in line and "iteration 2" in line for line in lines), lines
    assert not any(line.startswith("iteration 1/") for line in lines)
    assert int(resumed.student_optimizer.iterations.numpy()) == 4 * 2
    for name in ("student_model", "generator"):
        for a, b in zip(_weights(getattr(straight, name)), _weights(getattr(resumed, name))):
            np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow  # four training loops
def test_scheduled_generator_resets_discard_its_training_and_resume_exactly(
        tmp_path, digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    snapshots, lines = {}, []

    def run(name, generator_lr, stop_at=None, log=quiet):
        config = tiny_train_config(steps=3, generator_reset_every=2, generator_lr=generator_lr,
                                   generator_ema=0.9)
        players = tiny_players(strategy, digits_teacher_path, config)

        def snapshot(done):
            snapshots[name, done] = _weights(players.generator)
            snapshots[name, done, "slow"] = _weights(players.slow_generator)
            if done == stop_at:
                raise KeyboardInterrupt()

        loop = Loop(strategy, players, config, str(tmp_path / name), log=log,
                    on_iteration=snapshot)
        with pytest.raises(KeyboardInterrupt) if stop_at else contextlib.nullcontext():
            loop.run()
        return players

    straight = run("straight", 1e-3, log=lines.append)
    run("faster", 1e-2)
    run("resumed", 1e-3, stop_at=2)
    resumed = run("resumed", 1e-3)

    assert [line for line in lines if "re-initialised" in line] == [
        "generator_reset_every=2: generator and its Adam moments re-initialised after "
        "iteration 2"]
    # After iteration 1 the two rates have trained different generators; the reset after
    # iteration 2 draws the same fresh one for both.
    assert any(not np.allclose(a, b) for a, b in zip(snapshots["straight", 1],
                                                      snapshots["faster", 1]))
    for a, b in zip(snapshots["straight", 2], snapshots["faster", 2]):
        np.testing.assert_array_equal(a, b)
    # The slow copy restarts from the fresh generator, not an average of the old and the new.
    for a, b in zip(snapshots["straight", 2], snapshots["straight", 2, "slow"]):
        np.testing.assert_array_equal(a, b)
    for name in ("student_model", "generator"):
        for a, b in zip(_weights(getattr(straight, name)), _weights(getattr(resumed, name))):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_scheduled_recalibrations_come_before_the_checkpoint_and_the_reset_and_resume(
        tmp_path, digits_teacher_path):
    """Every 2nd iteration of 6 but the last, each before that iteration's generator reset
    and checkpoint; stopped after iteration 3, the run resumes from the checkpoint of 2 and
    recalibrates after 4 only: the recalibration after 2 is in that checkpoint."""
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(steps=6, checkpoint_every=2, recalibrate_batch_norm_every=2,
                               generator_reset_every=2)
    directory = str(tmp_path / "ckpt")
    calls, after_iteration, lines = [], {}, []

    class Interrupted(Exception):
        pass

    def run(stop_at=None):
        players = tiny_players(strategy, digits_teacher_path, config)

        def recalibrate(done):
            calls.append((done, tf.train.latest_checkpoint(directory),
                          _weights(players.generator)))
            return 3

        def snapshot(done):
            after_iteration[done] = _weights(players.generator)
            if done == stop_at:
                raise Interrupted()

        with pytest.raises(Interrupted) if stop_at else contextlib.nullcontext():
            Loop(strategy, players, config, directory, log=lines.append,
                 on_iteration=snapshot, recalibrate=recalibrate).run()

    run(stop_at=3)
    assert [done for done, _, _ in calls] == [2]
    run()
    assert [(done, latest) for done, latest, _ in calls] == [
        (2, None), (4, os.path.join(directory, "ckpt-2"))]
    for done, _, generator in calls:  # the generator trained up to `done`, not the fresh one
        assert any(not np.allclose(a, b) for a, b in zip(generator, after_iteration[done]))
    assert [line for line in lines if line.startswith("recalibrate_batch_norm_every")] == [
        f"recalibrate_batch_norm_every=2: 3 batch norms recalibrated after iteration {done}"
        for done in (2, 4)]


def test_recalibration_is_skipped_on_collapsed_images_and_told_once_when_it_finds_none(
        tmp_path, digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(steps=4, recalibrate_batch_norm_every=1)
    players = tiny_players(strategy, digits_teacher_path, config)
    calls, lines = [], []

    def recalibrate(done):
        calls.append(done)
        return 0  # as for a student without frozen batch norms (this LeNet-5)

    Loop(strategy, players, config, str(tmp_path / "none"), log=lines.append,
         recalibrate=recalibrate).run()
    assert calls == [1, 2, 3]
    assert [line for line in lines if line.startswith("recalibrate_batch_norm_every")] == [
        "recalibrate_batch_norm_every=1: none to recalibrate (none frozen outside QAT)"]

    calls.clear()
    loop = Loop(strategy, players, config, str(tmp_path / "collapsed"), log=lines.append,
                recalibrate=recalibrate)
    # Above 10 classes and at once: a collapse reported and answered by a reset every iteration.
    loop.collapse.threshold, loop.collapse.patience = 11.0, 1
    loop.run()
    assert calls == []
    assert [line for line in lines if "skipped" in line] == [
        f"recalibrate_batch_norm_every=1: skipped after iteration {done}, where the generator "
        "is collapsed or has just been reset" for done in (1, 2, 3)]
    with pytest.raises(ValueError, match="recalibrate_batch_norm_every needs"):
        Loop(strategy, players, config, str(tmp_path / "other"), log=quiet)


def test_the_accuracy_curve_survives_a_resume(tmp_path, digits_teacher_path):
    """Evaluated at every iteration, checkpointed at every second: stopped after iteration 3,
    the run resumes from 2, so the curve keeps 1 and 2 from the first session and takes 3 (made
    again) and 4 from the second."""
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(steps=4, checkpoint_every=2)

    class Interrupted(Exception):
        pass

    def stop_after_three(done):
        if done == 3:
            raise Interrupted()

    with pytest.raises(Interrupted):
        Loop(strategy, tiny_players(strategy, digits_teacher_path, config), config,
             str(tmp_path / "ckpt"), evaluate=lambda: 0.25, log=quiet,
             on_iteration=stop_after_three).run()
    loop = Loop(strategy, tiny_players(strategy, digits_teacher_path, config), config,
                str(tmp_path / "ckpt"), evaluate=lambda: 0.75, log=quiet)
    loop.run()
    assert loop.evaluation_curve == [[1, 0.25], [2, 0.25], [3, 0.75], [4, 0.75]]


def test_progress_lines_and_tensorboard_summaries(tmp_path, digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    players = tiny_players(strategy, digits_teacher_path, tiny_train_config())
    lines = []
    Loop(strategy, players, tiny_train_config(), str(tmp_path / "ckpt"),
         summary_dir=str(tmp_path / "tb"), evaluate=lambda: 0.5, log=lines.append).run()
    assert any("it/s" in line and "ETA" in line for line in lines)
    assert any("student accuracy 0.5000" in line for line in lines)
    tags = set()
    for event_file in (tmp_path / "tb").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    assert {"train/student_divergence", "train/teacher_entropy", "train/teacher_classes",
            "train/lr_student",
            "eval/student_accuracy", "train/generated"} <= tags


def test_a_run_says_the_first_iteration_traces_before_it_and_how_long_it_took(
        tmp_path, digits_teacher_path):
    """A large network can trace its training step for minutes with nothing on the console."""
    strategy = distribute.make_strategy("one_device")
    config = tiny_train_config(log_every=2)
    players = tiny_players(strategy, digits_teacher_path, config)
    lines = []
    Loop(strategy, players, config, str(tmp_path / "ckpt"), log=lines.append).run()
    starts = [i for i, line in enumerate(lines) if line.startswith("iteration 1 starts")]
    done = [i for i, line in enumerate(lines) if line.startswith("first iteration done in")]
    assert len(starts) == 1 and len(done) == 1 and starts[0] < done[0]


def test_non_finite_loss_stops_the_run_naming_the_iteration(tmp_path, digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    players = tiny_players(strategy, digits_teacher_path, tiny_train_config(steps=3))
    loop = Loop(strategy, players, tiny_train_config(steps=3), str(tmp_path / "ckpt"), log=quiet,
                on_iteration=lambda done: done == 1 and players.student_model.layers[-1]
                .kernel.assign(np.full(players.student_model.layers[-1].kernel.shape, np.nan)))
    with pytest.raises(TrainingDiverged, match="at iteration 1; last good checkpoint: .*ckpt-1"):
        loop.run()


@pytest.mark.parametrize("field, value", [("steps", 0), ("batch_size", -1),
                                          ("divergence", "jsd"), ("attention_weight", -1.0),
                                          ("on_collapse", "stop")])
def test_bad_config_values_are_clear_errors(field, value):
    with pytest.raises(ConfigError, match=field):
        tiny_train_config(**{field: value}).validate()


def test_batch_must_split_evenly_across_replicas(tmp_path, digits_teacher_path):
    strategy = two_replica_strategy()
    players = tiny_players(strategy, digits_teacher_path, tiny_train_config(batch_size=15))
    with pytest.raises(ConfigError, match="not divisible by the 2 replicas"):
        Loop(strategy, players, tiny_train_config(batch_size=15), str(tmp_path), log=quiet)
