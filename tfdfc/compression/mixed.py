"""The mechanics of mixed precision (`--quantize=mixed`): each convolution and dense kernel at 4
or 8 bits, activations at 8, under a budget of weight bytes.

- Weight bytes are those of the convolution, depthwise and dense kernels as the full-integer
  TFLite file stores them: one byte per weight at 8 bits, half a byte where the converter packs
  4-bit weights into an INT4 tensor. Biases (int32) and activations are the same at every
  assignment, so they are not counted. The converter does not pack every 4-bit kernel (it keeps
  some, such as a first convolution or the dense head, as INT8 tensors holding 16 levels):
  `packed_layers` converts an all-4-bit copy once and reads which kernels came out INT4, and
  only those are choices, since elsewhere 4 bits would cost accuracy and save no byte.
- The budget is met by a knapsack: the set of layers moved to 4 bits saves at least the bytes
  the budget asks for at the least total sensitivity (sensitivity.py measures it), then layers
  go back to 8 bits, the most sensitive first, while the budget still holds. The budget is
  spent, not only kept: where some assignment holds within FILL_TOLERANCE of it, the set is
  the least sensitive among those, since a cheaper set that saves far more than asked leaves
  bytes the user granted at 4 bits (a WRN's few large kernels save a lot each). The random
  control is held to the same band, so the two compare at the same size.
- The QAT student is the w<b>a8 scheme of quantize.py with b chosen per layer.
"""

import math

import numpy as np

from tfdfc import metrics
from tfdfc.compression import quantize
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras

CHOICES = (4, 8)
ASSIGNMENTS = ("sensitivity", "random")
ACT_BITS = 8
RANDOM_TRIES = 1000  # draws the random control may take to differ from the search's and fill
FILL_TOLERANCE = 0.02  # an assignment holds at least 1 - this of the budget, where one can
_BAND_UNITS = 200_000  # resolution of the knapsack over saved bytes
_PACKED_BITS = {"INT4": 4, "INT8": 8}


def kernel_sizes(model):
    """{layer name: weights in its kernel} of every convolution, depthwise and dense layer, in
    the model's order; raises ConfigError for a kernel layer the scheme cannot quantize."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.SeparableConv2D):
            raise ConfigError(f"layer {layer.name!r} (SeparableConv2D) is not supported by "
                              "--quantize=mixed: split it first (tfdfc.kernel_split.split, as a "
                              "run does when it loads the teacher)")
    sizes = {layer.name: int(np.prod(kernel.shape))
             for layer, kernel in metrics.kernel_layers(model)}
    if not sizes:
        raise ConfigError("--quantize=mixed: the teacher has no convolution or dense layer")
    return sizes


def layer_bytes(size, bits):
    """Bytes of a kernel of `size` weights at `bits` (4-bit weights packed two per byte)."""
    return size if bits == 8 else math.ceil(size * bits / 8)


def weight_bytes(sizes, bits):
    """Bytes of the kernels `sizes` ({layer: weights}) at `bits` ({layer: 4 or 8})."""
    return sum(layer_bytes(size, bits[name]) for name, size in sizes.items())


def int8_bytes(sizes):
    """Bytes of the kernels `sizes` all at 8 bits."""
    return weight_bytes(sizes, dict.fromkeys(sizes, 8))


def budget_bytes(budget, sizes):
    """The budget in bytes: `budget` <= 1 is a fraction of the int8 kernels' bytes."""
    return int(math.floor(budget * int8_bytes(sizes))) if budget <= 1 else int(budget)


def fill_floor(limit):
    """The fewest bytes an assignment under `limit` should hold: within FILL_TOLERANCE of it."""
    return limit - math.floor(FILL_TOLERANCE * limit)


def check_budget(limit, sizes, packed):
    """Raises ConfigError when no assignment fits `limit` bytes."""
    smallest = weight_bytes(sizes, all_bits(sizes, packed, 4))
    if limit < smallest:
        full = int8_bytes(sizes)
        raise ConfigError(
            f"--mixed_budget of {limit:,} bytes is below the smallest mixed model: every kernel "
            f"TFLite packs at 4 bits gives {smallest:,} bytes ({smallest / full:.3f} of "
            f"int8's {full:,}); raise the budget")


