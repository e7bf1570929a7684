"""Keras 3 teachers become tf-keras models with Keras 3's outputs, or are refused in one line.

The teachers are built and run by real Keras 3 in one subprocess (this process has selected
tf-keras), which also saves their outputs on fixed inputs for the comparison.
"""

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from tfdfc import keras3_import, teacher
from tfdfc.errors import UserInputError
from tfdfc.keras_compat import keras

pytestmark = pytest.mark.slow  # builds the teachers with Keras 3 in a subprocess

_BUILD_TEACHERS = r'''
import os, sys
import numpy as np
import keras
from keras import layers

out = sys.argv[1]
keras.utils.set_random_seed(0)
rng = np.random.default_rng(1)


def leaf_layers(model):
    for layer in model.layers:
        yield from leaf_layers(layer) if isinstance(layer, keras.Model) else [layer]


def randomise_batchnorm(model):  # moving statistics far from the initial 0 and 1
    for layer in leaf_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c),
                               rng.normal(0, 0.5, c), rng.uniform(0.5, 2.0, c)])


def convnet():
    inputs = keras.Input((16, 16, 3))
    normalize = layers.Normalization(name="normalize")
    normalize.adapt(rng.normal(2.0, 3.0, (32, 16, 16, 3)).astype("float32"))
    x = layers.ZeroPadding2D(1)(normalize(inputs))
    x = layers.Conv2D(8, 3, strides=2, use_bias=False)(x)
    x = layers.Activation("relu6")(layers.BatchNormalization()(x))
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    y = layers.Activation("swish")(layers.BatchNormalization()(y))
    gate = layers.GlobalAveragePooling2D(keepdims=True)(y)
    gate = layers.Conv2D(4, 1, activation="relu")(gate)
    gate = layers.Conv2D(8, 1, activation="hard_sigmoid", name="gate")(gate)
    y = layers.SeparableConv2D(8, 3, padding="same")(layers.Multiply()([y, gate]))
    x = layers.LeakyReLU(negative_slope=0.1)(layers.Add()([x, y]))
    x = layers.Activation("hard_swish", name="hswish")(x)
    x = layers.Concatenate()([layers.MaxPooling2D(2)(x), layers.AveragePooling2D(2)(x)])
    x = layers.Dropout(0.2)(layers.ReLU()(x))
    outputs = layers.Dense(10, activation="softmax")(layers.GlobalMaxPooling2D()(x))
    return keras.Model(inputs, outputs)


def base():  # the transfer-learning shape: a Functional feature extractor
    inputs = keras.Input((16, 16, 3))
    x = layers.BatchNormalization()(layers.Conv2D(4, 3)(inputs))
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(layers.ReLU()(x)), name="base")


def functional_nested(features):
    inputs = keras.Input((16, 16, 3))
    x = features(layers.Rescaling(2.0, offset=-1.0)(inputs), training=False)
    flat = keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(2, 3), layers.Flatten()],
                            name="flat")(inputs)
    x = layers.Dropout(0.2)(layers.Concatenate()([x, flat]))
    return keras.Model(inputs, layers.Dense(10)(x))


def arithmetic():  # keras.ops on symbolic tensors, as keras.applications' MobileNetV3 has them
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(4, 3)(inputs)
    gate = layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)
    y = (1.0 - x) / 2.0 + 0.5 * x * gate - gate
    return keras.Model(inputs, layers.Dense(10)(layers.Flatten()(y - 2.0 + y)))


def mobilenet_v3():
    return keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), alpha=0.75, weights=None, classes=10,
        classifier_activation=None)


def convnext_block():  # keras.applications' ConvNeXt block, with its own LayerScale layer
    from keras.src.applications.convnext import LayerScale, StochasticDepth
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 4, strides=4)(inputs)
    y = layers.LayerNormalization(epsilon=1e-6)(layers.DepthwiseConv2D(7, padding="same")(x))
    y = layers.Dense(8)(layers.Activation("gelu")(layers.Dense(32)(y)))
    y = StochasticDepth(0.1, name="drop_path")(LayerScale(1e-6, 8, name="scale")(y))
    x = layers.LayerNormalization()(layers.GlobalAveragePooling2D()(layers.Add()([x, y])))
    model = keras.Model(inputs, layers.Dense(10)(x))
    model.get_layer("scale").set_weights([rng.normal(0, 0.5, 8)])  # not the initial 1e-6
    return model


def scale_on_vector():
    from keras.src.applications.convnext import LayerScale
    inputs = keras.Input((16, 16, 1))
    x = LayerScale(0.5, 16, name="vector_scale")(layers.Dense(16)(layers.Flatten()(inputs)))
    return keras.Model(inputs, layers.Dense(10)(x))


def half_precision():  # trained with mixed_float16 on a GPU, as many are
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    inputs = keras.Input((16, 16, 3))
    x = layers.BatchNormalization()(layers.Conv2D(4, 3, activation="relu")(inputs))
    x = layers.Dense(10)(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, layers.Activation("linear", dtype="float32")(x))
    keras.mixed_precision.set_dtype_policy("float32")
    return model


@keras.saving.register_keras_serializable(package="tests")
class Doubler(layers.Layer):
    def call(self, x):
        return x * 2.0


def single_layer_model(layer):
    inputs = keras.Input((16, 16, 1))
    return keras.Model(inputs, layers.Dense(10)(layers.Flatten()(layer(inputs))))


features = base()
teachers = {
    "convnet": convnet(),
    "mlp": keras.Sequential([
        keras.Input((16, 16, 1)), layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
        layers.RandomContrast(0.2, value_range=(0, 255)), layers.RandomErasing(),
        layers.Rescaling(1 / 255), layers.Reshape((256,)),
        layers.Dense(32, activation="hard_silu"), layers.Dense(16, activation="sigmoid"),
        layers.Dropout(0.1), layers.Dense(10), layers.Softmax()], name="mlp"),
    "sequential_nested": keras.Sequential(
        [keras.Input((16, 16, 3)), features, layers.Dense(10, activation="softmax")]),
    "functional_nested": functional_nested(features),
    "arithmetic": arithmetic(),
    "mobilenet_v3": mobilenet_v3(),
    "convnext_block": convnext_block(),
}
expected = {}
for name, model in teachers.items():
    randomise_batchnorm(model)
    shape = (8,) + tuple(model.inputs[0].shape[1:])
    x = (rng.uniform(0, 255, shape) if name == "mlp" else rng.normal(0, 1, shape))
    expected[name + "_x"] = x.astype("float32")
    expected[name + "_y"] = keras.ops.convert_to_numpy(model(expected[name + "_x"],
                                                             training=False))
    model.save(os.path.join(out, name + ".keras"))
teachers["convnet"].save(os.path.join(out, "convnet.h5"))
single_layer_model(Doubler(name="doubler")).save(os.path.join(out, "custom.keras"))
single_layer_model(layers.Activation("celu", name="odd")).save(os.path.join(out, "celu.keras"))
single_layer_model(lambda x: 2.0 / x).save(os.path.join(out, "reciprocal.keras"))
half_precision().save(os.path.join(out, "half.keras"))
scale_on_vector().save(os.path.join(out, "vector_scale.keras"))
np.savez(os.path.join(out, "expected.npz"), **expected)
'''


