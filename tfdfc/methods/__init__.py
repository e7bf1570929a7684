"""Compression methods, one object each (base.Method), one module each.

A run looks its method up once, by `for_config`; everything that differs between schemes (its
settings' checks, the student and its training hooks, the files it exports, its no-training
baseline, its report fields and summaries) is asked of that object. Adding a method is one
module with a Method subclass and one line in METHODS (docs/adding-a-method.md).
"""

from tfdfc.errors import ConfigError
from tfdfc.methods.base import Method
from tfdfc.methods.binary_weights import Binary
from tfdfc.methods.distill import Distill
from tfdfc.methods.int8_qat import Int8
from tfdfc.methods.lottery_ticket import LotteryTicket
from tfdfc.methods.magnitude_pruning import Magnitude, MagnitudeInt8
from tfdfc.methods.mixed_precision import MixedPrecision
from tfdfc.methods.nbit_qat import NBit
from tfdfc.methods.slimming import Slim

# The first that selects a configuration is its method.
METHODS = (LotteryTicket(), Distill(), Int8(), NBit(), MixedPrecision(), Binary(), Magnitude(),
           MagnitudeInt8(), Slim())


def added_quantize_values():
    """The `--quantize` values that methods beyond the built-in schemes take."""
    return tuple(method.quantize_value for method in METHODS if method.quantize_value)


def combination_error(config):
    """The one-line refusal of a --prune and --quantize pair no method runs (with its fix), or
    None: one text, whether the flags' validation or a method lookup meets the pair first."""
    if config.prune == "magnitude" and config.quantize not in ("none", "int8"):
        return ("--prune=magnitude combines only with --quantize=int8 (magnitude pruning inside "
                "int8 QAT)")
    if config.prune == "slim" and config.quantize != "none":
        return ("--prune=slim does not combine with --quantize: quantize the slimmed student in "
                "a second run (--teacher=<its saved_model>)")
    return None


def for_config(config):
    """The method of a CompressConfig; raises ConfigError for a combination none runs."""
    for method in METHODS:
        if method.selects(config):
            return method
    raise ConfigError(combination_error(config) or
                      f"no method runs --quantize={config.quantize} with --prune={config.prune}")
