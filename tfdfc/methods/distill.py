"""Distillation into a float student: the teacher's architecture or a smaller registry network,
nothing quantized or pruned (`--quantize=none`, the default; with `--student=<name>`, the
paper's data-free knowledge distillation)."""

from tfdfc import export
from tfdfc.compression import CompressedStudent
from tfdfc.methods import base


class Distill(base.Method):
    name = "distill"
    recipe = "qat"  # a float copy of the teacher; a fresh student takes `distill` (recipes.py)

    def selects(self, config):
        return config.quantize == "none" and config.prune == "none" and not config.ticket

    def build(self, config, teacher, delta=None, plan=None):
        student = base.float_student(config, teacher)
        return student, CompressedStudent(student, None)

    def files(self, config, run, samples):
        return base.float_files(config, export.plain_copy(run.players.student_model), samples)
