"""Keras 3 teachers: rebuilds a classifier saved by Keras 3 as an equivalent tf-keras model.

Users save their classifiers with Keras 3, which TensorFlow ships beside tf-keras, but tfdfc
compresses with TF-MOT, which wraps only tf-keras models, and tf-keras cannot read a Keras 3
`.keras` or `.h5` config. Both Kerases import in one process (`tf.keras` stays tf-keras after
`keras_compat`), so this module loads the file with Keras 3, rewrites its config into tf-keras's
dialect layer by layer (refusing any layer tf-keras has no counterpart for), builds the tf-keras
model, copies the weights layer by layer and keeps the result only if both models give the same
outputs on random images: a silent difference would poison every student distilled from it.
"""

import inspect
import json
import zipfile

import h5py
import numpy as np

from tfdfc import flatten, input_space
from tfdfc.errors import Keras3ImportError, UserInputError, first_line
from tfdfc.keras_compat import keras, tf

OUTPUT_TOLERANCE = 1e-4  # largest max-abs output difference accepted against Keras 3
# Dtype policies that compute in half precision (mixed_float16 training on a GPU saves them): the
# converted teacher computes in float32 (teacher.py does the same for tf-keras files).
HALF_PRECISION = ("float16", "bfloat16", "mixed_float16", "mixed_bfloat16")
# The largest difference accepted when the Keras 3 model computes in half precision, as a share
# of its largest output: float16 carries about three significant digits, the tf-keras model
# computes in float32.
HALF_PRECISION_TOLERANCE = 1e-2
CHECK_IMAGES = 8  # images (seed 0, in the model's input space) on which both models' outputs
# are compared
# Keras 3 writes these into configs of layers whose tf-keras twins take no such argument and
# always behave so (e.g. the image augmentation layers' data_format).
_ONLY_BEHAVIOUR = {"data_format": "channels_last"}
_FREE_DIM = 32  # stands in for an unknown input dimension in that check

_MODELS = ("Functional", "Sequential")
_REFUSED = ("Lambda",)  # tf-keras has the class, but Keras 3 serialises its code differently
# Keras 3 activation names with a tf-keras function of the same semantics, by tf-keras name.
_ACTIVATIONS = {name: name for name in (
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "softplus", "softsign",
    "tanh", "sigmoid", "exponential", "mish", "softmax", "log_softmax", "swish")}
_ACTIVATIONS["silu"] = "swish"
# tf-keras lacks hard_silu, and its hard_sigmoid is another function (a 0.2 x + 0.5 ramp), so
# these become standard layers after the layer, with its own activation set to linear.
_COMPOSED = ("hard_sigmoid", "hard_silu", "hard_swish")
_HARD_SIGMOID_STEPS = (  # Keras 3's hard_sigmoid: relu6(x + 3) / 6
    ("shift", "Rescaling", {"scale": 1.0, "offset": 3.0}),
    ("relu6", "ReLU", {"max_value": 6.0}),
    ("scale", "Rescaling", {"scale": 1.0 / 6.0, "offset": 0.0}))
_RENAMED_KEYS = {("InputLayer", "batch_shape"): "batch_input_shape",
                 ("LeakyReLU", "negative_slope"): "alpha"}
# Keys tf-keras's base Layer takes through **kwargs, so no __init__ signature names them.
_BASE_KEYS = {"batch_input_shape", "batch_size", "input_shape", "input_dim",
              "activity_regularizer", "autocast"}
_OBJECT_MODULES = (keras.initializers, keras.regularizers, keras.constraints)
# Keras 3 records `x + 3.0` or `x * y` on symbolic tensors as operations of this module
# (keras.applications' MobileNetV3 builds its hard-sigmoid so). The elementwise arithmetic ones
# become standard layers: with a number, a Rescaling of the tensor; between two tensors, the
# merge layer named here (None: refused).
_OPERATIONS_MODULE = "keras.src.ops.numpy"
# Keras 3 image augmentation layers, which return their input unchanged at inference (checked
# for each in Keras 3.15; RandomCrop, which crops there, is not one): they become tf-keras
# Identity layers, whatever their settings (tf-keras lacks several, and newer arguments such as
# RandomContrast's value_range), and the teacher loses them when flattened (flatten.py).
_AUGMENTATION = frozenset((
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
    "RandomBrightness", "RandomHue", "RandomSaturation", "RandomSharpness", "RandomShear",
    "RandomGrayscale", "RandomColorJitter", "RandomColorDegeneration", "RandomPosterization",
    "RandomInvert", "RandomErasing", "RandomGaussianBlur", "RandomPerspective",
    "RandomElasticTransform", "Solarization", "AugMix", "RandAugment", "MixUp", "CutMix"))
