"""The data-free minimax loop: one generator ascent step, then several student descent steps.

Each iteration k draws z ~ N(0, I) (stateless, seeded by `seed` and k, so a resumed run draws the
same z), takes one generator step that *increases* the teacher-student divergence, regenerates
x = G(z) with the updated generator, and takes `student_steps` student steps on that same x to
*decrease* divergence + attention transfer (+ any regulariser the compression scheme adds).

Decisions where the paper is silent (docs/method.md), following the MS19 reference code:
- the generator maximises the divergence only; attention transfer enters the student loss only;
- x and the teacher's outputs are computed once per iteration and reused by the student steps;
  `resample_latents` (not the paper's) instead gives every student step after the first its
  own z, through the same generator: 10x as many distinct images per iteration, at the cost of
  a generator and a teacher forward pass per student step;
- the student runs with `training=False` in the generator step (so batch norm uses moving
  statistics, and TF-MOT pruning counts one step per student update) and `training=True` in
  its own steps; the generator's batch norm always runs in training mode;
- `generator_ema` (not the paper's; MAD, Do et al. 2022): the adversarial generator keeps moving
  to where the student is wrong now, and the student forgets the images of earlier iterations.
  A slow copy of the generator (an exponential moving average of its weights) recalls them: each
  student step also learns on a batch of the slow copy's images, at the cost of one more
  generator and teacher pass per iteration and a student batch twice as large;
- `feature_weight` (not the paper's; FitNets' hints): for a student of the teacher's
  architecture, the whole feature maps at the attention points are matched too, channel by
  channel, where attention transfer matches only their spatial energy. A pruned student has
  lost most of its weights and relearns each layer's output from these maps rather than from
  ten logits per image;
- `replay_batches` (not the paper's; replay.py): the same cure by memory, the student also
  learning on images drawn from the last N iterations' batches;
- Adam, cosine decay to zero over the run (the student's over steps * student_steps updates),
  gradients all-reduced across replicas and then clipped to global norm `clip_norm`.
"""

import dataclasses
from typing import Callable, Optional

from tfdfc import augment, collapse, losses, priors, replay, settings
from tfdfc.errors import ConfigError
from tfdfc.settings import setting
from tfdfc.keras_compat import keras, tf

