"""Network slimming, the paper's channel pruning (Sec. 3.3), trained by the data-free loop.

The student is built with channel scales (models/channels.py): batch norm re-parameterised as
y = s * (x_hat + b), the scales of one residual stream shared. The student loss gains

    R_p = sum_l (gamma / width_l) * ||s_l||_1 + lambda * sum ||w||^2,

where width_l is the spatial width of the feature map s_l scales (1 for dense layers), and the
L2 term covers every trainable weight but the scales (kernels, biases and batch-norm shifts b;
the paper names W and b). With `warmup_steps`, gamma and lambda ramp linearly from 0 over that
many student updates (the paper does not give the length). After training, channels with
|s| < threshold are removed (the paper's t_s; no fine-tuning afterwards, as the paper appears
to do) and a physically smaller network is rebuilt with the scales folded into the weights: a
plain model of the same family, with standard batch norms, whose outputs equal the thresholded
network's. A layer keeps at least its largest-scale channel.

Decisions where the paper is silent: the stem's stream and every inner batch norm have scales
too; LeNet-5 (no batch norm) gets a scale after each hidden convolution and dense layer, the
layer's bias playing the part of b. The paper starts a pruned student from the pre-trained
weights, and so does `student_init=teacher`: every scale starts at 1, a batch norm's shift
becomes b = beta / gamma, and its gain gamma moves into the input channels of the layers that
read it (relu(gamma * z) = gamma * relu(z) for gamma > 0), so the student's outputs equal the
teacher's exactly. A teacher batch norm with a gain <= 0 cannot be moved that way and is refused
(use --student_init=random).
"""

import dataclasses

import numpy as np

from tfdfc import models
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras, tf, variable_name
from tfdfc.models.channels import ChannelScale, plan_of


@dataclasses.dataclass(frozen=True)
class SlimSpec:
    """`--slim_l1_gamma`, `--slim_weight_decay`, `--slim_threshold`, `--slim_warmup_steps` of `--prune=slim`."""

    l1_gamma: float = 2e-3  # Table 1
    weight_decay: float = 1e-5  # lambda; Table 1 sweeps 1e-5 .. 6e-5
    threshold: float = 0.1  # t_s
    warmup_steps: int = 0  # student updates; 0: no warm-up

    def validate(self):
        """Raises ConfigError for values that cannot work."""
        if self.l1_gamma < 0 or self.weight_decay < 0:
            raise ConfigError("--slim_l1_gamma and --slim_weight_decay must be >= 0")
        if self.threshold <= 0:
            raise ConfigError(f"--slim_threshold must be positive, got {self.threshold}")
        if self.warmup_steps < 0:
            raise ConfigError(f"--slim_warmup_steps must be >= 0, got {self.warmup_steps}")


def student_architecture(student, teacher):
    """The registry name of the slimmed student: `student`, or the teacher's for `same`."""
    name = student if student != "same" else models.registry_name(teacher)
    if name is None:
        raise ConfigError(
            f"--prune=slim rebuilds the student from the model registry, and the teacher "
            f"{teacher.name!r} is not a registry architecture: pass --student=<one of "
            f"{models.NAMES_HELP}>")
    return name


def build_student(architecture, teacher, init):
    """The student with channel scales; `init` is `random` or `teacher` (same architecture)."""
    student = models.build(architecture, tuple(teacher.inputs[0].shape[1:]),
                           int(teacher.outputs[0].shape[-1]), channel_scales=True)
    if init == "teacher":
        _copy_by_name(teacher, student)
    return student


