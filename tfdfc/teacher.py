"""Teachers: train one with data (the demo), or load and validate a user's trained classifier.

`load` accepts `.keras`, `.h5` and SavedModel directories, converts `.keras` and `.h5` files
saved by Keras 3 to tf-keras (`keras3_import`), refuses unsafe deserialisation unless asked, and
checks that the model is a tf-keras model with one fixed-shape image input and one output of
logits or softmax probabilities. `as_logits` strips a final softmax so the losses always
see logits.
"""

import dataclasses
import os
import time

import numpy as np

from tfdfc import artifacts
from tfdfc import keras3_import
from tfdfc.errors import TeacherError
from tfdfc.keras_compat import keras, tf
from tfdfc import models

# The file tf-keras writes into a SavedModel directory it saves (before TensorFlow 2.5 it kept
# the same metadata inside saved_model.pb); Keras 3's `model.export()` and `tf.saved_model.save`
# write it in neither.
KERAS_METADATA = "keras_metadata.pb"
_KERAS3_FIX = (
    "tfdfc needs a tf-keras (legacy Keras 2) model because TF-MOT cannot wrap Keras 3 models. "
    "Fix: save the Keras 3 model to a .keras file (`model.save('teacher.keras')`) and pass its "
    "path: tfdfc converts Keras 3 files of standard layers to tf-keras when it loads them")


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------

def load(path, safe_mode=True):
    """Loads and validates a classifier from `.keras`, `.h5` or a SavedModel directory.

    Args:
      path: the model file or SavedModel directory.
      safe_mode: refuse to deserialise code (Lambda layers) unless False.

    Returns:
      The tf-keras model, uncompiled (converted from Keras 3 if the file was saved by it).

    Raises:
      TeacherError: see `load_with_info`.
    """
    return load_with_info(path, safe_mode)[0]


def load_with_info(path, safe_mode=True):
    """`load`, also returning how the model was converted.

    Returns:
      (model, info): info is None for a tf-keras file, else `keras3_import.convert`'s dict:
      `converted_from` ("keras <version> .keras" or ".h5") and `max_abs_output_difference`.

    Raises:
      TeacherError: missing path, not a model, a Keras 3 model that cannot be converted, unsafe
        content, or a model whose input or output tfdfc cannot use.
    """
    if not os.path.exists(path):
        raise TeacherError(f"teacher not found: {path}")
    info = None
    if keras3_import.is_keras3_file(path):
        try:
            model, info = keras3_import.convert(path, safe_mode)
        except keras3_import.Keras3ImportError as error:
            raise TeacherError(str(error)) from error
    else:
        model = _load_any(path, safe_mode)
    model = standard_form(model)
    validate(model, source=path)
    return model, info


def _load_any(path, safe_mode):
    # tf-keras honours safe_mode only for .keras files; the scope extends it to .h5 and SavedModel.
    from tf_keras.src.saving import serialization_lib  # pylint: disable=import-outside-toplevel
    is_saved_model = os.path.isdir(path) and tf.saved_model.contains_saved_model(path)
    if not (path.endswith((".keras", ".h5")) or is_saved_model):
        raise TeacherError(
            f"{path} is not a model file: expected a .keras or .h5 file or a SavedModel directory")
    if is_saved_model and not _has_keras_metadata(path):
        # Refused before loading: tf-keras would first log two warnings about old SavedModels.
        raise TeacherError(f"{path} is a SavedModel without Keras metadata. {_KERAS3_FIX}")
    try:
        with serialization_lib.SafeModeScope(safe_mode):
            model = keras.models.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as error:  # Keras raises many types for a bad file; all mean the same here.
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "safe_mode" in str(error) or "unsafe" in str(error).lower():
            raise TeacherError(
                f"{path} holds code (a Lambda layer) that would run when loaded; refusing in "
                "safe mode. Load it only if you trust its source (--unsafe_load).") from error
        raise TeacherError(f"{path} could not be loaded as a Keras model: {message}") from error
    if not isinstance(model, keras.Model):
        raise TeacherError(f"{path} is a SavedModel without Keras metadata. {_KERAS3_FIX}")
    return model


