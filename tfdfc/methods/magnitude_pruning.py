"""Magnitude pruning (`--prune=magnitude --prune_sparsity=s`): the smallest weights are zeroed on a
schedule while the student trains data-free; alone (a float student, TF-MOT's pruning wrappers)
or inside an int8 QAT student (`--quantize=int8`). The exports encode the zeros sparsely where
that makes a file smaller."""

from tfdfc import export, metrics
from tfdfc.compression import CompressedStudent, prune, quantize
from tfdfc.methods import base, int8_qat, qat


class _Pruned:
    """What both magnitude methods share: their recipe, sparse files, per-layer sparsity
    summaries (listed first among a method's bases, so these win)."""

    recipe = "magnitude"
    sparse = True

    def prepare(self, config, teacher, log=print):
        """Says how the zeros are shared among the layers (nothing to save: `build` takes the
        same rates from the student's weights, the teacher's when it starts from them)."""
        if config.resolved_student_init == "teacher":
            log(prune.describe_allocation(teacher, config.prune_spec))
        return None

    def report_fields(self, config, run):
        """Each pruned layer's fraction of zeros as trained (the start line announced them)."""
        rates = prune.layer_sparsity(run.players.student_model, config.prune_spec)
        return {"layer_sparsity": {name: round(value, 4) for name, value in rates.items()}}

    def summaries(self, config, student):
        return lambda: {f"sparsity/{name}": value for name, value in
                        prune.layer_sparsity(student, config.prune_spec).items()}

    def pruned_teacher(self, config, run):
        """The no-training twin: a copy of the teacher pruned once to the run's per-layer rates."""
        return prune.prune_once(export.plain_copy(run.teacher_logits), config.prune_spec)


class Magnitude(_Pruned, base.Method):
    name = "magnitude"

    def selects(self, config):
        return config.prune == "magnitude" and config.quantize == "none"

    def build(self, config, teacher, delta=None, plan=None):
        student = base.float_student(config, teacher)
        return student, CompressedStudent(
            prune.prune_magnitude(student, config.prune_spec, config.total_updates), None)

    def after_training(self, run, strategy):
        with strategy.scope():  # the last update left unmasked weights; outside: TypeError
            prune.apply_masks(run.players.student_model)

    def no_training(self, config, run, eval_set):
        pruned = self.pruned_teacher(config, run)
        return {"accuracy": metrics.keras_accuracy(pruned, eval_set.x_test, eval_set.y_test),
                "method": "the teacher pruned once to the run's rates, float Keras"}

    def files(self, config, run, samples):
        view = export.plain_copy(prune.strip(run.players.student_model))
        return base.float_files(config, view, samples, sparse=True)

    def measured(self, run, view):
        return view  # stripped: masks applied, outside any strategy scope


class MagnitudeInt8(_Pruned, qat.QuantizationAware):
    """Magnitude pruning inside an int8 QAT student: TF-MOT's pruning wrappers cannot wrap a
    quantized layer, so the QAT model's stored kernels are pruned after every update on the same
    schedule (`prune.make_gradual_pruner`). Pruning once at the start instead, then training
    with TF-MOT's prune-preserving QAT scheme, lost much more accuracy (bench/NOTES.md)."""

    name = "magnitude_int8"

    def selects(self, config):
        return config.prune == "magnitude" and config.quantize == "int8"

    def build(self, config, teacher, delta=None, plan=None):
        student = base.float_student(config, teacher)
        rates = prune.layer_sparsities(student, config.prune_spec)
        model = quantize.quantize_int8(student)
        sync = quantize.make_range_sync(model)

        def make_after_update(counter):
            prune_step = prune.make_gradual_pruner(model, rates, config.prune_spec,
                                                   config.total_updates, counter)

            def after_update():
                prune_step()
                if sync is not None:
                    sync()

            return after_update

        return student, CompressedStudent(model, None, make_after_update=make_after_update)

    def no_training(self, config, run, eval_set):
        return int8_qat.post_training_int8(
            config, run, eval_set, self.pruned_teacher(config, run),
            "the teacher pruned once to the run's rates, TFLite post-training int8 calibrated "
            "on Gaussian noise")
