"""The training loop around the step functions: resume, checkpoints (also on SIGTERM/SIGINT),
non-finite checks, evaluation, TensorBoard summaries and progress lines with ETA.

In a multi-worker run every worker takes part in checkpoint saves and evaluations (both read
variables through collectives) but only the chief keeps the checkpoints, records the
evaluations and writes summaries.
"""

import os
import shutil
import signal
import threading
import time

import numpy as np

from tfdfc import artifacts, batchnorm, collapse, distribute, figures
from tfdfc.run_dir import EVALUATIONS_FILE
from tfdfc.errors import CheckpointError
from tfdfc.keras_compat import tf
from tfdfc.train import current_learning_rate, make_iteration_step


CHECKPOINTS_KEPT = 2
# Salt of a scheduled reset's seed, apart from the collapse resets' (seed + 7919 * reset).
_SCHEDULED_RESET_SALT = 104_729


class TrainingDiverged(RuntimeError):
    """A loss or weight became NaN or infinite."""


class RunInterrupted(BaseException):
    """SIGTERM or SIGINT arrived; a checkpoint of the last finished iteration was saved, or
    none was due. A BaseException, as KeyboardInterrupt is: raised by a signal handler at any
    point, it must not be caught by the `except Exception` around a load or a conversion and
    turned into another error."""

    def __init__(self, message, signal_number):
        super().__init__(message)
        self.signal_number = signal_number


