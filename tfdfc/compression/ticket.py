"""Lottery tickets: a sparse mask found *with* data, then trained data-free.

`find` runs iterative magnitude pruning (Frankle & Carbin 2018, "reset" style, as the paper
follows): train with SGD, remove `prune_fraction` of the remaining weights of each prunable
kernel by magnitude, reset the survivors to their original initialisation, repeat. The ticket
file (.npz) holds the architecture, the masks and the original initial weights.

Decisions where the paper is silent: pruning is layer-wise (each kernel loses the same fraction);
prunable kernels are every convolution and dense kernel except the output layer's (the paper
prunes WRN convolutions only, which hold nearly all of its weights; on LeNet-5 the dense layers
do); the first convolution is pruned too.
"""

import dataclasses
import json
import os
import zipfile

import numpy as np

from tfdfc import artifacts, models
from tfdfc.errors import ConfigError, TicketError
from tfdfc.keras_compat import keras, tf

_KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)


@dataclasses.dataclass(frozen=True)
class TicketConfig:
    """How to find a ticket; `find_ticket` flags map onto these fields."""

    data: str = "mnist5k"
    architecture: str = "lenet5"
    rounds: int = 5
    round_steps: int = 1000
    prune_fraction: float = 0.2
    learning_rate: float = 0.03
    momentum: float = 0.9
    batch_size: int = 128
    seed: int = 0
    output: str = "exported/tickets/lenet5_mnist5k.npz"

    def validate(self):
        """Raises ConfigError for values that cannot work."""
        if self.rounds < 1 or self.round_steps < 1 or self.batch_size < 1:
            raise ConfigError("rounds, round_steps and batch_size must be positive")
        if not 0.0 < self.prune_fraction < 1.0:
            raise ConfigError(f"prune_fraction must be in (0, 1), got {self.prune_fraction}")


def prunable_layers(model):
    """Convolution and dense layers whose kernels a ticket masks (all but the output layer)."""
    layers = [layer for layer in model.layers if isinstance(layer, _KERNEL_LAYERS)]
    return layers[:-1]


def _prune_round(model, masks, fraction):
    """Removes `fraction` of each kernel's surviving weights, smallest magnitudes first."""
    for layer in prunable_layers(model):
        kernel, mask = np.abs(layer.kernel.numpy()), masks[layer.name]
        surviving = kernel[mask > 0]
        count = int(round(fraction * surviving.size))
        if count == 0:
            continue
        threshold = np.sort(surviving)[count - 1]
        masks[layer.name] = np.where((kernel > threshold) & (mask > 0), 1.0, 0.0).astype(
            np.float32)


def apply_masks(model, masks):
    """kernel *= mask for every masked layer."""
    for layer in prunable_layers(model):
        layer.kernel.assign(layer.kernel * masks[layer.name])


def _train_round(model, masks, dataset, config, log):
    optimizer = keras.optimizers.SGD(config.learning_rate, momentum=config.momentum)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    mask_pairs = [(layer.kernel, tf.constant(masks[layer.name]))
                  for layer in prunable_layers(model)]

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
        for kernel, mask in mask_pairs:
            kernel.assign(kernel * mask)
        return loss

    batches = (tf.data.Dataset.from_tensor_slices((dataset.x_train, dataset.y_train))
               .shuffle(len(dataset.x_train), seed=config.seed).repeat()
               .batch(config.batch_size, drop_remainder=True).take(config.round_steps))
    for images, labels in batches:
        loss = step(images, labels)
    return float(loss)


