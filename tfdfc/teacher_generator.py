"""A generator trained against the teacher alone, outside the run's adversarial loop.

The mixed-precision sensitivity search needs generated images before any student exists
(sensitivity.py): it trains a fresh generator for its steps on a loss of the teacher's outputs
on its images (and a probe's), then draws a fixed set. bench/judge_check.py trains one on
another loss, to judge a trained student and its untrained twin on other images than the
run's generator's.
"""

import time

import numpy as np

from tfdfc import models
from tfdfc.keras_compat import keras, tf

_BATCH = 128  # images drawn per generator call


def train(teacher, loss, config, space, steps, rng, label, log=print):
    """A generator of `teacher`'s input shape in `space` (an input_space.InputSpace), trained
    for `steps` Adam steps at the run's generator rate and batch size to minimise
    `loss(images)` (a scalar tensor), on latents drawn from `rng` (a numpy Generator); logs a
    progress line with an ETA at each quarter of the steps, starting with `label`."""
    train_config = config.train
    shape = tuple(teacher.inputs[0].shape[1:])
    generator = models.generator(shape, train_config.latent_dim, config.generator_channels,
                                 space)
    optimizer = keras.optimizers.Adam(train_config.generator_lr)

    @tf.function
    def step(z):
        with tf.GradientTape() as tape:
            value = loss(generator(z, training=True))
        gradients = tape.gradient(value, generator.trainable_variables)
        optimizer.apply_gradients(zip(gradients, generator.trainable_variables))
        return value

    started = time.time()
    for index in range(steps):
        value = step(tf.constant(rng.normal(size=(train_config.batch_size,
                                                  train_config.latent_dim)), tf.float32))
        done = index + 1
        if done % max(1, steps // 4) == 0 or done == steps:
            rate = (time.time() - started) / done
            log(f"{label} {done}/{steps}, loss {float(value):.4f}, "
                f"ETA {rate * (steps - done):.0f} s")
    return generator


def draw(generator, count, latent_dim, rng):
    """`count` images of `generator` (batch norms in training mode, as in training) on latents
    drawn from `rng`."""
    z = tf.constant(rng.normal(size=(count, latent_dim)), tf.float32)
    return np.concatenate([np.asarray(generator(z[start:start + _BATCH], training=True))
                           for start in range(0, count, _BATCH)])
