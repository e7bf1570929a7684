"""What the quantization-aware methods (int8, w<b>a<c>) share: a TF-MOT QAT student whose learned
ranges become the full-integer TFLite file's."""

import dataclasses

from tfdfc import export
from tfdfc.compression import compress
from tfdfc.methods import base


def deployable_spec(spec):
    """`spec` with activations at >= 8 bits, so that TFLite kernels can run it."""
    return spec if spec.act_bits >= 8 else dataclasses.replace(spec, act_bits=8)


def deployable_qat(run, spec):
    """A QAT copy outside any strategy, activations at >= 8 bits so TFLite kernels can run it."""
    return with_trained_weights(compress(export.plain_copy(run.float_template),
                                         deployable_spec(spec)).model, run)


def with_trained_weights(copy, run):
    """`copy` (a QAT model of the student's layout) holding the trained student's weights."""
    copy.set_weights(run.players.student_model.get_weights())
    return copy


class QuantizationAware(base.Method):
    """SavedModel of the QAT model; full-integer TFLite whose ranges are the learned ones
    (students with activations below 8 bits run their activations at int8 in TFLite, with the
    learned ranges: 4-bit activations are simulated, not executed); float TFLite of the float
    view for size comparison."""

    recipe = "qat"
    folds_batch_norms = False  # TF-MOT's 8-bit scheme folds them inside its wrappers

    def build(self, config, teacher, delta=None, plan=None):
        student = base.float_student(config, teacher, self.folds_batch_norms)
        return student, compress(student, config.quant_spec)

    def deployable(self, config, run):
        """The trained QAT student rebuilt outside any strategy, as TFLite kernels run it."""
        return deployable_qat(run, config.quant_spec)

    def files(self, config, run, samples):
        view = export.float_view(run.float_template, run.players.student_model)
        files = {"int8": export.tflite_int8(self.deployable(config, run), samples,
                                            config.int8_io, self.sparse),
                 **export.float_file(view)}
        return export.plain_copy(run.players.student_model), view, files
