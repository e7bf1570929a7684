"""The data-free minimax loop: one generator ascent step, then several student descent steps.

Each iteration k draws z ~ N(0, I) (stateless, seeded by `seed` and k, so a resumed run draws the
same z), takes one generator step that *increases* the teacher-student divergence, regenerates
x = G(z) with the updated generator, and takes `student_steps` student steps on that same x to
*decrease* divergence + attention transfer (+ any regulariser the compression scheme adds).

Decisions where the paper is silent (PAPER.md §7), following the MS19 reference code:
- the generator maximises the divergence only; attention transfer enters the student loss only;
- x and the teacher's outputs are computed once per iteration and reused by the student steps;
- the student runs with `training=False` in the generator step (so batch norm uses moving
  statistics, and TF-MOT pruning counts one step per student update) and `training=True` in
  its own steps; the generator's batch norm always runs in training mode;
- Adam, cosine decay to zero over the run (the student's over steps * student_steps updates),
  gradients all-reduced across replicas and then clipped to global norm `clip_norm`.
"""

import dataclasses
import shutil
import signal
import threading
import time
from typing import Callable, Optional

import numpy as np

from tfdfc import distribute, losses
from tfdfc.errors import ConfigError, UserInputError
from tfdfc.keras_compat import keras, tf


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of the loop. Defaults are the paper's (MS19's) CIFAR-10 settings."""

    steps: int = 80_000  # iterations (pseudo-batches)
    batch_size: int = 128  # global, across replicas
    student_steps: int = 10
    student_lr: float = 2e-3
    generator_lr: float = 1e-3
    clip_norm: float = 5.0
    latent_dim: int = 100
    divergence: str = "kl"  # kl | skl | l1
    temperature: float = 1.0
    reduction: str = "mean"  # see losses.py
    attention_weight: float = 250.0
    seed: int = 0
    log_every: int = 50
    eval_every: int = 500
    checkpoint_every: int = 500

    def validate(self):
        """Raises ConfigError naming the first bad field."""
        positive = ("steps", "batch_size", "student_steps", "student_lr", "generator_lr",
                    "clip_norm", "latent_dim", "temperature", "log_every", "eval_every",
                    "checkpoint_every")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.attention_weight < 0:
            raise ConfigError(f"attention_weight must be >= 0, got {self.attention_weight}")
        if self.divergence not in losses.DIVERGENCES:
            raise ConfigError(f"divergence must be one of {sorted(losses.DIVERGENCES)}, "
                             f"got {self.divergence!r}")
        if self.reduction not in losses.REDUCTIONS:
            raise ConfigError(f"reduction must be one of {losses.REDUCTIONS}, "
                             f"got {self.reduction!r}")


class TrainingDiverged(RuntimeError):
    """A loss or weight became NaN or infinite."""


class CheckpointError(UserInputError):
    """A checkpoint that cannot be restored (corrupt, or from another model)."""


class RunInterrupted(Exception):
    """SIGTERM or SIGINT arrived; a checkpoint of the last finished iteration was saved."""

    def __init__(self, message, signal_number):
        super().__init__(message)
        self.signal_number = signal_number


@dataclasses.dataclass
class Players:
    """The three networks and the two optimizers, all built under one strategy scope.

    `teacher` and `student` return `[logits, attention_0, ...]` (see models.attention);
    `student_model` is the plain logits model that is exported. `regularizer` (optional) maps the
    student to an extra scalar loss, e.g. pruning's R_p; `after_student_update` (optional) runs in
    cross-replica context after every student update, e.g. the binary weight clip.
    """

    teacher: keras.Model
    student: keras.Model
    student_model: keras.Model
    generator: keras.Model
    student_optimizer: keras.optimizers.Optimizer
    generator_optimizer: keras.optimizers.Optimizer
    regularizer: Optional[Callable[[], tf.Tensor]] = None
    after_student_update: Optional[Callable[[], None]] = None


def make_optimizers(config):
    """Adam optimizers with cosine decay for (student, generator)."""
    student = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        config.student_lr, config.steps * config.student_steps))
    generator = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        config.generator_lr, config.steps))
    return student, generator


def current_learning_rate(optimizer):
    """The learning rate the optimizer's next update will use."""
    rate = optimizer.learning_rate  # a schedule, or a (mirrored) variable tracking it
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        rate = rate(optimizer.iterations)
    return float(tf.convert_to_tensor(rate))


def sample_latent(iteration, config, local_batch):
    """z for this replica and iteration; the same on a resumed run."""
    context = tf.distribute.get_replica_context()
    replica = tf.cast(context.replica_id_in_sync_group if context else 0, tf.int64)
    replicas = tf.cast(context.num_replicas_in_sync if context else 1, tf.int64)
    seed = tf.stack([tf.constant(config.seed, tf.int64),
                     tf.cast(iteration, tf.int64) * replicas + replica])
    return tf.random.stateless_normal([local_batch, config.latent_dim], seed=seed)


