"""int8 quantization-aware training (`--quantize=int8`): TF-MOT's default 8-bit scheme, trained
data-free from the teacher's weights."""

from tfdfc import batchnorm, export, metrics
from tfdfc.methods import baseline_noise, qat


class Int8(qat.QuantizationAware):
    name = "int8"

    def selects(self, config):
        return config.quantize == "int8" and config.prune == "none" and not config.ticket

    def no_training(self, config, run, eval_set):
        return post_training_int8(config, run, eval_set)

    def has_untrained(self, config):
        return config.student == "same"

    def untrained_by_default(self, config, run):
        """Post-training int8 of a BatchNorm teacher (folded, calibrated) is within a fraction
        of a point of the teacher, so training must show it agrees more (guard.py)."""
        return bool(batchnorm.batch_norms(run.teacher_logits))

    def untrained(self, config, run, samples):
        teacher = export.plain_copy(run.teacher_logits)
        return teacher, {"int8": export.tflite_int8(teacher, samples, config.int8_io),
                         "float": export.tflite_float(teacher)}, (
            "post-training int8 of the teacher (generated images)")


def post_training_int8(config, run, eval_set, model=None,
                       method="TFLite post-training int8 calibrated on Gaussian noise"):
    """TFLite post-training int8 of the teacher (or of `model`, a float model of its inputs)
    calibrated on Gaussian noise (no data at all)."""
    noise = baseline_noise.images(eval_set.input_shape, config.train.seed, run.input_space)
    payload = export.tflite_int8(model or export.plain_copy(run.teacher_logits), noise)
    outputs = metrics.tflite_outputs_any_kernels(payload, eval_set.x_test)[0]
    return {"accuracy": metrics.accuracy(outputs, eval_set.y_test), "method": method}
