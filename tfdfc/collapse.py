"""Notices a collapsed generator: one that makes only images the teacher puts in one class.

The paper's generator only maximises the teacher-student divergence; nothing in its loss keeps
the images varied. On mnist5k (90 % pruning + int8, a 16-wide generator, 2026-11-30) it once
drifted to images of a single class by iteration 250, and the student ended at chance (0.100).
Such a run cannot recover by itself, so the loop says so, in the log and in report.json, as soon
as the teacher has seen fewer than `threshold` effective classes for `patience` iterations.
"""

import dataclasses
from typing import Optional

THRESHOLD = 1.2  # effective classes (exp of the entropy of the batch's mean prediction)
PATIENCE = 50  # consecutive iterations


@dataclasses.dataclass
class CollapseWatch:
    """Counts consecutive iterations below `threshold`; reports the first collapse once."""

    threshold: float = THRESHOLD
    patience: int = PATIENCE
    run_length: int = 0
    collapsed_at: Optional[int] = None  # the iteration the collapse was reported at

    def update(self, done, teacher_classes):
        """Feeds iteration `done`'s value; returns a warning line the first time the run has
        stayed below the threshold for `patience` iterations, else None."""
        self.run_length = self.run_length + 1 if teacher_classes < self.threshold else 0
        if self.run_length < self.patience or self.collapsed_at is not None:
            return None
        self.collapsed_at = done
        return (f"WARNING: generator collapse at iteration {done}: for {self.patience} "
                f"iterations the teacher has put the generated images in "
                f"{teacher_classes:.2f} effective classes (below {self.threshold:g}). The "
                "student learns little from here on. Try --divergence=skl, a wider generator "
                "(--generator_channels), a lower --generator_lr or another --seed.")

    def summary(self):
        """The `generator_collapse` entry of report.json: None, or where it was seen."""
        return None if self.collapsed_at is None else {
            "iteration": self.collapsed_at, "threshold": self.threshold,
            "patience": self.patience}
