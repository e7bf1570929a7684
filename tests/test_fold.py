"""Batch norms folded into their convolutions (tfdfc/fold.py) for the n-bit and mixed students."""

import numpy as np

from tfdfc import batchnorm, export, fold, metrics, pipeline
from tfdfc.compression import quantize
from tfdfc.keras_compat import keras
from tfdfc.methods import base


def _with_statistics(model, seed=0):
    """`model` with every batch norm holding non-trivial statistics, scale and offset."""
    rng = np.random.default_rng(seed)
    for norm in batchnorm.batch_norms(model):
        channels = norm.gamma.shape[0]
        norm.set_weights([rng.uniform(0.5, 2.0, channels) * rng.choice([-1, 1], channels),
                          rng.normal(size=channels), rng.normal(size=channels),
                          rng.uniform(0.1, 3.0, channels)])
    return model


def _network():
    """Folds: conv -> BN, depthwise (multiplier 2) -> BN. Stays: a BN after an Add, and a BN
    whose convolution also feeds the Add."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn_conv")(
        keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)))
    x = keras.layers.BatchNormalization(name="bn_depthwise")(
        keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x))
    shared = keras.layers.Conv2D(8, 1, name="shared")(x)
    y = keras.layers.BatchNormalization(name="bn_shared")(shared)
    x = keras.layers.BatchNormalization(name="bn_after_add")(keras.layers.Add()([y, shared]))
    x = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
    return _with_statistics(keras.Model(inputs, x))


def test_folded_network_computes_the_same_logits_without_the_foldable_batch_norms():
    model = _network()
    assert sorted(fold.foldable_pairs(model)) == ["bn_conv", "bn_depthwise"]
    folded = fold.fold_batch_norms(model)
    names = {layer.name for layer in folded.layers}
    assert "bn_conv" not in names and "bn_depthwise" not in names
    assert {"bn_shared", "bn_after_add"} <= names
    images = np.random.default_rng(1).normal(size=(16, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(metrics.keras_logits(folded, images),
                               metrics.keras_logits(model, images), atol=1e-4)


def test_a_model_without_foldable_batch_norms_is_returned_as_it_is():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Dense(3)(inputs)))
    assert fold.fold_batch_norms(model) is model


def test_only_a_teacher_initialised_student_with_frozen_statistics_is_folded():
    """A fresh student's batch norms train on generated batches (batchnorm.py), and so do a
    teacher-initialised one's under --batch_norm=trained: they stay layers."""
    teacher = _network()
    for init, policy, kept in (("teacher", "auto", 2), ("random", "auto", 4),
                               ("teacher", "trained", 4)):
        config = pipeline.CompressConfig(teacher="t.keras", out_dir="o", quantize="w4a8",
                                         student_init=init, batch_norm=policy)
        student = base.float_student(config, teacher, fold_batch_norms=True)
        assert len(batchnorm.batch_norms(student)) == kept, (init, policy)


def _multiplies(payload):
    from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
    model = schema.Model.GetRootAsModel(payload, 0)
    graph = model.Subgraphs(0)
    codes = [model.OperatorCodes(graph.Operators(index).OpcodeIndex())
             for index in range(graph.OperatorsLength())]
    return sum(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == schema.BuiltinOperator.MUL
               for code in codes)


def test_a_folded_four_bit_student_runs_in_tflite_as_keras_computes_it():
    """The file runs only the two batch norms that could not fold (one int8 multiply each, as
    the four did unfolded), and its logits follow the Keras QAT model's."""
    qat = quantize.quantize_nbit(fold.fold_batch_norms(_network()), 4, 8)
    images = np.random.default_rng(2).normal(size=(128, 8, 8, 3)).astype(np.float32)
    for start in range(0, 128, 32):
        qat(images[start:start + 32], training=True)
    payload = export.tflite_int8(qat, images, int8_io=False)
    assert _multiplies(payload) == 2
    keras_logits = metrics.keras_logits(qat, images)
    np.testing.assert_allclose(metrics.tflite_outputs(payload, images), keras_logits,
                               atol=0.05 * np.ptp(keras_logits))
