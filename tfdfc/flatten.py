"""Nested models made flat: one Functional graph of plain layers with the same weights, without
the layers that do nothing at inference.

The usual transfer-learning teacher is a Functional or Sequential model whose first "layer" is a
whole base network (e.g. `keras.applications.MobileNetV2(include_top=False)`) followed by a new
head. TF-MOT quantizes and prunes flat models only, and tfdfc's own graph walks (which batch
norm follows which convolution, which layer consumes which) need every layer at the top level,
so a teacher is flattened once when it is loaded.

Every layer is rebuilt from its config rather than reused: a reused layer would belong to two
graphs, and Keras then answers "which layer feeds this one" from the first graph, not the new one.
Models saved apart and combined often repeat layer names ("dense" in the base and the head): a
copy whose name is taken gets its nested model's name in front, since one graph needs unique
names.

Image augmentation layers (RandomFlip, RandomRotation, ...) and Identity return their input
unchanged at inference, where the teacher runs, but a student runs in training mode while it
learns, where augmentation would transform the generated images the teacher saw unchanged (and
the exported student would carry layers that do nothing). So the teacher loses them here.
"""

from tfdfc import graph_walk
from tfdfc.errors import UserInputError
from tfdfc.keras_compat import keras, tf


# Layers that return their input unchanged at inference (RandomCrop, which crops there, and
# the resizing ones, which are not augmentation, are not among them).
INFERENCE_NO_OPS = tuple(getattr(keras.layers, name) for name in (
    "Identity", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
    "RandomContrast", "RandomBrightness", "RandomHeight", "RandomWidth")
    if hasattr(keras.layers, name))


def is_nested(model):
    """Whether any layer of `model` is itself a model."""
    return any(isinstance(layer, keras.Model) for layer in model.layers)


def has_inference_no_ops(model):
    """Whether `model` (nested models included) has a layer that does nothing at inference."""
    return any(has_inference_no_ops(layer) if isinstance(layer, keras.Model)
               else isinstance(layer, INFERENCE_NO_OPS) for layer in model.layers)


def flatten(model):
    """`model` itself when it has no nested model and no layer that does nothing at inference,
    else a flat Functional copy of it without those layers.

    Raises:
      UserInputError: a nested model that is not a graph of layers (a subclassed model).
    """
    if not is_nested(model) and not has_inference_no_ops(model):
        return model
    inputs = graph_walk.new_inputs(model)[0]
    copies = {}
    outputs = _inline(model, [inputs], copies)
    flat = keras.Model(inputs, outputs, name=model.name)
    for original, copy in copies.values():
        copy.set_weights(original.get_weights())
    return flat


def _inline(model, inputs, copies):
    """Calls copies of `model`'s layers on `inputs`; nested models are inlined recursively."""
    if not getattr(model, "_is_graph_network", False):
        raise UserInputError(
            f"nested model {model.name!r} is a subclassed model, which tfdfc cannot take apart: "
            "rebuild it as a Functional or Sequential model")
    return graph_walk.run(model, inputs,
                          lambda layer, args, kwargs: _call(layer, args, kwargs, copies, model))


def _call(layer, args, kwargs, copies, owner):
    if isinstance(layer, keras.Model):
        return _inline(layer, tf.nest.flatten(args[0]), copies)
    if isinstance(layer, INFERENCE_NO_OPS):
        return args[0]  # dropped: its consumers take its input
    if id(layer) not in copies:  # a layer called twice stays one (shared) layer
        config = layer.get_config()
        config["name"] = _free_name(config["name"], owner.name,
                                    {copy.name for _, copy in copies.values()})
        copies[id(layer)] = (layer, layer.__class__.from_config(config))
    return copies[id(layer)][1](*args, **kwargs)


def _free_name(name, owner_name, taken):
    """`name`, or `<owner_name>_<name>` (then `_2`, `_3`, ...) when another copy has it."""
    if name not in taken:
        return name
    candidate, count = f"{owner_name}_{name}", 2
    while candidate in taken:
        candidate, count = f"{owner_name}_{name}_{count}", count + 1
    return candidate