STUDENT_OPTIMIZERS = ("adam", "sgd")
_AUGMENT_STREAM = 1  # folded into a draw's seed: the shifts and flips are not its z's stream
# Where attention transfer looks (models/attention.py).
ATTENTION_POINTS = ("named", "inferred", "inferred_final")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of the loop, each with its flag's help (settings.py). Defaults are the
    paper's (MS19's) CIFAR-10 settings; recipes.py fills some per method where unset."""

    # loop
    steps: int = setting(80_000, "Iterations: 1 generator + --student_steps student updates "
                         "each; unset: the recipe's (docs/recipes.md).", "training", lower=1)
    batch_size: int = setting(128, "Global batch of generated images (split between "
                              "replicas).", "training", lower=1)
    student_steps: int = setting(10, "Student updates per generator update.", "training",
                                 lower=1)
    student_lr: float = setting(2e-3, "Student rate (cosine to 0); unset: the recipe's.",
                                "training", lower=0.0)
    student_optimizer: str = setting("adam", "adam: Adam (MS19's); sgd: SGD with momentum 0.9 "
                                     "(DFAD's, at rates near 0.1).", "training",
                                     choices=STUDENT_OPTIMIZERS)
    generator_lr: float = setting(1e-3, "Generator Adam rate (cosine to 0).", "training",
                                  lower=0.0)
    clip_norm: float = setting(5.0, "Global gradient-norm clip.", "training", lower=0.0)
    latent_dim: int = setting(100, "Size of z.", "training", lower=1)
    divergence: str = setting("kl", "kl: KL(T||S); skl: symmetric KL (the paper's JSD); l1: "
                              "logits; unset: the recipe's.", "training",
                              choices=sorted(losses.DIVERGENCES))
    temperature: float = setting(1.0, "Softmax temperature.", "training", lower=0.0)
    reduction: str = setting("mean", "mean: KL / classes (MS19's scale for beta=250); "
                             "batchmean: KL.", "training", choices=losses.REDUCTIONS)
    attention_weight: float = setting(250.0, "Attention-transfer weight beta (0: off); unset: "
                                      "the recipe's.",
                                      "training", lower=0.0)
    feature_weight: float = setting(0.0, "Weight of feature-map distillation at the attention "
                                    "points: each whole map's squared error over its energy "
                                    "(0: off); needs maps of the teacher's shapes; unset: the "
                                    "recipe's.", "training",
                                    lower=0.0)
    attention_points: str = setting("named", "named: layers called attention_<i> (tfdfc's "
                                    "networks); inferred: also, for a teacher without them and "
                                    "a student of its architecture, the last layer at each "
                                    "feature-map size; inferred_final: and the last 1x1 map, "
                                    "for feature maps; unset: the recipe's.", "training",
                                    choices=ATTENTION_POINTS)
    seed: int = setting(0, "Random seed (initialisation and z).", "training")
    resample_latents: bool = setting(False, "A fresh z for every student step, not the paper's "
                                     "one batch per iteration (slower); unset: the recipe's.",
                                     "training")
    generator_ema: float = setting(0.0, "Decay of a slow copy of the generator whose images the "
                                   "student also learns on (0: off).", "training", lower=0.0,
                                   upper=0.999999)
    augment_shift: int = setting(0, "Random shifts of up to N pixels of the generated images "
                                 "the student learns on; the teacher answers on the shifted "
                                 "copies (0: off).", "training", lower=0, upper=16)
    augment_flip: bool = setting(False, "Random left-right flips of the generated images the "
                                 "student learns on (for a teacher trained with flips).",
                                 "training")
    replay_batches: int = setting(0, "Generated batches the student also relearns from: a "
                                  "memory of the last N iterations' images (0: off).",
                                  "training", lower=0, upper=10_000)
    generator_reset_every: int = setting(0, "Re-initialise the generator and its Adam moments "
                                         "every N iterations, so a fresh one searches the "
                                         "student's errors from a new start (0: off).",
                                         "training", lower=0)
    recalibrate_batch_norm_every: int = setting(0, "Take the student's frozen batch-norm "
                                                "statistics afresh from the generator's images "
                                                "after every N-th iteration but the last, so "
                                                "its scale and offset learn under them (0: "
                                                "off).", "training", lower=0)
    on_collapse: str = setting("reset", "reset: re-initialise a collapsed generator (up to 3 "
                               "times); warn: only log it (the paper's).", "training",
                               choices=collapse.ACTIONS)
    # generator priors (priors.py)
    bn_prior_weight: float = setting(0.0, "Weight of the teacher batch-norm statistics prior; "
                                     "unset: the recipe's.", "generator priors", lower=0.0)
    balance_weight: float = setting(0.0, "Weight of the class-balance prior.", "generator priors",
                                    lower=0.0)
    smoothness_weight: float = setting(0.0, "Weight of the total-variation prior.",
                                       "generator priors", lower=0.0)
    confidence_weight: float = setting(0.0, "Weight of the teacher-confidence (one-hot) prior.",
                                       "generator priors", lower=0.0)
    # progress
    log_every: int = setting(50, "Iterations between progress lines.", "progress", lower=1)
    eval_every: int = setting(500, "Iterations between evaluations and image grids.",
                              "progress", lower=1)
    checkpoint_every: int = setting(500, "Iterations between checkpoints.", "progress", lower=1)

    def validate(self):
        """Raises ConfigError naming the first bad field: the types, bounds and choices each
        setting declares (settings.check_bounds), then the checks they cannot state."""
        settings.check_bounds(self)
        for name in ("student_lr", "generator_lr", "clip_norm", "temperature"):
            if getattr(self, name) <= 0:  # their declared bound (>= 0) admits 0
                raise ConfigError(f"--{name} must be positive, got {getattr(self, name)}")


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
    summaries: Optional[Callable[[], dict]] = None  # extra scalars, e.g. per-layer sparsity
    # images -> the teacher's batch-norm statistics loss (priors.py), None without batch norms
    batch_norm_prior: Optional[Callable[[tf.Tensor], tf.Tensor]] = None
    # the moving-average copy of `generator` when TrainConfig.generator_ema > 0 (slow_copy)
    slow_generator: Optional[keras.Model] = None
    # the memory of generated batches when TrainConfig.replay_batches > 0 (replay_memory)
    replay_memory: Optional[replay.ReplayMemory] = None


def slow_copy(generator):
    """A copy of `generator` with its current weights, to be moved towards it by
    `update_slow_copy`; build it under the strategy scope the generator was built in."""
    copy = keras.models.clone_model(generator)
    copy._name = f"{generator.name}_slow"
    copy.set_weights(generator.get_weights())
    copy.trainable = False
    return copy


def replay_memory(config, generator):
    """The replay memory of `config` (a TrainConfig) for `generator`'s images, or None when
    off; build it under the strategy scope."""
    if not config.replay_batches:
        return None
    return replay.ReplayMemory(config.replay_batches, config.batch_size,
                               tuple(generator.output_shape[1:]))


def update_slow_copy(slow, generator, decay):
    """slow <- decay * slow + (1 - decay) * generator for the generator's trainable weights
    (cross-replica context). Batch-norm moving statistics are left alone: both generators
    always normalise with the batch's own statistics."""
    for slow_weight, weight in zip(slow.weights, generator.weights):
        if weight.trainable:
            slow_weight.assign(decay * slow_weight + (1.0 - decay) * weight)


