"""Priors the generator may add to its loss, to keep its images like the teacher's real data.

The paper's generator only maximises the teacher-student divergence. On a teacher with batch
norms that is not enough: the generator settles on a few kinds of images the teacher puts in one
class (the loop's `teacher_classes` near 1), and a student trained only there drifts away from
the teacher elsewhere. Two cheap priors, each off by default in TrainConfig (weight 0) and set
by the recipes where they help (and a third, smoothness, for sets whose generated images stay
noise-like):

- batch-norm statistics (`bn_prior_weight`, as DeepInversion, GDFQ and DFQ use): every batch
  norm of the teacher stores the mean and variance of its input over the real training data, so
  the generator is asked to make batches whose statistics at each batch norm match them:
  the mean over batch norms of ||mean(x) - moving_mean||_2 + ||var(x) - moving_variance||_2.
- class balance (`balance_weight`, DAFL's information-entropy term): log(classes) minus the
  entropy of the teacher's mean prediction over the batch, zero when the batch spreads evenly
  over the classes.
- smoothness (`smoothness_weight`, DeepInversion's total-variation prior): the mean absolute
  difference between neighbouring pixels, which real photographs keep small and the noise-like
  textures an adversarial generator drifts to do not.
- confidence (`confidence_weight`, DAFL's one-hot loss): the mean cross-entropy between the
  teacher's prediction and its own top class, zero when the teacher is certain. The adversarial
  term pulls images to the class boundaries, where teacher and student disagree most; this one
  pulls them into the classes, where real images mostly lie.
"""

from tfdfc import batchnorm
from tfdfc.keras_compat import keras, tf


def batch_norm_inputs(teacher):
    """A model mapping images to the inputs of every batch norm of `teacher` (a flat model),
    with the norms' moving (mean, variance); (None, []) when it has none."""
    norms = [layer for layer in batchnorm.batch_norms(teacher)
             if layer in teacher.layers]  # nested ones cannot be probed; flatten first
    if not norms:
        return None, []
    probe = keras.Model(teacher.inputs, [layer.input for layer in norms],
                        name=f"{teacher.name}_batch_norm_inputs")
    probe.trainable = False
    return probe, [(layer.moving_mean, layer.moving_variance) for layer in norms]


def make_batch_norm_prior(teacher):
    """A function(images) -> the batch-norm statistics loss of `teacher`, or None when the
    teacher has no batch norm."""
    probe, statistics = batch_norm_inputs(teacher)
    if probe is None:
        return None

    def prior(images):
        inputs = probe(images, training=False)
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        total = 0.0
        for value, (moving_mean, moving_variance) in zip(inputs, statistics):
            axes = list(range(len(value.shape) - 1))
            mean, variance = tf.nn.moments(value, axes=axes)
            total += tf.norm(mean - moving_mean) + tf.norm(variance - moving_variance)
        return total / len(statistics)

    return prior


def class_balance(teacher_logits):
    """log(classes) - entropy of the batch's mean teacher prediction (0 when balanced)."""
    mean = tf.reduce_mean(tf.nn.softmax(teacher_logits), axis=0)
    classes = tf.cast(tf.shape(teacher_logits)[-1], tf.float32)
    return tf.math.log(classes) + tf.reduce_sum(mean * tf.math.log(mean + 1e-12))


def confidence(teacher_logits):
    """Mean cross-entropy of the teacher's prediction against its own top class (0 when it is
    certain of every image, log(classes) when it is uniform)."""
    top = tf.stop_gradient(tf.argmax(teacher_logits, axis=-1))
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(top, teacher_logits))


def total_variation(images):
    """Mean absolute difference between vertically and horizontally neighbouring pixels of a
    batch of NHWC images (0 for a flat image)."""
    down = tf.abs(images[:, 1:, :, :] - images[:, :-1, :, :])
    right = tf.abs(images[:, :, 1:, :] - images[:, :, :-1, :])
    return 0.5 * (tf.reduce_mean(down) + tf.reduce_mean(right))
