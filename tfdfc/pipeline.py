"""One compression run end to end: load the teacher, build the (compressed) student and the
generator under a strategy, train them data-free, then export, measure and report.

The run's evaluation data (if any) is used only to measure accuracy and for the with-data
baseline, never by the data-free training itself.
"""

import dataclasses
import json
import os
import shutil
from typing import Any, Dict, Optional, Tuple

from tfdfc import artifacts, baselines, batchnorm, compression, data, distribute, figures
from tfdfc import flatten, methods
from tfdfc import input_space as input_space_lib
from tfdfc import models, priors, report
from tfdfc import teacher as teacher_lib
from tfdfc.compression import delta_search, prune, slim
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras
from tfdfc.loop import Loop
from tfdfc.train import Players, TrainConfig, make_optimizers, slow_copy

STUDENT_INITS = ("auto", "random", "teacher")
BATCH_NORM_POLICIES = ("auto",) + batchnorm.POLICIES
_PRUNE_DEFAULTS = prune.PruneSpec()  # the field `prune` hides the module inside the class


@dataclasses.dataclass(frozen=True)
class CompressConfig:
    """Everything one compression run needs; the `compress` binary's flags map onto it."""

    teacher: str
    out_dir: str
    student: str = "same"  # "same" (the teacher's architecture) or a registry name
    student_init: str = "auto"  # auto: the teacher's weights when quantizing, else random
    batch_norm: str = "auto"  # auto (by init: batchnorm.py) | frozen_statistics | trained
    quantize: str = "none"  # none | binary | int8 | w<b>a<c>
    delta: float = 0.0  # binary scale; 0 picks the mean |w| of the binarised kernels
    delta_grid: Tuple[float, ...] = ()
    int8_io: bool = False
    prune: str = "none"  # none | magnitude | slim
    sparsity: float = 0.0  # target fraction of zero weights (magnitude)
    sparsity_schedule: str = "polynomial"  # polynomial | constant
    prune_ends: Optional[bool] = None  # first and last conv/dense too; None: where needed
    sparsity_allocation: str = _PRUNE_DEFAULTS.allocation  # global | uniform: sharing the zeros
    sparsity_ramp: float = _PRUNE_DEFAULTS.ramp  # polynomial: fraction of updates to the target
    l1_gamma: float = slim.SlimSpec.l1_gamma  # slim: L1 weight of the channel scales
    weight_decay: float = slim.SlimSpec.weight_decay  # slim: lambda
    threshold: float = slim.SlimSpec.threshold  # slim: t_s
    warmup_steps: int = slim.SlimSpec.warmup_steps  # slim: student updates of linear warm-up
    ticket: str = ""  # a find_ticket .npz: its architecture, mask (fixed) and original init
    ticket_reinit: bool = False  # the control: same mask, fresh random init
    with_data_baseline: bool = True  # when the evaluation data has a training split
    eval_data: str = ""  # mnist5k | digits | path.npz | "" for none
    strategy: str = "mirrored"
    generator_channels: int = 128
    input_range: str = ""  # "low,high" of the teacher's input pixels; "": inferred (input_space.py)
    unsafe_load: bool = False
    overwrite: bool = False  # start afresh in an out_dir that holds another run
    recipe: str = ""  # the recipes.py recipe that filled the settings left unset ("": none)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    @property
    def quant_spec(self):
        return compression.parse_quantize(self.quantize, methods.added_quantize_values())

    @property
    def prune_spec(self):
        return prune.PruneSpec(self.prune, self.sparsity, self.sparsity_schedule, self.prune_ends,
                               self.sparsity_allocation, self.sparsity_ramp)

    @property
    def slim_spec(self):
        return slim.SlimSpec(self.l1_gamma, self.weight_decay, self.threshold, self.warmup_steps)

    @property
    def method(self):
        """The methods.Method this configuration runs."""
        return methods.for_config(self)

    @property
    def compressing_the_teacher(self):
        return self.quantize != "none" or self.prune != "none"

    @property
    def resolved_student_init(self):
        if self.student_init != "auto":
            return self.student_init
        return "teacher" if self.compressing_the_teacher and self.student == "same" else "random"

    @property
    def resolved_batch_norm(self):
        if self.batch_norm != "auto":
            return self.batch_norm
        init = "random" if self.ticket else self.resolved_student_init
        return batchnorm.policy_for(init)

    @property
    def total_updates(self):
        return self.train.steps * self.train.student_steps

    def validate(self):
        """Raises ConfigError naming the first bad field; checks nothing on disk."""
        if not self.teacher:
            raise ConfigError("teacher is required: a .keras, .h5 or SavedModel path")
        if not self.out_dir:
            raise ConfigError("out_dir is required")
        if self.student_init not in STUDENT_INITS:
            raise ConfigError(f"student_init must be one of {STUDENT_INITS}, "
                              f"got {self.student_init!r}")
        if self.resolved_student_init == "teacher" and self.student != "same":
            raise ConfigError("student_init=teacher needs student=same (the teacher's shapes)")
        if self.batch_norm not in BATCH_NORM_POLICIES:
            raise ConfigError(f"batch_norm must be one of {BATCH_NORM_POLICIES}, "
                              f"got {self.batch_norm!r}")
        if self.strategy not in distribute.STRATEGIES:
            raise ConfigError(f"strategy must be one of {distribute.STRATEGIES}, "
                              f"got {self.strategy!r}")
        if self.generator_channels < 2:
            raise ConfigError(f"generator_channels must be >= 2, got {self.generator_channels}")
        self._validate_quantization()
        self.prune_spec.validate()
        if self.prune == "magnitude" and self.quantize not in ("none", "int8"):
            raise ConfigError("--prune=magnitude combines only with --quantize=int8 "
                              "(prune-preserving QAT)")
        if self.prune == "slim" and self.quantize != "none":
            raise ConfigError("--prune=slim does not combine with --quantize: quantize the "
                              "slimmed student in a second run (--teacher=<its saved_model>)")
        if self.prune != "slim" and self.slim_spec != slim.SlimSpec():
            raise ConfigError("--l1_gamma, --weight_decay, --threshold and --warmup_steps "
                              "apply only to --prune=slim")
        if self.ticket_reinit and not self.ticket:
            raise ConfigError("--ticket_reinit needs --ticket")
        if self.ticket and (self.prune != "none" or self.quantize != "none"
                            or self.student != "same"):
            raise ConfigError("--ticket sets the student (its architecture, mask and init): it "
                              "cannot be combined with --student, --prune or --quantize")
        if self.strategy == "multi_worker" and self.delta_grid:
            raise ConfigError("--delta_grid is not supported with --strategy=multi_worker")
        self.method.validate(self)
        self.train.validate()

    def _validate_quantization(self):
        spec = self.quant_spec
        if spec.scheme != "binary" and (self.delta or self.delta_grid):
            raise ConfigError("--delta and --delta_grid apply only to --quantize=binary")
        if self.delta < 0 or any(value <= 0 for value in self.delta_grid):
            raise ConfigError("binary delta values must be positive")
        if len({f"{value:g}" for value in self.delta_grid}) != len(self.delta_grid):
            raise ConfigError(f"--delta_grid has repeated values: {self.delta_grid}")


