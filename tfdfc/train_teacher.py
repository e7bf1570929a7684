"""Trains a teacher classifier with data and saves it with its measured test accuracy.

    python -m tfdfc.train_teacher --flagfile=flags/teacher_mnist5k.cfg
"""

from absl import flags

from tfdfc import cli, data, models, teacher

_DATA = flags.DEFINE_string("data", "mnist5k", f"Training data: {data.SPECS_HELP}.")
_ARCHITECTURE = flags.DEFINE_string("architecture", "lenet5", f"One of: {models.NAMES_HELP}.")
_EPOCHS = flags.DEFINE_integer("epochs", 30, "Training epochs.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 2e-3, "Peak AdamW learning rate (cosine).",
                                    lower_bound=0.0)
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 5e-4, "AdamW weight decay.", lower_bound=0.0)
_SHIFT_AUGMENT = flags.DEFINE_integer("shift_augment", 2,
                                      "Random translation in pixels (0: no augmentation).",
                                      lower_bound=0)
_FLIP_AUGMENT = flags.DEFINE_bool("flip_augment", False, "Random left-right flips (for images "
                                  "whose mirror is the same class, e.g. clothes; not digits).")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
_OUTPUT = flags.DEFINE_string("output", "exported/teachers/lenet5_mnist5k.keras",
                              "Where the .keras model goes; a .json report is written beside it.")


def main(argv):
    del argv  # cli.run refuses positional arguments
    config = teacher.TeacherConfig(
        data=_DATA.value, architecture=_ARCHITECTURE.value, epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value, learning_rate=_LEARNING_RATE.value,
        weight_decay=_WEIGHT_DECAY.value, shift_augment=_SHIFT_AUGMENT.value,
        flip_augment=_FLIP_AUGMENT.value, seed=_SEED.value,
        output=_OUTPUT.value)
    teacher.train(config, log=cli.log)


if __name__ == "__main__":
    cli.run(main)