def find(config, dataset=None, log=print):
    """Finds a ticket by iterative magnitude pruning with data; writes and returns its path."""
    from tfdfc import data as data_lib, metrics  # pylint: disable=import-outside-toplevel
    config.validate()
    dataset = dataset or data_lib.load(config.data)
    keras.utils.set_random_seed(config.seed)
    model = models.build(config.architecture, dataset.input_shape, dataset.num_classes)
    initial = model.get_weights()
    masks = {layer.name: np.ones(layer.kernel.shape, np.float32)
             for layer in prunable_layers(model)}
    for round_index in range(1, config.rounds + 1):
        trained_fraction = kept_fraction(masks)
        loss = _train_round(model, masks, dataset, config, log)
        accuracy = metrics.keras_accuracy(model, dataset.x_test, dataset.y_test)
        _prune_round(model, masks, config.prune_fraction)
        model.set_weights(initial)  # reset to the original initialisation
        apply_masks(model, masks)
        log(f"round {round_index}/{config.rounds}: trained with {trained_fraction:.4f} of the "
            f"prunable weights: loss {loss:.4f}, accuracy {accuracy:.4f} (with data); pruned to "
            f"{kept_fraction(masks):.4f}")
    save(config.output, config.architecture, dataset, masks, initial)
    return config.output


def kept_fraction(masks):
    """Fraction of prunable weights the masks keep."""
    return float(sum(m.sum() for m in masks.values()) / sum(m.size for m in masks.values()))


def save(path, architecture, dataset, masks, initial):
    """Writes the ticket: architecture, shapes, masks and the original initial weights."""
    meta = {"architecture": architecture, "input_shape": list(dataset.input_shape),
            "num_classes": dataset.num_classes, "kept_fraction": kept_fraction(masks)}
    arrays = {f"mask/{name}": mask for name, mask in masks.items()}
    arrays.update({f"init/{index}": weight for index, weight in enumerate(initial)})
    with artifacts.atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, meta=json.dumps(meta), **arrays)


def load(path):
    """Reads a ticket file: (meta dict, {layer: mask}, [initial weights]).

    Raises:
      TicketError: missing or unreadable file.
    """
    if not os.path.isfile(path):
        raise TicketError(f"ticket file {path} not found: write one with python -m "
                          "tfdfc.find_ticket")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            meta = json.loads(str(arrays["meta"]))
            masks = {key[len("mask/"):]: arrays[key] for key in arrays.files
                     if key.startswith("mask/")}
            count = sum(1 for key in arrays.files if key.startswith("init/"))
            initial = [arrays[f"init/{index}"] for index in range(count)]
    except KeyError as error:  # an .npz without a ticket's arrays
        raise TicketError(f"{path} is not a ticket file written by find_ticket: an .npz "
                          "without a ticket's metadata") from error
    # Not numpy's own message, whose advice on pickles misleads here.
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise TicketError(f"{path} is not a ticket file written by find_ticket: not a "
                          "readable .npz") from error
    return meta, masks, initial


def build_student(path, teacher, reinit):
    """The ticket's architecture with its original init (or a fresh one if `reinit`) and mask.

    Raises:
      TicketError: the ticket does not fit the teacher's input or classes.
    """
    meta, masks, initial = load(path)
    input_shape = tuple(teacher.inputs[0].shape[1:])
    num_classes = int(teacher.outputs[0].shape[-1])
    if tuple(meta["input_shape"]) != input_shape or meta["num_classes"] != num_classes:
        raise TicketError(f"ticket {path} was found for inputs {tuple(meta['input_shape'])} and "
                          f"{meta['num_classes']} classes; the teacher has {input_shape} and "
                          f"{num_classes}")
    student = models.build(meta["architecture"], input_shape, num_classes)
    if not reinit:  # the control keeps the fresh draw (pipeline.init_seed seeds it apart)
        student.set_weights(initial)
    apply_masks(student, masks)
    return student, masks


def make_mask_hook(student, masks):
    """A function re-applying the fixed masks (after each student update)."""
    pairs = [(layer.kernel, tf.constant(masks[layer.name])) for layer in prunable_layers(student)]

    def keep_mask():
        for kernel, mask in pairs:
            kernel.assign(kernel * mask)

    return keep_mask
