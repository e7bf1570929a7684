"""Float16 weights (`--quantize=float16`): the worked example of docs/adding-a-method.md."""

from tfdfc import export
from tfdfc.compression import CompressedStudent
from tfdfc.keras_compat import tf
from tfdfc.methods import base


class Float16(base.Method):
    name = "float16"
    recipe = "qat"  # starts at the teacher's weights: a small rate and a short run
    quantize_value = "float16"  # makes --quantize=float16 valid

    def selects(self, config):
        return config.quantize == "float16" and config.prune == "none" and not config.ticket

    def build(self, config, teacher, delta=None, plan=None):
        student = base.float_student(config, teacher)  # the teacher's weights, as for int8
        return student, CompressedStudent(student, None)  # nothing to wrap, no hooks

    def files(self, config, run, samples):
        view = export.plain_copy(run.players.student_model)  # outside the strategy
        converter = export.converter(view)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        return view, view, {"float16": converter.convert(), "float": export.tflite_float(view)}

    def report_fields(self, config, run):
        return {"weight_bits": 16}
