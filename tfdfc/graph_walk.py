"""A Functional model's graph run again, layer call by layer call, with the calls substituted.

flatten.py (nested models inlined), fold.py (batch norms folded into their convolutions) and
kernel_split.py (separable convolutions and unfused activations split) rebuild a model as a new
graph of copied layers: they walk the original's nodes in depth order, feed each node the new
tensors its inputs became, and choose what the node's layer call becomes. This module is that
walk; the choice is theirs.
"""

from tfdfc.keras_compat import keras, tf


def new_inputs(model):
    """Fresh `keras.Input`s shaped, typed and named like `model`'s inputs."""
    return [keras.Input(shape=tuple(reference.shape[1:]), dtype=reference.dtype,
                        name=reference.name.split(":")[0]) for reference in model.inputs]


def run(model, inputs, call):
    """`model`'s outputs (one tensor, or a list) computed from `inputs` by replaying its graph,
    every layer call made by `call(layer, args, kwargs)` instead; `call` may return one of its
    arguments to drop the layer. Nodes not fed from `inputs` (a shared layer's calls in other
    graphs) are skipped."""
    usage = model._tensor_usage_count  # pylint: disable=protected-access
    tensors = {}  # tensor id -> one copy of its new value per consumer (map_arguments pops them)
    for reference, value in zip(model.inputs, inputs):
        key = str(id(reference))
        tensors[key] = [value] * usage[key]
    for depth in sorted(model._nodes_by_depth, reverse=True):  # pylint: disable=protected-access
        for node in model._nodes_by_depth[depth]:  # pylint: disable=protected-access
            if node.is_input or any(key not in tensors for key in node.flat_input_ids):
                continue
            args, kwargs = node.map_arguments(tensors)
            outputs = call(node.layer, args, kwargs)
            for key, value in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                tensors[key] = [value] * usage[key]
    results = [tensors[str(id(output))].pop() for output in model.outputs]
    return results[0] if len(results) == 1 else results
