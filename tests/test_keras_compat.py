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


def _import_tfdfc_in_a_fresh_process(onednn_env_value):
    """(oneDNN kernels on, Keras 3 imported, TF-MOT's Keras-2 base layer) in a fresh process
    that imports tfdfc first."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if onednn_env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn_env_value
    code = ("import sys\n"
            "import tfdfc.pipeline\n"
            "from tensorflow.python.util import _pywrap_util_port\n"
            "from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry\n"
            "print(_pywrap_util_port.IsMklEnabled(), 'keras' in sys.modules,\n"
            "      prune_registry.base_layer is None)\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            check=True)
    return [word == "True" for word in result.stdout.strip().splitlines()[-1].split()]


@pytest.mark.slow
def test_onednn_is_on_by_default_and_keras3_is_not_imported_with_tfdfc():
    """Even on AVX2-only CPUs; Keras 3 (seconds of start-up) only when a Keras 3 file is read,
    while TF-MOT's pruning registry ends as it does when Keras 3's import fails."""
    onednn, keras3_imported, no_keras2_base_layer = _import_tfdfc_in_a_fresh_process(None)
    assert onednn and not keras3_imported and no_keras2_base_layer


@pytest.mark.slow
def test_the_users_onednn_setting_wins():
    assert not _import_tfdfc_in_a_fresh_process("0")[0]