@pytest.fixture(scope="module")
def keras3_teachers(tmp_path_factory):
    """(directory of Keras 3 teacher files, their inputs and Keras 3 outputs by name)."""
    directory = tmp_path_factory.mktemp("keras3")
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run([sys.executable, "-c", _BUILD_TEACHERS, str(directory)], env=env,
                            timeout=600, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return directory, dict(np.load(directory / "expected.npz"))


@pytest.mark.parametrize("file_name", ["convnet.keras", "convnet.h5", "mlp.keras",
                                       "sequential_nested.keras", "functional_nested.keras",
                                       "arithmetic.keras", "mobilenet_v3.keras",
                                       "convnext_block.keras"])
def test_conversion_gives_keras3_outputs(keras3_teachers, file_name):
    directory, expected = keras3_teachers
    model, info = keras3_import.convert(str(directory / file_name))
    name, suffix = os.path.splitext(file_name)
    assert isinstance(model, keras.Model)
    np.testing.assert_allclose(model(expected[name + "_x"], training=False),
                               expected[name + "_y"], atol=keras3_import.OUTPUT_TOLERANCE)
    assert info["converted_from"].startswith("keras 3.")
    assert info["converted_from"].endswith(" " + suffix)
    assert 0 <= info["max_abs_output_difference"] <= keras3_import.OUTPUT_TOLERANCE


def test_conversion_keeps_the_structure(keras3_teachers):
    directory, _ = keras3_teachers
    nested, _ = keras3_import.convert(str(directory / "sequential_nested.keras"))
    assert isinstance(nested, keras.Sequential)
    assert isinstance(nested.get_layer("base"), keras.Model)
    moving_variance = nested.get_layer("base").layers[2].moving_variance.numpy()
    assert not np.allclose(moving_variance, 1.0)  # the Keras 3 statistics arrived
    # hard_swish, absent from tf-keras, becomes x * relu6(x + 3) / 6 in standard layers.
    convnet, _ = keras3_import.convert(str(directory / "convnet.keras"))
    assert isinstance(convnet.get_layer("hswish_multiply"), keras.layers.Multiply)
    assert convnet.get_layer("gate").activation is keras.activations.linear
    # Augmentation (off at inference; RandomErasing is Keras 3's alone) becomes Identity layers.
    mlp, _ = keras3_import.convert(str(directory / "mlp.keras"))
    assert [type(layer).__name__ for layer in mlp.layers[1:5]] == ["Identity"] * 4
    # keras.ops arithmetic: a number makes a Rescaling, two tensors a merge layer.
    arithmetic, _ = keras3_import.convert(str(directory / "arithmetic.keras"))
    kinds = [type(layer).__name__ for layer in arithmetic.layers]
    assert kinds.count("Rescaling") == 6
    assert {"Add", "Subtract", "Multiply"} <= set(kinds)
    # ConvNeXt's LayerScale becomes a 1x1 depthwise convolution, its StochasticDepth an Identity.
    convnext, _ = keras3_import.convert(str(directory / "convnext_block.keras"))
    scale = convnext.get_layer("scale")
    assert isinstance(scale, keras.layers.DepthwiseConv2D)
    assert scale.depthwise_kernel.shape == (1, 1, 8, 1)
    assert isinstance(convnext.get_layer("drop_path"), keras.layers.Identity)


def test_a_half_precision_model_converts_to_float32_within_float16_precision(keras3_teachers):
    directory, _ = keras3_teachers
    model, info = keras3_import.convert(str(directory / "half.keras"))
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    assert info["max_abs_output_difference"] > 0  # Keras 3 computed in float16


def test_teacher_load_converts_keras3_files_and_reports_it(keras3_teachers, tmp_path):
    directory, _ = keras3_teachers
    model, info = teacher.load_with_info(str(directory / "mlp.keras"))
    assert isinstance(model, keras.Model)
    assert info["converted_from"].endswith(".keras")
    own = str(tmp_path / "own.keras")
    model.save(own)
    assert teacher.load_with_info(own)[1] is None
    assert isinstance(teacher.load(own), keras.Model)


@pytest.mark.parametrize("file_name, words", [("custom.keras", ["'doubler'", "(Doubler)"]),
                                              ("celu.keras", ["'odd'", "'celu'"]),
                                              ("reciprocal.keras",
                                               ["reciprocal.keras: ", "'true_divide", "divides"]),
                                              ("vector_scale.keras",
                                               ["vector_scale.keras: ", "'vector_scale'",
                                                "rank-2", "feature maps"])])
def test_layers_without_a_tf_keras_counterpart_are_refused_in_one_line(
        keras3_teachers, file_name, words):
    directory, _ = keras3_teachers
    with pytest.raises(teacher.TeacherError) as caught:
        teacher.load(str(directory / file_name))
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_an_output_difference_is_refused_with_its_size(keras3_teachers, monkeypatch):
    directory, _ = keras3_teachers
    monkeypatch.setattr(keras3_import, "_copy_weights", lambda source, target: None)
    with pytest.raises(keras3_import.Keras3ImportError, match=r"differ .* by up to \d"):
        keras3_import.convert(str(directory / "mlp.keras"))
    assert issubclass(keras3_import.Keras3ImportError, UserInputError)


def test_a_keras3_h5_keras3_cannot_read_back_is_refused_with_the_keras_format_as_the_fix(
        keras3_teachers, tmp_path):
    """Keras 3 writes some models to .h5 that it cannot load (MobileNetV3's `x + 3.0`): the
    refusal names the file and points to .keras. Here the weights are taken out of the file."""
    directory, _ = keras3_teachers
    broken = tmp_path / "broken.h5"
    shutil.copy(directory / "convnet.h5", broken)
    with h5py.File(broken, "r+") as file:
        del file["model_weights"]
    with pytest.raises(keras3_import.Keras3ImportError) as raised:
        keras3_import.convert(str(broken))
    message = str(raised.value)
    assert message.startswith(f"{broken} could not be loaded by Keras 3") and "\n" not in message
    assert "save it as .keras (model.save('model.keras'))" in message


def test_is_keras3_file(keras3_teachers, tmp_path):
    directory, _ = keras3_teachers
    assert keras3_import.is_keras3_file(str(directory / "convnet.keras"))
    assert keras3_import.is_keras3_file(str(directory / "convnet.h5"))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    for name in ("own.keras", "own.h5"):
        model.save(str(tmp_path / name))
        assert not keras3_import.is_keras3_file(str(tmp_path / name))
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    assert not keras3_import.is_keras3_file(str(tmp_path / "junk.keras"))
    assert not keras3_import.is_keras3_file(str(tmp_path / "missing.h5"))
