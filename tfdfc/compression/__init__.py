"""The mechanics of compressing a Keras model (binary.py, quantize.py, prune.py, slim.py,
ticket.py) and the parsed `--quantize` value; each method (tfdfc/methods/) puts them together.

`--quantize` takes `none`, `binary` (the paper's BinaryConnect), `int8` (TF-MOT's default 8-bit
scheme), `w<b>a<c>` (b-bit weights, c-bit activations, 2 <= b, c <= 8, e.g. w4a8, w4a4) or
`mixed` (4 or 8 weight bits per layer under a budget, 8-bit activations: mixed.py).
"""

import dataclasses
import re
from typing import Callable, Optional

from tfdfc.compression import binary, quantize
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras

_NBIT = re.compile(r"w(\d)a(\d)")
SCHEMES_HELP = ("none, binary, int8, w<bits>a<bits> such as w4a8, w4a4, w2a8, or mixed (4 or 8 "
                "weight bits per layer under --mixed_budget)")


@dataclasses.dataclass(frozen=True)
class QuantSpec:
    """A parsed `--quantize` value."""

    scheme: str  # none | binary | int8 | nbit | a value an added method takes
    weight_bits: int = 32
    act_bits: int = 32
    range_start: str = "tfmot"  # nbit and mixed: where activation ranges start (quantize.py)

    @property
    def is_qat(self):
        return self.scheme in ("int8", "nbit", "mixed")


def parse_quantize(text, added=()):
    """Parses a `--quantize` value, the built-in ones or one of `added` (values that methods
    beyond the built-in ones take, methods.added_quantize_values()); raises ConfigError for
    anything else."""
    if text in added:
        return QuantSpec(text)
    if text == "none":
        return QuantSpec("none")
    if text == "binary":
        return QuantSpec("binary", weight_bits=1, act_bits=32)
    if text == "int8":
        return QuantSpec("int8", weight_bits=8, act_bits=8)
    if text == "mixed":  # 4 or 8 bits per layer (mixed.py); 8 is the widest
        return QuantSpec("mixed", weight_bits=8, act_bits=8)
    match = _NBIT.fullmatch(text)
    if match:
        weight_bits, act_bits = int(match.group(1)), int(match.group(2))
        if not (2 <= weight_bits <= 8 and 2 <= act_bits <= 8):
            raise ConfigError(f"--quantize={text}: bit widths must be between 2 and 8")
        return QuantSpec("nbit", weight_bits, act_bits)
    others = "".join(f", {value}" for value in added)
    raise ConfigError(f"unknown --quantize value {text!r}: use {SCHEMES_HELP}{others}")


@dataclasses.dataclass
class CompressedStudent:
    """The trainable student and what the loop and the exports need to know about it."""

    model: keras.Model
    after_update: Optional[Callable[[], None]]  # e.g. the binary clip, run after each step
    delta: Optional[float] = None  # the binary scale, for binary students
    # Optional: update counter -> extra student loss (slimming's R_p).
    make_regularizer: Optional[Callable[[object], Callable]] = None
    # Optional: update counter -> the after-update function (replaces `after_update`).
    make_after_update: Optional[Callable[[object], Callable]] = None
    # Optional: the trained student -> the model to export (slimming's smaller network).
    final_model: Optional[Callable[[keras.Model], keras.Model]] = None
    # Optional: what the method's `prepare` decided (mixed precision's bits per layer).
    plan: Optional[dict] = None


def compress(float_student, spec, delta=None):
    """`float_student` wrapped for the quantization `spec`: unchanged for none, binarised with
    scale `delta` (None: automatic) for binary, QAT-wrapped for int8 and w<b>a<c>."""
    if spec.scheme == "none":
        return CompressedStudent(float_student, None)
    if spec.scheme == "binary":
        delta = delta or binary.default_delta(float_student)
        model = binary.binarise(float_student, delta)
        return CompressedStudent(model, binary.make_clip(model, delta), delta)
    if spec.scheme == "int8":
        model = quantize.quantize_int8(float_student)
        return CompressedStudent(model, quantize.make_range_sync(model))
    if spec.scheme != "nbit":
        raise ConfigError(f"compress() has no uniform form of --quantize={spec.scheme}: its "
                          "method builds the student")
    model = quantize.quantize_nbit(float_student, spec.weight_bits, spec.act_bits,
                                   range_start=spec.range_start)
    return CompressedStudent(model, quantize.make_range_sync(model))