# keras.applications' ConvNeXt layers, which Keras 3 saves under their own module. LayerScale
# (x * gamma, one gamma per channel of a feature map) is a 1x1 depthwise convolution without
# bias: a standard layer that every scheme and TFLite know. StochasticDepth drops the residual
# branch of a whole batch in training only, so at inference it is an Identity.
_CONVNEXT_MODULE = "keras.src.applications.convnext"
_CONVNEXT = ("LayerScale", "StochasticDepth")
_ARITHMETIC = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply", "Divide": None,
               "TrueDivide": None}


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------

def is_keras3_file(path):
    """Whether `path` is a `.keras` or `.h5` file saved by Keras 3 (False for anything else)."""
    return str(_saved_keras_version(path) or "").startswith("3")


def convert(path, safe_mode=True):
    """Loads a Keras 3 model file and returns the equivalent tf-keras model.

    Args:
      path: a `.keras` or `.h5` file saved by Keras 3.
      safe_mode: passed to Keras 3, which then refuses to deserialise code.

    Returns:
      (model, info): the uncompiled tf-keras model, and a dict with `converted_from`
      ("keras <version> .keras" or ".h5") and `max_abs_output_difference` (float, between the
      Keras 3 and tf-keras outputs on `CHECK_IMAGES` standard-normal inputs).

    Raises:
      Keras3ImportError: one line naming the layer tf-keras cannot hold, the file Keras 3 cannot
        load, or the output difference when it exceeds `OUTPUT_TOLERANCE`.
    """
    version = _saved_keras_version(path)
    for layer in _walk_layers(_saved_config(path)):
        _check_convertible(layer, path)
    source = _load_keras3(path, safe_mode)
    _check_layer_scales(source, path)
    try:
        class_name, config = _model_config(type(source).__name__, source.get_config())
    except Keras3ImportError as error:  # names a layer: add the file
        raise Keras3ImportError(f"{path}: {error}") from error
    try:
        target = (keras.Sequential if class_name == "Sequential" else keras.Model).from_config(
            config)
    except (TypeError, ValueError, KeyError) as error:
        raise Keras3ImportError(f"{path}: tf-keras cannot rebuild this Keras 3 model: "
                                f"{first_line(error)}") from error
    _copy_weights(source, target)
    difference, largest = _max_output_difference(source, target)
    tolerance = (HALF_PRECISION_TOLERANCE * max(1.0, largest) if _computes_in_half(source)
                 else OUTPUT_TOLERANCE)
    if not difference <= tolerance:  # also refuses NaN
        raise Keras3ImportError(
            f"{path}: the tf-keras conversion's outputs differ from Keras 3's by up to "
            f"{difference:.3g} (tolerance {tolerance:.3g}); save the model with tf-keras "
            "(`import tf_keras as keras`) instead")
    suffix = ".h5" if path.endswith(".h5") else ".keras"
    return target, {"converted_from": f"keras {version} {suffix}",
                    "max_abs_output_difference": difference}


# ---------------------------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------------------------

def _saved_keras_version(path):
    """The `keras_version` a `.keras` or `.h5` file records, or None (also for a broken file)."""
    try:
        if path.endswith(".keras") and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("metadata.json")).get("keras_version")
        if path.endswith(".h5") and h5py.is_hdf5(path):
            with h5py.File(path, "r") as handle:
                version = handle.attrs.get("keras_version")
            return version.decode() if isinstance(version, bytes) else version
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # not ours to judge: the ordinary loader reports a broken file
    return None


def _saved_config(path):
    """The model config as saved, read without deserialising anything."""
    try:
        if path.endswith(".h5"):
            with h5py.File(path, "r") as handle:
                text = handle.attrs["model_config"]
        else:
            with zipfile.ZipFile(path) as archive:
                text = archive.read("config.json")
        return json.loads(text)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise Keras3ImportError(f"{path} has no readable Keras 3 model config: "
                                f"{first_line(error)}") from error


def _walk_layers(entry):
    """`entry` (a serialised layer or model) and every layer nested in it."""
    yield entry
    if entry.get("class_name") in _MODELS:
        for layer in entry.get("config", {}).get("layers", []):
            yield from _walk_layers(layer)


