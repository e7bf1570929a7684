"""The generator's priors (tfdfc/priors.py): their values on known inputs, and that a generator
step adds the weighted smoothness prior to its loss."""

import numpy as np
import pytest

from conftest import tiny_players, tiny_train_config
from tfdfc import distribute, priors
from tfdfc.keras_compat import tf
from tfdfc.train import make_generator_step


def test_class_balance_is_zero_for_an_even_batch_and_log_classes_for_one_class():
    even = tf.constant(np.eye(4, dtype=np.float32) * 20)  # four images, one per class
    one_class = tf.constant(np.tile([[20.0, 0, 0, 0]], (4, 1)).astype(np.float32))
    assert float(priors.class_balance(even)) == pytest.approx(0.0, abs=1e-5)
    assert float(priors.class_balance(one_class)) == pytest.approx(np.log(4), abs=1e-5)


def test_total_variation_is_zero_for_flat_images_and_one_for_a_checkerboard():
    flat = tf.fill([2, 4, 4, 1], 3.0)
    checker = tf.constant((np.indices((4, 4)).sum(axis=0) % 2).astype(np.float32)[None, ..., None])
    assert float(priors.total_variation(flat)) == 0.0
    assert float(priors.total_variation(checker)) == pytest.approx(1.0)
    # Half as steep a pattern is half as rough.
    assert float(priors.total_variation(checker * 0.5)) == pytest.approx(0.5)


def test_generator_step_adds_the_weighted_smoothness_prior(digits_teacher_path):
    strategy = distribute.make_strategy("one_device")
    values = {}
    for weight in (0.0, 2.0):
        config = tiny_train_config(smoothness_weight=weight)
        players = tiny_players(strategy, digits_teacher_path, config)
        metrics = make_generator_step(strategy, players, config)(tf.constant(0, tf.int64))
        values[weight] = float(metrics["generator_prior"])
    assert values[0.0] == 0.0
    assert values[2.0] > 0.1  # 2 x the roughness of a freshly initialised generator's images


def test_a_negative_smoothness_weight_is_refused():
    with pytest.raises(ValueError, match="smoothness_weight must be >= 0"):
        tiny_train_config(smoothness_weight=-1.0).validate()
