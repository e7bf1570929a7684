"""Magnitude pruning with TF-MOT inside the data-free loop.

TF-MOT's pruning wrapper counts its own step: every call with `training=True` adds one, and it
refuses to run until that counter has been moved from -1 to 0 (normally the job of the
`UpdatePruningStep` callback, which a custom loop does not have). The loop calls the student with
`training=True` exactly once per student update (the generator step uses `training=False`), so
the wrapper's step is the student-update count and schedules are expressed in student updates.
The wrapper multiplies each kernel by its mask at the start of a call, so after the last update
the masks must be applied once more before `strip_pruning`, inside the strategy scope.

`--prune_sparsity` is the fraction of zeros over all convolution and dense kernels together,
depthwise and separable ones included (as report.json counts sparsity). Depthwise kernels (and
both kernels of a SeparableConv2D) always stay dense: each depthwise filter is its channel's
only one, and they hold few of the weights; the other layers take their share of the zeros. By
default the first of those layers (it reads the image) and the last (the logits) stay dense
where the target can be reached without them, as TF-MOT's guide advises and as the binary
scheme keeps them full precision: they hold few weights and the most sensitive ones (LeNet-5's
first convolution has 150, which 95 % layer-wise pruning would leave 8). `--prune_ends` prunes
those two as well, `--noprune_ends` never.

How the pruned layers share the zeros (`--prune_allocation`): `global` (default) takes one
magnitude threshold over all of them on the teacher's weights and gives each layer the rate that
threshold implies, so a big layer whose weights are smallest (LeNet-5's first dense layer) gives
most; `uniform` prunes each at one rate. The rates are fixed at the start; within each layer the
schedule prunes by magnitude as usual. The runs behind both defaults: bench/NOTES.md
("Magnitude pruning").
"""

import dataclasses
import math
from typing import Optional

import numpy as np

from tfdfc.compression import quantize
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras, tf, tfmot

_sparsity = tfmot.sparsity.keras
SCHEDULES = ("polynomial", "constant")
ALLOCATIONS = ("global", "uniform")
_MAX_LAYER_RATE = 0.99  # global allocation never empties a layer
PRUNES = ("none", "magnitude", "slim")
_PRUNABLE = (keras.layers.Conv2D, keras.layers.Dense)
# Kept dense, but counted in the target (tf-keras's depthwise and separable convolutions are not
# Conv2D subclasses).
_DENSE_KERNELS = {keras.layers.DepthwiseConv2D: ("depthwise_kernel",),
                  keras.layers.SeparableConv2D: ("depthwise_kernel", "pointwise_kernel")}
# pylint: disable-next=g-direct-tensorflow-import
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude  # noqa: E402,E501


@dataclasses.dataclass(frozen=True)
class PruneSpec:
    """What `--prune`, `--prune_sparsity` and `--prune_schedule` ask for."""

    kind: str = "none"
    sparsity: float = 0.0
    schedule: str = "polynomial"
    prune_ends: Optional[bool] = None  # None: the ends stay dense where the target allows it
    allocation: str = "global"
    ramp: float = 0.4  # polynomial: the fraction of student updates that reach the target

    def validate(self):
        """Raises ConfigError for values that cannot work together. Each field's choices and
        bounds are checked from its flag's declaration (settings.check_bounds, which
        CompressConfig.validate runs first), not here: a spec built by hand is not."""
        if not self.ramp > 0.0:  # its declared bound (>= 0) admits 0
            raise ConfigError(f"--prune_ramp must be in (0, 1], got {self.ramp}")
        if self.kind == "magnitude" and not self.sparsity:
            raise ConfigError("--prune=magnitude needs --prune_sparsity, the fraction of kernel "
                              "weights to zero (e.g. 0.9)")
        if self.kind == "magnitude" and self.sparsity >= 1.0:
            raise ConfigError(f"--prune_sparsity must be below 1 (1 would zero every weight), "
                              f"got {self.sparsity}")
        if self.kind != "magnitude" and (self.sparsity or self.prune_ends):
            raise ConfigError("--prune_sparsity and --prune_ends need --prune=magnitude")


