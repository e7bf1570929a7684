"""Quantization-aware students through TF-MOT: the default 8-bit scheme and n-bit weights and
activations (one builder parameterised by bit widths).

- `int8`: TF-MOT's default 8-bit scheme (`quantize_model`, Conv+BN folding, per-channel
  weights). A batch norm that does not follow a convolution (pre-activation ResNets) is not
  supported by that scheme; it is annotated with an output-only 8-bit config instead.
- `w<b>a<c>`: every convolution and depthwise (per channel) and dense (per tensor) kernel gets a
  symmetric b-bit quantizer; the output of every layer that creates new values gets a c-bit
  quantizer, except a convolution or dense layer whose only consumer is a ReLU or ReLU6 (its
  output is quantized after the activation, as TFLite fuses the two; any other activation is
  an op of its own in TFLite, so the kernel's output keeps its quantizer), average pooling
  (its input's range: TFLite keeps the scale through it) and the final logits (left to the
  converter's 8 bits).
  These configs are applied with a pass-through scheme so TF-MOT adds no quantizer of its own.
"""

from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras, tf, tfmot, variable_name

# pylint: disable-next=g-direct-tensorflow-import
from tensorflow_model_optimization.python.core.quantization.keras.quantize_layer import QuantizeLayer  # noqa: E501,E402
from tf_keras.src.layers.core.tf_op_layer import TFOpLambda  # noqa: E402

# pylint: disable-next=g-direct-tensorflow-import
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_registry  # noqa: E501,E402

_qk = tfmot.quantization.keras
_KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)
# Layers that wrap an arbitrary TensorFlow op (keras.applications' MobileNetV3 builds hard-swish
# from `x + 3.0` and `x * (1 / 6)`): TF-MOT cannot wrap them, so they stay float in the QAT model
# and the converter calibrates them on the representative (generated) images.
_OPAQUE = (keras.layers.Lambda, TFOpLambda)
# Layers that keep their input's range. TFLite's AVERAGE_POOL_2D keeps its input's scale: a
# range of its own, however close, fails the conversion where its output also feeds a
# concatenation (DenseNet's transitions), so average pooling takes its input's range in both
# schemes (annotated with no quantizer in int8's, or TF-MOT would give it one).
_PASS_THROUGH = (keras.layers.InputLayer, keras.layers.MaxPooling2D, keras.layers.Flatten,
                 keras.layers.Reshape, keras.layers.Dropout, keras.layers.Cropping2D,
                 keras.layers.ZeroPadding2D, keras.layers.GlobalMaxPooling2D,
                 keras.layers.AveragePooling2D)
RANGE_STARTS = ("tfmot", "from_batches")  # where an activation range starts (below)
RANGE_BATCHES = "range_batches"  # the name ending of a `from_batches` quantizer's batch counter
# Name endings of an activation quantizer's state: its range and, for `from_batches`, its counter.
RANGE_VARIABLES = ("_min", "_max", RANGE_BATCHES)
# ... and of all the state a QAT wrapper keeps beside its layer's weights (TF-MOT's step too).
QUANTIZER_STATE = ("optimizer_step",) + RANGE_VARIABLES


def is_quantizer_state(weight):
    """Whether `weight` (a variable of a QAT model) is quantizer state, not a layer weight."""
    return variable_name(weight.name).endswith(QUANTIZER_STATE)


def is_activation_range(weight):
    """Whether `weight` (a variable of a QAT model) is the range state of a quantizer (of
    activations; TF-MOT's kernel ranges, recomputed from the kernel at each call, too)."""
    return variable_name(weight.name).endswith(RANGE_VARIABLES)