def _check_convertible(entry, path):
    """Refuses, before Keras 3 deserialises anything, a layer without a tf-keras counterpart."""
    class_name = entry.get("class_name", "?")
    module = entry.get("module") or "keras.layers"  # legacy .h5 configs name no module
    if class_name in _MODELS and module.startswith("keras"):
        return
    if module == _OPERATIONS_MODULE and class_name in _ARITHMETIC:
        return  # its arguments are checked when it is rewritten (_arithmetic_as_layer)
    if module == "keras.layers" and class_name in _AUGMENTATION:
        return
    if module == _CONVNEXT_MODULE and class_name in _CONVNEXT:
        return
    counterpart = getattr(keras.layers, class_name, None) if module == "keras.layers" else None
    if (isinstance(counterpart, type) and issubclass(counterpart, keras.layers.Layer)
            and class_name not in _REFUSED):
        return
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    name = config.get("name", entry.get("name", "?"))
    raise Keras3ImportError(
        f"{path}: layer {name!r} ({class_name}) has no tf-keras conversion, so tfdfc cannot "
        "use this Keras 3 model: replace the layer with standard Keras layers, or build and save "
        "the model with tf-keras (`import tf_keras as keras`)")


def _check_layer_scales(source, path):
    """Refuses a LayerScale that does not scale a feature map (rank 4), the only place its
    depthwise-convolution form holds (ConvNeXt has it nowhere else)."""
    for layer in source.layers:
        if isinstance(layer, _keras3().Model):
            _check_layer_scales(layer, path)
        elif type(layer).__name__ == "LayerScale" and len(layer.input.shape) != 4:
            raise Keras3ImportError(
                f"{path}: layer {layer.name!r} (LayerScale) scales a rank-{len(layer.input.shape)} "
                "tensor; tfdfc converts LayerScale only on (batch, height, width, channels) "
                "feature maps, as ConvNeXt has it")


def _keras3():
    """Keras 3, imported on first use: only reading a Keras 3 file needs it, and importing it
    would lengthen every process's start (it brings scikit-learn and pandas)."""
    import keras as keras3  # pylint: disable=import-outside-toplevel
    if not keras3.__version__.startswith("3"):
        raise ImportError(f"`import keras` gave Keras {keras3.__version__}, expected Keras 3")
    return keras3


def _load_keras3(path, safe_mode):
    keras3 = _keras3()
    try:
        return keras3.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as error:  # Keras raises many types for a bad file; all mean the same here.
        if "safe_mode" in str(error) or "unsafe" in str(error).lower():
            raise Keras3ImportError(
                f"{path} holds code that would run when loaded; refusing in safe mode. Load it "
                "only if you trust its source (--unsafe_load).") from error
        advice = ("; Keras 3 writes some models to .h5 that it cannot read back (ops such as "
                  "`x + 3.0` in a layer call): save it as .keras (model.save('model.keras'))"
                  if path.lower().endswith((".h5", ".hdf5")) else "")
        raise Keras3ImportError(f"{path} could not be loaded by Keras {keras3.__version__}: "
                                f"{first_line(error)}{advice}") from error


# ---------------------------------------------------------------------------------------------
# Rewriting the config
# ---------------------------------------------------------------------------------------------

def _model_config(class_name, config):
    """(tf-keras class name, tf-keras config) of a Keras 3 Functional or Sequential config."""
    if class_name == "Sequential":
        if not any(_composed(layer) for layer in config["layers"]):
            return "Sequential", {"name": config["name"],
                                  "layers": [_layer_entry(layer) for layer in config["layers"]]}
        # The composed activations need a Multiply of two tensors, which a Sequential lacks.
        config = _sequential_as_functional(config)
    elif class_name != "Functional":
        raise Keras3ImportError(f"a Keras 3 {class_name} model (subclassed) cannot be converted: "
                                "build it as a Functional or Sequential model")
    return "Functional", _functional_config(config)