def make_optimizers(config):
    """(student, generator) optimizers with cosine decay: the generator's Adam, the student's
    --student_optimizer."""
    student_rate = keras.optimizers.schedules.CosineDecay(
        config.student_lr, config.steps * config.student_steps)
    student = (keras.optimizers.SGD(student_rate, momentum=0.9)
               if config.student_optimizer == "sgd" else keras.optimizers.Adam(student_rate))
    generator = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        config.generator_lr, config.steps))
    return student, generator


def current_learning_rate(optimizer):
    """The learning rate the optimizer's next update will use."""
    rate = optimizer.learning_rate  # a schedule, or a (mirrored) variable tracking it
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        rate = rate(optimizer.iterations)
    return float(tf.convert_to_tensor(rate))


def replica_seed(iteration, config, draw=None):
    """The stateless seed of this replica, iteration and `draw` (an int64 tensor; draw 0 or None
    is the generator step's, later draws the student steps'); the same on a resumed run."""
    context = tf.distribute.get_replica_context()
    replica = tf.cast(context.replica_id_in_sync_group if context else 0, tf.int64)
    replicas = tf.cast(context.num_replicas_in_sync if context else 1, tf.int64)
    seed = tf.stack([tf.constant(config.seed, tf.int64),
                     tf.cast(iteration, tf.int64) * replicas + replica])
    if draw is not None:
        seed = tf.where(draw > 0, tf.random.experimental.stateless_fold_in(seed, draw), seed)
    return seed


def sample_latent(iteration, config, local_batch, draw=None):
    """z for this replica, iteration and `draw` (see replica_seed)."""
    return tf.random.stateless_normal([local_batch, config.latent_dim],
                                      seed=replica_seed(iteration, config, draw))


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


def effective_classes(class_share):
    """exp(entropy) of the share of a batch's images in each predicted class: 1 when the
    teacher puts every image in one class, the number of classes when it spreads them evenly."""
    share = tf.clip_by_value(class_share, 1e-12, 1.0)
    return tf.exp(-tf.reduce_sum(class_share * tf.math.log(share)))


def make_generator_step(strategy, players, config):
    """A tf.function(iteration) taking one generator ascent step; returns summed metrics and
    `teacher_classes`, the effective number of classes the teacher puts the batch's images in."""
    local_batch = _local_batch(strategy, config)
    replicas = strategy.num_replicas_in_sync

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
            prior = _generator_prior(players, config, images, teacher_logits) / replicas
            loss = prior - divergence
        variables = players.generator.trainable_variables
        _apply_clipped(players.generator_optimizer, tape.gradient(loss, variables), variables,
                       config.clip_norm)
        entropy = tf.nn.compute_average_loss(losses.entropy(teacher_logits),
                                             global_batch_size=config.batch_size)
        predicted = tf.one_hot(tf.argmax(teacher_logits, axis=-1), tf.shape(teacher_logits)[-1])
        class_share = tf.reduce_sum(predicted, axis=0) / config.batch_size
        return {"generator_divergence": divergence, "teacher_entropy": entropy,
                "class_share": class_share, "generator_prior": prior}

    @tf.function
    def step(iteration):
        metrics = _reduce_sum(strategy, strategy.run(replica_step, args=(iteration,)))
        metrics["teacher_classes"] = effective_classes(metrics.pop("class_share"))
        return metrics

    return step


def _generator_prior(players, config, images, teacher_logits):
    """The weighted priors of priors.py on this replica's batch (0.0 when all are off)."""
    prior = tf.constant(0.0)
    if config.bn_prior_weight > 0 and players.batch_norm_prior is not None:
        prior += config.bn_prior_weight * players.batch_norm_prior(images)
    if config.balance_weight > 0:
        prior += config.balance_weight * priors.class_balance(teacher_logits)
    if config.smoothness_weight > 0:
        prior += config.smoothness_weight * priors.total_variation(images)
    if config.confidence_weight > 0:
        prior += config.confidence_weight * priors.confidence(teacher_logits)
    return prior


