"""The Gaussian noise that calibrates the no-training baselines: no data at all."""

import numpy as np

SAMPLES = 256


def images(shape, seed, space):
    """SAMPLES images of `shape` of Gaussian noise in the teacher's input space (input_space.py)."""
    return space.images(np.random.default_rng(seed).normal(size=(SAMPLES,) + shape))