def _layer_entry(layer):
    """A Keras 3 serialised layer or nested model as a tf-keras {class_name, config}."""
    class_name = layer["class_name"]
    if class_name in _MODELS:
        class_name, config = _model_config(class_name, layer["config"])
        return {"class_name": class_name, "config": config}
    if class_name in _AUGMENTATION or class_name == "StochasticDepth":
        return {"class_name": "Identity", "config": {
            key: layer["config"][key] for key in ("name", "trainable") if key in layer["config"]}}
    if class_name == "LayerScale":
        return {"class_name": "DepthwiseConv2D", "config": {
            "name": layer["config"]["name"], "kernel_size": 1, "use_bias": False,
            "trainable": layer["config"].get("trainable", True)}}
    owner = f"layer {layer['config'].get('name')!r} ({class_name})"
    config = {}
    for key, value in layer["config"].items():
        config[_RENAMED_KEYS.get((class_name, key), key)] = _plain_value(key, value, owner)
    return {"class_name": class_name,
            "config": _accepted(getattr(keras.layers, class_name), config, owner)}


def _plain_value(key, value, owner):
    """A config value in tf-keras's form: dtype policies become names, objects lose Keras 3 keys."""
    if key == "activation":
        if value in _COMPOSED:
            return value  # split off by _split_activation
        if not isinstance(value, str) or value not in _ACTIVATIONS:
            raise Keras3ImportError(f"{owner} uses activation {value!r}, which tfdfc cannot map "
                                    "to tf-keras: use a standard activation")
        return _ACTIVATIONS[value]
    if key == "dtype":  # a half-precision policy computes in float32 here (teacher.py)
        name = value["config"]["name"] if isinstance(value, dict) else value
        return "float32" if name in HALF_PRECISION else name
    if not (isinstance(value, dict) and "class_name" in value and "config" in value):
        return value
    found = [getattr(module, value["class_name"]) for module in _OBJECT_MODULES
             if isinstance(getattr(module, value["class_name"], None), type)]
    if not found:
        raise Keras3ImportError(f"{owner} uses {value['class_name']} for {key!r}, which tf-keras "
                                "lacks: use a standard one")
    return {"class_name": value["class_name"],
            "config": _accepted(found[0], dict(value["config"] or {}), owner)}


def _accepted(cls, config, owner):
    """`config` without the keys `cls` does not take; refuses one that sets something."""
    accepted = set(_BASE_KEYS)
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            accepted.update(inspect.signature(klass.__init__).parameters)
    for key in [key for key in config if key not in accepted]:
        value = config.pop(key)
        if value not in (None, False, 0, "", [], {}) and value != _ONLY_BEHAVIOUR.get(key):
            raise Keras3ImportError(f"{owner} sets {key!r}, which tf-keras lacks: rebuild the "
                                    "model without it")
    return config


def _composed(layer):
    return layer["config"].get("activation") in _COMPOSED


def _sequential_as_functional(config):
    """A Keras 3 Sequential config rewritten as the Keras 3 Functional config of the same chain."""
    layers = config["layers"]
    if not layers or layers[0]["class_name"] != "InputLayer":
        raise Keras3ImportError(f"Sequential model {config['name']!r} has no input layer: "
                                "give it a keras.Input")
    converted, previous = [], None
    for layer in layers:
        nodes = [] if previous is None else [{"args": [_keras_tensor(previous, 0)], "kwargs": {}}]
        converted.append(dict(layer, name=layer["config"]["name"], inbound_nodes=nodes))
        previous = layer["config"]["name"]
    # Keras 3 numbers a nested Functional's first call 1 in these endpoint lists, else 0.
    last_index = int(layers[-1]["class_name"] == "Functional")
    return {"name": config["name"], "trainable": config.get("trainable", True),
            "layers": converted, "input_layers": [[layers[0]["config"]["name"], 0, 0]],
            "output_layers": [[previous, last_index, 0]]}


def _keras_tensor(layer_name, node_index):
    return {"class_name": "__keras_tensor__",
            "config": {"keras_history": [layer_name, node_index, 0]}}


def _functional_config(config):
    """A Keras 3 Functional config in tf-keras's form: nested-list inbound nodes, split
    activations."""
    keras3_layers = [_arithmetic_as_layer(layer) if _is_arithmetic(layer) else layer
                     for layer in config["layers"]]
    nested = {layer["name"]: layer["class_name"] for layer in keras3_layers
              if layer["class_name"] in _MODELS}
    layers, renamed = [], {}  # renamed: a split layer's name -> the last layer of its activation
    for layer in keras3_layers:
        entry = _layer_entry(layer)
        entry["name"] = layer["name"]
        entry["inbound_nodes"] = [_tf_keras_node(node, nested, renamed, layer["name"])
                                  for node in layer["inbound_nodes"]]
        layers.append(entry)
        if entry["class_name"] not in _MODELS and _composed(entry):
            chain = _activation_chain(entry)
            layers += chain
            renamed[entry["name"]] = chain[-1]["name"]

    def endpoint(reference):  # [name, node_index, tensor_index]
        name, index, tensor_index = reference
        # Keras 3 already counts a nested Functional's construction here, not a Sequential's.
        return [renamed.get(name, name), index + (nested.get(name) == "Sequential"), tensor_index]

    converted = {"name": config["name"], "trainable": config.get("trainable", True),
                 "layers": layers,
                 "input_layers": _map_endpoints(endpoint, config["input_layers"]),
                 "output_layers": _map_endpoints(endpoint, config["output_layers"])}
    _check_references(converted)
    return converted