def _copy_by_name(source, target):
    """Copies `source`'s weights into the scaled `target`, moving batch-norm gains out of the
    batch norms (see the module docstring)."""
    gains = {}
    for layer in target.layers:
        if not layer.weights or isinstance(layer, ChannelScale):
            continue
        try:
            values = source.get_layer(layer.name).get_weights()
        except ValueError:
            values = None
        if isinstance(layer, keras.layers.BatchNormalization) and values and len(values) == 4:
            gains[layer.name], values = _split_gain(layer.name, values)
        if values is None or [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            raise ConfigError(
                f"--prune=slim cannot start from the teacher's weights: layer {layer.name!r} "
                "has no counterpart of the same shape; use --student_init=random")
        layer.set_weights(values)
    for name, channels in plan_of(target).layers.items():
        if channels.input_norm in gains:
            kernel = target.get_layer(name).kernel
            kernel.assign(kernel.numpy() * gains[channels.input_norm][:, None])


def _split_gain(name, values):
    """gamma, and the [b = beta / gamma, mean, variance] of a shift-only batch norm."""
    gamma, beta, mean, variance = values
    if np.any(gamma <= 0):
        raise ConfigError(
            f"--prune=slim cannot start from the teacher's weights: batch norm {name!r} has "
            f"{int(np.sum(gamma <= 0))} gain(s) <= 0, which cannot move past its ReLU; use "
            "--student_init=random")
    return gamma, [beta / gamma, mean, variance]


def scale_layers(model):
    """{channel group: its ChannelScale layer} of a student built with channel scales."""
    plan = plan_of(model)
    return {group: model.get_layer(name) for group, name in plan.scales.items()}


def make_regularizer(model, spec, update_counter):
    """A function returning R_p for `model`; `update_counter` (the student optimizer's
    iterations) drives the warm-up."""
    plan = plan_of(model)
    scales = [(layer.scale, spec.l1_gamma / plan.feature_width[group])
              for group, layer in scale_layers(model).items()]
    scale_ids = {id(variable) for variable, _ in scales}
    decayed = [v for v in model.trainable_variables if id(v) not in scale_ids]

    def regularizer():
        ramp = tf.constant(1.0)
        if spec.warmup_steps:
            ramp = tf.minimum(1.0, tf.cast(update_counter, tf.float32) / spec.warmup_steps)
        l1 = tf.add_n([weight * tf.reduce_sum(tf.abs(scale)) for scale, weight in scales])
        l2 = tf.add_n([tf.reduce_sum(tf.square(variable)) for variable in decayed])
        return ramp * (l1 + spec.weight_decay * l2)

    return regularizer


def keep_masks(model, threshold):
    """{channel group: boolean mask of the channels with |s| >= threshold}; at least one kept."""
    masks = {}
    for group, layer in scale_layers(model).items():
        magnitude = np.abs(layer.scale.numpy())
        mask = magnitude >= threshold
        mask[np.argmax(magnitude)] = True
        masks[group] = mask
    return masks


def thresholded(model, threshold):
    """A copy of `model` whose scales below `threshold` are zero (what the rebuilt net equals)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for group, mask in keep_masks(model, threshold).items():
        layer = copy.get_layer(plan_of(model).scales[group])
        layer.scale.assign(np.where(mask, layer.scale.numpy(), 0.0))
    return copy


def cut(model, architecture, threshold):
    """The physically smaller plain model: pruned channels removed, scales folded in."""
    plan = plan_of(model)
    masks = keep_masks(model, threshold)
    scales = {group: layer.scale.numpy() for group, layer in scale_layers(model).items()}
    small = models.build(architecture, tuple(model.inputs[0].shape[1:]),
                         int(model.outputs[0].shape[-1]),
                         widths={group: int(mask.sum()) for group, mask in masks.items()})
    for name, channels in plan.layers.items():
        source = {variable_name(w.name): w.numpy() for w in model.get_layer(name).weights}
        in_mask = None
        if channels.input_group is not None:
            in_mask = np.tile(masks[channels.input_group], channels.input_repeat)
        out_group = channels.output_group
        values = _cut_layer(source, in_mask, masks.get(out_group), scales.get(out_group),
                            folds_scale=channels.scaled_output)
        target = small.get_layer(name)
        target.set_weights([values[variable_name(w.name)] for w in target.weights])
    return small


def _cut_layer(source, in_mask, out_mask, scale, folds_scale):
    """Sliced (and, where the scale acts directly, scale-folded) weights of one layer."""
    if "moving_mean" in source:  # batch norm: s * (x_hat + b) == BN(gamma=s, beta=s*b)
        beta = source["beta"]
        values = {"gamma": scale, "beta": scale * beta, "moving_mean": source["moving_mean"],
                  "moving_variance": source["moving_variance"]}
        return {key: value[out_mask] for key, value in values.items()}
    kernel, bias = source["kernel"], source.get("bias")
    if folds_scale:
        kernel = kernel * scale
        bias = None if bias is None else bias * scale
    if in_mask is not None:
        kernel = kernel[..., in_mask, :]
    if out_mask is not None:
        kernel = kernel[..., out_mask]
        bias = None if bias is None else bias[out_mask]
    return {"kernel": kernel} if bias is None else {"kernel": kernel, "bias": bias}


def channel_summary(model, threshold):
    """{group: [kept, total]} for the report."""
    return {group: [int(mask.sum()), int(mask.size)]
            for group, mask in keep_masks(model, threshold).items()}
