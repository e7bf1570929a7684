"""tf.keras must resolve to tf-keras (legacy Keras), the only Keras TF-MOT can wrap."""

import os
import subprocess
import sys

import pytest

from tfdfc.keras_compat import keras, tf, tfmot


def test_tf_keras_is_legacy_keras():
    assert tf.keras.layers.Dense is keras.layers.Dense
    assert keras.__version__.startswith("2.")


@pytest.mark.slow
def test_tfmot_wraps_a_model_built_with_our_keras():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    quantized = tfmot.quantization.keras.quantize_model(model)
    assert any("quant" in layer.name for layer in quantized.layers)


def _onednn_enabled_after_importing_tfdfc(env_value):
    """Whether TensorFlow's oneDNN kernels are on in a fresh process that imports tfdfc first."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    code = ("import tfdfc.keras_compat\n"
            "from tensorflow.python.util import _pywrap_util_port\n"
            "print(_pywrap_util_port.IsMklEnabled())\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            check=True)
    return result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.slow
def test_onednn_kernels_are_on_by_default_even_on_avx2_cpus():
    assert _onednn_enabled_after_importing_tfdfc(None)


@pytest.mark.slow
def test_the_users_onednn_setting_wins():
    assert not _onednn_enabled_after_importing_tfdfc("0")
