"""Exports of a trained student: SavedModel and TFLite, each written atomically.

Exports work on a plain copy of the student built outside any distribution strategy, so the
converter sees ordinary variables. This issue's students are float; quantized and pruned
variants add their converter settings here.
"""

from tfdfc import artifacts
from tfdfc.keras_compat import keras, tf


def plain_copy(model):
    """The same architecture and weights, built outside any strategy scope."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def save_saved_model(model, path):
    """Writes `model` as a SavedModel directory at `path` (atomically)."""
    artifacts.save_keras_model(model, path)


def tflite_float(model):
    """Converts `model` to a float32 TFLite flatbuffer; returns its bytes."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return converter.convert()


def write_tflite(payload, path):
    """Writes a TFLite flatbuffer to `path` atomically."""
    artifacts.write_bytes(path, payload)
