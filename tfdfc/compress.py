"""Compresses a trained Keras classifier data-free: the adversarial generator/student loop, then
SavedModel and TFLite exports and a report.

    python -m tfdfc.compress --flagfile=flags/demo.cfg

Into --out_dir it writes flags.txt, config.json, checkpoints/, tensorboard/, saved_model/,
student_<float|dynamic|int8>.tflite, report.json and report.md. A run interrupted and started
again with the same --out_dir resumes from its last checkpoint. Every flag is a setting of
config.CompressConfig or train.TrainConfig (`--helpfull` lists them by group; docs/flags.md);
the binary hands the ones given to the Python API (api.py), which fills in the rest.
"""

from tfdfc import api, cli, settings
from tfdfc.config import CompressConfig
from tfdfc.train import TrainConfig

settings.define_flags(CompressConfig, "tfdfc.compress")
settings.define_flags(TrainConfig, "tfdfc.compress")


def given_settings(log=cli.log):
    """{setting: value} of the flags given on the command line (by name or old name): what the
    Python API takes, which gives every other setting its default or its method's recipe."""
    given = {}
    for cls in (CompressConfig, TrainConfig):
        values = settings.values_from_flags(cls, log)
        given.update({name: values[name] for name in settings.given(cls)})
    return given


def main(argv):
    del argv  # cli.run refuses positional arguments
    given = given_settings()
    api.compress(given.pop("teacher"), given.pop("out_dir"), log=cli.log,
                 flags_text=settings.flag_lines([CompressConfig, TrainConfig]), **given)


if __name__ == "__main__":
    cli.run(main)
