"""Loading a user's teacher: formats, safe mode, and a clear error for every bad input."""

import os

import numpy as np
import pytest

from conftest import quiet, run_binary_in_process
from tfdfc import api, input_space, metrics, teacher
from tfdfc.keras_compat import keras


def _classifier(activation=None, input_shape=(8, 8, 1), outputs=10):
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(outputs, activation=activation)(x))


@pytest.mark.parametrize("suffix", [".keras", ".h5", "_saved_model"])
def test_loads_every_supported_format_with_the_same_outputs(tmp_path, suffix):
    model = _classifier()
    path = str(tmp_path / f"teacher{suffix}")
    model.save(path) if suffix != ".h5" else model.save(path, save_format="h5")
    loaded = teacher.load(path)
    images = np.random.rand(3, 8, 8, 1).astype(np.float32)
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-6)


def test_missing_path(tmp_path):
    with pytest.raises(teacher.TeacherError, match="teacher not found"):
        teacher.load(str(tmp_path / "nope.keras"))


@pytest.mark.parametrize("name, payload", [("junk.keras", b"not a zip"),
                                           ("junk.h5", b"\x89HDF\r\n garbage"),
                                           ("notes.txt", b"hello")])
def test_a_file_that_is_not_a_model(tmp_path, name, payload):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(teacher.TeacherError, match="could not be loaded|is not a model file"):
        teacher.load(str(path))


def test_saved_model_without_keras_metadata_is_refused_before_any_warning(tmp_path, capfd):
    """What Keras 3's `model.export()` and `tf.saved_model.save` write: one line, the fix, and
    none of the warnings tf-keras logs when it tries to load such a directory."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    module = tf.Module()
    module.serve = tf.function(lambda x: x[:, :10], input_signature=[tf.TensorSpec([None, 64])])
    path = str(tmp_path / "exported")
    tf.saved_model.save(module, path)
    capfd.readouterr()
    with pytest.raises(teacher.TeacherError, match="exported is a SavedModel without Keras "
                                                   "metadata.*save the Keras 3 model to a .keras"):
        teacher.load(path)
    assert teacher.KERAS_METADATA not in "".join(capfd.readouterr())


def test_a_saved_model_with_its_keras_metadata_inside_saved_model_pb_loads(tmp_path):
    """How TensorFlow before 2.5 saved a tf-keras model: no keras_metadata.pb, the metadata in
    the objects of saved_model.pb. Made here from a model saved today by moving it there."""
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel
    from tf_keras.protobuf import saved_metadata_pb2  # pylint: disable=import-outside-toplevel
    model, path = _classifier(), str(tmp_path / "old_saved_model")
    model.save(path, save_format="tf")
    metadata = saved_metadata_pb2.SavedMetadata()
    with open(os.path.join(path, teacher.KERAS_METADATA), "rb") as handle:
        metadata.ParseFromString(handle.read())
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        saved.ParseFromString(handle.read())
    for node in metadata.nodes:
        saved.meta_graphs[0].object_graph_def.nodes[node.node_id].user_object.metadata = (
            node.metadata)
    with open(os.path.join(path, "saved_model.pb"), "wb") as handle:
        handle.write(saved.SerializeToString())
    os.remove(os.path.join(path, teacher.KERAS_METADATA))
    images = np.random.rand(3, 8, 8, 1).astype(np.float32)
    np.testing.assert_allclose(teacher.load(path)(images), model(images), atol=1e-6)


def test_keras3_file_is_converted_and_keras3_model_refused_with_the_fix(tmp_path):
    import keras as keras3  # pylint: disable=import-outside-toplevel
    model = keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Flatten(),
                               keras3.layers.Dense(10)])
    path = str(tmp_path / "k3.keras")
    model.save(path)
    loaded, info = teacher.load_with_info(path)
    assert isinstance(loaded, keras.Model) and info["converted_from"].startswith("keras 3.")
    images = np.random.rand(3, 8, 8, 1).astype(np.float32)
    np.testing.assert_allclose(loaded(images), keras3.ops.convert_to_numpy(model(images)),
                               atol=1e-5)
    with pytest.raises(teacher.TeacherError, match="not a tf-keras model.*save the Keras 3 "
                                                   "model to a .keras file"):
        teacher.validate(model)


def test_lambda_layer_is_refused_in_safe_mode_only(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    for suffix in (".keras", ".h5"):
        path = str(tmp_path / f"lambda{suffix}")
        model.save(path)
        with pytest.raises(teacher.TeacherError, match="Lambda"):
            teacher.load(path)
        assert teacher.load(path, safe_mode=False) is not None


def test_output_must_be_logits_or_a_distribution():
    with pytest.raises(teacher.TeacherError, match="'sigmoid' activation"):
        teacher.validate(_classifier(activation="sigmoid"))
    with pytest.raises(teacher.TeacherError, match=">= 2 class"):
        teacher.validate(_classifier(outputs=1))
    inputs = keras.Input((8, 8, 1))
    with pytest.raises(teacher.TeacherError, match="one vector"):
        teacher.validate(keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs)))


def test_a_layer_the_int8_converter_fails_on_is_refused_by_name_and_inputs_are_counted():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GroupNormalization(groups=2, name="group_norm")(
        keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    with pytest.raises(teacher.TeacherError, match="'group_norm' .GroupNormalization. cannot go "
                                                   "into the full-integer TFLite file"):
        teacher.validate(model)
    first, second = keras.Input((4,)), keras.Input((4,))
    pair = keras.Model([first, second], keras.layers.Dense(3)(keras.layers.Add()([first, second])))
    with pytest.raises(teacher.TeacherError, match="has 2 inputs and 1 output$"):
        teacher.validate(pair)


def test_input_must_be_a_fixed_image_shape():
    with pytest.raises(teacher.TeacherError, match="no input shape yet"):
        teacher.validate(teacher.standard_form(keras.Sequential([keras.layers.Dense(3)])))
    inputs = keras.Input((None, None, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    with pytest.raises(teacher.TeacherError, match="fixed"):
        teacher.validate(keras.Model(inputs, keras.layers.Dense(10)(pooled)))
    with pytest.raises(teacher.TeacherError, match=r"takes images of shape \(8, 8, 1\)"):
        teacher.check_input_shape(_classifier(), (28, 28, 1))


def _height_width_classifier():
    """The Keras tutorials' MNIST shape: Input((height, width)), Flatten, Dense."""
    return keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(),
                             keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)])


