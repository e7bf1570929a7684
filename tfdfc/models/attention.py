"""Naming convention for attention-transfer points, and multi-output views of a classifier.

Builders name the activation at each attention point `attention_<i>` (the layer just before a
spatial down-sampling: a WRN group output, a LeNet conv activation). The name survives cloning and
TF-MOT wrapping (which prefixes it, e.g. `quant_attention_0`), so a teacher loaded from disk and a
wrapped student expose the same points without any custom layer.

A user's model has no such names. `inferred_points` finds the same places in any model: the last
layer at each spatial size of its feature maps, before the size changes (padding layers, whose
borders are zeros, are skipped, and so is every layer before the first one with weights: a
leading Rescaling or Normalization gives the input image itself, the same in every student).
A student of the teacher's architecture (QAT, pruning, the teacher cloned) has layers of the
same names, wrapped or not, so the points line up by name. `check_attention_points` decides
whether a teacher and student can be compared there, before a run writes anything.
"""

import re

from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras

ATTENTION_PATTERN = re.compile(r"(?:.*_)?attention_(\d+)")


def attention_name(index):
    """Name of the `index`-th attention point."""
    return f"attention_{index}"


_WRAPPER_PREFIXES = ("", "quant_", "prune_low_magnitude_")
_GLOBAL_POOLS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)


def inferred_points(model, final=False):
    """Names of `model`'s layers that close each spatial size of its feature maps (see above),
    in model order; [] for a model without 4-D feature maps. 1x1 maps are skipped (their
    attention map normalises to a constant), except with `final`: then the map the head pools
    (`_pooled_map`) ends the list if it is not in it yet, as when a network shrinks its images
    to 1x1 (a MobileNetV2 at 32x32). Feature-map distillation compares its channels;
    attention transfer there adds nothing."""
    closing, size, learned = [], None, False
    for layer in model.layers:
        shape = layer.output.shape if hasattr(layer, "output") else None
        learned = learned or _has_kernel(getattr(layer, "layer", layer))  # unwrapped
        if (not learned or isinstance(layer, (keras.layers.InputLayer, keras.layers.ZeroPadding2D))
                or shape is None or len(shape) != 4 or tuple(shape[1:3]) == (1, 1)):
            continue
        if tuple(shape[1:3]) != size:
            closing.append(None)
            size = tuple(shape[1:3])
        closing[-1] = layer.name
    pooled = _pooled_map(model, closing[-1]) if final and closing else None
    return closing + [pooled] if pooled and pooled not in closing else closing


def _has_kernel(layer):
    return any(getattr(layer, name, None) is not None
               for name in ("kernel", "depthwise_kernel", "pointwise_kernel"))


def _pooled_map(model, last_point):
    """Name of the layer whose 4-D output the head pools, or None: the input of the last global
    pooling after `last_point` (squeeze-excite blocks pool before the head's), else of the
    first Flatten after it."""
    names = [layer.name for layer in model.layers]
    after = model.layers[names.index(last_point) + 1:]
    heads = ([layer for layer in after if isinstance(layer, _GLOBAL_POOLS)][-1:]
             or [layer for layer in after if isinstance(layer, keras.layers.Flatten)][:1])
    if not heads:
        return None
    source = next((layer for layer in model.layers
                   if getattr(layer, "output", None) is heads[0].input), None)
    return source.name if source is not None and len(source.output.shape) == 4 else None


def attention_layers(model, names=None):
    """Layers of `model` that are attention points, in index order; with `names` (inferred
    points of a teacher of the same architecture), the layers of those names, TF-MOT wrappers
    included, or None if one is missing."""
    if names is not None:
        by_name = {layer.name: layer for layer in model.layers}
        found = [next((by_name[prefix + name] for prefix in _WRAPPER_PREFIXES
                       if prefix + name in by_name), None) for name in names]
        return None if None in found else found
    found = []
    for layer in model.layers:
        match = ATTENTION_PATTERN.fullmatch(layer.name)
        if match:
            found.append((int(match.group(1)), layer))
    return [layer for _, layer in sorted(found, key=lambda pair: pair[0])]


def with_attention_outputs(model, use_attention=True, names=None):
    """A model with the same weights returning `[logits, attention_0, attention_1, ...]` (the
    points named `names`, if given: see `attention_layers`).

    With `use_attention=False`, or when `model` has no attention points, it returns `[logits]`.
    """
    points = (attention_layers(model, names) or []) if use_attention else []
    outputs = [model.outputs[0]] + [layer.output for layer in points]
    return keras.Model(model.inputs, outputs, name=f"{model.name}_with_attention")


def check_attention_points(teacher, student, train, log=print):
    """(whether attention transfer can run, the inferred point names or None) for TrainConfig
    `train`; raises if the two networks' points do not line up (or, for feature-map
    distillation, differ in shape)."""
    if train.attention_weight == 0 and train.feature_weight == 0:
        return False, None
    teacher_points = attention_layers(teacher)
    student_points = attention_layers(student)
    if not teacher_points and train.attention_points.startswith("inferred"):
        names = inferred_points(teacher, final=train.attention_points == "inferred_final")
        student_points = attention_layers(student, names) if names else None
        if student_points is not None:
            _check_feature_shapes(attention_layers(teacher, names), student_points, train)
            log(f"attention transfer at {len(names)} inferred points: {', '.join(names)}")
            return True, names
        log("attention transfer off: --attention_points=inferred needs a teacher with feature "
            "maps and a student of its architecture")
        return False, None
    if not teacher_points:
        log("teacher has no attention points (layers named attention_<i>): attention transfer off")
        return False, None
    teacher_shapes = [tuple(layer.output.shape[1:3]) for layer in teacher_points]
    student_shapes = [tuple(layer.output.shape[1:3]) for layer in student_points]
    if teacher_shapes != student_shapes:
        raise ConfigError(
            f"attention transfer needs matching attention points: teacher {teacher_shapes}, "
            f"student {student_shapes}. Pick a student of the same spatial layout, or set "
            "--attention_weight=0")
    _check_feature_shapes(teacher_points, student_points, train)
    return True, None


def _check_feature_shapes(teacher_points, student_points, train):
    if train.feature_weight == 0:
        return
    teacher_shapes = [tuple(layer.output.shape[1:]) for layer in teacher_points]
    student_shapes = [tuple(layer.output.shape[1:]) for layer in student_points]
    if teacher_shapes != student_shapes:
        raise ConfigError(
            f"--feature_weight needs feature maps of the teacher's shapes at the attention "
            f"points: teacher {teacher_shapes}, student {student_shapes}. Use a student of the "
            "teacher's widths, or set --feature_weight=0")