def _has_keras_metadata(path):
    """Whether the SavedModel directory `path` holds tf-keras's metadata: its own file, or (as
    TensorFlow before 2.5 saved it) in the objects of saved_model.pb."""
    if os.path.exists(os.path.join(path, KERAS_METADATA)):
        return True
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        saved.ParseFromString(handle.read())
    return any(node.HasField("user_object") and node.user_object.metadata
               for graph in saved.meta_graphs for node in graph.object_graph_def.nodes)


def standard_form(model):
    """`model` as the rest of tfdfc takes a teacher: computing in float32, on images with a
    channel axis (`with_float32_compute`, `with_channel_axis`)."""
    return with_channel_axis(with_float32_compute(model))


def with_float32_compute(model):
    """A model saved with a half-precision dtype policy (trained with mixed_float16 on a GPU)
    rebuilt to compute in float32, with the same weights (mixed precision keeps them in float32
    anyway): TF-MOT's quantization wrappers refuse float16 layers, and the students, the
    generator and the exports all run in float32. Any other model (and a subclassed one, which
    has no config to rebuild from) is returned as it is."""
    if not getattr(model, "_is_graph_network", False) or not any(
            getattr(layer, "compute_dtype", None) in keras3_import.HALF_PRECISION
            for layer in model.submodules):  # nested models' layers too
        return model
    rebuilt = model.__class__.from_config(_float32_config(model.get_config()))
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def _float32_config(value):
    """A model config with every half-precision `dtype` (a name or a policy) made float32."""
    if isinstance(value, list):
        return [_float32_config(item) for item in value]
    if not isinstance(value, dict):
        return value
    result = {key: _float32_config(item) for key, item in value.items()}
    dtype = value.get("dtype")
    name = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    if name in keras3_import.HALF_PRECISION:
        result["dtype"] = "float32"
    return result


def with_channel_axis(model):
    """A classifier of one-channel images given as (height, width), as the Keras tutorials'
    MNIST and Fashion-MNIST models take them, as a classifier of (height, width, 1) images: a
    Reshape in front of it, the same outputs (the generator and the data give channels last).
    Any other model is returned as it is."""
    if not getattr(model, "_is_graph_network", False) or len(model.inputs or ()) != 1:
        return model
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 2 or None in shape:
        return model
    inputs = keras.Input(shape + (1,), name="image")
    names = {layer.name for layer in model.layers}
    name = next(f"channel_axis{suffix}" for suffix in ("", *range(2, len(names) + 2))
                if f"channel_axis{suffix}" not in names)
    outputs = model(keras.layers.Reshape(shape, name=name)(inputs))
    return keras.Model(inputs, outputs, name=model.name)


# Layers TensorFlow Lite's int8 converter fails on (GroupNormalization: its calibration stops
# in a BROADCAST_TO op), refused when the teacher is loaded rather than after training.
_NO_INT8_FILE = (keras.layers.GroupNormalization,)


def _count(number, noun):
    return f"{number} {noun}" + ("" if number == 1 else "s")


def validate(model, source="teacher"):
    """Checks that `model` is a tf-keras classifier on fixed-shape images.

    Raises:
      TeacherError: naming what is wrong and how to fix it.
    """
    if not isinstance(model, keras.Model):
        raise TeacherError(f"{source} is a {type(model).__module__}.{type(model).__name__}, "
                           f"not a tf-keras model. {_KERAS3_FIX}")
    if not model.inputs:  # a Sequential model never built on an input shape
        raise TeacherError(f"{source} has no input shape yet: give it one (keras.Input(shape) "
                           "as its first layer, or build it) before compressing it")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise TeacherError(f"{source} must have one input and one output, has "
                           f"{_count(len(model.inputs), 'input')} and "
                           f"{_count(len(model.outputs), 'output')}")
    for layer in model.layers:
        if isinstance(layer, _NO_INT8_FILE):
            raise TeacherError(
                f"{source}: layer {layer.name!r} ({type(layer).__name__}) cannot go into the "
                "full-integer TFLite file every run writes (the converter's int8 calibration "
                "fails on it): replace it with LayerNormalization or BatchNormalization")
    input_shape = tuple(model.inputs[0].shape[1:])
    if len(input_shape) != 3 or any(dim is None for dim in input_shape):
        raise TeacherError(
            f"{source} takes inputs of shape {input_shape}; tfdfc can only feed images of a fixed "
            "(height, width, channels) or (height, width) shape: rebuild the model with such an "
            "input shape")
    output_shape = tuple(model.outputs[0].shape[1:])
    if len(output_shape) != 1 or output_shape[0] is None or output_shape[0] < 2:
        raise TeacherError(
            f"{source} outputs shape {output_shape}; a classifier must output one vector of "
            ">= 2 class logits or probabilities per image")
    activation = _final_activation(model)
    if activation not in (None, "linear", "softmax"):
        raise TeacherError(
            f"{source} ends in a {activation!r} activation; its output must be logits (linear) "
            "or a softmax class distribution")


