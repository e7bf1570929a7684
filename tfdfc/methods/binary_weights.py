"""The paper's binary weights (`--quantize=binary`, BinaryConnect): kernels are delta * sign(w),
trained through a straight-through estimator with the latent weights clipped to [-delta, delta]."""

from tfdfc import export, metrics
from tfdfc.compression import binary, compress
from tfdfc.errors import ConfigError
from tfdfc.methods import base


class Binary(base.Method):
    name = "binary"
    recipe = "binary"

    def selects(self, config):
        return config.quantize == "binary" and config.prune == "none" and not config.ticket

    def validate(self, config):
        if config.int8_io:
            raise ConfigError("--int8_io needs an int8 TFLite export: use --quantize=int8 or "
                              "w<b>a<c>, or none")

    def build(self, config, teacher, delta=None, plan=None):
        student = base.float_student(config, teacher)
        return student, compress(student, config.quant_spec, delta or config.delta or None)

    def files(self, config, run, samples):
        """SavedModel and TFLite float/dynamic of the float view whose binarised kernels are
        exactly +-delta."""
        view = export.float_view(run.float_template, run.players.student_model)
        if view is None:
            raise RuntimeError("could not map the binary student's weights back onto its float "
                               "architecture; please report this model")
        return view, view, {"dynamic": export.tflite_dynamic(view),
                            "float": export.tflite_float(view)}

    def report_fields(self, config, run):
        return {"delta": run.compressed.delta}

    def no_training(self, config, run, eval_set):
        model = _signs_of_teacher(run)
        return {"accuracy": metrics.keras_accuracy(model, eval_set.x_test, eval_set.y_test),
                "method": f"delta*sign(teacher weights), delta={run.compressed.delta:.4g}"}

    def has_untrained(self, config):
        return config.student == "same"

    def untrained(self, config, run, samples):
        model = _signs_of_teacher(run)
        return model, {"float": export.tflite_float(model),
                       "dynamic": export.tflite_dynamic(model)}, "delta * sign(teacher kernels)"


def _signs_of_teacher(run):
    """The untrained binary student: delta * sign of the teacher's binarised kernels."""
    return binary.sign_only(export.plain_copy(run.teacher_logits), run.compressed.delta)
