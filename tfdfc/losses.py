"""Discrepancies between teacher and student, per example, ready for distributed averaging.

Each function returns one value per example; the training step sums them and divides by the
global batch (`tf.nn.compute_average_loss`), so the loss is the same whatever the replica count.

Decisions where the paper is silent (docs/method.md, "The paper's gaps"):
- Temperature 1 by default, as in Micaelli & Storkey (MS19).
- `reduction="mean"` divides the per-example KL by the number of classes, reproducing PyTorch's
  `kl_div(..., reduction='mean')` in the MS19 code, which is the scale its beta=250 was tuned
  for; `"batchmean"` keeps the textbook per-example KL.
- Attention transfer uses MS19's form, the mean squared difference of L2-normalised maps, not the
  L2 norm printed in the paper's Eq. 2.
"""

from tfdfc.keras_compat import tf

REDUCTIONS = ("mean", "batchmean")


def _log_probs(logits, temperature):
    return tf.nn.log_softmax(tf.cast(logits, tf.float32) / temperature, axis=-1)


def _reduce_classes(per_class, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    total = tf.reduce_sum(per_class, axis=-1)
    if reduction == "mean":
        total /= tf.cast(tf.shape(per_class)[-1], total.dtype)
    return total


def kl_divergence(teacher_logits, student_logits, temperature=1.0, reduction="mean"):
    """Forward KL(p_teacher || p_student) per example."""
    log_p_teacher = _log_probs(teacher_logits, temperature)
    log_p_student = _log_probs(student_logits, temperature)
    per_class = tf.exp(log_p_teacher) * (log_p_teacher - log_p_student)
    return _reduce_classes(per_class, reduction)


def symmetric_kl(teacher_logits, student_logits, temperature=1.0, reduction="mean"):
    """0.5 KL(T||S) + 0.5 KL(S||T) per example: the paper's "JSD" as it defines it."""
    forward = kl_divergence(teacher_logits, student_logits, temperature, reduction)
    backward = kl_divergence(student_logits, teacher_logits, temperature, reduction)
    return 0.5 * (forward + backward)


def logit_l1(teacher_logits, student_logits, reduction="mean"):
    """L1 distance between logits per example (the DFAD discrepancy)."""
    difference = tf.abs(tf.cast(teacher_logits, tf.float32) - tf.cast(student_logits, tf.float32))
    return _reduce_classes(difference, reduction)


DIVERGENCES = {"kl": kl_divergence, "skl": symmetric_kl, "l1": logit_l1}


def divergence(name, teacher_logits, student_logits, temperature=1.0, reduction="mean"):
    """The discrepancy `name` (kl, skl or l1) per example."""
    if name not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {sorted(DIVERGENCES)}, got {name!r}")
    if name == "l1":
        return logit_l1(teacher_logits, student_logits, reduction)
    return DIVERGENCES[name](teacher_logits, student_logits, temperature, reduction)


def attention_map(activation):
    """Channel-mean of a^2, flattened and L2-normalised per example: shape (batch, positions)."""
    activation = tf.cast(activation, tf.float32)
    spatial = tf.reduce_mean(tf.square(activation), axis=-1)
    flat = tf.reshape(spatial, [tf.shape(spatial)[0], -1])
    return tf.math.l2_normalize(flat, axis=-1, epsilon=1e-12)


def attention_transfer(teacher_activations, student_activations, weight):
    """weight * sum over layers of mean((map_s - map_t)^2), per example."""
    if len(teacher_activations) != len(student_activations):
        raise ValueError(f"teacher has {len(teacher_activations)} attention points, student has "
                         f"{len(student_activations)}")
    total = 0.0
    for teacher_act, student_act in zip(teacher_activations, student_activations):
        difference = attention_map(student_act) - attention_map(teacher_act)
        total += tf.reduce_mean(tf.square(difference), axis=-1)
    return weight * total


def feature_distillation(teacher_activations, student_activations, weight):
    """weight * sum over layers of mean((s - t)^2) / mean(t^2), per example: whole feature maps,
    channel by channel (FitNets' hints at the attention points, each scaled by the teacher map's
    energy so that no layer dominates), for a student whose maps have the teacher's shapes."""
    if len(teacher_activations) != len(student_activations):
        raise ValueError(f"teacher has {len(teacher_activations)} feature points, student has "
                         f"{len(student_activations)}")
    total = 0.0
    for teacher_act, student_act in zip(teacher_activations, student_activations):
        teacher_act = tf.cast(teacher_act, tf.float32)
        student_act = tf.cast(student_act, tf.float32)
        axes = list(range(1, teacher_act.shape.rank))
        error = tf.reduce_mean(tf.square(student_act - teacher_act), axis=axes)
        total += error / (tf.reduce_mean(tf.square(teacher_act), axis=axes) + 1e-6)
    return weight * total


def entropy(logits):
    """Entropy (nats) of softmax(logits), per example."""
    log_p = _log_probs(logits, 1.0)
    return -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)
