"""The one place that selects legacy Keras (tf-keras) and imports TensorFlow, Keras and TF-MOT.

TF-MOT only wraps tf-keras models, and `tf.keras` resolves to tf-keras only when
`TF_USE_LEGACY_KERAS=1` is set before TensorFlow first resolves `tf.keras`. Every other module
imports `tf`, `keras` and `tfmot` from here, so a process can never mix Keras 2 and Keras 3.
It also reads tf-keras's variable names (`variable_name`), which wrappers and layers share.
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512-class features; on
# an AVX2-only CPU they stay off and the alternating iteration runs several times slower
# (bench/NOTES.md). A user's own setting, e.g. "0" for oneDNN-free numerics, wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

# TF-MOT's pruning registry tries Keras 2's `from keras.src.engine import base_layer`. With Keras 3
# installed that imports all of Keras 3 (scikit-learn and pandas with it: a large share of every
# process's start, bench/NOTES.md) and then fails with an ImportError, which TF-MOT catches.
# `None` in sys.modules makes the same import fail at once; Keras 3 stays importable afterwards.
_BLOCK_KERAS3 = "keras" not in sys.modules
if _BLOCK_KERAS3:
    sys.modules["keras"] = None
try:
    import tensorflow_model_optimization as tfmot  # noqa: E402
finally:
    if _BLOCK_KERAS3:
        del sys.modules["keras"]

if tf.keras.layers.Dense is not keras.layers.Dense:
    raise ImportError(
        "tf.keras does not resolve to tf_keras: TensorFlow resolved Keras before "
        "tfdfc.keras_compat was imported. Import tfdfc before anything else touches tf.keras."
    )


def variable_name(full_name):
    """A tf-keras variable's own name: `full_name` ("block/conv/kernel:0") without its scopes
    and output index ("kernel"), as wrappers and layers name their variables alike."""
    return full_name.split("/")[-1].split(":")[0]


__all__ = ["tf", "keras", "tfmot", "variable_name"]