def call_outputs(model, images, training):
    """`[logits, attention_0, ...]`: Keras returns a bare tensor for a single-output model."""
    outputs = model(images, training=training)
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _apply_clipped(optimizer, gradients, variables, clip_norm):
    """All-reduces replica gradients, clips their global norm, applies them."""
    # Every replica must all-reduce the same list of tensors, but which gradients are None can
    # differ between replica traces (TF-MOT quantizers branch on `training`): use zeros instead.
    dense = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
             for g, v in zip(gradients, variables)]
    context = tf.distribute.get_replica_context()
    summed = context.all_reduce(tf.distribute.ReduceOp.SUM, dense)
    clipped, norm = tf.clip_by_global_norm(summed, clip_norm)
    optimizer.apply_gradients(zip(clipped, variables), skip_gradients_aggregation=True)
    return norm


def _local_batch(strategy, config):
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by the "
                         f"{replicas} replicas")
    return config.batch_size // replicas


def _reduce_sum(strategy, per_replica):
    return {key: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in per_replica.items()}


def make_generator_step(strategy, players, config):
    """A tf.function(iteration) taking one generator ascent step; returns summed metrics."""
    local_batch = _local_batch(strategy, config)

    def replica_step(iteration):
        z = sample_latent(iteration, config, local_batch)
        with tf.GradientTape() as tape:
            images = players.generator(z, training=True)
            teacher_logits = call_outputs(players.teacher, images, training=False)[0]
            student_logits = call_outputs(players.student, images, training=False)[0]
            per_example = losses.divergence(config.divergence, teacher_logits, student_logits,
                                            config.temperature, config.reduction)
            divergence = tf.nn.compute_average_loss(per_example,
                                                    global_batch_size=config.batch_size)
            loss = -divergence
        variables = players.generator.trainable_variables
        _apply_clipped(players.generator_optimizer, tape.gradient(loss, variables), variables,
                       config.clip_norm)
        entropy = tf.nn.compute_average_loss(losses.entropy(teacher_logits),
                                             global_batch_size=config.batch_size)
        return {"generator_divergence": divergence, "teacher_entropy": entropy}

    @tf.function
    def step(iteration):
        return _reduce_sum(strategy, strategy.run(replica_step, args=(iteration,)))

    return step


def make_synthesis_step(strategy, players, config):
    """A tf.function(iteration) -> per-replica (images, teacher outputs) for the student steps."""
    local_batch = _local_batch(strategy, config)

    def replica_step(iteration):
        z = sample_latent(iteration, config, local_batch)
        images = players.generator(z, training=True)
        return images, call_outputs(players.teacher, images, training=False)

    @tf.function
    def step(iteration):
        return strategy.run(replica_step, args=(iteration,))

    return step


def make_student_step(strategy, players, config):
    """A tf.function(images, teacher_outputs) taking one student descent step."""

    def replica_step(images, teacher_outputs):
        with tf.GradientTape() as tape:
            student_outputs = call_outputs(players.student, images, training=True)
            per_example = losses.divergence(config.divergence, teacher_outputs[0],
                                            student_outputs[0], config.temperature,
                                            config.reduction)
            divergence = tf.nn.compute_average_loss(per_example,
                                                    global_batch_size=config.batch_size)
            attention = tf.constant(0.0)
            if config.attention_weight > 0 and len(student_outputs) > 1:
                attention = tf.nn.compute_average_loss(
                    losses.attention_transfer(teacher_outputs[1:], student_outputs[1:],
                                              config.attention_weight),
                    global_batch_size=config.batch_size)
            regularizer = tf.constant(0.0)
            if players.regularizer is not None:
                regularizer = players.regularizer() / strategy.num_replicas_in_sync
            loss = divergence + attention + regularizer
        variables = players.student.trainable_variables
        norm = _apply_clipped(players.student_optimizer, tape.gradient(loss, variables),
                              variables, config.clip_norm)
        return {"student_divergence": divergence, "attention": attention,
                "regularizer": regularizer, "student_loss": loss,
                "student_grad_norm": norm / strategy.num_replicas_in_sync}

    @tf.function
    def step(images, teacher_outputs):
        metrics = _reduce_sum(strategy, strategy.run(replica_step,
                                                     args=(images, teacher_outputs)))
        if players.after_student_update is not None:
            players.after_student_update()
        return metrics

    return step