@dataclasses.dataclass
class Build:
    """What a run trains, and what its exports need."""

    players: Players
    method: methods.Method
    float_template: keras.Model  # the student's float architecture (before compression)
    compressed: compression.CompressedStudent
    teacher_logits: keras.Model
    input_space: input_space_lib.InputSpace  # where generated and calibration images live


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


def build(strategy, config, teacher_model, delta=None, log=print):
    """Builds teacher view, compressed student, generator and optimizers under `strategy`."""
    with strategy.scope():
        teacher_logits = teacher_lib.as_logits(teacher_model)
        method = config.method
        float_student, compressed = method.build(config, teacher_logits, delta)
        teacher_logits.trainable = False
        student = compressed.model
        batchnorm.apply(student, config.resolved_batch_norm)
        use_attention = check_attention_points(teacher_logits, student,
                                               config.train.attention_weight, log)
        space = resolve_input_space(config, teacher_logits)
        generator = models.generator(tuple(teacher_logits.inputs[0].shape[1:]),
                                     config.train.latent_dim, config.generator_channels, space)
        student_optimizer, generator_optimizer = make_optimizers(config.train)
        players = Players(
            teacher=models.with_attention_outputs(teacher_logits, use_attention),
            student=models.with_attention_outputs(student, use_attention),
            student_model=student, generator=generator,
            student_optimizer=student_optimizer, generator_optimizer=generator_optimizer,
            after_student_update=(compressed.make_after_update(student_optimizer.iterations)
                                  if compressed.make_after_update else compressed.after_update),
            regularizer=(compressed.make_regularizer(student_optimizer.iterations)
                         if compressed.make_regularizer else None),
            summaries=method.summaries(config, student),
            batch_norm_prior=priors.make_batch_norm_prior(teacher_logits),
            slow_generator=slow_copy(generator) if config.train.generator_ema > 0 else None)
    return Build(players, method, float_student, compressed, teacher_logits, space)


def resolve_input_space(config, teacher):
    """The teacher's input space: `--input_range` if given, else inferred from its layers."""
    if config.input_range:
        return input_space_lib.parse_range(config.input_range, int(teacher.inputs[0].shape[-1]))
    return input_space_lib.infer(teacher)


