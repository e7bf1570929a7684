"""One compression run end to end: load the teacher, build student and generator under a strategy,
train them data-free, export SavedModel and TFLite, measure, and write `report.json`.

The run's evaluation data (if any) is used only to measure accuracy, never for training.
"""

import dataclasses
import os

import numpy as np

from tfdfc.errors import ConfigError
from tfdfc import artifacts, data, distribute, export, metrics, models, teacher as teacher_lib
from tfdfc.keras_compat import keras
from tfdfc.train import Loop, Players, TrainConfig, make_optimizers

STUDENT_INITS = ("random", "teacher")


@dataclasses.dataclass(frozen=True)
class CompressConfig:
    """Everything one compression run needs; the `compress` binary's flags map onto it."""

    teacher: str
    out_dir: str
    student: str = "same"  # "same" (the teacher's architecture) or a registry name
    student_init: str = "random"  # random | teacher (copy the teacher's weights)
    eval_data: str = ""  # mnist5k | digits | path.npz | "" for none
    strategy: str = "mirrored"
    generator_channels: int = 128
    unsafe_load: bool = False
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def validate(self):
        """Raises ConfigError naming the first bad field; checks nothing on disk."""
        if not self.teacher:
            raise ConfigError("teacher is required: a .keras, .h5 or SavedModel path")
        if not self.out_dir:
            raise ConfigError("out_dir is required")
        if self.student_init not in STUDENT_INITS:
            raise ConfigError(f"student_init must be one of {STUDENT_INITS}, "
                             f"got {self.student_init!r}")
        if self.strategy not in distribute.STRATEGIES:
            raise ConfigError(f"strategy must be one of {distribute.STRATEGIES}, "
                             f"got {self.strategy!r}")
        if self.generator_channels < 2:
            raise ConfigError(f"generator_channels must be >= 2, got {self.generator_channels}")
        self.train.validate()


def build_student(spec, teacher, init):
    """The student: the teacher's architecture (`same`) or a registry one, initialised by `init`."""
    if spec == "same":
        student = keras.models.clone_model(teacher)  # same layers, fresh initialisation
    else:
        student = models.build(spec, tuple(teacher.inputs[0].shape[1:]),
                               int(teacher.outputs[0].shape[-1]))
    if init == "teacher":
        if spec != "same":
            raise ConfigError("student_init=teacher needs student=same (the teacher's shapes)")
        student.set_weights(teacher.get_weights())
    return student


def check_attention_points(teacher, student, attention_weight, log=print):
    """Whether attention transfer can run; raises if the two networks' points do not line up."""
    if attention_weight == 0:
        return False
    teacher_points = models.attention_layers(teacher)
    student_points = models.attention_layers(student)
    if not teacher_points:
        log("teacher has no attention points (layers named attention_<i>): attention transfer off")
        return False
    teacher_shapes = [tuple(layer.output.shape[1:3]) for layer in teacher_points]
    student_shapes = [tuple(layer.output.shape[1:3]) for layer in student_points]
    if teacher_shapes != student_shapes:
        raise ConfigError(
            f"attention transfer needs matching attention points: teacher {teacher_shapes}, "
            f"student {student_shapes}. Pick a student of the same spatial layout, or set "
            "--attention_weight=0")
    return True


def build_players(strategy, config, teacher_model, log=print):
    """Builds teacher view, student, generator and optimizers under `strategy`."""
    with strategy.scope():
        teacher_model = teacher_lib.as_logits(teacher_model)
        student = build_student(config.student, teacher_model, config.student_init)
        student.trainable = True  # a clone copies the teacher's per-layer `trainable` flags
        teacher_model.trainable = False
        use_attention = check_attention_points(teacher_model, student,
                                               config.train.attention_weight, log)
        generator = models.generator(tuple(teacher_model.inputs[0].shape[1:]),
                                     config.train.latent_dim, config.generator_channels)
        student_optimizer, generator_optimizer = make_optimizers(config.train)
        return Players(
            teacher=models.with_attention_outputs(teacher_model, use_attention),
            student=models.with_attention_outputs(student, use_attention),
            student_model=student, generator=generator,
            student_optimizer=student_optimizer, generator_optimizer=generator_optimizer)


