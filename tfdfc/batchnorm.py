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
"""

from tfdfc.keras_compat import keras

POLICIES = ("frozen_statistics", "trained")


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


def apply(model, policy):
    """Applies `policy` (one of POLICIES) to `model`; returns the number of batch norms."""
    if policy not in POLICIES:
        raise ValueError(f"unknown batch-norm policy {policy!r}: use one of {POLICIES}")
    if policy == "frozen_statistics":
        return freeze_statistics(model)
    return len(batch_norms(model))