def all_bits(sizes, packed, bits):
    """`bits` for every packed layer, 8 for the others."""
    return {name: bits if name in packed else 8 for name in sizes}


def _saving(size):
    return size - layer_bytes(size, 4)


def solve(sizes, packed, sensitivity, limit):
    """{layer: bits} within `limit` bytes whose 4-bit layers have the least total sensitivity
    among the assignments that hold at least `fill_floor(limit)` bytes, where any does.

    Args:
      sizes: {layer: kernel weights}.
      packed: the layers that may take 4 bits.
      sensitivity: {layer: how much worse the model gets with that layer alone at 4 bits}.
      limit: the budget in bytes.
    """
    check_budget(limit, sizes, packed)
    need = int8_bytes(sizes) - limit
    candidates = [name for name in sizes if name in packed]
    chosen = set()
    if need > 0:
        costs = [max(0.0, float(sensitivity[name])) for name in candidates]
        savings = [_saving(sizes[name]) for name in candidates]
        within = _cover_within(savings, costs, need, int8_bytes(sizes) - fill_floor(limit))
        if within is None:  # no set lands near the budget: the least sensitive cover
            # Where coarse units hide every cover (only near the all-4-bit end), all candidates
            # cover `need` (check_budget), and _refill puts back what the budget allows.
            within = (_cover_within(savings, costs, need, sum(savings))
                      or list(range(len(candidates))))
        chosen = {candidates[index] for index in within}
    bits = {name: 4 if name in chosen else 8 for name in sizes}
    return _refill(sizes, bits, limit, sorted(chosen, key=lambda n: -sensitivity[n]))


def fullest_bytes(sizes, packed, limit):
    """The most weight bytes any assignment holds within `limit`: how near to the budget
    per-layer choices can come at all. Where a few large kernels dominate (a LeNet-5's dense
    layers), no assignment may come near it, whatever the search. Exact: the sums of savings
    reachable by subsets of the packed layers, as a boolean array over bytes."""
    check_budget(limit, sizes, packed)
    full = int8_bytes(sizes)
    need = full - limit
    if need <= 0:
        return full
    savings = [_saving(sizes[name]) for name in sizes if name in packed]
    reachable = np.zeros(sum(savings) + 1, dtype=bool)
    reachable[0] = True
    for saving in savings:
        if saving:
            reachable[saving:] |= reachable[:-saving].copy()
    least = int(np.flatnonzero(reachable[need:])[0]) + need  # exists: check_budget passed
    return full - least


