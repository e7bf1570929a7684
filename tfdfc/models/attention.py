"""Naming convention for attention-transfer points, and multi-output views of a classifier.

Builders name the activation at each attention point `attention_<i>` (the layer just before a
spatial down-sampling: a WRN group output, a LeNet conv activation). The name survives cloning and
TF-MOT wrapping (which prefixes it, e.g. `quant_attention_0`), so a teacher loaded from disk and a
wrapped student expose the same points without any custom layer.
"""

import re

from tfdfc.keras_compat import keras

ATTENTION_PATTERN = re.compile(r"(?:.*_)?attention_(\d+)")


def attention_name(index):
    """Name of the `index`-th attention point."""
    return f"attention_{index}"


def attention_layers(model):
    """Layers of `model` that are attention points, in index order."""
    found = []
    for layer in model.layers:
        match = ATTENTION_PATTERN.fullmatch(layer.name)
        if match:
            found.append((int(match.group(1)), layer))
    return [layer for _, layer in sorted(found, key=lambda pair: pair[0])]


def with_attention_outputs(model, use_attention=True):
    """A model with the same weights returning `[logits, attention_0, attention_1, ...]`.

    With `use_attention=False`, or when `model` has no attention points, it returns `[logits]`.
    """
    points = attention_layers(model) if use_attention else []
    outputs = [model.outputs[0]] + [layer.output for layer in points]
    return keras.Model(model.inputs, outputs, name=f"{model.name}_with_attention")