def load_inputs(config, teacher_model=None):
    """Loads and cross-checks the teacher (from `config.teacher`, or the tf-keras
    `teacher_model` given in memory) and the evaluation data; writes nothing.

    Returns:
      (strategy, teacher model, evaluation set or None, teacher conversion info or None).
    """
    config.validate()
    eval_set = data.load(config.eval_data) if config.eval_data else None
    strategy = distribute.make_strategy(config.strategy)
    with strategy.scope():
        if teacher_model is None:
            loaded, conversion = teacher_lib.load_with_info(config.teacher,
                                                            safe_mode=not config.unsafe_load)
        else:  # its own copy, its variables made under the strategy
            teacher_lib.validate(teacher_model, source=config.teacher)
            loaded, conversion = keras.models.clone_model(teacher_model), None
            loaded.set_weights(teacher_model.get_weights())
        teacher_model = flatten.flatten(loaded)
    if eval_set is not None:
        teacher_lib.check_input_shape(teacher_model, eval_set.input_shape, config.eval_data)
    if config.train.batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"batch_size {config.train.batch_size} is not divisible by the "
                          f"{strategy.num_replicas_in_sync} replicas")
    return strategy, teacher_model, eval_set, conversion


def _check_student(config, teacher_model):
    """Builds the compressed student once, outside any strategy, so that an unknown
    architecture, an unsupported layer or mismatched attention points fail before any output
    is written (for a delta grid, whose students are built later, one per delta)."""
    teacher_logits = teacher_lib.as_logits(teacher_model)
    student = config.method.build(config, teacher_logits)[1].model
    check_attention_points(teacher_logits, student, config.train.attention_weight,
                           log=lambda _: None)
    models.generator(tuple(teacher_logits.inputs[0].shape[1:]), config.train.latent_dim,
                     config.generator_channels,  # raises for images it cannot make
                     resolve_input_space(config, teacher_logits))  # raises for a bad range


def seeded_build(strategy, config, teacher_model, delta=None, log=print):
    """`build` after seeding every initialiser with the training seed."""
    keras.utils.set_random_seed(config.train.seed)
    return build(strategy, config, teacher_model, delta, log)


def train_one(config, strategy, teacher_model, eval_set, out_dir, delta=None, log=print,
              built=None):
    """Builds (unless given `built`, from `seeded_build`) and trains one student data-free in
    `out_dir`; returns (build, loop)."""
    run = built or seeded_build(strategy, config, teacher_model, delta, log)
    log(f"teacher {teacher_model.name}: {report.parameter_count(run.teacher_logits):,} "
        f"parameters; student ({config.quantize}): "
        f"{report.parameter_count(run.float_template):,} parameters; "
        f"{strategy.num_replicas_in_sync} replica(s)")
    student = run.players.student_model

    def evaluate():
        if eval_set is None:
            return None
        with strategy.scope():  # pruning wrappers apply their masks only inside it
            return report.keras_accuracy(student, eval_set)

    loop = Loop(strategy, run.players, config.train,
                checkpoint_dir=os.path.join(out_dir, "checkpoints"),
                summary_dir=os.path.join(out_dir, "tensorboard"), evaluate=evaluate,
                show_images=report.image_view(eval_set), log=log)
    loop.run()
    run.method.after_training(run, strategy)
    return run, loop


# Fields that may change between a run and its resumption without changing what is trained.
_RESUMABLE_FIELDS = ("out_dir", "overwrite", "unsafe_load", "with_data_baseline", "eval_data",
                     "int8_io")
# on_collapse too: a run started under the old default (warn) resumes under reset, and a user
# who saw a collapse warning may resume with reset.
_RESUMABLE_TRAIN_FIELDS = ("log_every", "eval_every", "checkpoint_every", "on_collapse")


def _comparable(config_dict):
    comparable = {k: v for k, v in config_dict.items() if k not in _RESUMABLE_FIELDS}
    comparable["train"] = {k: v for k, v in config_dict.get("train", {}).items()
                           if k not in _RESUMABLE_TRAIN_FIELDS}
    return comparable


def claim_out_dir(config):
    """Makes `config.out_dir` this run's: resumes only a run with the same settings.

    Raises:
      ConfigError: the directory holds checkpoints of a run with different settings and
        `config.overwrite` is off.
    """
    config_path = os.path.join(config.out_dir, "config.json")
    checkpoints = os.path.join(config.out_dir, "checkpoints")
    current = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples become lists
    if os.path.isdir(checkpoints) and not config.overwrite:
        previous = artifacts.read_json(config_path)
        if previous is None or _comparable(previous) != _comparable(current):
            changed = sorted(_differences(previous or {}, current))
            raise ConfigError(
                f"{config.out_dir} holds checkpoints of another run (settings differ: "
                f"{', '.join(changed) or 'no config.json'}); pass --overwrite to discard them or "
                "choose another --out_dir")
    if config.overwrite:
        for name in ("checkpoints", "tensorboard", "delta_grid"):
            shutil.rmtree(os.path.join(config.out_dir, name), ignore_errors=True)
    artifacts.write_json(config_path, current)