def layer_sparsities(model, spec):
    """{layer name: sparsity} for the layers to prune, so that all convolution and dense kernels
    of `model` together reach `spec.sparsity` (see the module docstring)."""
    layers = _kernel_layers(model.layers)
    kept = _dense_kernel_weights(model.layers)
    pruned = pruned_layers(layers, spec, kept)
    rate = _average_rate(spec, layers, pruned, kept)
    if rate >= 1.0:
        ends_dense = len(pruned) < len(layers)
        dense = " and ".join(part for part, present in (("the first and last layers", ends_dense),
                                                        ("the depthwise kernels", kept)) if present)
        most = math.floor(100 * _MAX_LAYER_RATE * _size(pruned) / (_size(layers) + kept)) / 100
        fixes = (["drop --noprune_ends"] if spec.prune_ends is False else []) + (
            [f"ask for at most {most:g}"] if most > 0 else [])
        raise ConfigError(f"--prune_sparsity={spec.sparsity} cannot be reached with {dense} "
                          f"dense (the others would need {rate:.3f})"
                          + (f": {', or '.join(fixes)}" if fixes else ""))
    if spec.allocation == "uniform":
        return {layer.name: rate for layer in pruned}
    return _global_rates([layer.kernel.numpy() for layer in pruned],
                         [layer.name for layer in pruned], rate)


def describe_allocation(model, spec, shown=3):
    """One line saying how `layer_sparsities` shares `spec.sparsity` among `model`'s layers: the
    rates, the layers held at the cap (a layer there keeps about 1 weight in 100: the smallest
    first, since they keep the fewest) and what stays unpruned, so a user sees it before
    training."""
    rates = layer_sparsities(model, spec)
    layers, kept = _kernel_layers(model.layers), _dense_kernel_weights(model.layers)
    count = f"{len(rates)} layer{'s' if len(rates) > 1 else ''}"
    line = f"pruning {spec.sparsity:g} of all kernel weights, {spec.allocation} allocation over "
    if spec.allocation == "uniform":
        line += f"{count}, each at {next(iter(rates.values())):.3f}"
    else:
        line += f"{count}: rates {rate_range(rates)}"
        pruned = [model.get_layer(name) for name in rates]
        cap = _layer_cap(_average_rate(spec, layers, pruned, kept))
        capped = sorted((layer for layer in pruned if rates[layer.name] >= cap - 1e-6),
                        key=lambda layer: _size([layer]))
        if capped:
            more = f" (+{len(capped) - shown} more)" if len(capped) > shown else ""
            line += (f"; at the {cap:.3f} cap: "
                     f"{', '.join(layer.name for layer in capped[:shown])}{more}")
    unpruned = [layer.name for layer in layers if layer.name not in rates]
    if unpruned:
        line += f"; left unpruned: {', '.join(unpruned)}"
    elif spec.prune_ends is None and len(layers) >= 3:
        line += ("; the first and last layers are pruned too (the others alone could not reach "
                 "the target)")
    if kept:
        line += (f"; the depthwise kernels stay whole ({kept / (_size(layers) + kept):.1%} of the "
                 f"kernel weights)")
    return line


def rate_range(rates):
    """'0.250 (name) to 0.990 (name)': the least and most pruned of {layer name: rate}."""
    low, high = min(rates, key=rates.get), max(rates, key=rates.get)
    return f"{rates[low]:.3f} ({low}) to {rates[high]:.3f} ({high})"


def _kernel_layers(layers):
    """The convolution and dense layers among `layers` that pruning may prune, in order."""
    return [layer for layer in layers if isinstance(layer, _PRUNABLE)]


def _average_rate(spec, layers, pruned, kept):
    """The rate the `pruned` layers need on average so that all kernel weights (those of
    `layers` and the `kept` dense ones) reach `spec.sparsity`."""
    return spec.sparsity * (_size(layers) + kept) / _size(pruned)


