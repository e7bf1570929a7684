"""The fallback guard's decision: the untrained model is exported only when it agrees more with
the teacher on the same images by more than the paired noise plus the judge's bias margin."""

import numpy as np

from tfdfc import guard


def _labels(correct, teacher):
    """Predictions that match `teacher` where `correct` is true, and differ elsewhere."""
    return np.where(correct, teacher, (teacher + 1) % 10)


def test_the_untrained_model_is_exported_when_it_agrees_more_beyond_noise_and_margin():
    teacher = np.arange(1000) % 10
    trained = _labels(np.arange(1000) >= 100, teacher)     # 0.90
    untrained = _labels(np.arange(1000) >= 40, teacher)    # 0.96, right wherever trained is
    entry = guard.compare(trained, untrained, teacher)
    assert entry["exported"] == "untrained"
    assert entry["trained_agreement"] == 0.9 and entry["untrained_agreement"] == 0.96
    assert abs(entry["difference"] - 0.06) < 1e-12
    # Paired: 60 of 1000 images differ, all one way: sd of the per-image difference sqrt(.06*.94)
    assert abs(entry["noise"] - 2 * np.sqrt(0.06 * 0.94 / 1000)) < 1e-12


def test_a_gap_within_the_margin_keeps_the_trained_one():
    teacher = np.arange(1000) % 10
    trained = _labels(np.arange(1000) >= 100, teacher)     # 0.90
    untrained = _labels(np.arange(1000) >= 90, teacher)    # 0.91: a point is the judge's bias
    entry = guard.compare(trained, untrained, teacher)
    assert entry["difference"] > entry["noise"] and entry["exported"] == "trained"


def test_a_tie_or_a_better_trained_model_keeps_the_trained_one():
    teacher = np.arange(500) % 10
    same = _labels(np.arange(500) % 7 != 0, teacher)
    assert guard.compare(same, same, teacher)["exported"] == "trained"
    assert guard.compare(same, same, teacher)["noise"] == 0
    better = _labels(np.ones(500, bool), teacher)
    assert guard.compare(better, same, teacher)["exported"] == "trained"
    assert guard.compare(better, same, teacher)["difference"] < 0