def make_synthesis_step(strategy, players, config):
    """A tf.function(iteration, draw, remember) -> per-replica (images, teacher outputs) for the
    student steps; `draw` (int64) picks the z, 0 being the generator step's. The batch grows by
    one local batch each for the slow generator's images and for images drawn from the replay
    memory; `remember` (a Python bool) first writes the generator's new batch into the memory."""
    local_batch = _local_batch(strategy, config)
    memory = players.replay_memory

    def generate(iteration, draw):
        return players.generator(sample_latent(iteration, config, local_batch, draw),
                                 training=True)

    def answer(iteration, draw, images):
        parts = [images]
        if players.slow_generator is not None:  # its z is one no student step draws
            slow_z = sample_latent(iteration, config, local_batch,
                                   draw + config.student_steps)
            parts.append(players.slow_generator(slow_z, training=True))
        if memory is not None:
            parts.append(memory.sample(replica_seed(iteration, config, draw), local_batch))
        images = augment.shift_and_flip(
            tf.concat(parts, 0), tf.random.experimental.stateless_fold_in(
                replica_seed(iteration, config, draw), _AUGMENT_STREAM),
            config.augment_shift, config.augment_flip)
        return images, call_outputs(players.teacher, images, training=False)

    @tf.function
    def step(iteration, draw, remember=False):
        images = strategy.run(generate, args=(iteration, draw))
        if remember and memory is not None:
            memory.write(strategy.gather(images, axis=0))
        return strategy.run(answer, args=(iteration, draw, images))

    return step


def _point_term(term, weight, teacher_outputs, student_outputs, global_batch_size):
    """A loss on the attention points' outputs (`term`, from losses), averaged over the global
    batch; 0 when its weight is 0 or the networks have no points."""
    if weight == 0 or len(student_outputs) < 2:
        return tf.constant(0.0)
    return tf.nn.compute_average_loss(term(teacher_outputs[1:], student_outputs[1:], weight),
                                      global_batch_size=global_batch_size)


def make_student_step(strategy, players, config):
    """A tf.function(images, teacher_outputs) taking one student descent step; the loss is the
    mean over the global batch, whatever its size (the synthesis step's may be 1-3 batches)."""

    def replica_step(images, teacher_outputs):
        batch_size = tf.shape(images)[0] * strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            student_outputs = call_outputs(players.student, images, training=True)
            per_example = losses.divergence(config.divergence, teacher_outputs[0],
                                            student_outputs[0], config.temperature,
                                            config.reduction)
            divergence = tf.nn.compute_average_loss(per_example,
                                                    global_batch_size=batch_size)
            attention, features = (
                _point_term(term, weight, teacher_outputs, student_outputs, batch_size)
                for term, weight in ((losses.attention_transfer, config.attention_weight),
                                     (losses.feature_distillation, config.feature_weight)))
            regularizer = tf.constant(0.0)
            if players.regularizer is not None:
                regularizer = players.regularizer() / strategy.num_replicas_in_sync
            loss = divergence + attention + features + regularizer
        variables = players.student.trainable_variables
        norm = _apply_clipped(players.student_optimizer, tape.gradient(loss, variables),
                              variables, config.clip_norm)
        return {"student_divergence": divergence, "attention": attention, "features": features,
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


def make_iteration_step(strategy, players, config):
    """A tf.function(iteration) -> (metrics, images): one generator step, then
    `config.student_steps` student steps, all in one graph call.

    One call instead of 2 + `student_steps` Python-side calls, with the same results (on a
    LeNet-5 student on 2 CPU cores not measurably faster: bench/speed.py). `images` are the
    per-replica images of draw 0 (the generator step's z), for summaries.
    """
    generator_step = make_generator_step(strategy, players, config)
    synthesis_step = make_synthesis_step(strategy, players, config)
    student_step = make_student_step(strategy, players, config)

    @tf.function
    def step(iteration):
        metrics = generator_step(iteration)
        if players.slow_generator is not None:
            update_slow_copy(players.slow_generator, players.generator, config.generator_ema)
        images, teacher_outputs = synthesis_step(iteration, tf.constant(0, tf.int64), True)
        student_metrics = student_step(images, teacher_outputs)
        # Only reduced (cross-replica) tensors are loop variables; the per-replica images stay
        # out of the loop, captured when reused or regenerated inside it when resampled.
        for draw in tf.range(1, config.student_steps, dtype=tf.int64):
            if config.resample_latents:
                student_metrics = student_step(*synthesis_step(iteration, draw))
            else:
                student_metrics = student_step(images, teacher_outputs)
        metrics.update(student_metrics)
        return metrics, images

    return step
