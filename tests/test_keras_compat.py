"""tf.keras must resolve to tf-keras (legacy Keras), the only Keras TF-MOT can wrap."""

from tfdfc.keras_compat import keras, tf, tfmot


def test_tf_keras_is_legacy_keras():
    assert tf.keras.layers.Dense is keras.layers.Dense
    assert keras.__version__.startswith("2.")


def test_tfmot_wraps_a_model_built_with_our_keras():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    quantized = tfmot.quantization.keras.quantize_model(model)
    assert any("quant" in layer.name for layer in quantized.layers)