def _is_arithmetic(layer):
    return layer.get("module") == _OPERATIONS_MODULE and layer["class_name"] in _ARITHMETIC


def _arithmetic_as_layer(operation):
    """A Keras 3 arithmetic operation as the Keras 3 entry of the standard layer computing it:
    tensor and number -> Rescaling(scale, offset); two tensors -> Add, Subtract or Multiply."""
    class_name, name = operation["class_name"], operation["name"]
    nodes = operation.get("inbound_nodes", [])
    args = nodes[0].get("args", []) if len(nodes) == 1 and not nodes[0].get("kwargs") else []
    tensors = [_is_tensor(arg) for arg in args]
    owner = f"operation {name!r} (keras.ops {class_name})"
    if len(args) == 2 and all(tensors) and _ARITHMETIC[class_name]:
        return _keras3_layer(name, _ARITHMETIC[class_name], {}, [list(args)])
    number = args[tensors.index(False)] if len(args) == 2 and any(tensors) else None
    if not isinstance(number, (int, float)) or isinstance(number, bool):
        raise Keras3ImportError(
            f"{owner} has arguments tfdfc cannot map to a tf-keras layer (it maps a tensor and "
            "a number, or two tensors of an add, subtract or multiply): rewrite it with "
            "keras.layers (e.g. Rescaling, Add, Multiply)")
    number, tensor_first = float(number), tensors[0]
    if class_name == "Add":
        scale, offset = 1.0, number
    elif class_name == "Subtract":
        scale, offset = (1.0, -number) if tensor_first else (-1.0, number)
    elif class_name == "Multiply":
        scale, offset = number, 0.0
    elif tensor_first and number:
        scale, offset = 1.0 / number, 0.0
    else:
        raise Keras3ImportError(f"{owner} divides by a tensor or by zero, which no tf-keras "
                                "layer computes: rewrite the model without it")
    return _keras3_layer(name, "Rescaling", {"scale": scale, "offset": offset},
                         [args[tensors.index(True)]])


def _keras3_layer(name, class_name, config, args):
    return {"module": "keras.layers", "class_name": class_name, "name": name,
            "config": dict(config, name=name, trainable=True, dtype="float32"),
            "inbound_nodes": [{"args": args, "kwargs": {}}]}


def _check_references(config):
    """tf-keras waits forever for a node that never comes: refuses such a reference up front."""
    calls = {layer["name"]: len(layer["inbound_nodes"]) + (layer["class_name"] in _MODELS)
             + (layer["class_name"] == "InputLayer") for layer in config["layers"]}
    references = [reference[:2] for layer in config["layers"]
                  for node in layer["inbound_nodes"] for reference in node]
    references += [reference[:2] for reference in config["output_layers"]]
    for name, index in references:
        if index >= calls.get(name, 0):
            raise Keras3ImportError(f"model {config['name']!r}: the converted graph refers to "
                                    f"call {index} of {name!r}, which does not exist")


def _map_endpoints(function, references):
    if references and isinstance(references[0], str):
        return [function(references)]
    return [function(reference) for reference in references]


def _tf_keras_node(node, nested, renamed, layer_name):
    """One Keras 3 inbound node ({"args", "kwargs"}) as tf-keras's list of
    [layer_name, node_index, tensor_index, kwargs]."""
    kwargs = {key: value for key, value in node.get("kwargs", {}).items() if value is not None}
    args = node.get("args", [])
    inputs = args[0] if len(args) == 1 else None
    if _is_tensor(inputs):
        inputs = [inputs]
    if (not isinstance(inputs, (list, tuple)) or not all(map(_is_tensor, inputs))
            or any(_is_tensor(value) for value in kwargs.values())):
        raise Keras3ImportError(f"layer {layer_name!r} is called in a way tf-keras configs "
                                "cannot express (tensors beyond its first argument)")

    def reference(tensor):
        name, index, tensor_index = tensor["config"]["keras_history"]
        # tf-keras counts a nested model's construction as its node 0; Keras 3 does not.
        return [renamed.get(name, name), index + (name in nested), tensor_index, kwargs]

    return [reference(tensor) for tensor in inputs]


