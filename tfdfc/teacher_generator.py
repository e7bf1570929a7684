"""A generator trained against the teacher alone, outside the run's adversarial loop.

Two parts of tfdfc need generated images that the run's own generator cannot give: the
mixed-precision sensitivity search needs them before any student exists (sensitivity.py), and
the fallback guard needs images on which neither the trained student nor its untrained twin
has an edge (guard.py); the run's generator spent the run hunting the trained student's
mistakes, and the trained student spent it learning those images. Both train a fresh generator
for a few hundred steps on a loss of the teacher's outputs on its images, then draw a fixed set.
"""

import time

import numpy as np

from tfdfc import models
from tfdfc.keras_compat import keras, tf

_BATCH = 128  # images drawn per generator call


def train(teacher, loss, config, space, steps, rng, label, log=print):
    """A generator of `teacher`'s input shape in `space` (an input_space.InputSpace), trained
    for `steps` Adam steps at the run's generator rate and batch size to minimise
    `loss(images)` (a scalar tensor), on latents drawn from `rng` (a numpy Generator); logs
    four progress lines with an ETA, each starting with `label`."""
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
