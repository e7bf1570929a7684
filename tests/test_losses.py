"""Divergences and attention transfer against direct numpy computations."""

import numpy as np
import pytest

from tfdfc import losses

RNG = np.random.default_rng(0)
TEACHER = RNG.normal(size=(5, 7)).astype(np.float32) * 3
STUDENT = RNG.normal(size=(5, 7)).astype(np.float32) * 3


def _softmax(logits, temperature=1.0):
    scaled = logits / temperature
    exp = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _kl(p, q):
    return np.sum(p * np.log(p / q), axis=1)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kl_matches_numpy(temperature):
    expected = _kl(_softmax(TEACHER, temperature), _softmax(STUDENT, temperature))
    got = losses.kl_divergence(TEACHER, STUDENT, temperature, reduction="batchmean")
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    mean = losses.kl_divergence(TEACHER, STUDENT, temperature, reduction="mean")
    np.testing.assert_allclose(mean, expected / 7, rtol=1e-5)


def test_symmetric_kl_matches_numpy_and_is_symmetric():
    p, q = _softmax(TEACHER), _softmax(STUDENT)
    expected = 0.5 * (_kl(p, q) + _kl(q, p))
    np.testing.assert_allclose(losses.symmetric_kl(TEACHER, STUDENT, reduction="batchmean"),
                               expected, rtol=1e-5)
    np.testing.assert_allclose(losses.symmetric_kl(TEACHER, STUDENT),
                               losses.symmetric_kl(STUDENT, TEACHER), rtol=1e-6)


def test_logit_l1_and_entropy_match_numpy():
    np.testing.assert_allclose(losses.logit_l1(TEACHER, STUDENT, reduction="batchmean"),
                               np.abs(TEACHER - STUDENT).sum(axis=1), rtol=1e-5)
    p = _softmax(TEACHER)
    np.testing.assert_allclose(losses.entropy(TEACHER), -(p * np.log(p)).sum(axis=1), rtol=1e-5)


def test_divergence_is_zero_for_identical_logits():
    for name in losses.DIVERGENCES:
        np.testing.assert_allclose(losses.divergence(name, TEACHER, TEACHER), 0.0, atol=1e-6)


def test_attention_transfer_matches_numpy():
    teacher_acts = [RNG.normal(size=(3, 4, 4, 6)).astype(np.float32),
                    RNG.normal(size=(3, 2, 2, 8)).astype(np.float32)]
    student_acts = [RNG.normal(size=(3, 4, 4, 5)).astype(np.float32),
                    RNG.normal(size=(3, 2, 2, 3)).astype(np.float32)]

    def attention(act):
        flat = (act ** 2).mean(axis=-1).reshape(len(act), -1)
        return flat / np.linalg.norm(flat, axis=1, keepdims=True)

    expected = sum(((attention(s) - attention(t)) ** 2).mean(axis=1)
                   for t, s in zip(teacher_acts, student_acts))
    got = losses.attention_transfer(teacher_acts, student_acts, weight=250.0)
    np.testing.assert_allclose(got, 250.0 * expected, rtol=1e-5)


def test_feature_distillation_matches_numpy_and_vanishes_on_equal_maps():
    teacher_acts = [RNG.normal(size=(3, 4, 4, 6)).astype(np.float32),
                    RNG.normal(size=(3, 5)).astype(np.float32)]
    student_acts = [RNG.normal(size=(3, 4, 4, 6)).astype(np.float32),
                    RNG.normal(size=(3, 5)).astype(np.float32)]

    def scaled_error(t, s):
        axes = tuple(range(1, t.ndim))
        return ((s - t) ** 2).mean(axis=axes) / ((t ** 2).mean(axis=axes) + 1e-6)

    expected = sum(scaled_error(t, s) for t, s in zip(teacher_acts, student_acts))
    got = losses.feature_distillation(teacher_acts, student_acts, weight=2.0)
    np.testing.assert_allclose(got, 2.0 * expected, rtol=1e-5)
    np.testing.assert_allclose(losses.feature_distillation(teacher_acts, teacher_acts, 2.0), 0.0)
    with pytest.raises(ValueError, match="2 feature points, student has 1"):
        losses.feature_distillation(teacher_acts, student_acts[:1], 1.0)


def test_unknown_divergence_and_reduction_are_errors():
    with pytest.raises(ValueError, match="divergence must be one of"):
        losses.divergence("jsd", TEACHER, STUDENT)
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.kl_divergence(TEACHER, STUDENT, reduction="sum")
