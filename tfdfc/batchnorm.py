"""What a student's batch norms do with generated batches: the policy, and the means to apply it.

A student trained data-free sees only generated images. A batch norm in training mode normalises
them with their own statistics and moves its moving mean and variance towards them, so after a
few steps the statistics describe the generator's images, not real ones, and a network whose
weights are still the teacher's misclassifies real images (bench/NOTES.md has the ablation).

The policy, per student init:
- `teacher`-initialised students (QAT, binary, magnitude pruning, slimming from the teacher): the
  teacher's moving statistics are the real data's, so they are kept: every batch norm runs in
  inference mode (moving statistics, never updated) while its scale and offset stay trainable.
  This is also what TFLite executes, so QAT's fake-quant ranges are learned on the activations
  the exported model computes (Conv+BN folding uses the same frozen statistics).
- `random`-initialised students (distillation into a fresh or smaller network): there are no
  statistics to keep, so batch norms train normally and their statistics are those of the
  generated images.

Frozen statistics are the real data's only while the student's weights stay near the
teacher's. Where training moves them far (most weights pruned, binary signs), each conv's
output leaves those statistics behind; `recalibrate` then takes them afresh from generated
images, which the batch-norm prior (priors.py) keeps close to the teacher's real-data
statistics: after training (`--recalibrate_batch_norm`) and, with
`--recalibrate_batch_norm_every`, during it, so scale and offset learn under the new ones.
"""

import numpy as np

from tfdfc.keras_compat import keras, tf

POLICIES = ("frozen_statistics", "trained")
RECALIBRATION_IMAGES = 4096  # generated images `recalibrate` takes statistics from in a run
# Images per batch of a run's recalibration, generated or real alike: each batch is normalised
# by its own statistics on the way through, so both see the same batch size.
RECALIBRATION_BATCH = 256
NOTHING_TO_RECALIBRATE = "none to recalibrate (none frozen outside QAT)"  # for log lines


def policy_for(student_init):
    """The batch-norm policy for a student initialised from `student_init` (see above)."""
    return "frozen_statistics" if student_init == "teacher" else "trained"


def batch_norms(model):
    """Every BatchNormalization inside `model`: nested models and TF-MOT wrappers included."""
    found = []
    for layer in model.layers:
        inner = getattr(layer, "layer", None)  # TF-MOT quantize and pruning wrappers
        if isinstance(layer, keras.Model):
            found.extend(batch_norms(layer))
        elif isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(inner, keras.layers.BatchNormalization):
            found.append(inner)
    return found


def _always_inference(training=None):
    del training
    return False


def freeze_statistics(model):
    """Makes every batch norm of `model` normalise with its moving statistics and never update
    them, even when called with `training=True`; scale and offset stay trainable.

    Keras ties the two together (a BN with `trainable=False` runs in inference mode but also
    freezes its scale and offset), so the layer's training-mode switch is overridden on the
    instance instead. The override lives on this in-memory model only: exports rebuild from
    configs and run batch norms in inference mode anyway.

    Returns:
      The number of batch norms changed.
    """
    layers = batch_norms(model)
    for layer in layers:
        layer._get_training_value = _always_inference  # pylint: disable=protected-access
    return len(layers)


def is_frozen(layer):
    """Whether `freeze_statistics` froze this batch norm."""
    return layer.__dict__.get("_get_training_value") is _always_inference


def _learned_activation_ranges(model):
    """Whether a TF-MOT quantize wrapper in `model` fake-quantizes activations or outputs (int8
    or n-bit QAT, not binary weights): ranges learned on the activations the old statistics
    gave, which new statistics would leave stale."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and _learned_activation_ranges(layer):
            return True
        config, inner = getattr(layer, "quantize_config", None), getattr(layer, "layer", None)
        if config is not None and (config.get_activations_and_quantizers(inner)
                                   or config.get_output_quantizers(inner)):
            return True
    return False


def recalibratable(model):
    """The frozen batch norms of `model` that `recalibrate` changes, each once; none in a model
    that has learned activation ranges (int8 QAT keeps batch norms unfolded while it trains),
    and none with a `virtual_batch_size` (its statistics are per virtual batch)."""
    if _learned_activation_ranges(model):
        return []
    found = []
    for norm in batch_norms(model):
        if (is_frozen(norm) and norm.virtual_batch_size is None
                and all(norm is not other for other in found)):
            found.append(norm)
    return found


def recalibrate(model, batches):
    """Gives every `recalibratable` batch norm of `model` the moving mean and variance of its
    inputs over `batches` (an iterable of image batches, e.g. generated ones) and returns how
    many it changed. Eager only (it reads the statistics as numpy values).

    One pass, as a training-mode pass would see it: each such batch norm normalises every batch
    with the batch's own statistics (so the layers after it see inputs re-normalised as the new
    statistics will), and its moving statistics become those of all the batches together. The
    layers keep their frozen (inference) behaviour afterwards.
    """
    layers = recalibratable(model)
    if not layers:  # nothing to record: spare the pass (and making `batches`' images)
        return 0
    sums = {id(layer): [0.0, 0.0, 0.0, 0] for layer in layers}  # sums of mean, mean^2, var; rows

    def recording_call(layer):
        def call(inputs, training=None, **kwargs):
            del training, kwargs
            axes = [axis for axis in range(inputs.shape.rank) if axis not in layer.axis]
            mean, variance = tf.nn.moments(inputs, axes, keepdims=True)
            total, rows = sums[id(layer)], int(inputs.shape[0])
            batch_mean = tf.reshape(mean, [-1]).numpy().astype(np.float64)
            total[0] += rows * batch_mean
            total[1] += rows * batch_mean ** 2
            total[2] += rows * tf.reshape(variance, [-1]).numpy().astype(np.float64)
            total[3] += rows
            shape = mean.shape
            scale = None if layer.gamma is None else tf.reshape(layer.gamma, shape)
            offset = None if layer.beta is None else tf.reshape(layer.beta, shape)
            return tf.nn.batch_normalization(inputs, mean, variance, offset, scale,
                                             layer.epsilon)
        return call

    for layer in layers:
        layer.call = recording_call(layer)
    try:
        for images in batches:
            model(images, training=False)
    finally:
        for layer in layers:
            del layer.call
    for layer in layers:
        mean_sum, square_sum, variance_sum, rows = sums[id(layer)]
        if rows:
            mean = mean_sum / rows  # variance: within batches plus between their means
            variance = np.maximum(variance_sum / rows + square_sum / rows - mean ** 2, 0.0)
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(np.reshape(mean, shape).astype(np.float32))
            layer.moving_variance.assign(np.reshape(variance, shape).astype(np.float32))
    return len(layers)


def apply(model, policy):
    """Applies `policy` (one of POLICIES) to `model`; returns the number of batch norms."""
    if policy not in POLICIES:
        raise ValueError(f"unknown batch-norm policy {policy!r}: use one of {POLICIES}")
    if policy == "frozen_statistics":
        return freeze_statistics(model)
    return len(batch_norms(model))
