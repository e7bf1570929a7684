"""Magnitude pruning with TF-MOT inside the data-free loop.

TF-MOT's pruning wrapper counts its own step: every call with `training=True` adds one, and it
refuses to run until that counter has been moved from -1 to 0 (normally the job of the
`UpdatePruningStep` callback, which a custom loop does not have). The loop calls the student with
`training=True` exactly once per student update (the generator step uses `training=False`), so
the wrapper's step is the student-update count and schedules are expressed in student updates.
The wrapper multiplies each kernel by its mask at the start of a call, so after the last update
the masks must be applied once more before `strip_pruning`, inside the strategy scope.
"""

import dataclasses

import numpy as np

from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras, tf, tfmot

_sparsity = tfmot.sparsity.keras
SCHEDULES = ("polynomial", "constant")
PRUNES = ("none", "magnitude", "slim")
_PRUNABLE = (keras.layers.Conv2D, keras.layers.Dense)
# pylint: disable-next=g-direct-tensorflow-import
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude  # noqa: E402,E501


@dataclasses.dataclass(frozen=True)
class PruneSpec:
    """What `--prune`, `--sparsity` and `--sparsity_schedule` ask for."""

    kind: str = "none"
    sparsity: float = 0.0
    schedule: str = "polynomial"

    def validate(self):
        """Raises ConfigError for values that cannot work."""
        if self.kind not in PRUNES:
            raise ConfigError(f"prune must be one of {PRUNES}, got {self.kind!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"sparsity_schedule must be one of {SCHEDULES}, "
                              f"got {self.schedule!r}")
        if self.kind == "magnitude" and not 0.0 < self.sparsity < 1.0:
            raise ConfigError(f"--prune=magnitude needs 0 < sparsity < 1, got {self.sparsity}")
        if self.kind != "magnitude" and self.sparsity:
            raise ConfigError("--sparsity needs --prune=magnitude")


def schedule_for(spec, total_updates):
    """The TF-MOT schedule over `total_updates` student updates.

    polynomial: from 0 to the target over the first 70 % of updates (the rest recovers at the
    target); constant: the target from the first update. Masks update 100 times over the run.
    """
    frequency = max(1, total_updates // 100)
    if spec.schedule == "constant":
        return _sparsity.ConstantSparsity(spec.sparsity, begin_step=0, frequency=frequency)
    end_step = max(1, int(0.7 * total_updates))
    return _sparsity.PolynomialDecay(0.0, spec.sparsity, begin_step=0, end_step=end_step,
                                     frequency=min(frequency, end_step))


def prune_magnitude(model, spec, total_updates):
    """A copy of `model` whose convolution and dense layers are pruning-wrapped, ready to run."""
    schedule = schedule_for(spec, total_updates)

    def wrap(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, _PRUNABLE):
            return _sparsity.prune_low_magnitude(copy, pruning_schedule=schedule)
        return copy

    pruned = keras.models.clone_model(model, clone_function=wrap)
    _copy_into_wrappers(model, pruned)
    for wrapper in wrappers(pruned):
        wrapper.pruning_step.assign(0)  # what UpdatePruningStep would do at train begin
    return pruned


def _copy_into_wrappers(model, pruned):
    for layer in model.layers:
        if not layer.weights:
            continue
        target = pruned.get_layer(f"prune_low_magnitude_{layer.name}") \
            if isinstance(layer, _PRUNABLE) else pruned.get_layer(layer.name)
        inner = getattr(target, "layer", target)
        inner.set_weights(layer.get_weights())


def prune_once(model, sparsity):
    """Zeroes the `sparsity` fraction of smallest-magnitude weights of every convolution and
    dense kernel (layer-wise, no training), in place; the start of pruning + QAT."""
    for layer in model.layers:
        if isinstance(layer, _PRUNABLE):
            kernel = layer.kernel.numpy()
            count = int(round(sparsity * kernel.size))
            if count:
                threshold = np.sort(np.abs(kernel), axis=None)[count - 1]
                layer.kernel.assign(np.where(np.abs(kernel) > threshold, kernel, 0.0))
    return model


def zero_masks(model):
    """{layer name: 1 where the kernel is nonzero, else 0} for convolution and dense layers."""
    return {layer.name: (layer.kernel.numpy() != 0).astype(np.float32)
            for layer in model.layers if isinstance(layer, _PRUNABLE)}


def make_zero_keeper(qat_model, masks):
    """A function re-zeroing the pruned entries of a QAT model's stored kernels.

    TF-MOT's prune-preserving QAT masks the weights only in the forward pass; the stored
    kernels would drift from zero, and with them the float view and the reported sparsity.
    """
    pairs = []
    for layer in qat_model.layers:
        name = layer.name[len("quant_"):] if layer.name.startswith("quant_") else layer.name
        if name in masks:
            pairs.extend((weight, tf.constant(masks[name])) for weight in layer.trainable_weights
                         if weight.name.split("/")[-1].startswith("kernel"))

    def keep_zeros():
        for kernel, mask in pairs:
            kernel.assign(kernel * mask)

    return keep_zeros


def wrappers(model):
    """The pruning wrappers of `model`."""
    return [layer for layer in model.layers if isinstance(layer, PruneLowMagnitude)]


def apply_masks(model):
    """kernel *= mask for every wrapper; call inside the strategy scope before stripping."""
    for wrapper in wrappers(model):
        wrapper.pruning_obj.weight_mask_op()


def strip(model):
    """The plain Keras model, its kernels holding the zeros."""
    return _sparsity.strip_pruning(model)


def layer_sparsity(model):
    """{layer name: fraction of zeros in its mask} for TensorBoard."""
    result = {}
    for wrapper in wrappers(model):
        for _, mask, _ in wrapper.pruning_vars:
            values = mask.numpy()
            result[wrapper.layer.name] = float(1.0 - values.mean())
    return result
