"""Shifts and flips of the generated images the student learns on (tfdfc/augment.py), and their
place in the training loop."""

import numpy as np

from conftest import quiet, tiny_players, tiny_train_config
from tfdfc import augment, distribute
from tfdfc.keras_compat import tf
from tfdfc.loop import Loop
from tfdfc.train import call_outputs, make_synthesis_step

SEED = tf.constant([3, 4], tf.int64)


def _images(batch=64, size=6):
    return tf.constant(np.random.default_rng(0).normal(size=(batch, size, size, 2)), tf.float32)


def test_off_returns_the_images_unchanged():
    images = _images()
    assert augment.shift_and_flip(images, SEED) is images


def test_flips_mirror_about_half_the_images_and_keep_the_others():
    images = _images()
    out = augment.shift_and_flip(images, SEED, flip=True).numpy()
    mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images.numpy())]
    kept = [np.array_equal(o, i) for o, i in zip(out, images.numpy())]
    assert all(m or k for m, k in zip(mirrored, kept))
    assert 16 <= sum(mirrored) <= 48


def test_each_image_moves_by_its_own_shift_of_at_most_max_shift():
    images, max_shift = _images(size=8), 2
    out = augment.shift_and_flip(images, SEED, max_shift=max_shift).numpy()
    found = set()
    for shifted, original in zip(out, images.numpy()):
        # The centre 4x4 of the input is inside the output at the image's offset.
        matches = [(dy, dx) for dy in range(-max_shift, max_shift + 1)
                   for dx in range(-max_shift, max_shift + 1)
                   if np.array_equal(shifted[2 + dy:6 + dy, 2 + dx:6 + dx], original[2:6, 2:6])]
        assert len(matches) == 1
        found.add(matches[0])
    assert len(found) > 10  # per-image offsets, not one for the batch
    np.testing.assert_array_equal(augment.shift_and_flip(images, SEED, max_shift=2), out)


def test_the_student_learns_on_shifted_copies_that_the_teacher_answers(digits_teacher_path,
                                                                      tmp_path):
    strategy = distribute.make_strategy("one_device")
    iteration, draw = tf.constant(1, tf.int64), tf.constant(1, tf.int64)
    batches = {}
    for shift in (0, 1):
        config = tiny_train_config(augment_shift=shift, augment_flip=bool(shift))
        players = tiny_players(strategy, digits_teacher_path, config)
        images, outputs = make_synthesis_step(strategy, players, config)(iteration, draw)
        np.testing.assert_allclose(outputs[0], call_outputs(players.teacher, images, False)[0],
                                   atol=1e-5)
        batches[shift] = images.numpy()
        metrics = Loop(strategy, players, config, str(tmp_path / str(shift)), log=quiet).run()
        assert all(np.isfinite(value) for value in metrics.values())
    assert batches[0].shape == batches[1].shape
    assert not np.allclose(batches[0], batches[1])