def _size(layers):
    """How many kernel weights `layers` hold together."""
    return sum(layer.kernel.shape.num_elements() for layer in layers)


def _layer_cap(rate):
    """The most any one layer is pruned when the pruned layers need `rate` on average."""
    return max(_MAX_LAYER_RATE, rate)


def _dense_kernel_weights(layers):
    """How many kernel weights of `layers` pruning keeps dense (`_DENSE_KERNELS`)."""
    return sum(getattr(layer, name).shape.num_elements() for layer in layers
               for kind, names in _DENSE_KERNELS.items() if isinstance(layer, kind)
               for name in names)


def pruned_layers(layers, spec, kept=0):
    """The kernel layers to prune: all of them, or all but the first and last. Unset
    (`prune_ends` None), the ends stay dense unless the others would then need a rate above
    `_MAX_LAYER_RATE` (a network whose first layer holds most weights, such as an MLP). `kept`:
    the model's kernel weights that stay dense whatever the choice (depthwise kernels)."""
    if not layers:
        raise ConfigError("--prune=magnitude: the model has no convolution or dense layer to "
                          "prune")
    if spec.prune_ends is False and len(layers) < 3:
        raise ConfigError(f"--noprune_ends leaves nothing to prune: the model has "
                          f"{len(layers)} convolution or dense layer(s), all of them ends; drop "
                          f"--noprune_ends")
    if spec.prune_ends or len(layers) < 3:
        return layers
    inner = layers[1:-1]
    if spec.prune_ends is None and _average_rate(spec, layers, inner, kept) > _MAX_LAYER_RATE:
        return layers
    return inner


def _global_rates(kernels, names, rate):
    """Per-layer rates from one magnitude threshold over all `kernels`, so that `rate` of their
    weights together fall below it: large layers, whose weights are small, give more. No layer
    goes above `_MAX_LAYER_RATE` (or `rate`, if higher): a layer the threshold would empty is
    held there and the threshold is taken again over the others for the zeros left."""
    cap = _layer_cap(rate)
    magnitudes = [np.abs(kernel).ravel() for kernel in kernels]
    sizes = np.array([m.size for m in magnitudes])
    capped = np.zeros(len(kernels), bool)
    while True:
        zeros_left = rate * sizes.sum() - cap * sizes[capped].sum()
        free = np.sort(np.concatenate([m for m, held in zip(magnitudes, capped) if not held]))
        threshold = free[min(int(round(zeros_left)), free.size - 1)]
        rates = np.array([cap if held else np.mean(m < threshold)
                          for m, held in zip(magnitudes, capped)])
        over = (rates > cap) & ~capped
        if not over.any():
            return {name: float(value) for name, value in zip(names, rates)}
        capped |= over


def layer_schedules(rates, spec, total_updates):
    """{layer name: `schedule_for` that layer's rate} for the rates of `layer_sparsities`."""
    return {name: schedule_for(dataclasses.replace(spec, sparsity=rate), total_updates)
            for name, rate in rates.items()}