def run(config, log=print, flags_text=None):
    """Runs one compression end to end; returns the report dictionary (also in report.json).

    Inputs are all checked before anything is written to `config.out_dir`; `flags_text`, if
    given, is then saved there as flags.txt.
    """
    config.validate()
    keras.utils.set_random_seed(config.train.seed)
    eval_set = data.load(config.eval_data) if config.eval_data else None
    strategy = distribute.make_strategy(config.strategy)
    with strategy.scope():
        teacher_model = teacher_lib.load(config.teacher, safe_mode=not config.unsafe_load)
    if eval_set is not None:
        teacher_lib.check_input_shape(teacher_model, eval_set.input_shape, config.eval_data)
    players = build_players(strategy, config, teacher_model, log)
    if flags_text is not None:
        artifacts.write_text(os.path.join(config.out_dir, "flags.txt"), flags_text)
    log(f"teacher {teacher_model.name}: {metrics.parameter_count(teacher_model):,} parameters; "
        f"student {players.student_model.name}: "
        f"{metrics.parameter_count(players.student_model):,} parameters; "
        f"{strategy.num_replicas_in_sync} replica(s)")

    def evaluate():
        if eval_set is None:
            return None
        return metrics.keras_accuracy(players.student_model, eval_set.x_test, eval_set.y_test)

    loop = Loop(strategy, players, config.train,
                checkpoint_dir=os.path.join(config.out_dir, "checkpoints"),
                summary_dir=os.path.join(config.out_dir, "tensorboard"),
                evaluate=evaluate, show_images=_image_view(eval_set), log=log)
    final_metrics = loop.run()
    report = _export_and_report(config, teacher_model, players.student_model, eval_set, log)
    report["train"] = {"steps": config.train.steps, "seconds": round(loop.seconds, 1),
                       "student_steps": config.train.student_steps,
                       "batch_size": config.train.batch_size,
                       "replicas": strategy.num_replicas_in_sync,
                       "final_metrics": final_metrics}
    artifacts.write_json(os.path.join(config.out_dir, "config.json"), dataclasses.asdict(config))
    artifacts.write_json(os.path.join(config.out_dir, "report.json"), report)
    log(f"wrote {os.path.join(config.out_dir, 'report.json')}")
    return report


def _image_view(eval_set):
    """Maps standardised images back to [0, 1] for the TensorBoard grid."""
    def show(images):
        images = np.asarray(images)
        if eval_set is not None and eval_set.name in data.BUNDLED:
            return images * eval_set.std + eval_set.mean
        low = images.min(axis=(1, 2, 3), keepdims=True)
        high = images.max(axis=(1, 2, 3), keepdims=True)
        return (images - low) / np.maximum(high - low, 1e-6)
    return show


def _export_and_report(config, teacher_model, student_model, eval_set, log):
    student = export.plain_copy(student_model)
    export.save_saved_model(student, os.path.join(config.out_dir, "saved_model"))
    float_tflite = export.tflite_float(student)
    export.write_tflite(float_tflite, os.path.join(config.out_dir, "student_float.tflite"))
    log(f"exported SavedModel and student_float.tflite ({len(float_tflite):,} bytes)")
    report = {
        "teacher": {"path": config.teacher, "params": metrics.parameter_count(teacher_model),
                    "accuracy": None},
        "student": {"architecture": config.student if config.student != "same"
                    else f"same ({teacher_model.name})",
                    "accuracy": None, "params": metrics.parameter_count(student),
                    "nonzero_params": metrics.nonzero_parameter_count(student),
                    "macs": metrics.multiply_accumulates(student),
                    "weight_bits": 32, "act_bits": 32, "sparsity": metrics.sparsity(student)},
        "tflite": {"float": {"bytes": len(float_tflite),
                             "gzip_bytes": metrics.gzip_size(float_tflite), "accuracy": None}},
        "eval_data": config.eval_data or None,
    }
    if eval_set is not None:
        _measure(report, teacher_model, student, float_tflite, eval_set, log)
    return report


def _measure(report, teacher_model, student, float_tflite, eval_set, log):
    images, labels = eval_set.x_test, eval_set.y_test
    student_logits = metrics.keras_logits(student, images)
    tflite_logits = metrics.tflite_outputs(float_tflite, images)
    report["teacher"]["accuracy"] = metrics.keras_accuracy(teacher_model, images, labels)
    report["student"]["accuracy"] = metrics.accuracy(student_logits, labels)
    report["tflite"]["float"]["accuracy"] = metrics.accuracy(tflite_logits, labels)
    report["tflite"]["float"]["max_abs_diff_vs_keras"] = float(
        np.max(np.abs(student_logits - tflite_logits)))
    log(f"accuracy on {eval_set.name} ({len(labels)} images): teacher "
        f"{report['teacher']['accuracy']:.4f}, student {report['student']['accuracy']:.4f}, "
        f"TFLite float {report['tflite']['float']['accuracy']:.4f}")