def _differences(previous, current):
    old, new = _comparable(previous), _comparable(current)
    names = {k for k in set(old) | set(new) if k != "train" and old.get(k) != new.get(k)}
    old_train, new_train = old.get("train", {}), new.get("train", {})
    names |= {f"train.{k}" for k in set(old_train) | set(new_train)
              if old_train.get(k) != new_train.get(k)}
    return names


def _fresh_build(config, strategy, teacher_model, trained):
    keras.utils.set_random_seed(config.train.seed)
    return build(strategy, config, teacher_model, trained.compressed.delta, log=lambda _: None)


def _write_figures(config, trained, result):
    """report.md's pictures in out_dir; returns their file names (None where not drawn)."""
    images = report.generated_images(trained.players.generator, figures.GRID_SIDE ** 2,
                                     config.train.latent_dim, config.train.seed)
    figures.write_image_grid(images, os.path.join(config.out_dir, figures.GENERATED))
    drawn = figures.write_size_accuracy(result, os.path.join(config.out_dir,
                                                             figures.SIZE_ACCURACY))
    return {"generated": figures.GENERATED, "size_accuracy": figures.SIZE_ACCURACY if drawn
            else None}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a finished run gives a Python caller (the chief's; other workers get None)."""

    report: dict  # also in report.json
    student: Any  # the Keras model the SavedModel holds (QAT-wrapped, stripped or slimmed)
    files: Dict[str, str]  # "saved_model", "report", "tflite_<variant>": their paths


def run(config, log=print, flags_text=None):
    """Runs one compression end to end; returns the report dictionary (also in report.json).

    Inputs are all checked before anything is written to `config.out_dir`; `flags_text`, if
    given, is then saved there as flags.txt.
    """
    outcome = compress(config, log=log, flags_text=flags_text)
    return None if outcome is None else outcome.report


def compress(config, log=print, flags_text=None, teacher_model=None):
    """`run`, returning an Outcome; `teacher_model` (tf-keras, in memory) replaces the file
    `config.teacher` names, which is then only its label in the report."""
    strategy, teacher_model, eval_set, conversion = load_inputs(config, teacher_model)
    # The student is built before anything is written, so that an unknown architecture, an
    # unsupported layer or mismatched attention points leave no output behind.
    if config.delta_grid:  # one build per delta, later: check that one would succeed
        _check_student(config, teacher_model)
        built = None
    else:
        built = seeded_build(strategy, config, teacher_model, log=log)
    chief = distribute.is_chief(strategy)
    if chief:
        claim_out_dir(config)
        if flags_text is not None:
            artifacts.write_text(os.path.join(config.out_dir, "flags.txt"), flags_text)
    if config.delta_grid:
        trained, loop, grid = delta_search.run(
            config, lambda out_dir, delta: train_one(config, strategy, teacher_model, eval_set,
                                                     out_dir, delta=delta, log=log),
            eval_set, log)
    else:
        (trained, loop), grid = train_one(config, strategy, teacher_model, eval_set,
                                          config.out_dir, log=log, built=built), None
    if not chief:
        return None  # the chief exports and reports
    result, student = report.export_and_measure(config, trained, eval_set, log)
    result["train"] = report.train_summary(config, loop, strategy)
    if conversion is not None:
        result["teacher"]["converted_from"] = conversion["converted_from"]
        result["teacher"]["max_abs_logit_difference"] = conversion["max_abs_output_difference"]
    if grid is not None:
        result["delta_grid"] = grid
    # The with-data baseline runs collectives, which the other workers no longer join.
    baseline_config = (dataclasses.replace(config, with_data_baseline=False)
                       if config.strategy == "multi_worker" else config)
    result["baselines"] = baselines.measure(
        baseline_config, strategy, trained, eval_set,
        rebuild=lambda: _fresh_build(config, strategy, teacher_model, trained), log=log)
    result["figures"] = _write_figures(config, trained, result)
    report_path = os.path.join(config.out_dir, "report.json")
    artifacts.write_json(report_path, result)
    artifacts.write_text(os.path.join(config.out_dir, "report.md"), report.to_markdown(result))
    log(f"wrote {report_path} and report.md")
    files = {"saved_model": os.path.join(config.out_dir, "saved_model"), "report": report_path}
    files.update({f"tflite_{variant}": os.path.join(config.out_dir, f"student_{variant}.tflite")
                  for variant in result["tflite"]})
    return Outcome(report=result, student=student, files=files)
