"""Random shifts and left-right flips of the generated images the student learns on.

The generator searches for images where teacher and student disagree; the student then matches
the teacher on those images only. A teacher trained with shifts and flips answers alike on the
shifted and flipped copies, so showing the student such copies (with the teacher's answers on
them, not the original's) teaches it more of the teacher's function per generated batch, the
way data-free methods augment their synthetic images. The generator's own step never sees the
copies. Stateless random ops keyed by the iteration and draw keep a resumed run identical.
"""

from tfdfc.keras_compat import tf


def shift_and_flip(images, seed, max_shift=0, flip=False):
    """`images` (N, H, W, C), each shifted by up to `max_shift` pixels along both axes (edge
    pixels repeated into the gap) and, with `flip`, mirrored left-right with probability 1/2;
    `seed` is a stateless seed (shape [2] int)."""
    if not max_shift and not flip:
        return images
    shift_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    batch = tf.shape(images)[0]
    if flip:
        mirrored = tf.random.stateless_uniform([batch], flip_seed) < 0.5
        images = tf.where(mirrored[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if max_shift:
        offsets = tf.cast(tf.random.stateless_uniform(
            [batch, 2], shift_seed, -max_shift, max_shift + 1, dtype=tf.int32), tf.float32)
        ones, zeros = tf.ones([batch, 1]), tf.zeros([batch, 1])
        # Output pixel (x, y) reads input pixel (x - dx, y - dy): a shift by (dx, dy).
        transforms = tf.concat([ones, zeros, -offsets[:, :1], zeros, ones, -offsets[:, 1:],
                                zeros, zeros], axis=1)
        images = tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
            fill_value=0.0, interpolation="NEAREST", fill_mode="NEAREST")
    return images