def _is_tensor(value):
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def _activation_chain(entry):
    """Sets `entry`'s composed activation to linear; returns the standard layers computing it."""
    name, activation = entry["name"], entry["config"]["activation"]
    entry["config"]["activation"] = "linear"
    dtype = entry["config"].get("dtype", "float32")
    chain, previous = [], name
    for suffix, class_name, config in _HARD_SIGMOID_STEPS:
        chain.append(_chain_layer(f"{name}_{suffix}", class_name, config, dtype,
                                  [previous], len(entry["inbound_nodes"])))
        previous = chain[-1]["name"]
    if activation != "hard_sigmoid":  # hard_silu(x) = x * hard_sigmoid(x)
        chain.append(_chain_layer(f"{name}_multiply", "Multiply", {}, dtype,
                                  [name, previous], len(entry["inbound_nodes"])))
    return chain


def _chain_layer(name, class_name, config, dtype, input_names, node_count):
    """A layer of an activation chain, called once per call of the layer it follows."""
    nodes = [[[input_name, index, 0, {}] for input_name in input_names]
             for index in range(node_count)]
    return {"class_name": class_name, "name": name, "inbound_nodes": nodes,
            "config": dict(config, name=name, dtype=dtype, trainable=True)}


# ---------------------------------------------------------------------------------------------
# Weights and the output check
# ---------------------------------------------------------------------------------------------

def _copy_weights(source, target):
    """Copies weights layer by layer, by name: whole-model weight orders differ between the two
    Kerases (tf-keras lists all trainable weights first)."""
    for layer in source.layers:
        counterpart = target.get_layer(layer.name)
        if isinstance(layer, _keras3().Model):
            _copy_weights(layer, counterpart)
            continue
        weights = layer.get_weights()
        if type(layer).__name__ == "LayerScale":  # gamma (C,) as a depthwise kernel
            weights = [np.reshape(weights[0], (1, 1, -1, 1))]
        try:
            counterpart.set_weights(weights)
        except ValueError as error:
            raise Keras3ImportError(
                f"layer {layer.name!r} ({type(layer).__name__}): its Keras 3 weights do not fit "
                f"the tf-keras layer: {first_line(error)}") from error
        # tf-keras Normalization computes its mean and variance tensors from the adapted
        # weights when built; this recomputes them from the copied weights.
        counterpart.finalize_state()


def _computes_in_half(source):
    """Whether any layer of the Keras 3 model computes in float16 or bfloat16."""
    return any(_computes_in_half(layer) if isinstance(layer, _keras3().Model)
               else str(layer.compute_dtype) in HALF_PRECISION for layer in source.layers)


def _max_output_difference(source, target):
    """(max |Keras 3 - tf-keras| over all outputs, max |Keras 3 output|), on standard-normal
    inputs (seed 0) mapped into the model's input space (0..255 pixels for a leading
    Rescaling(1/255)), so that the check drives the layers through the value ranges real inputs
    do."""
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((CHECK_IMAGES,) + tuple(
        dim or _FREE_DIM for dim in tensor.shape[1:])).astype(np.float32)
        for tensor in target.inputs]
    if len(inputs) == 1:
        inputs = [_input_space(target).images(inputs[0])]
    feed = inputs[0] if len(inputs) == 1 else inputs
    expected = [_keras3().ops.convert_to_numpy(output)
                for output in tf.nest.flatten(source(feed, training=False))]
    actual = [np.asarray(output) for output in tf.nest.flatten(target(feed, training=False))]
    difference = max(float(np.max(np.abs(np.asarray(e, np.float64) - np.asarray(a, np.float64))))
                     for e, a in zip(expected, actual))
    return difference, max(float(np.max(np.abs(np.asarray(e, np.float64)))) for e in expected)


def _input_space(model):
    """The input space of a single-input `model` (standardised when it cannot be read)."""
    try:
        return input_space.infer(flatten.flatten(model))
    except UserInputError:
        return input_space.standard(int(model.inputs[0].shape[-1]), "standardised")