def _cover_within(savings, costs, low, high):
    """Indices of the subset whose savings sum to between `low` and `high` bytes at the least
    total cost, or None when no subset does (0/1 knapsack by dynamic programming over the sum,
    in units of bytes where the sums are small, else coarser and checked exactly after)."""
    unit = max(1, math.ceil(high / _BAND_UNITS))
    gains = [saving // unit for saving in savings]  # rounded down: a sum >= low_units is >= low
    low_units, high_units = math.ceil(low / unit), high // unit
    best = np.full(high_units + 1, np.inf)  # best[g]: least cost of a subset whose gains sum to g
    best[0] = 0.0
    took = np.zeros((len(gains), high_units + 1), dtype=bool)
    for index, (gain, cost) in enumerate(zip(gains, costs)):
        if gain > high_units:
            continue
        trial = np.full_like(best, np.inf)
        trial[gain:] = best[:high_units + 1 - gain] + cost
        took[index] = trial < best
        best = np.where(took[index], trial, best)
    if low_units > high_units or not np.isfinite(best[low_units:]).any():
        return None
    reach = low_units + int(np.argmin(best[low_units:]))
    picked = []
    for index in range(len(gains) - 1, -1, -1):
        if took[index, reach]:
            picked.append(index)
            reach -= gains[index]
    return picked if low <= sum(savings[i] for i in picked) <= high else None


def _refill(sizes, bits, limit, order):
    """`bits` with layers of `order` put back to 8 bits while the budget holds."""
    bits = dict(bits)
    for name in order:
        trial = dict(bits, **{name: 8})
        if weight_bytes(sizes, trial) <= limit:
            bits = trial
    return bits


def random_bits(sizes, packed, limit, seed, avoid=None, tries=RANDOM_TRIES):
    """The control: packed layers moved to 4 bits in a random order until `limit` holds, then
    put back to 8 in another random order while it still holds. Drawn again, up to `tries`
    times, until the bits hold within FILL_TOLERANCE of the budget (where some assignment can,
    as `solve` keeps them) and, with `avoid` (the sensitivity search's assignment), differ from
    it: a control equal to the assignment it controls tests nothing. Where no draw does both,
    a draw that differs comes first, then one that is full; where none differs (one set of
    4-bit layers is all the budget allows) the draw is equal to `avoid`."""
    check_budget(limit, sizes, packed)
    floor = fill_floor(limit)
    if fullest_bytes(sizes, packed, limit) < floor:
        floor = 0  # no assignment is that full: any draw is
    rng = np.random.default_rng(seed)
    chosen, chosen_rank = None, None
    for _ in range(tries):
        bits = _random_draw(sizes, packed, limit, rng)
        rank = (bits != avoid, weight_bytes(sizes, bits) >= floor)
        if chosen is None or rank > chosen_rank:
            chosen, chosen_rank = bits, rank
        if all(rank):
            break
    return chosen


def _random_draw(sizes, packed, limit, rng):
    candidates = [name for name in sizes if name in packed]
    bits = dict.fromkeys(sizes, 8)
    for index in rng.permutation(len(candidates)):
        if weight_bytes(sizes, bits) <= limit:
            break
        bits[candidates[index]] = 4
    fours = [name for name in candidates if bits[name] == 4]
    return _refill(sizes, bits, limit, [fours[i] for i in rng.permutation(len(fours))])


def fake_quantized(kernel, bits, range_axes):
    """`kernel` on the symmetric, narrow-range grid of `bits` the QAT weight quantizer uses, one
    range per slice along the axes not in `range_axes` (None: one range for the tensor)."""
    kernel = np.asarray(kernel, np.float32)
    top = np.max(np.abs(kernel), axis=range_axes, keepdims=range_axes is not None)
    scale = np.where(top > 0, top, 1.0) / (2 ** (bits - 1) - 1)
    return (np.round(kernel / scale) * scale).astype(np.float32)


def range_axes(layer):
    """The kernel axes one quantization range spans in quantize.py's scheme: a convolution's
    all but the output channel, a depthwise one's the two spatial ones (a range per channel
    and multiplier), a dense kernel's all (None)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return (0, 1)
    return (0, 1, 2) if isinstance(layer, keras.layers.Conv2D) else None


def quantize_mixed(model, bits, range_start="tfmot"):
    """A QAT copy of `model`: each kernel at `bits[layer name]`, activations at 8 bits whose
    ranges start as `range_start` says (quantize.RobustRangeQuantizer)."""
    missing = sorted(set(kernel_sizes(model)) - set(bits))
    if missing:
        raise ConfigError(f"--quantize=mixed: no bit width for layer(s) {', '.join(missing)}")
    return quantize.quantize_nbit(model, 8, ACT_BITS, weight_bits_of=lambda layer:
                                  bits[layer.name], range_start=range_start)


def file_bits(payload, model):
    """{layer name: 4 or 8} as a TFLite file of `model` (float or QAT) stores its kernels.

    Tensor names cannot say which layer a kernel belongs to: the converter names the kernels of
    same-shaped layers after the first of them (MobileNetV2's repeated blocks all read
    `block_1_...`). Each kernel in the file's op order goes to the first layer, in the model's
    order, with its stored shape that has none yet; among those, one the tensor name names is
    taken first. A layer with no such kernel is left out.
    """
    layers = metrics.stored_kernel_shapes(model)
    bits = {}
    for kernel in metrics.tflite_kernels(payload):
        free = [name for name, shape in layers if shape == kernel.shape and name not in bits]
        named = [name for name in free if f"quant_{name}/" in kernel.name or
                 f"/{name}/" in kernel.name]
        chosen = (named or free or [None])[0]
        if chosen is not None and kernel.type in _PACKED_BITS:
            bits[chosen] = _PACKED_BITS[kernel.type]
    return bits