class RobustRangeQuantizer(_qk.quantizers.Quantizer):
    """Activation fake-quantizer whose range is a moving average of each training batch's
    `tail`-quantiles (its k-th smallest and k-th largest values, k = tail x size) rather than
    its extremes, as TF-MOT's MovingAverageQuantizer uses.

    Why: data-free, the batches are generated images, and a few of them drive some activations
    far beyond anything real data reaches, while their high percentiles stay close to real
    data's; max-tracking ranges of a w4a4 student end far wider than the real data's and leave
    it only a few of its 16 levels in use (the mnist5k LeNet-5 measurement is in
    bench/NOTES.md).

    Where the range starts (`start`):
    - `tfmot`: at TF-MOT's +-6, which the 0.999 moving average leaves only slowly: after n
      batches 0.999^n of it remains (37 % after 1,000 student steps, 14 % after 2,000). At 4
      bits a +-6 range has a step of 0.8, coarser than most activations of a BatchNorm network.
    - `from_batches`: the first batch's range, then the running mean of the batches seen until
      the moving average's horizon (1 / (1 - ema_decay) batches), then that moving average: the
      range is the data's from the first student step. A counter per quantizer keeps the count.
    """

    def __init__(self, num_bits, tail=1e-4, ema_decay=0.999, start="tfmot"):
        if start not in RANGE_STARTS:
            raise ConfigError(f"activation range start must be one of {RANGE_STARTS}, got "
                              f"{start!r}")
        self.num_bits = num_bits
        self.tail = tail
        self.ema_decay = ema_decay
        self.start = start

    def build(self, tensor_shape, name, layer):
        initial = {"min": -6.0, "max": 6.0}  # TF-MOT's starting range
        weights = {f"{end}_var": layer.add_weight(f"{name}_{end}", shape=(), trainable=False,
                                                  initializer=keras.initializers.Constant(value))
                   for end, value in initial.items()}
        if self.start == "from_batches":
            # Replicas see the same number of batches: the first replica's count stands for all.
            weights["batches"] = layer.add_weight(
                f"{name}_{RANGE_BATCHES}", shape=(), trainable=False, initializer="zeros",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        return weights

    def __call__(self, inputs, training, weights, **kwargs):
        low, high = weights["min_var"], weights["max_var"]
        if training:
            decay = self.ema_decay
            if "batches" in weights:  # a running mean until the moving average's horizon
                seen = weights["batches"]
                decay = tf.minimum(decay, seen / (seen + 1.0))
            batch_low, batch_high = tail_quantiles(inputs, self.tail)
            # TFLite needs 0 inside the range.
            low = tf.__internal__.train.assign_moving_average(
                low, tf.minimum(batch_low, 0.0), decay, zero_debias=False)
            high = tf.__internal__.train.assign_moving_average(
                high, tf.maximum(batch_high, 0.0), decay, zero_debias=False)
            if "batches" in weights:
                weights["batches"].assign_add(1.0)
        return tf.quantization.fake_quant_with_min_max_vars(inputs, low, high,
                                                            num_bits=self.num_bits)

    def get_config(self):
        return {"num_bits": self.num_bits, "tail": self.tail, "ema_decay": self.ema_decay,
                "start": self.start}

    def __eq__(self, other):
        return isinstance(other, RobustRangeQuantizer) and self.get_config() == other.get_config()

    def __ne__(self, other):
        return not self.__eq__(other)


def tail_quantiles(values, tail):
    """(k-th smallest, k-th largest) of `values`, k = max(1, ceil(tail x size))."""
    flat = tf.reshape(values, [-1])
    count = tf.maximum(1, tf.cast(tf.math.ceil(tail * tf.cast(tf.size(flat), tf.float32)),
                                  tf.int32))
    return -tf.math.top_k(-flat, count).values[-1], tf.math.top_k(flat, count).values[-1]


class DepthwiseChannelQuantizer(_qk.quantizers.LastValueQuantizer):
    """Symmetric last-value quantizer of a depthwise kernel (kh, kw, channels, multiplier) with
    one range per channel and multiplier: the dimension TFLite quantizes a depthwise filter
    along. TF-MOT's per-axis range runs along the last axis, here the multiplier (usually 1), so
    it is per tensor in effect; at 4 bits that leaves a channel whose weights are small beside
    the tensor's largest one or two levels."""

    def __init__(self, num_bits):
        super().__init__(num_bits, per_axis=True, symmetric=True, narrow_range=True)

    def build(self, tensor_shape, name, layer):
        return super().build(_channels_last(tensor_shape), name, layer)

    def __call__(self, inputs, training, weights, **kwargs):
        flat = tf.reshape(inputs, _channels_last(inputs.shape))
        return tf.reshape(super().__call__(flat, training, weights, **kwargs), inputs.shape)

    def get_config(self):
        return {"num_bits": self.num_bits}

    def __eq__(self, other):
        return isinstance(other, DepthwiseChannelQuantizer) and self.num_bits == other.num_bits

    def __ne__(self, other):
        return not self.__eq__(other)


def _channels_last(kernel_shape):
    """A depthwise kernel's shape with channels and multiplier as one last axis."""
    height, width, channels, multiplier = (int(size) for size in kernel_shape)
    return [height, width, 1, channels * multiplier]


class NBitQuantizeConfig(_qk.QuantizeConfig):
    """Symmetric `weight_bits` kernel, `act_bits` output (either may be off: 0).

    Convolution kernels are quantized per output channel, depthwise ones per channel and
    multiplier (DepthwiseChannelQuantizer); dense kernels per tensor, because the TFLite
    converter cannot carry a per-axis range through the transpose of a fully connected kernel
    ("mismatched quantized axes"), as in TF-MOT's own default scheme.
    """

    def __init__(self, weight_bits=0, act_bits=0, range_start="tfmot"):
        self.weight_bits = weight_bits
        self.act_bits = act_bits
        self.range_start = range_start

    def get_weights_and_quantizers(self, layer):
        if not self.weight_bits:
            return []
        return [(getattr(layer, name), kernel_quantizer(layer, self.weight_bits))
                for name in _kernels(layer)]

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        if self.weight_bits:
            for name, value in zip(_kernels(layer), quantize_weights):
                setattr(layer, name, value)

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        if not self.act_bits:
            return []
        return [RobustRangeQuantizer(self.act_bits, start=self.range_start)]

    def get_config(self):
        return {"weight_bits": self.weight_bits, "act_bits": self.act_bits,
                "range_start": self.range_start}


def _kernels(layer):
    """The attribute of each kernel of a convolution or dense layer."""
    return ["depthwise_kernel" if isinstance(layer, keras.layers.DepthwiseConv2D) else "kernel"]


def kernel_quantizer(layer, bits):
    """The `bits` weight quantizer of `layer`'s kernel (see NBitQuantizeConfig)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return DepthwiseChannelQuantizer(bits)
    return _qk.quantizers.LastValueQuantizer(num_bits=bits, per_axis=isinstance(
        layer, keras.layers.Conv2D), symmetric=True, narrow_range=True)


class _KeepLayout(_qk.QuantizeLayoutTransform):
    """Changes nothing: every quantizer comes from the layers' own configs."""

    def apply(self, model, layer_quantize_map):
        return model, layer_quantize_map


class _NoDefaults(_qk.QuantizeRegistry):
    """Supports no layer by default, so TF-MOT adds no quantizer between annotated layers."""

    def get_quantize_config(self, layer):
        return None

    def supports(self, layer):
        return False


class AnnotatedOnlyScheme(_qk.QuantizeScheme):
    """A scheme that quantizes exactly what the annotations say."""

    def get_layout_transformer(self):
        return _KeepLayout()

    def get_quantize_registry(self):
        return _NoDefaults()


def custom_objects():
    """This module's classes a saved or cloned quantized model needs (use with
    `quantize_scope`); binary.custom_objects() adds the binary ones."""
    return {"NBitQuantizeConfig": NBitQuantizeConfig,
            "RobustRangeQuantizer": RobustRangeQuantizer,
            "DepthwiseChannelQuantizer": DepthwiseChannelQuantizer}


def apply_configs(model, config_for_layer, objects=None):
    """Annotates each layer with `config_for_layer(layer)` (None: leave it) and applies them;
    `objects` are the custom classes the configs need (default: this module's)."""
    objects = objects or custom_objects()

    def annotate(layer):
        config = config_for_layer(layer)
        layer_copy = layer.__class__.from_config(layer.get_config())
        return _qk.quantize_annotate_layer(layer_copy, config) if config else layer_copy

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with _qk.quantize_scope(objects):
        return _own_layers(_qk.quantize_apply(annotated, scheme=AnnotatedOnlyScheme()), objects)


# QuantizeConfig methods TF-MOT's layout transforms replace on a config object (its
# ConcatTransform: the inputs of a Concatenate give up their own output quantizers).
_CONFIG_OVERRIDES = ("get_weights_and_quantizers", "get_activations_and_quantizers",
                     "get_output_quantizers")


def copy_layer(layer):
    """`layer` made again from its config, with its quantize config's overridden methods: a
    config's serialised form loses them, and a copy would quantize what the original does not
    (and hold more weights)."""
    copy = layer.__class__.from_config(layer.get_config())
    config = getattr(layer, "quantize_config", None)
    for name in _CONFIG_OVERRIDES:
        if config is not None and name in vars(config):
            setattr(copy.quantize_config, name, vars(config)[name])
    return copy


def _own_layers(qat_model, objects=None):
    """A copy whose layers belong to it alone. quantize_apply reuses the layer objects it does
    not wrap, which then sit in two graphs, so `layer.output` can name the wrong one."""
    with _qk.quantize_scope(objects or custom_objects()):
        copy = keras.models.clone_model(qat_model, clone_function=copy_layer)
    copy.set_weights(qat_model.get_weights())
    return copy


def make_range_sync(qat_model):
    """A function that makes every replica's input-quantizer range the union of all replicas'.

    TF-MOT's QuantizeLayer updates its min/max with a plain per-replica assign, so under a
    MirroredStrategy the replicas' ranges drift apart (the other quantizers synchronise). Run
    after each student step in cross-replica context. None when the model has no such layer.
    """
    ranges = [weight for layer in qat_model.layers if isinstance(layer, QuantizeLayer)
              for weight in layer.weights if weight.name.endswith(("_min:0", "_max:0"))]
    if not ranges:
        return None

    def sync():
        for weight in ranges:
            copies = tf.stack(list(getattr(weight, "values", (weight,))))
            merge = tf.reduce_min if weight.name.endswith("_min:0") else tf.reduce_max
            weight.assign(merge(copies, axis=0))

    return sync


def qat_layer(qat_model, name):
    """The layer of a QAT model that stands for the float model's layer `name`: TF-MOT's wrapper
    `quant_<name>`, or the layer itself where nothing wrapped it; None if there is neither."""
    for candidate in (name, f"quant_{name}"):
        try:
            return qat_model.get_layer(candidate)
        except ValueError:
            continue
    return None


def stored_kernel(layer):
    """The kernel variable a (possibly QAT-wrapped) convolution or dense layer trains: a wrapper
    replaces `layer.layer.kernel` by the quantized tensor and tracks the variable itself."""
    return next(weight for weight in layer.trainable_weights
                if variable_name(weight.name).startswith("kernel"))


def _consumers(layer):
    return [node.outbound_layer for node in layer._outbound_nodes]  # pylint: disable=protected-access


# The activations the converter fuses into the convolution or dense op before them.
FUSED_ACTIVATIONS = ("relu", "relu6")


def fuses_into_kernel(layer):
    """Whether the converter fuses `layer`, an activation after a convolution or dense layer,
    into that op (ReLU, ReLU6), so the op's output range is the activation's. Any other (swish,
    sigmoid, LeakyReLU) is an op of its own: the kernel's output then needs a range of its own,
    or the converter calibrates one and leaves a 4-bit kernel unpacked INT8."""
    if isinstance(layer, keras.layers.ReLU):
        return (layer.max_value in (None, 6.0) and not layer.negative_slope
                and not layer.threshold)
    return (isinstance(layer, keras.layers.Activation)
            and getattr(layer.activation, "__name__", "") in FUSED_ACTIVATIONS)


def _has_activation(layer):
    activation = getattr(layer, "activation", None)
    return activation is not None and activation is not keras.activations.linear


def nbit_config_for(model, weight_bits, act_bits, weight_bits_of=None, range_start="tfmot"):
    """The per-layer config function of the w<weight_bits>a<act_bits> scheme for `model`;
    `weight_bits_of(layer)`, if given, sets each kernel layer's own weight bits (mixed.py);
    `range_start` is where activation ranges start (RobustRangeQuantizer)."""
    logits_layer = model.layers[-1]

    def config_for(layer):
        if isinstance(layer, _PASS_THROUGH + _OPAQUE):
            return None
        quantize_output = layer is not logits_layer
        if isinstance(layer, _KERNEL_LAYERS):
            consumers = _consumers(layer)
            if (not _has_activation(layer) and len(consumers) == 1
                    and fuses_into_kernel(consumers[0])):
                quantize_output = False
            bits = weight_bits_of(layer) if weight_bits_of else weight_bits
            return NBitQuantizeConfig(bits, act_bits if quantize_output else 0, range_start)
        if not quantize_output:
            return None
        return NBitQuantizeConfig(0, act_bits, range_start)

    return config_for


def quantize_nbit(model, weight_bits, act_bits, weight_bits_of=None, range_start="tfmot"):
    """A QAT copy of `model` with `weight_bits` kernels (or `weight_bits_of(layer)` each) and
    `act_bits` activations whose ranges start as `range_start` says (RobustRangeQuantizer)."""
    for name, bits in (("weight_bits", weight_bits), ("act_bits", act_bits)):
        if not 2 <= bits <= 8:
            raise ConfigError(f"{name} must be between 2 and 8, got {bits}")
    _check_supported(model)
    for layer in model.layers:  # its quantized kernels cannot be saved (TF-MOT's int8 splits it)
        if isinstance(layer, keras.layers.SeparableConv2D):
            raise ConfigError(
                f"layer {layer.name!r} (SeparableConv2D) is not supported by --quantize="
                f"w{weight_bits}a{act_bits}: split it first (tfdfc.kernel_split.split, as a run "
                "does when it loads the teacher)")
    return apply_configs(model, nbit_config_for(model, weight_bits, act_bits, weight_bits_of,
                                                 range_start))


def quantize_int8(model):
    """A QAT copy of `model` under TF-MOT's default 8-bit scheme."""
    _check_supported(model)
    try:
        return _quantize_default(model)
    except RuntimeError as error:
        raise ConfigError(f"TF-MOT's 8-bit scheme cannot quantize this model: {error}") from error


def _fresh_copy(layer):
    return layer.__class__.from_config(layer.get_config())


def _quantize_default(model):
    """quantize_model, with the layers TF-MOT's default scheme has no config for (pre-activation
    batch norms, Rescaling, Normalization, Multiply, activations such as hard-swish) annotated
    output-only (8-bit) and opaque op layers left float."""
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()

    def annotate(layer):
        copy = _fresh_copy(layer)
        if isinstance(layer, (keras.layers.InputLayer,) + _OPAQUE):
            return copy
        if isinstance(layer, keras.layers.AveragePooling2D):  # its input's range (_PASS_THROUGH)
            return _qk.quantize_annotate_layer(copy, NBitQuantizeConfig(0, 0))
        if isinstance(layer, keras.layers.BatchNormalization) and not _follows_kernel(layer):
            return _qk.quantize_annotate_layer(copy, NBitQuantizeConfig(0, 8))
        if not _default_scheme_handles(registry, layer):
            return _qk.quantize_annotate_layer(copy, NBitQuantizeConfig(0, 8))
        return _qk.quantize_annotate_layer(copy)

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with _qk.quantize_scope(custom_objects()):
        return _own_layers(_qk.quantize_apply(annotated))


def _default_scheme_handles(registry, layer):
    """Whether TF-MOT's default 8-bit registry has a working config for `layer`."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return True  # folded or quantized by the scheme's layout transforms
    if not registry.supports(layer):
        return False
    try:  # an Activation config raises here for activations it does not know (hard-swish)
        registry.get_quantize_config(layer).get_output_quantizers(layer)
    except ValueError:
        return False
    return True


def _follows_kernel(layer):
    """Whether the default scheme folds this batch norm: its input is a convolution with no
    activation of its own (`Conv2D(activation="relu")` then a batch norm is not folded) that
    feeds nothing else."""
    inbound = layer._inbound_nodes[0].inbound_layers  # pylint: disable=protected-access
    return (isinstance(inbound, keras.layers.Conv2D) and len(_consumers(inbound)) == 1
            and inbound.activation in (None, keras.activations.linear))


def check_kernels_supported(model, scheme):
    """Raises ConfigError for kernels this scheme would silently leave in float."""
    for layer in model.layers:
        if isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
            raise ConfigError(
                f"layer {layer.name!r} ({type(layer).__name__}) is not supported by --quantize="
                f"{scheme}: only Conv2D and Dense kernels are quantized. Use --quantize=int8 "
                "or w<b>a<c>")


def _check_supported(model):
    if isinstance(model, keras.Sequential) or not hasattr(model, "_is_graph_network"):
        return
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise ConfigError(
                f"layer {layer.name!r} is a nested model; TF-MOT quantizes flat models only. "
                "Flatten the teacher (build it from the nested model's layers) first")
        if (type(layer).__module__.split(".")[0] not in ("tf_keras", "keras")
                and not isinstance(layer, _qk.quantizers.Quantizer)):
            raise ConfigError(
                f"layer {layer.name!r} of type {type(layer).__name__} is a custom layer that "
                "TF-MOT does not know how to quantize")