class Loop:
    """Runs the alternating steps with checkpoints, summaries, evaluation and progress lines."""

    def __init__(self, strategy, players, config, checkpoint_dir, summary_dir=None,
                 evaluate=None, show_images=None, log=print, on_iteration=None,
                 recalibrate=None):
        """Args:
          strategy: the strategy every model was built under.
          players: the networks and optimizers.
          config: a validated TrainConfig.
          checkpoint_dir: where checkpoints go; the loop resumes from the latest one there.
          summary_dir: TensorBoard directory, or None for no summaries.
          evaluate: optional callable() -> student accuracy on held-out data; called on every
            worker of a multi-worker run (reading batch norms' statistics there is a
            collective all workers join), recorded by the chief.
          show_images: optional callable(images) -> images in [0, 1] for the summary grid.
          log: receives progress lines.
          on_iteration: optional callable(iteration) after each iteration (e.g. a test's stop).
          recalibrate: callable(iteration) -> number of batch norms given statistics from the
            current generator's images; needed with recalibrate_batch_norm_every.
        """
        config.validate()
        if config.recalibrate_batch_norm_every and recalibrate is None:
            raise ValueError("recalibrate_batch_norm_every needs the loop's `recalibrate`")
        self.recalibrate = recalibrate
        self.strategy, self.players, self.config = strategy, players, config
        self.evaluate, self.show_images, self.log = evaluate, show_images, log
        self.on_iteration = on_iteration
        self.session_seconds, self.last_metrics = 0.0, {}
        self.evaluations = {}  # {iteration: student accuracy} of every evaluation of the run
        # Saved beside each checkpoint (collapse.save_state), not in it.
        self.collapse = collapse.CollapseWatch()
        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
        # Training time over every session of the run, kept in the checkpoint.
        self.elapsed = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed")
        with strategy.scope():
            players.student_optimizer.build(players.student.trainable_variables)
            players.generator_optimizer.build(players.generator.trainable_variables)
        self.checkpoint = tf.train.Checkpoint(
            student=players.student_model, generator=players.generator,
            student_optimizer=players.student_optimizer,
            generator_optimizer=players.generator_optimizer, iteration=self.iteration,
            elapsed=self.elapsed,
            **({"slow_generator": players.slow_generator} if players.slow_generator else {}),
            **({"replay_memory": players.replay_memory} if players.replay_memory else {}))
        self.chief = distribute.is_chief(strategy)
        self.checkpoint_dir = checkpoint_dir  # the chief's: every worker restores from it
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, distribute.worker_checkpoint_dir(checkpoint_dir, strategy),
            max_to_keep=CHECKPOINTS_KEPT)
        if not self.chief:  # it still evaluates (see `evaluate` above)
            summary_dir = None
        self.writer = tf.summary.create_file_writer(summary_dir) if summary_dir else None
        self._signal = None
        self._iterated = False  # an iteration finished in this process: a checkpoint is worth it
        self.iteration_step = make_iteration_step(strategy, players, config)

    def restore(self):
        """Restores the chief's latest checkpoint if any; returns the iteration to start from.

        Raises:
          CheckpointError: the checkpoint is corrupt or belongs to a different model.
        """
        latest = tf.train.latest_checkpoint(self.checkpoint_dir)
        if latest:
            try:
                self.checkpoint.restore(latest).assert_existing_objects_matched()
            except Exception as error:  # TF raises many types for a bad checkpoint file
                first_line = str(error).strip().splitlines()[0][:300] if str(error) else ""
                raise CheckpointError(
                    f"cannot restore checkpoint {latest}: it is corrupt or from a different "
                    f"model ({type(error).__name__}: {first_line}). Remove "
                    f"{self.checkpoint_dir} or pass --overwrite to start again") from error
            self.log(f"resumed from {latest} at iteration {int(self.iteration.numpy())}")
            self._restore_collapse_watch(int(self.iteration.numpy()))
            self._restore_evaluations(int(self.iteration.numpy()))
        return int(self.iteration.numpy())

    def _restore_evaluations(self, done):
        """The evaluations up to iteration `done` (those after it are made again)."""
        saved = artifacts.read_json(os.path.join(self.checkpoint_dir, EVALUATIONS_FILE))
        if isinstance(saved, dict):
            self.evaluations = {int(key): value for key, value in saved.items()
                                if key.isdigit() and int(key) <= done}

    @property
    def evaluation_curve(self):
        """[[iteration, student accuracy], ...] of every evaluation of the run, in order."""
        return [[iteration, self.evaluations[iteration]] for iteration in sorted(self.evaluations)]

    def _restore_collapse_watch(self, done):
        restored = collapse.restore_state(self.checkpoint_dir, done, self.collapse)
        if not restored and self.chief:
            self.log(f"no usable collapse-watch state saved with iteration {done} (a checkpoint "
                     "of an earlier version, or an edited file?): the collapse watch starts "
                     "afresh")

    def save(self, done):
        """Saves a checkpoint (every worker takes part; only the chief's is kept) and, first, the
        collapse watch's state for it."""
        if self.chief:  # one state more than the checkpoints kept, for a crash between the two
            collapse.save_state(self.checkpoint_dir, done, self.collapse,
                                keep=CHECKPOINTS_KEPT + 1)
        path = self.manager.save(checkpoint_number=done)
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
        return path

    def _catch_signals(self):
        """Turns SIGTERM / SIGINT into a checkpoint at the end of the current iteration; before
        any iteration of this process finished (a restore, the first iteration's tracing, which
        takes minutes on a large network), into a stop at once: there is nothing new to save."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signal_number, frame):
            del frame
            self._signal = signal_number
            if not self._iterated and not distribute.in_cluster():
                raise RunInterrupted(
                    f"stopped by {signal.Signals(signal_number).name} before an iteration of "
                    "this run finished; nothing new to checkpoint: run the same command again "
                    "to resume", signal_number)

        return {number: signal.signal(number, request_stop)
                for number in (signal.SIGTERM, signal.SIGINT)}

    def run_iteration(self, iteration):
        """One generator step and `student_steps` student steps; returns float metrics."""
        metrics, self._last_images = self.iteration_step(tf.constant(iteration, tf.int64))
        return {key: float(value) for key, value in metrics.items()}

    def run(self):
        """Trains until `config.steps` iterations; returns the last metrics.

        Raises:
          RunInterrupted: on SIGTERM/SIGINT, after checkpointing the last finished iteration.
          TrainingDiverged: on a non-finite loss; the last good checkpoint is kept.
        """
        previous_handlers = self._catch_signals()
        try:
            return self._run()
        finally:
            for number, handler in previous_handlers.items():
                signal.signal(number, handler)

    def _run(self):
        start = self.restore()
        metrics, clock, clock_iteration = {}, time.time(), start
        started = time.time()
        if start < self.config.steps and self.config.log_every > 1:
            self.log(f"iteration {start + 1} starts: tracing the training step comes first "
                     "(minutes on a large network)")
        for iteration in range(start, self.config.steps):
            iteration_started = time.time()
            metrics = self.run_iteration(iteration)
            self._iterated = True
            self._check_finite(iteration, metrics)
            self._watch_collapse(iteration + 1, metrics["teacher_classes"])
            self._scheduled_recalibration(iteration + 1)
            self._scheduled_reset(iteration + 1)
            self.iteration.assign(iteration + 1)
            self.elapsed.assign_add(time.time() - iteration_started)
            done = iteration + 1
            if iteration == start and self.config.log_every > 1:  # large models trace minutes
                self.log(f"first iteration done in {time.time() - iteration_started:.0f} s "
                         "(tracing the training step included); progress every "
                         f"{self.config.log_every} iterations")
            if done % self.config.log_every == 0 or done == self.config.steps:
                rate = (done - clock_iteration) / max(time.time() - clock, 1e-9)
                self._report(done, metrics, rate)
                clock, clock_iteration = time.time(), done
            if done % self.config.eval_every == 0 or done == self.config.steps:
                self._evaluate(done)
            if done % self.config.checkpoint_every == 0 or done == self.config.steps:
                self.save(done)
            self.last_metrics = metrics
            if self._signal is not None:
                self._stop_for_signal(done)
            if self.on_iteration:
                self.on_iteration(done)
        self.session_seconds = time.time() - started
        return metrics

    def _watch_collapse(self, done, teacher_classes):
        """Warns of a collapsed generator and, with on_collapse=reset, re-initialises it (also
        after a resume under reset of a run that warned under warn and has not recovered)."""
        warning = self.collapse.update(done, teacher_classes)
        resetting = (self.collapse.unanswered and self.config.on_collapse == "reset"
                     and self.collapse.resets < collapse.MAX_RESETS)
        if warning and self.chief:
            self.log(" ".join(filter(None, [warning, collapse.advice(self.config.on_collapse,
                                                                     self.collapse.resets)])))
        if resetting:
            self._reset_generator()

    def _reset_generator(self):
        self.collapse.answer()
        self._fresh_generator(seed=self.config.seed + 7919 * self.collapse.resets)
        if self.chief:
            self.log(f"on_collapse=reset: generator and its Adam moments re-initialised "
                     f"(reset {self.collapse.resets} of at most {collapse.MAX_RESETS}) after "
                     f"the collapse reported at iteration {self.collapse.collapsed_at[-1]}")

    def _scheduled_reset(self, done):
        """With generator_reset_every=N, a fresh generator (and Adam moments) after every N-th
        iteration but the last, seeded by the reset's number; before the checkpoint of `done`
        is saved, so a resumed run continues exactly as an uninterrupted one."""
        every = self.config.generator_reset_every
        if not is_scheduled(done, every, self.config.steps):
            return
        self._fresh_generator(seed=self.config.seed + _SCHEDULED_RESET_SALT * (done // every))
        if self.chief:
            self.log(f"generator_reset_every={every}: generator and its Adam moments "
                     f"re-initialised after iteration {done}")

    def _scheduled_recalibration(self, done):
        """With recalibrate_batch_norm_every=N, the student's frozen batch norms take their
        statistics from the generator's images after every N-th iteration but the last (a run's
        `--recalibrate_batch_norm` acts there): from the generator the student has just trained
        against, so before a scheduled reset replaces it, and before the checkpoint of `done`,
        so a resumed run continues exactly. Skipped where the collapse watch has just reported
        a collapse (the generator is then collapsed or, reset, untrained) or one is still
        unanswered: statistics of one or two classes' images would misfit every other class."""
        every = self.config.recalibrate_batch_norm_every
        if not is_scheduled(done, every, self.config.steps):
            return
        prefix = f"recalibrate_batch_norm_every={every}"
        if self.collapse.unanswered or done in self.collapse.collapsed_at[-1:]:
            if self.chief:
                self.log(f"{prefix}: skipped after iteration {done}, where the generator is "
                         "collapsed or has just been reset")
            return
        count = self.recalibrate(done)
        if self.chief and (done == every or (count and done % self.config.log_every == 0)):
            self.log(f"{prefix}: {count} batch norms recalibrated after iteration {done}"
                     if count else f"{prefix}: {batchnorm.NOTHING_TO_RECALIBRATE}")

    def _fresh_generator(self, seed):
        """Re-initialises the generator and zeroes its Adam moments; a slow copy
        (--generator_ema) restarts from the fresh weights, since an average of two unrelated
        generators' weights makes the images of neither."""
        players = self.players
        collapse.reinitialise(players.generator, seed=seed)
        collapse.reset_moments(players.generator_optimizer)
        if players.slow_generator is not None:
            for slow_weight, weight in zip(players.slow_generator.weights,
                                           players.generator.weights):
                slow_weight.assign(weight)

    @property
    def seconds(self):
        """Training seconds over all sessions of this run (from the checkpoint)."""
        return float(self.elapsed.numpy())

    def _stop_for_signal(self, done):
        already_saved = done % self.config.checkpoint_every == 0 or done == self.config.steps
        path = self.manager.latest_checkpoint if already_saved else self.save(done)
        name = signal.Signals(self._signal).name
        raise RunInterrupted(f"stopped by {name} after iteration {done}; checkpoint {path} "
                             "saved: run the same command again to resume", self._signal)

    def _check_finite(self, iteration, metrics):
        bad = [key for key, value in metrics.items() if not np.isfinite(value)]
        if bad:
            raise TrainingDiverged(
                f"non-finite {', '.join(bad)} at iteration {iteration}; last good checkpoint: "
                f"{self.manager.latest_checkpoint or 'none'} (kept). Lower the learning rates "
                "or the clip norm and resume.")

    def _report(self, done, metrics, rate):
        remaining = (self.config.steps - done) / max(rate, 1e-9)
        self.log(f"iteration {done}/{self.config.steps}  "
                 f"div_student {metrics['student_divergence']:.4f}  "
                 f"div_generator {metrics['generator_divergence']:.4f}  "
                 f"attention {metrics['attention']:.4f}  "
                 + (f"features {metrics['features']:.4f}  " if self.config.feature_weight else "")
                 + f"teacher_entropy {metrics['teacher_entropy']:.3f}  "
                 f"teacher_classes {metrics['teacher_classes']:.2f}  "
                 f"{rate:.2f} it/s  ETA {format_seconds(remaining)}")
        if not self.writer:
            return
        with self.writer.as_default(step=done):
            for key, value in metrics.items():
                tf.summary.scalar(f"train/{key}", value)
            tf.summary.scalar("train/lr_student",
                              current_learning_rate(self.players.student_optimizer))
            tf.summary.scalar("train/lr_generator",
                              current_learning_rate(self.players.generator_optimizer))
            tf.summary.scalar("train/iterations_per_second", rate)
            for name, value in (self.players.summaries() if self.players.summaries
                                else {}).items():
                tf.summary.scalar(name, value)

    def _evaluate(self, done):
        accuracy = self.evaluate() if self.evaluate else None
        if not self.chief:
            return
        if accuracy is not None:
            self.log(f"iteration {done}: student accuracy {accuracy:.4f}")
            self.evaluations[done] = round(float(accuracy), 6)
            artifacts.write_json(os.path.join(self.checkpoint_dir, EVALUATIONS_FILE),
                                 {str(key): value for key, value in self.evaluations.items()})
        if not self.writer:
            return
        with self.writer.as_default(step=done):
            if accuracy is not None:
                tf.summary.scalar("eval/student_accuracy", accuracy)
            images = self.strategy.experimental_local_results(self._last_images)[0][:16]
            shown = self.show_images(images) if self.show_images else images
            tf.summary.image("train/generated", figures.tile(shown, columns=4)[np.newaxis],
                             step=done)
        self.writer.flush()


def is_scheduled(done, every, steps):
    """Whether an action set to happen every `every` iterations (0: never) follows iteration
    `done` of `steps`: after every `every`-th but the last, where the end of training acts."""
    return bool(every) and done % every == 0 and done < steps


def format_seconds(seconds):
    """`1h02m03s` or `2m03s`: the ETA of progress lines."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
