"""The Python API: compress a Keras classifier data-free from a script or a notebook, as
`python -m tfdfc.compress` does from a shell.

    import tfdfc.api
    outcome = tfdfc.api.compress("model.keras", "exported/mine", quantize="int8",
                                 eval_data="my_test.npz")
    outcome.student, outcome.files["tflite_int8"], outcome.report["tflite"]["int8"]["accuracy"]

Settings are the CompressConfig and TrainConfig field names (the CLI's flag names, without a
method's prefix: `sparsity`; the prefixed flag name, `prune_sparsity`, is taken too); those a
recipe fills (recipes.CONFIG_FIELDS and TRAIN_FIELDS: steps, student_lr, divergence, ...) take
the scheme's recipe when not given, exactly as unset flags do.
"""

import dataclasses
import difflib
import hashlib
import os
import tempfile

import numpy as np

from tfdfc import pipeline, recipes
from tfdfc import teacher as teacher_lib
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras
from tfdfc.train import TrainConfig

_TRAIN_FIELDS = {field.name for field in dataclasses.fields(TrainConfig)}
_CONFIG_FIELDS = ({field.name for field in dataclasses.fields(pipeline.CompressConfig)}
                  - {"teacher", "out_dir", "train", "recipe"})
_FIELD_OF_FLAG = {field.metadata["flag"]: field.name
                  for config_class in (TrainConfig, pipeline.CompressConfig)
                  for field in dataclasses.fields(config_class) if field.metadata.get("flag")}


def _by_field_name(settings):
    """`settings` with prefixed flag names (prune_sparsity) turned into field names (sparsity)."""
    both = sorted(name for name in settings if _FIELD_OF_FLAG.get(name) in settings)
    if both:
        raise ConfigError(f"setting(s) given twice: {', '.join(both)} and "
                          f"{', '.join(_FIELD_OF_FLAG[name] for name in both)}; give one name")
    return {_FIELD_OF_FLAG.get(name, name): value for name, value in settings.items()}


def _with_suggestion(names):
    """Each of `names` with the names it most resembles, where some do (`allocation`: did you
    mean prune_allocation?): the closest spelling, else every name it ends (`lr`: did you mean
    generator_lr or student_lr?)."""
    known = sorted(set(_FIELD_OF_FLAG) | _TRAIN_FIELDS | _CONFIG_FIELDS)
    result = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) or [
            flag for flag in known if flag.endswith("_" + name)]
        result.append(f"{name} (did you mean {' or '.join(close)}?)" if close else name)
    return result


def _text(value):
    """`value`, a pathlib path turned into the string a setting holds."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def config_for(teacher, out_dir, **settings):
    """The CompressConfig of `compress`'s arguments (`teacher` a path or a label), with the
    recipe applied to every recipe field not in `settings`. A fresh student of another
    architecture gets `distill` here; the run chooses again once it has loaded the teacher
    (pipeline.resolve_recipe)."""
    settings = {name: _text(value) for name, value in _by_field_name(settings).items()}
    teacher, out_dir = _text(teacher), _text(out_dir)
    unknown = sorted(set(settings) - _TRAIN_FIELDS - _CONFIG_FIELDS)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(_with_suggestion(unknown))}: use the "
                          "flags of tfdfc.compress or the fields of CompressConfig and "
                          "TrainConfig")
    train = TrainConfig(**{name: value for name, value in settings.items()
                           if name in _TRAIN_FIELDS})
    config = pipeline.CompressConfig(
        teacher=teacher, out_dir=out_dir, train=train,
        **{name: value for name, value in settings.items() if name in _CONFIG_FIELDS})
    return recipes.resolve(config, set(settings))


def compress(teacher, out_dir, log=print, flags_text=None, **settings):
    """Compresses `teacher` data-free into `out_dir` and returns a pipeline.Outcome: the
    exported Keras model (the trained student, or its untrained twin where the fallback guard
    chose it), the exported files' paths and the report (also report.json).

    Args:
      teacher: a model file (.keras, .h5, SavedModel directory; tf-keras or Keras 3) or a
        Keras model in memory (tf-keras, or Keras 3, which is saved and converted).
      out_dir: the run directory (resumes a run with the same settings, as the CLI does).
      log: called with each progress line.
      flags_text: saved in out_dir as flags.txt (the command line's flags, from the CLI).
      **settings: e.g. quantize="int8", prune="magnitude", sparsity=0.9, eval_data="mnist5k",
        steps=200, seed=1.

    Raises:
      UserInputError (tfdfc.errors): bad settings, teacher or data, before anything is written.
    """
    settings = _by_field_name(settings)
    if isinstance(teacher, (str, os.PathLike)):
        return pipeline.compress(config_for(teacher, out_dir, **settings), log=log,
                                 flags_text=flags_text, given=set(settings))
    if isinstance(teacher, keras.Model):
        return pipeline.compress(config_for(teacher_label(teacher), out_dir, **settings),
                                 log=log, flags_text=flags_text, teacher_model=teacher,
                                 given=set(settings))
    if hasattr(teacher, "save") and type(teacher).__module__.startswith("keras"):
        with tempfile.TemporaryDirectory() as folder:  # Keras 3: converted from its file
            path = os.path.join(folder, f"{teacher.name}.keras")
            teacher.save(path)
            converted, conversion = teacher_lib.load_with_info(
                path, safe_mode=not settings.get("unsafe_load", False))
        label = teacher_label(converted, "Keras 3 ")
        return pipeline.compress(config_for(label, out_dir, **settings), log=log,
                                 flags_text=flags_text, teacher_model=converted,
                                 teacher_conversion=conversion, given=set(settings))
    raise ConfigError(f"teacher must be a model file path or a Keras model, got "
                      f"{type(teacher).__name__}")


def teacher_label(model, kind=""):
    """config.teacher of a model given in memory: its name and a fingerprint of its weights, so
    that the same model resumes its run and another one of the same name does not."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return f"<in-memory {kind}model {model.name}, weights {digest.hexdigest()[:12]}>"
