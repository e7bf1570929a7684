"""The run directory: a run claims its --out_dir, and resumes there only a run with the same
settings (those that change what is trained); others are refused unless --overwrite.
"""

import dataclasses
import glob
import json
import os
import shutil

from tfdfc import artifacts, settings
from tfdfc.errors import ConfigError

# What a run trains into: checkpoints (a --binary_delta_grid run has one folder per delta).
_TRAINED_STATE = ("checkpoints", "delta_grid")
# What a run exports and reports: removed when a new run claims the directory, so that no file
# of an earlier run (say student_dynamic.tflite of a float run, before an int8 one) is left
# beside the new run's.
_OUTPUTS = ("saved_model", "student_*.tflite", "report.json", "report.md", "report_*.png",
            "flags.txt")

# Fields that may change between a run and its resumption without changing what is trained.
# `recipe` only names where the settings came from; the settings it filled are compared one by
# one, so a run trained under a recipe since renamed or split resumes under the new name.
# `recalibrate_batch_norm` acts after the last update, so a finished run can be resumed to
# export with or without it.
_RESUMABLE_FIELDS = ("out_dir", "overwrite", "unsafe_load", "with_data_baseline", "eval_data",
                     "int8_io", "recipe", "recalibrate_batch_norm")
# on_collapse too: a run started under the old default (warn) resumes under reset, and a user
# who saw a collapse warning may resume with reset.
_RESUMABLE_TRAIN_FIELDS = ("log_every", "eval_every", "checkpoint_every", "on_collapse")


def _comparable(config_dict):
    comparable = {k: v for k, v in config_dict.items() if k not in _RESUMABLE_FIELDS}
    comparable["train"] = {k: v for k, v in config_dict.get("train", {}).items()
                           if k not in _RESUMABLE_TRAIN_FIELDS}
    return comparable


CONFIG = "config.json"  # the run's resolved settings, compared on resume
PLAN = "plan.json"  # what the method decided before building the student (Method.prepare)
# The student's accuracy at each evaluation, {iteration: accuracy}, on the run's evaluation
# data, kept beside the checkpoints (loop.py) so that a resumed run reports the whole curve.
EVALUATIONS_FILE = "evaluations.json"


def _config_dict(config):
    return json.loads(json.dumps(dataclasses.asdict(config)))  # tuples become lists


def _holds_a_run(out_dir):
    return any(os.path.isdir(os.path.join(out_dir, name)) for name in _TRAINED_STATE)


def _previous_config(config):
    """The config.json in `config.out_dir`, or None; a setting added since it was written
    counts as set to its default, so a run of an earlier version resumes unless that setting
    is now set otherwise."""
    previous = artifacts.read_json(os.path.join(config.out_dir, CONFIG))
    if previous is None:
        return None
    filled = dict(_missing_defaults(type(config), previous), **previous)
    filled["train"] = dict(_missing_defaults(type(config.train), previous.get("train", {})),
                           **previous.get("train", {}))
    return filled


def _missing_defaults(config_class, saved):
    return json.loads(json.dumps({
        field.name: field.default for field in dataclasses.fields(config_class)
        if field.name not in saved and field.default is not dataclasses.MISSING}))


def _resumes(config):
    """Whether `claim` would resume a run with the same settings in `config.out_dir`."""
    if config.overwrite or not _holds_a_run(config.out_dir):
        return False
    previous = _previous_config(config)
    return previous is not None and _comparable(previous) == _comparable(_config_dict(config))


def saved_plan(config):
    """The plan of the run `config` resumes, or None (a new run, or no plan saved)."""
    return artifacts.read_json(os.path.join(config.out_dir, PLAN)) if _resumes(config) else None


def save_plan(config, plan):
    """Saves the method's plan in the claimed run directory."""
    artifacts.write_json(os.path.join(config.out_dir, PLAN), plan)


def copy_trained_state(source, destination):
    """Copies what the run in `source` trained (checkpoints, settings, plan) into `destination`,
    which must not exist, so that a run there with the same settings resumes where that one
    stopped. That is how a finished run is evaluated on other data without training again:
    --eval_data may change on resume. The evaluations are left behind: they were measured on
    the source's evaluation data, which the copy's run may change. Copied beside, then renamed:
    nothing half-copied."""
    partial = destination.rstrip(os.sep) + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    for name in _TRAINED_STATE + (CONFIG, PLAN):
        path = os.path.join(source, name)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(partial, name),
                            ignore=shutil.ignore_patterns(EVALUATIONS_FILE))
        elif os.path.exists(path):
            shutil.copy2(path, partial)
    os.rename(partial, destination)


def check_claimable(config):
    """Raises ConfigError when `claim` would: `config.out_dir` holds checkpoints of a run with
    different settings and `config.overwrite` is off. Called before any work (a method's
    `prepare` may search for minutes), as well as by `claim`."""
    if _holds_a_run(config.out_dir) and not config.overwrite and not _resumes(config):
        previous = _previous_config(config)
        changed = (sorted(_flag_names(config, _differences(previous, _config_dict(config))))
                   if previous else [])
        raise ConfigError(
            f"{config.out_dir} holds checkpoints of another run (settings differ: "
            f"{', '.join(changed) or 'no config.json'}); pass --overwrite to discard them or "
            "choose another --out_dir")


def claim(config):
    """Makes `config.out_dir` this run's: resumes only a run with the same settings.

    Raises:
      ConfigError: the directory holds checkpoints of a run with different settings and
        `config.overwrite` is off (`check_claimable`).
    """
    config_path = os.path.join(config.out_dir, CONFIG)
    current = _config_dict(config)
    check_claimable(config)
    resumes = _resumes(config)
    if not resumes:  # a new run: nothing of an earlier one stays beside it
        for name in _TRAINED_STATE + ("tensorboard",):
            shutil.rmtree(os.path.join(config.out_dir, name), ignore_errors=True)
        for pattern in _OUTPUTS + (PLAN,):
            for path in glob.glob(os.path.join(config.out_dir, pattern)):
                (shutil.rmtree if os.path.isdir(path) else os.remove)(path)
    artifacts.write_json(config_path, current)


def _differences(previous, current):
    old, new = _comparable(previous), _comparable(current)
    names = {k for k in set(old) | set(new) if k != "train" and old.get(k) != new.get(k)}
    old_train, new_train = old.get("train", {}), new.get("train", {})
    names |= {f"train.{k}" for k in set(old_train) | set(new_train)
              if old_train.get(k) != new_train.get(k)}
    return names


def _flag_names(config, names):
    """The flags (--prune_sparsity, --steps) of changed config fields (sparsity, train.steps)."""
    flag_of = {field.name: f"--{settings.flag_name(field)}"
               for field in settings.fields_with_flags(type(config))}
    flag_of.update({f"train.{field.name}": f"--{settings.flag_name(field)}"
                    for field in settings.fields_with_flags(type(config.train))})
    return {flag_of.get(name, name) for name in names}
