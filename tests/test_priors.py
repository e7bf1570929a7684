"""The generator's priors (tfdfc/priors.py): their values on known inputs, and that a generator
step adds a weighted prior to its loss."""

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


def test_confidence_is_zero_for_a_certain_teacher_and_log_classes_for_a_uniform_one():
    certain = tf.constant(np.eye(4, dtype=np.float32) * 100)
    uniform = tf.zeros([3, 4])
    assert float(priors.confidence(certain)) == pytest.approx(0.0, abs=1e-5)
    assert float(priors.confidence(uniform)) == pytest.approx(np.log(4), abs=1e-5)
    # Its gradient raises the top class's logit: descending it makes the teacher surer.
    logits = tf.Variable([[1.0, 0.5, 0.0]])
    with tf.GradientTape() as tape:
        value = priors.confidence(logits)
    assert tape.gradient(value, logits).numpy()[0, 0] < 0


def test_total_variation_is_zero_for_flat_images_and_one_for_a_checkerboard():
    flat = tf.fill([2, 4, 4, 1], 3.0)
    checker = tf.constant((np.indices((4, 4)).sum(axis=0) % 2).astype(np.float32)[None, ..., None])
    assert float(priors.total_variation(flat)) == 0.0
    assert float(priors.total_variation(checker)) == pytest.approx(1.0)
    # Half as steep a pattern is half as rough.
    assert float(priors.total_variation(checker * 0.5)) == pytest.approx(0.5)


@pytest.mark.parametrize("prior", ["smoothness_weight", "confidence_weight"])
def test_generator_step_adds_the_weighted_prior(digits_teacher_path, prior):
    strategy = distribute.make_strategy("one_device")
    values = {}
    for weight in (0.0, 2.0):
        config = tiny_train_config(**{prior: weight})
        players = tiny_players(strategy, digits_teacher_path, config)
        metrics = make_generator_step(strategy, players, config)(tf.constant(0, tf.int64))
        values[weight] = float(metrics["generator_prior"])
    assert values[0.0] == 0.0
    # 2 x the roughness, or the teacher's doubt, on a freshly initialised generator's images
    assert values[2.0] > 0.1


@pytest.mark.parametrize("prior", ["smoothness_weight", "confidence_weight"])
def test_a_negative_prior_weight_is_refused(prior):
    with pytest.raises(ValueError, match=f"{prior} must be >= 0"):
        tiny_train_config(**{prior: -1.0}).validate()