def schedule_for(spec, total_updates):
    """The TF-MOT schedule over `total_updates` student updates.

    polynomial: from 0 to the target over the first `spec.ramp` of the updates (the rest recover
    at the target); constant: the target from the first update. Masks update 100 times a run.
    """
    frequency = max(1, total_updates // 100)
    if spec.schedule == "constant":
        return _sparsity.ConstantSparsity(spec.sparsity, begin_step=0, frequency=frequency)
    end_step = max(1, int(spec.ramp * total_updates))
    return _sparsity.PolynomialDecay(0.0, spec.sparsity, begin_step=0, end_step=end_step,
                                     frequency=min(frequency, end_step))


def prune_magnitude(model, spec, total_updates):
    """A copy of `model` whose layers to prune are pruning-wrapped, ready to run."""
    schedules = layer_schedules(layer_sparsities(model, spec), spec, total_updates)

    def wrap(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if layer.name in schedules:
            return _sparsity.prune_low_magnitude(copy, pruning_schedule=schedules[layer.name])
        return copy

    pruned = keras.models.clone_model(model, clone_function=wrap)
    _copy_into_wrappers(model, pruned)
    for wrapper in wrappers(pruned):
        wrapper.pruning_step.assign(0)  # what UpdatePruningStep would do at train begin
    return pruned


def _copy_into_wrappers(model, pruned):
    names = {layer.name for layer in pruned.layers}
    for layer in model.layers:
        if not layer.weights:
            continue
        wrapped = f"prune_low_magnitude_{layer.name}"
        target = pruned.get_layer(wrapped if wrapped in names else layer.name)
        inner = getattr(target, "layer", target)
        inner.set_weights(layer.get_weights())


def magnitude_mask(kernel, sparsity):
    """1.0 where |kernel| is above its `sparsity` quantile, else 0.0 (graph ops; ties at the
    threshold are pruned, so existing zeros go first)."""
    magnitudes = tf.reshape(tf.abs(kernel), [-1])
    count = tf.cast(tf.round(tf.cast(sparsity, tf.float32) * tf.cast(tf.size(magnitudes),
                                                                      tf.float32)), tf.int32)
    threshold = tf.gather(tf.sort(magnitudes), tf.maximum(count - 1, 0))
    return tf.cast(tf.logical_or(tf.abs(kernel) > threshold, count == 0), kernel.dtype)


def prune_once(model, spec):
    """Zeroes, in place, the smallest kernel weights of `model`'s layers at the per-layer rates
    `layer_sparsities` gives for `spec`: magnitude pruning in one shot, without any training (the
    pruning schemes' no-training baseline)."""
    for name, rate in layer_sparsities(model, spec).items():
        kernel = model.get_layer(name).kernel
        kernel.assign(kernel * magnitude_mask(kernel, rate))
    return model


def qat_kernels(qat_model, names):
    """{layer name: stored kernel variable} of a QAT model's layers named in `names`."""
    return {name: quantize.stored_kernel(quantize.qat_layer(qat_model, name)) for name in names}


def make_gradual_pruner(qat_model, rates, spec, total_updates, counter):
    """A function that, after each student update, zeroes the smallest weights of every kernel
    named in `rates` (`layer_sparsities` of the float model) at the sparsity its schedule gives
    for `counter` (student updates so far): magnitude pruning inside a QAT model, which TF-MOT's
    pruning wrappers cannot wrap.

    Masks are recomputed from magnitudes every update rather than stored, so a resumed run goes
    on exactly from the checkpoint; a pruned weight moved by one Adam step (~lr) stays far below
    the kept ones and is zeroed again.
    """
    kernels = qat_kernels(qat_model, rates)
    schedules = layer_schedules(rates, spec, total_updates)

    def prune_step():
        step = tf.cast(counter, tf.int64)
        for name, kernel in kernels.items():
            sparsity = schedules[name](step)[1]
            kernel.assign(kernel * magnitude_mask(kernel, sparsity))

    return prune_step


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


def layer_sparsity(model, spec):
    """{layer name: fraction of zeros} of the layers `spec` prunes (TensorBoard, report.json):
    the mask of each pruning wrapper, or the stored kernel of each QAT-wrapped convolution or
    dense layer (pruned by `make_gradual_pruner`; the layers it leaves whole are wrapped too)."""
    inner = [getattr(layer, "layer", layer) for layer in model.layers]
    layers = _kernel_layers(inner)
    pruned = {layer.name for layer in pruned_layers(layers, spec, _dense_kernel_weights(inner))}
    result = {}
    for layer in model.layers:
        if isinstance(layer, PruneLowMagnitude):
            masks = [mask.numpy() for _, mask, _ in layer.pruning_vars]
            result[layer.layer.name] = float(1.0 - np.mean(np.concatenate(
                [mask.ravel() for mask in masks])))
        elif getattr(layer, "layer", None) in layers and layer.layer.name in pruned:
            result[layer.layer.name] = float(np.mean(quantize.stored_kernel(layer).numpy() == 0))
    return result
