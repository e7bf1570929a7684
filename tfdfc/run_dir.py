"""The run directory: a run claims its --out_dir, and resumes there only a run with the same
settings (those that change what is trained); others are refused unless --overwrite.
"""

import dataclasses
import json
import os
import shutil

from tfdfc import artifacts
from tfdfc.errors import ConfigError

# Fields that may change between a run and its resumption without changing what is trained.
_RESUMABLE_FIELDS = ("out_dir", "overwrite", "unsafe_load", "with_data_baseline", "eval_data",
                     "int8_io")
# on_collapse too: a run started under the old default (warn) resumes under reset, and a user
# who saw a collapse warning may resume with reset.
_RESUMABLE_TRAIN_FIELDS = ("log_every", "eval_every", "checkpoint_every", "on_collapse")


def _comparable(config_dict):
    comparable = {k: v for k, v in config_dict.items() if k not in _RESUMABLE_FIELDS}
    comparable["train"] = {k: v for k, v in config_dict.get("train", {}).items()
                           if k not in _RESUMABLE_TRAIN_FIELDS}
    return comparable


PLAN = "plan.json"  # what the method decided before building the student (Method.prepare)


def _config_dict(config):
    return json.loads(json.dumps(dataclasses.asdict(config)))  # tuples become lists


def _resumes(config):
    """Whether `claim` would resume a run with the same settings in `config.out_dir`."""
    if config.overwrite or not os.path.isdir(os.path.join(config.out_dir, "checkpoints")):
        return False
    previous = artifacts.read_json(os.path.join(config.out_dir, "config.json"))
    return previous is not None and _comparable(previous) == _comparable(_config_dict(config))


def saved_plan(config):
    """The plan of the run `config` resumes, or None (a new run, or no plan saved)."""
    return artifacts.read_json(os.path.join(config.out_dir, PLAN)) if _resumes(config) else None


def save_plan(config, plan):
    """Saves the method's plan in the claimed run directory."""
    artifacts.write_json(os.path.join(config.out_dir, PLAN), plan)


def claim(config):
    """Makes `config.out_dir` this run's: resumes only a run with the same settings.

    Raises:
      ConfigError: the directory holds checkpoints of a run with different settings and
        `config.overwrite` is off.
    """
    config_path = os.path.join(config.out_dir, "config.json")
    checkpoints = os.path.join(config.out_dir, "checkpoints")
    current = _config_dict(config)
    if os.path.isdir(checkpoints) and not config.overwrite and not _resumes(config):
        previous = artifacts.read_json(config_path)
        changed = sorted(_differences(previous, current)) if previous else []
        raise ConfigError(
            f"{config.out_dir} holds checkpoints of another run (settings differ: "
            f"{', '.join(changed) or 'no config.json'}); pass --overwrite to discard them or "
            "choose another --out_dir")
    if config.overwrite:
        for name in ("checkpoints", "tensorboard", "delta_grid"):
            shutil.rmtree(os.path.join(config.out_dir, name), ignore_errors=True)
        if os.path.exists(os.path.join(config.out_dir, PLAN)):
            os.remove(os.path.join(config.out_dir, PLAN))
    artifacts.write_json(config_path, current)


def _differences(previous, current):
    old, new = _comparable(previous), _comparable(current)
    names = {k for k in set(old) | set(new) if k != "train" and old.get(k) != new.get(k)}
    old_train, new_train = old.get("train", {}), new.get("train", {})
    names |= {f"train.{k}" for k in set(old_train) | set(new_train)
              if old_train.get(k) != new_train.get(k)}
    return names
