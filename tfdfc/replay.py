"""A replay memory of generated images: the student relearns the last few iterations' images.

The adversarial generator keeps moving to where the student is wrong now, so the images of
earlier iterations leave the student's training set and it forgets them (Binici et al. 2022,
"Preventing catastrophic forgetting ... in data-free knowledge distillation"; MAD's slow
generator, train.py's `generator_ema`, is the other cure). With `--replay_batches=N` every
iteration writes its generated batch into a ring of the last N batches, and every student step
also learns on a batch drawn uniformly from the ring (this iteration's batch included), the
teacher's answers computed on it afresh. Costs: one teacher pass per iteration, a student batch
twice as large, and N global batches of images in memory (and in each checkpoint).

The ring is one variable mirrored on every replica, written in cross-replica context with the
gathered global batch, so every replica samples from the same images; each replica draws its
own rows (its seed includes the replica id).
"""

from tfdfc.keras_compat import tf

# Salt folded into the latent seed for the replay draw, so it is a stream of its own.
_SEED_SALT = 7919


class ReplayMemory(tf.Module):
    """The last `batches` global batches of generated images; build under the strategy scope."""

    def __init__(self, batches, batch_size, image_shape):
        super().__init__(name="replay_memory")
        self.batches, self.batch_size = batches, batch_size
        self.images = tf.Variable(tf.zeros([batches * batch_size, *image_shape]),
                                  trainable=False, name="images")
        self.written = tf.Variable(0, dtype=tf.int64, trainable=False, name="written")

    @property
    def capacity(self):
        return self.batches * self.batch_size

    @property
    def filled(self):
        """How many rows hold images: rows fill from 0 up, then the oldest batch is replaced."""
        return tf.minimum(self.written, self.batches) * self.batch_size

    def write(self, images):
        """Stores global batch `images` over the oldest one (cross-replica context)."""
        slot = self.written % self.batches
        rows = slot * self.batch_size + tf.range(self.batch_size, dtype=tf.int64)
        self.images.scatter_update(tf.IndexedSlices(images, rows))
        self.written.assign_add(1)

    def sample(self, seed, count):
        """`count` stored images drawn uniformly with replacement (replica context); `seed` is
        the replica's stateless seed of this draw. Call after the first write."""
        seed = tf.random.experimental.stateless_fold_in(seed, _SEED_SALT)
        rows = tf.random.stateless_uniform([count], seed, 0, self.filled, dtype=tf.int64)
        return tf.gather(self.images, rows)
