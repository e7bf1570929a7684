"""The generator trained against the teacher alone (sensitivity search, judge study)."""

import numpy as np

from tfdfc import pipeline, teacher_generator
from tfdfc import teacher as teacher_lib
from tfdfc.keras_compat import keras, tf
from tfdfc.train import TrainConfig


def _trained_images(teacher, config, steps, lines):
    def loss(images):  # the teacher's answer pushed towards class 0
        return -tf.reduce_mean(tf.nn.log_softmax(teacher(images, training=False))[:, 0])

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    generator = teacher_generator.train(teacher, loss, config, None, steps, rng, "search",
                                        lines.append)
    return teacher_generator.draw(generator, 200, config.train.latent_dim, rng)


def test_the_generator_learns_its_loss_reproducibly_and_reports_each_quarter(
        tmp_path, digits_teacher_path):
    teacher = teacher_lib.as_logits(teacher_lib.load(digits_teacher_path))
    config = pipeline.CompressConfig(teacher=digits_teacher_path, out_dir=str(tmp_path),
                                     generator_channels=8,
                                     train=TrainConfig(batch_size=32, generator_lr=1e-2))
    lines = []
    untrained = _trained_images(teacher, config, 0, lines)
    trained = _trained_images(teacher, config, 40, lines)
    assert trained.shape == (200,) + tuple(teacher.inputs[0].shape[1:])

    def share_of_class_0(images):
        return float(np.mean(np.argmax(teacher(images, training=False), axis=-1) == 0))

    assert share_of_class_0(trained) > share_of_class_0(untrained) + 0.3
    np.testing.assert_array_equal(trained, _trained_images(teacher, config, 40, []))
    assert [line.split(",")[0] for line in lines] == [f"search {done}/40"
                                                     for done in (10, 20, 30, 40)]
    assert all("ETA" in line for line in lines)
