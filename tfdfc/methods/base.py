"""What every compression method answers: the interface a run asks through, with the defaults
a plain float student needs.

A method is one object (one module per method in this package, one line in its registry). The
pipeline, the exports, the report, the baselines and the fallback guard look the run's method up
once (`tfdfc.methods.for_config`) and ask it everything that differs between schemes.
"""

from typing import Optional

from tfdfc import export, fold, models
from tfdfc.keras_compat import keras


def float_student(config, teacher, fold_batch_norms=False):
    """The float student of `config.student`: the teacher's architecture (`same`, fresh or with
    the teacher's weights, by `config.resolved_student_init`) or a registry network. With
    `fold_batch_norms`, a student that starts from the teacher and keeps its batch-norm
    statistics frozen has the batch norms after its convolutions folded into them (fold.py);
    with `--batch_norm=trained` they stay layers, whose statistics then train as asked."""
    if config.student == "same":
        student = keras.models.clone_model(teacher)  # same layers, fresh initialisation
    else:
        student = models.build(config.student, tuple(teacher.inputs[0].shape[1:]),
                               int(teacher.outputs[0].shape[-1]))
    if config.resolved_student_init == "teacher":
        student.set_weights(teacher.get_weights())
    student.trainable = True  # a clone copies the teacher's per-layer `trainable` flags
    if (fold_batch_norms and config.resolved_student_init == "teacher"
            and config.resolved_batch_norm == "frozen_statistics"):
        student = fold.fold_batch_norms(student)
    return student


class Method:
    """One compression method. Subclasses set the class attributes and override what differs.

    Attributes:
      name: the method's name in report.json and in errors.
      recipe: the recipes.py row that fills the training settings the user left unset.
      sparse: its exports encode zero weights sparsely, where that makes a file smaller.
      quantize_value: a `--quantize` value this method adds to the built-in ones (none, binary,
        int8, w<b>a<c>), or None.
      splits_kernels: the run's teacher is rewritten as the ops TFLite runs when loaded
        (kernel_split.py: a SeparableConv2D as a depthwise and a 1x1 convolution, an activation
        TFLite does not fuse as a layer of its own), for a method that quantizes kernel layers
        one by one.
    """

    name = "method"
    recipe = "distill"
    sparse = False
    quantize_value: Optional[str] = None
    splits_kernels = False

    def selects(self, config) -> bool:
        """Whether `config` (a CompressConfig) asks for this method."""
        raise NotImplementedError

    def recipe_for(self, config):
        """The recipes.py row for `config`: `recipe`, unless a method's settings need another."""
        return self.recipe

    def validate(self, config):
        """Raises ConfigError for settings this method cannot run with."""

    def prepare(self, config, teacher, log=print):
        """What this method decides once per run before any student is built, from `teacher`
        (a flat logits model, outside any strategy), as a JSON-able dict, or None. The run
        saves it in its directory, so that a resumed run builds the same student."""
        return None

    def build(self, config, teacher, delta=None, plan=None):
        """(float student, compression.CompressedStudent) for `teacher` (a flat logits model);
        `delta` is a binary scale chosen by a delta grid, `plan` what `prepare` decided."""
        raise NotImplementedError

    def summaries(self, config, student):
        """None, or a callable() -> {name: scalar} of extra TensorBoard summaries."""
        return None

    def after_training(self, run, strategy):
        """Runs once after the last update, before the exports (e.g. masks applied)."""

    def files(self, config, run, samples):
        """(Keras model for the SavedModel, float view or None, {variant: TFLite bytes}) of a
        trained run (a pipeline.Build); `samples` are generated images that calibrate ranges a
        quantization-aware model does not define."""
        raise NotImplementedError

    def measured(self, run, view):
        """The Keras model whose accuracy report.json gives as the student's."""
        return run.players.student_model

    def architecture(self, run, view):
        """The float network whose parameters and MACs the report counts."""
        return run.float_template

    def report_fields(self, config, run) -> dict:
        """Extra entries of report.json's `student` section (or entries it sets otherwise)."""
        return {}

    def file_fields(self, config, run, files, log=print) -> dict:
        """Extra entries of report.json's `tflite` section read from the exported `files`
        ({variant: TFLite bytes}), as {variant: {key: value}}; warnings are logged here."""
        return {}

    def no_training(self, config, run, eval_set) -> Optional[dict]:
        """The no-training baseline (the teacher compressed without any training, run on
        `eval_set`'s test split): {"accuracy", "method"}, or None where it is not defined."""
        return None

    def more_baselines(self, config, run, eval_set) -> dict:
        """Further no-training baselines of report.json's `baselines`, {name: {"accuracy",
        "method", ...}}, run on `eval_set`'s test split."""
        return {}

    def has_untrained(self, config) -> bool:
        """Whether the teacher compressed without training is the same artefact as this run's
        student, so that the fallback guard (guard.py) can compare the two."""
        return False

    def files_run_other_activations(self, config) -> bool:
        """Whether the TFLite files run activations at other bits than the SavedModel (below 8
        bits, which TFLite has no kernels for): the guard then judges the two apart."""
        return False

    def untrained_by_default(self, config, run) -> bool:
        """Whether, where `has_untrained`, the guard exports the untrained counterpart unless
        the trained student measurably agrees more with the teacher: for schemes whose
        untrained version is already as good as data-free training can make it."""
        return False

    def untrained(self, config, run, samples):
        """For the fallback guard, where `has_untrained`: (Keras model, {variant: TFLite
        bytes}, description) of the teacher compressed without training, the same variants as
        `files` gives, so that a fallback replaces every export and the model the report
        measures; `samples` (generated images) calibrate it."""
        raise NotImplementedError


def float_files(config, view, samples, sparse=False):
    """The files of a float student: dynamic-range, full-integer int8 (post-training, calibrated
    on `samples`) and float TFLite of `view`, which is also the SavedModel."""
    return view, view, {"dynamic": export.tflite_dynamic(view, sparse),
                        "int8": export.tflite_int8(view, samples, config.int8_io, sparse),
                        "float": export.tflite_float(view)}