# Random images in the teacher's input space on which its logits must differ (`check_responds`).
RESPONSE_CHECK_IMAGES = 16


def check_responds(logits_model, space, source="teacher"):
    """Raises TeacherError when `logits_model` (logits, not probabilities, which saturate) gives
    non-finite logits, or the same class distribution for every input, on random images of
    `space`.

    Such a model (saved before it was trained, or with every unit dead) has nothing to teach, and
    the empty range of its outputs later becomes quantization parameters TFLite cannot run: the
    user learns it at once, not after training.

    Raises:
      TeacherError: naming the teacher and the spread of its logits.
    """
    shape = tuple(logits_model.inputs[0].shape[1:])
    noise = np.random.default_rng(0).standard_normal((RESPONSE_CHECK_IMAGES,) + shape)
    logits = np.asarray(logits_model(space.images(noise), training=False), np.float64)
    if not np.all(np.isfinite(logits)):
        raise TeacherError(f"{source} gives non-finite logits (NaN or inf) on random images in "
                           "its input space: check its weights")
    # Logits that move together for every class leave the class distribution as it was.
    spread = float(np.max(np.ptp(logits - logits.mean(axis=-1, keepdims=True), axis=0)))
    if spread <= 1e-6 * max(1.0, float(np.max(np.abs(logits)))):
        raise TeacherError(
            f"{source} gives the same class distribution for every input (its logits, less "
            f"their mean, differ by at most {spread:.1e} over {RESPONSE_CHECK_IMAGES} random "
            "images in its input space): it looks untrained or its units are all dead; train "
            "it, or load its weights, before compressing it")


def check_input_shape(model, input_shape, what="the data", role="the teacher"):
    """Raises TeacherError when `input_shape` differs from the image shape of the model (named
    `role` in the message)."""
    expected = tuple(model.inputs[0].shape[1:])
    if tuple(input_shape) != expected:
        raise TeacherError(f"{role} takes images of shape {expected}, but {what} has "
                           f"shape {tuple(input_shape)}")


def check_eval_set(model, eval_set, what, role="the teacher"):
    """Raises TeacherError when `eval_set`'s images are not of the model's (`role`'s) shape or
    a label of it is not one of the model's classes (`check_input_shape`, `check_labels`)."""
    check_input_shape(model, eval_set.input_shape, what, role)
    check_labels(int(model.outputs[0].shape[-1]), eval_set.y_test, what)


def check_labels(classes, labels, what="the data"):
    """Raises TeacherError when a label of `labels` is not one of a classifier's `classes`
    classes (0 to classes - 1): accuracy against such labels would mean nothing."""
    labels = np.asarray(labels)
    outside = labels[(labels < 0) | (labels >= classes)]
    if outside.size:
        raise TeacherError(
            f"{what} has {outside.size} labels outside the model's {classes} classes "
            f"(0 to {classes - 1}), e.g. {int(outside[0])}: give labels as class indices of "
            "the model's outputs")


def _final_activation(model):
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return "softmax"
    activation = getattr(last, "activation", None)
    if activation is None:
        return None
    return keras.activations.serialize(activation) if callable(activation) else str(activation)


