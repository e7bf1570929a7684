"""Notices a collapsed generator: one that makes only images the teacher puts in one class.

The paper's generator only maximises the teacher-student divergence; nothing in its loss keeps
the images varied, and on mnist5k it has drifted to images of a single class, after which the
student ended at chance. Such a run does not recover by itself, so the loop says so, in the log
and in report.json, as soon as the teacher has seen fewer than `threshold` effective classes for
`patience` iterations. With `--on_collapse=reset`, the default (not the paper's), it also
re-initialises the generator and its Adam moments, up to `MAX_RESETS` times; the student keeps
what it has learnt. A reset rescued the collapsed runs measured, but cannot mend a student the
collapse has already ruined (a lower student rate prevents that); healthy runs on teachers with
only two or three classes stay far above the threshold. The runs: bench/NOTES.md (collapse).
`--on_collapse=warn` keeps the paper's behaviour. Use it for a teacher whose generated batches
are nearly all one class even in a healthy run, where resets would only cost time.

The watch's count and the resets so far are saved beside every checkpoint (`STATE_FILE`, keyed
by iteration), so a resumed run warns and resets exactly where an uninterrupted one would. They
are kept out of the TensorFlow checkpoint itself, whose restore asserts that every object of the
program is in the file: checkpoints written before the watch was saved still restore, and then
the watch starts afresh.
"""

import dataclasses
import os
from typing import List

from tfdfc import artifacts
from tfdfc.keras_compat import tf

THRESHOLD = 1.2  # effective classes (exp of the entropy of the batch's mean prediction)
PATIENCE = 50  # consecutive iterations
MAX_RESETS = 3
ACTIONS = ("warn", "reset")
STATE_FILE = "collapse_watch.json"
_REQUIRED = {"run_length", "collapsed_at", "resets"}  # "unanswered" came later: False if absent
_INITIALISED = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


@dataclasses.dataclass
class CollapseWatch:
    """Counts consecutive iterations below `threshold`; reports each collapse once."""

    threshold: float = THRESHOLD
    patience: int = PATIENCE
    run_length: int = 0
    collapsed_at: List[int] = dataclasses.field(default_factory=list)  # iterations reported
    unanswered: bool = False  # reported, not reset, and not recovered since
    resets: int = 0  # generator resets so far (answer())

    def update(self, done, teacher_classes):
        """Feeds iteration `done`'s value; returns a warning line when the run has just stayed
        below the threshold for `patience` iterations, else None. The collapse is then
        `unanswered` until the value rises above the threshold or `answer()` is called; the
        watch warns again only after one of those and `patience` more iterations below."""
        below = teacher_classes < self.threshold
        self.run_length = self.run_length + 1 if below else 0
        self.unanswered = self.unanswered and below
        if self.run_length != self.patience:
            return None
        self.collapsed_at.append(done)
        self.unanswered = True
        return (f"WARNING: generator collapse at iteration {done}: for {self.patience} "
                f"iterations the teacher has put the generated images in "
                f"{teacher_classes:.2f} effective classes (below {self.threshold:g}).")

    def answer(self):
        """Records that the generator was reset: counts the reset, and counting iterations below
        the threshold starts again from zero."""
        self.unanswered, self.run_length, self.resets = False, 0, self.resets + 1

    def summary(self):
        """The `generator_collapse` entry of report.json: None, or where it was seen."""
        return None if not self.collapsed_at else {
            "iteration": self.collapsed_at[0], "iterations": list(self.collapsed_at),
            "resets": self.resets, "threshold": self.threshold, "patience": self.patience}


def advice(action, resets):
    """What the warning adds when the loop does not reset the generator now, or None."""
    if action == "reset" and resets < MAX_RESETS:
        return None  # the loop resets and says so
    lead = (f"All {MAX_RESETS} generator resets are used: the run carries on with this "
            "generator." if action == "reset" else "The student learns little from here on "
            "unless the generator is reset (--on_collapse=reset; this run only warns).")
    return (f"{lead} Else try --divergence=skl, a lower --student_lr, a wider generator "
            "(--generator_channels), a lower --generator_lr or another --seed.")


def save_state(directory, done, watch, keep):
    """Records `watch`'s count and resets for the checkpoint of iteration `done`, keeping the
    states of the newest `keep` iterations."""
    path = os.path.join(directory, STATE_FILE)
    states = _read_states(path) or {}
    states[str(done)] = {"run_length": watch.run_length, "collapsed_at": list(watch.collapsed_at),
                         "unanswered": watch.unanswered, "resets": watch.resets}
    newest = sorted(states, key=int)[-keep:]
    artifacts.write_json(path, {key: states[key] for key in newest})


def restore_state(directory, done, watch):
    """Sets `watch`'s count and resets from the state saved with the checkpoint of iteration
    `done`; returns False (and leaves `watch` as it is) when there is none, or it lacks a field."""
    state = (_read_states(os.path.join(directory, STATE_FILE)) or {}).get(str(done))
    if not isinstance(state, dict) or not _REQUIRED.issubset(state):
        return False
    watch.run_length, watch.collapsed_at = state["run_length"], list(state["collapsed_at"])
    watch.unanswered, watch.resets = state.get("unanswered", False), state["resets"]
    return True


def _read_states(path):
    """The saved states by iteration, or None for a missing or unreadable file."""
    states = artifacts.read_json(path)
    return states if isinstance(states, dict) else None


def reinitialise(model, seed):
    """Draws every kernel, bias and batch-norm variable of `model` afresh from its layer's
    initializer, seeded by `seed` (so every worker of a run draws the same values)."""
    for index, layer in enumerate(model.layers):
        for name in _INITIALISED:
            variable = getattr(layer, name, None)
            initializer = getattr(layer, f"{name}_initializer", None)
            if variable is None or initializer is None:
                continue
            config = initializer.get_config()
            if "seed" in config:
                config["seed"] = seed * 1000 + index
            fresh = initializer.__class__.from_config(config)
            variable.assign(fresh(variable.shape, variable.dtype))


def reset_moments(optimizer):
    """Zeroes the optimizer's slot variables; its step count (and so its schedule) is kept."""
    for variable in optimizer.variables():
        if variable is not optimizer.iterations:
            variable.assign(tf.zeros_like(variable))
