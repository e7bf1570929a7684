"""The paper's channel pruning by network slimming (`--prune=slim`): a learnable scale per
channel, driven towards zero by an L1 term and weight decay; after training, channels whose
scale is under the threshold are removed and the physically smaller network is exported."""

from tfdfc import metrics
from tfdfc.compression import CompressedStudent, slim
from tfdfc.methods import base


class Slim(base.Method):
    name = "slim"
    recipe = "slim"

    def selects(self, config):
        return config.prune == "slim" and config.quantize == "none" and not config.ticket

    def validate(self, config):
        config.slim_spec.validate()

    def build(self, config, teacher, delta=None, plan=None):
        architecture = slim.student_architecture(config.student, teacher)
        student = slim.build_student(architecture, teacher, config.resolved_student_init)
        spec = config.slim_spec
        return student, CompressedStudent(
            student, None,
            make_regularizer=lambda counter: slim.make_regularizer(student, spec, counter),
            final_model=lambda trained: slim.cut(trained, architecture, spec.threshold))

    def summaries(self, config, student):
        return lambda: {f"channels_kept/{group}": kept / total for group, (kept, total)
                        in slim.channel_summary(student, config.threshold).items()}

    def files(self, config, run, samples):
        """The physically smaller network rebuilt after thresholding the channel scales."""
        return base.float_files(config, run.compressed.final_model(run.players.student_model),
                                samples)

    def measured(self, run, view):
        return view

    def architecture(self, run, view):
        return view

    def report_fields(self, config, run):
        return {"slim": {
            "threshold": config.threshold, "l1_gamma": config.l1_gamma,
            "weight_decay": config.weight_decay, "warmup_steps": config.warmup_steps,
            "kernel_params_before": metrics.kernel_parameter_count(run.float_template),
            "macs_before": metrics.multiply_accumulates(run.float_template),
            "channels": slim.channel_summary(run.players.student_model, config.threshold)}}