def as_logits(model):
    """Returns `model` if it outputs logits, else a model of the same layers and weights that
    stops before the final softmax. A final layer with a softmax activation is made again,
    linear, from zero initialisers set to its weights: nothing else is copied and no random
    number is drawn, so each call is cheap for a large teacher and leaves the seeded
    initialisers that follow it (a student's) as they were."""
    if _final_activation(model) != "softmax":
        return model
    last = model.layers[-1]
    if isinstance(last, (keras.layers.Softmax, keras.layers.Activation)):
        return keras.Model(model.inputs, last.input, name=f"{model.name}_logits")
    config = last.get_config()
    config["activation"] = "linear"
    for key in config:
        if key.endswith("_initializer"):
            config[key] = "zeros"
    linear = last.__class__.from_config(config)
    outputs = linear(last.input)
    linear.set_weights(last.get_weights())
    return keras.Model(model.inputs, outputs, name=model.name)


# ---------------------------------------------------------------------------------------------
# Training a teacher with data
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """How to train a teacher; `train_teacher` flags map one to one onto these fields."""

    data: str = "mnist5k"
    architecture: str = "lenet5"
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    shift_augment: int = 2  # random translation in pixels; 0 disables augmentation
    flip_augment: bool = False  # random left-right flips (clothes, not digits)
    seed: int = 0
    output: str = "exported/teachers/lenet5_mnist5k.keras"


def train(config, dataset=None, log=print):
    """Trains a teacher with data, saves it atomically with a `<output>.json` report.

    Each epoch is validated on the set's validation split (none when it has none); the test
    split is measured once, at the end, and only reported.

    Returns:
      (model, test_accuracy)
    """
    from tfdfc import data as data_lib  # pylint: disable=import-outside-toplevel
    dataset = dataset or data_lib.load(config.data)
    if not len(dataset.x_train):
        raise data_lib.DataError(f"{config.data} has no x_train/y_train: a teacher needs "
                                 "training data")
    keras.utils.set_random_seed(config.seed)
    model = models.build(config.architecture, dataset.input_shape, dataset.num_classes)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.CosineDecay(
                config.learning_rate,
                config.epochs * int(np.ceil(len(dataset.x_train) / config.batch_size))),
            weight_decay=config.weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    validation = dataset.split("val") if len(dataset.y_val) else None
    started = time.time()
    history = model.fit(_training_pipeline(dataset, config), epochs=config.epochs,
                        verbose=2, validation_data=validation)
    # The last epoch's validation ran on the final weights: no second evaluation needed.
    val_accuracy = float(history.history["val_accuracy"][-1]) if validation else None
    train_seconds = time.time() - started
    _, accuracy = model.evaluate(*dataset.split("test"), verbose=0)
    log(f"teacher {config.architecture} on {dataset.name}: test accuracy {accuracy:.4f}"
        + (f", validation accuracy {val_accuracy:.4f}" if validation else "")
        + f"; trained in {train_seconds / 60:.1f} min")
    artifacts.save_keras_model(model, config.output)
    artifacts.write_json(config.output + ".json", {
        "architecture": config.architecture, "data": dataset.name,
        "test_accuracy": float(accuracy), "val_accuracy": val_accuracy,
        "params": int(model.count_params()),
        "train_seconds": round(train_seconds, 1), "config": dataclasses.asdict(config)})
    return model, float(accuracy)


def training_record(path):
    """What `train` wrote beside a teacher it made (`<path>.json`: its data, architecture,
    accuracies, training minutes and settings), or None for a teacher trained elsewhere.
    report.json carries it, so that a compressed model names the training of its teacher (two
    trainings by one flagfile can give students far apart)."""
    return artifacts.read_json(f"{path}.json") if isinstance(path, str) else None


def _training_pipeline(dataset, config):
    images = tf.data.Dataset.from_tensor_slices((dataset.x_train, dataset.y_train))
    images = images.shuffle(len(dataset.x_train), seed=config.seed).batch(config.batch_size)
    augmentations = []
    if config.shift_augment:
        shift = config.shift_augment / dataset.input_shape[0]
        augmentations.append(keras.layers.RandomTranslation(
            shift, shift, fill_mode="constant", fill_value=float(dataset.x_train.min()),
            seed=config.seed))
    if config.flip_augment:
        augmentations.append(keras.layers.RandomFlip("horizontal", seed=config.seed))
    if augmentations:
        augment = keras.Sequential(augmentations)
        images = images.map(lambda x, y: (augment(x, training=True), y),
                            num_parallel_calls=tf.data.AUTOTUNE)
    return images.prefetch(tf.data.AUTOTUNE)
