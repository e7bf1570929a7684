"""Compresses a trained Keras classifier data-free: the adversarial generator/student loop, then
SavedModel and TFLite exports and a report.

    python -m tfdfc.compress --flagfile=flags/demo.cfg

Into --out_dir it writes flags.txt, config.json, checkpoints/, tensorboard/, saved_model/,
student_<float|dynamic|int8>.tflite, report.json and report.md. A run interrupted and started
again with the same --out_dir resumes from its last checkpoint. Every flag is a setting of
config.CompressConfig or train.TrainConfig (`--helpfull` lists them by group; docs/flags.md).
"""

from tfdfc import cli, pipeline, recipes, settings
from tfdfc.config import CompressConfig
from tfdfc.train import TrainConfig

settings.define_flags(CompressConfig, "tfdfc.compress")
settings.define_flags(TrainConfig, "tfdfc.compress")


def config_from_flags(log=cli.log):
    """The frozen run configuration the flags describe; settings left unset take the recipe of
    the run's method and init (recipes.py)."""
    train = TrainConfig(**settings.values_from_flags(TrainConfig, log))
    config = CompressConfig(train=train, **settings.values_from_flags(CompressConfig, log))
    explicit = settings.given(CompressConfig) | settings.given(TrainConfig)
    return recipes.resolve(config, explicit & set(recipes.CONFIG_FIELDS + recipes.TRAIN_FIELDS))


def main(argv):
    del argv  # cli.run refuses positional arguments
    config = config_from_flags()
    flags_text = settings.flag_lines([CompressConfig, TrainConfig])
    pipeline.run(config, log=cli.log, flags_text=flags_text)


if __name__ == "__main__":
    cli.run(main)