def test_a_teacher_of_height_width_inputs_takes_one_channel_images(tmp_path):
    model = _height_width_classifier()
    path = str(tmp_path / "hw.keras")
    model.save(path)
    loaded = teacher.load(path)
    assert tuple(loaded.inputs[0].shape[1:]) == (8, 8, 1)
    x = np.random.default_rng(0).normal(size=(5, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(loaded(x[..., np.newaxis]), model(x), atol=1e-6)
    assert teacher.with_channel_axis(loaded) is loaded


def test_a_mixed_precision_teacher_computes_in_float32_with_its_weights(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))
        x = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
        model = keras.Model(inputs, keras.layers.Activation("linear", dtype="float32")(x))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    path = str(tmp_path / "half.keras")
    model.save(path)
    loaded = teacher.load(path)
    assert {layer.compute_dtype for layer in loaded.layers} == {"float32"}
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-2)
    assert teacher.with_float32_compute(loaded) is loaded


@pytest.mark.slow  # a whole run with its exports
def test_a_height_width_teacher_compresses_and_its_file_takes_one_channel_images(tmp_path):
    model = _height_width_classifier()
    x = np.random.default_rng(1).uniform(-2, 2, size=(32, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x_test=x, y_test=np.argmax(model(x), -1))
    outcome = api.compress(model, str(tmp_path / "run"), log=quiet, quantize="int8",
                           eval_data=str(tmp_path / "data.npz"), steps=2, batch_size=16,
                           student_steps=2, generator_channels=8, with_data_baseline=False,
                           strategy="one_device")
    assert outcome.report["teacher"]["accuracy"] == 1.0  # the labels are its own answers
    payload = open(outcome.files["tflite_int8"], "rb").read()
    assert metrics.tflite_outputs(payload, x[:4, :, :, np.newaxis]).shape == (4, 3)


def test_a_teacher_whose_logits_ignore_the_input_is_refused_and_nothing_written(tmp_path):
    model = _classifier(activation="softmax")
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([np.zeros_like(kernel), bias + np.arange(10)])  # constant
    model.save(tmp_path / "untrained.keras")
    result = run_binary_in_process("tfdfc.compress", f"--teacher={tmp_path / 'untrained.keras'}",
                                   f"--out_dir={tmp_path / 'run'}", "--steps=1")
    assert result.returncode == 2
    assert "the same class distribution for every input" in result.stderr
    assert not (tmp_path / "run").exists()
    model.layers[-1].set_weights([np.full_like(kernel, np.nan), bias])
    space = input_space.standard(1)
    with pytest.raises(teacher.TeacherError, match="non-finite logits"):
        teacher.check_responds(teacher.as_logits(model), space)
    model.layers[-1].set_weights([kernel * 1e3, bias])  # saturated probabilities, varied logits
    teacher.check_responds(teacher.as_logits(model), space)
    shift = np.zeros_like(kernel)
    shift[0, :] = 5.0  # every class's logit moves with the first pixel: the same distribution
    model.layers[-1].set_weights([shift, bias + np.arange(10)])
    with pytest.raises(teacher.TeacherError, match="the same class distribution"):
        teacher.check_responds(teacher.as_logits(model), space)


@pytest.mark.parametrize("softmax_as_layer", [False, True])
def test_softmax_teacher_becomes_a_logits_model_with_the_same_distribution(softmax_as_layer):
    if softmax_as_layer:
        base = _classifier()
        model = keras.Model(base.inputs, keras.layers.Softmax()(base.outputs[0]))
    else:
        model = _classifier(activation="softmax")
    logits_model = teacher.as_logits(model)
    images = np.random.rand(4, 8, 8, 1).astype(np.float32)
    probabilities = keras.activations.softmax(logits_model(images)).numpy()
    np.testing.assert_allclose(probabilities, model(images), atol=1e-6)
    assert teacher.as_logits(_classifier()).layers[-1].activation is keras.activations.linear


def test_logits_view_of_a_softmax_dense_shares_the_teacher_and_draws_no_random_numbers():
    model = _classifier(activation="softmax")

    def next_draw(view_first):
        """The view (or None) and the first initialiser draw after it, from one seed."""
        keras.utils.set_random_seed(7)
        view = teacher.as_logits(model) if view_first else None
        return view, keras.initializers.GlorotUniform()((4, 3)).numpy()

    view, after_view = next_draw(view_first=True)
    _, alone = next_draw(view_first=False)
    np.testing.assert_array_equal(after_view, alone)  # a student built next starts alike
    assert view.layers[-1] is not model.layers[-1]
    assert all(a is b for a, b in zip(view.layers[:-1], model.layers[:-1]))
    np.testing.assert_array_equal(view.layers[-1].get_weights()[0],
                                  model.layers[-1].get_weights()[0])
