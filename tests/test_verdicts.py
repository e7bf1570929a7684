"""The benchmarks' verdict code: means and standard deviations over seeds, the noise rule, and
met / missed lines (bench/common.py)."""

import math
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import common  # pylint: disable=wrong-import-position


def test_noise_is_two_binomial_standard_errors_in_points():
    # 0.9 on 10,000 images: se = sqrt(0.09 / 10000) = 0.003, two of them = 0.6 pt.
    assert common.noise_points(0.9, 10_000) == pytest.approx(0.6)
    assert common.noise_points(0.9, 1_000) == pytest.approx(0.6 * math.sqrt(10))
    assert common.noise_points(1.0, 1_000) == 0


def test_mean_and_sample_standard_deviation_over_seeds():
    mean, sd = common.mean_sd([0.86, 0.87, 0.88])
    assert mean == pytest.approx(0.87) and sd == pytest.approx(0.01)
    assert common.mean_sd([0.5]) == (0.5, None)
    assert common.mean_sd([0.5, None]) == (None, None)
    assert common.mean_std([0.86, 0.87, 0.88]) == "0.8700 ± 0.0100"
    assert common.mean_std([0.5]) == "0.5000 ± n/a"


def test_points_are_exact_to_the_rounding():
    assert common.points(0.985, 0.983) == 0.2
    assert common.points(None, 0.9) is None


def test_a_target_is_met_at_its_limit_and_missed_below_it():
    verdicts = common.Verdicts()
    assert verdicts.check("int8", -0.5, -0.5, True) is True
    assert verdicts.check("int8", -0.51, -0.5, True) is False
    assert verdicts.check("size", 0.5, 0.5, False, strict=True) is False
    assert verdicts.check("missing", None, -0.5, True) is None
    assert verdicts.lines == [
        "- int8: -0.50 (target >= -0.5) — met",
        "- int8: -0.51 (target >= -0.5) — MISSED",
        "- size: +0.50 (target < +0.5) — MISSED",
        "- missing: not measured"]


def test_a_verdict_closer_to_its_target_than_the_noise_says_so():
    verdicts = common.Verdicts()
    verdicts.check("w4a8", -1.2, -1.5, True, noise=0.6)
    verdicts.check("w4a8", -0.2, -1.5, True, noise=0.6)
    assert verdicts.lines[0].endswith("— met (within noise of the target)")
    assert verdicts.lines[1].endswith("(target >= -1.5; noise 0.60) — met")


def test_a_difference_under_the_noise_is_neither_a_gain_nor_a_loss():
    verdicts = common.Verdicts()
    assert verdicts.compare("ticket vs re-init", 0.905, 0.901, noise=0.6) == "within noise"
    assert verdicts.compare("ticket vs re-init", 0.915, 0.901, noise=0.6) == "higher"
    assert verdicts.compare("ticket vs re-init", 0.890, 0.901, noise=0.6) == "lower"
    assert verdicts.lines[0] == "- ticket vs re-init: +0.40 pt (noise 0.60) — within noise"