class Loop:
    """Runs the alternating steps with checkpoints, summaries, evaluation and progress lines."""

    def __init__(self, strategy, players, config, checkpoint_dir, summary_dir=None,
                 evaluate=None, show_images=None, log=print, on_iteration=None):
        """Args:
          strategy: the strategy every model was built under.
          players: the networks and optimizers.
          config: a validated TrainConfig.
          checkpoint_dir: where checkpoints go; the loop resumes from the latest one there.
          summary_dir: TensorBoard directory, or None for no summaries.
          evaluate: optional callable() -> student accuracy on held-out data.
          show_images: optional callable(images) -> images in [0, 1] for the summary grid.
          log: receives progress lines.
          on_iteration: optional callable(iteration) after each iteration (e.g. a test's stop).
        """
        config.validate()
        self.strategy, self.players, self.config = strategy, players, config
        self.evaluate, self.show_images, self.log = evaluate, show_images, log
        self.on_iteration = on_iteration
        self.session_seconds, self.last_metrics = 0.0, {}
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
            elapsed=self.elapsed)
        self.chief = distribute.is_chief(strategy)
        self.checkpoint_dir = checkpoint_dir  # the chief's: every worker restores from it
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, distribute.worker_checkpoint_dir(checkpoint_dir, strategy),
            max_to_keep=2)
        if not self.chief:
            summary_dir, self.evaluate = None, None
        self.writer = tf.summary.create_file_writer(summary_dir) if summary_dir else None
        self._signal = None
        self.generator_step = make_generator_step(strategy, players, config)
        self.synthesis_step = make_synthesis_step(strategy, players, config)
        self.student_step = make_student_step(strategy, players, config)

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
        return int(self.iteration.numpy())

    def save(self, done):
        """Saves a checkpoint (every worker takes part; only the chief's is kept)."""
        path = self.manager.save(checkpoint_number=done)
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
        return path

    def _catch_signals(self):
        """Turns SIGTERM / SIGINT into a checkpoint at the end of the current iteration."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signal_number, frame):
            del frame
            self._signal = signal_number

        return {number: signal.signal(number, request_stop)
                for number in (signal.SIGTERM, signal.SIGINT)}

    def run_iteration(self, iteration):
        """One generator step and `student_steps` student steps; returns float metrics."""
        metrics = self.generator_step(tf.constant(iteration, tf.int64))
        images, teacher_outputs = self.synthesis_step(tf.constant(iteration, tf.int64))
        for _ in range(self.config.student_steps):
            student_metrics = self.student_step(images, teacher_outputs)
        metrics.update(student_metrics)
        self._last_images = images
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
        for iteration in range(start, self.config.steps):
            iteration_started = time.time()
            metrics = self.run_iteration(iteration)
            self._check_finite(iteration, metrics)
            self.iteration.assign(iteration + 1)
            self.elapsed.assign_add(time.time() - iteration_started)
            done = iteration + 1
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

    @property
    def seconds(self):
        """Training seconds over all sessions of this run (from the checkpoint)."""
        return float(self.elapsed.numpy())

    def _stop_for_signal(self, done):
        already_saved = done % self.config.checkpoint_every == 0 or done == self.config.steps
        path = self.manager.latest_checkpoint if already_saved else self.save(done)
        name = signal.Signals(self._signal).name
        self.log(f"{name}: stopped after iteration {done}; checkpoint {path} saved, run the same "
                 "command again to resume")
        raise RunInterrupted(f"stopped by {name} after iteration {done}", self._signal)

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
                 f"teacher_entropy {metrics['teacher_entropy']:.3f}  "
                 f"{rate:.2f} it/s  ETA {_format_seconds(remaining)}")
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

    def _evaluate(self, done):
        accuracy = self.evaluate() if self.evaluate else None
        if accuracy is not None:
            self.log(f"iteration {done}: student accuracy {accuracy:.4f}")
        if not self.writer:
            return
        with self.writer.as_default(step=done):
            if accuracy is not None:
                tf.summary.scalar("eval/student_accuracy", accuracy)
            images = self.strategy.experimental_local_results(self._last_images)[0][:16]
            shown = self.show_images(images) if self.show_images else images
            tf.summary.image("train/generated", image_grid(shown), step=done)
        self.writer.flush()


def image_grid(images, columns=4):
    """Tiles up to `columns`**2 images (values in [0, 1]) into one [1, H, W, C] image."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    if images.shape[-1] not in (1, 3, 4):
        images = images[..., :1]
    count = min(len(images), columns * columns)
    rows = int(np.ceil(count / columns))
    height, width, channels = images.shape[1:]
    grid = np.zeros((rows * height, columns * width, channels), np.float32)
    for index in range(count):
        row, column = divmod(index, columns)
        grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = images[index]
    return grid[np.newaxis]


def _format_seconds(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
