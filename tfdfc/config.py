"""One home for the settings of a compression run: every default, on one screen, each with the
one line of help its generated flag shows (settings.py). TrainConfig (train.py) holds the loop's.

Settings a recipe fills when left unset (recipes.CONFIG_FIELDS and TRAIN_FIELDS) take the
recipes.py values of the run's method, not these.
"""

import dataclasses
import math
from typing import Optional, Tuple

from tfdfc import batchnorm, compression, data, distribute, methods, models, settings
from tfdfc.compression import mixed, prune, quantize, slim
from tfdfc.errors import ConfigError
from tfdfc.settings import REQUIRED, setting
from tfdfc.train import TrainConfig

STUDENT_INITS = ("auto", "random", "teacher")
BATCH_NORM_POLICIES = ("auto",) + batchnorm.POLICIES
_PRUNE = prune.PruneSpec()  # the field `prune` hides the module inside the class
_SLIM = slim.SlimSpec()
_MIXED_FIELDS = ("mixed_budget", "mixed_assignment", "mixed_search_steps")
RANGED_SCHEMES = ("nbit", "mixed")  # their activations use quantize.RobustRangeQuantizer
_PRUNES, _SCHEDULES, _ALLOCATIONS = prune.PRUNES, prune.SCHEDULES, prune.ALLOCATIONS
_RANGE_STARTS = quantize.RANGE_STARTS  # the field `quantize` hides the module inside the class


@dataclasses.dataclass(frozen=True)
class CompressConfig:
    """Everything one compression run needs; `python -m tfdfc.compress` has a flag per setting."""

    # run
    teacher: str = setting(REQUIRED, "Trained teacher: .keras, .h5 or SavedModel directory "
                           "(tf-keras or Keras 3).", "run")
    out_dir: str = setting(REQUIRED, "Run directory (resumes if it holds checkpoints).", "run")
    eval_data: str = setting("", "Evaluation only, never trained on: "
                             f"{data.SPECS_HELP}; empty for none.", "run")
    with_data_baseline: bool = setting(True, "Also train the same student on real training "
                                       "images (--eval_data with a training split).", "run")
    strategy: str = setting("mirrored", "mirrored: this machine's GPUs (else CPU); "
                            "multi_worker: machines in TF_CONFIG; one_device.", "run",
                            choices=distribute.STRATEGIES)
    unsafe_load: bool = setting(False, "Allow a tf-keras teacher that holds code (Lambda layers); "
                                "a Keras 3 file's Lambda has no conversion and stays refused.",
                                "run")
    overwrite: bool = setting(False, "Discard checkpoints of a different run in --out_dir.",
                              "run")
    # student
    student: str = setting("same", f"'same' (the teacher's architecture) or {models.NAMES_HELP}.",
                           "student")
    student_init: str = setting("auto", "random, teacher (needs --student=same), or auto: "
                                "teacher when compressing the teacher, else random.", "student",
                                choices=STUDENT_INITS)
    batch_norm: str = setting("auto", "frozen_statistics (teacher's, inference mode) or trained; "
                              "auto: frozen from the teacher's weights, else trained.", "student",
                              choices=BATCH_NORM_POLICIES)
    recalibrate_batch_norm: bool = setting(False, "After training, take frozen batch-norm "
                                           "statistics afresh from generated images; unset: "
                                           "the recipe's.", "student")
    generator_channels: int = setting(128, "Generator width (the paper: 128); unset: the "
                                      "recipe's.", "student", lower=2)
    input_range: str = setting("", "low,high of the teacher's input pixels (e.g. 0,255) where "
                               "its first layers do not tell; empty: inferred.", "student")
    # quantization
    quantize: str = setting("none", f"Quantization: {compression.SCHEMES_HELP}.", "quantization")
    int8_io: bool = setting(False, "Give the int8 TFLite file int8 inputs and outputs.",
                            "quantization")
    activation_ranges: str = setting("tfmot", "w<b>a<c> and mixed: where activation ranges "
                                     "start: tfmot (+-6, then a 0.999 moving average of batch "
                                     "ranges) or from_batches (the first batches' own); "
                                     "unset: the recipe's.",
                                     "quantization", choices=_RANGE_STARTS)
    delta: float = setting(0.0, "Binary weight scale; 0: mean |w| of the binarised kernels.",
                           "quantization", flag="binary_delta", old="delta", lower=0.0)
    delta_grid: Tuple[float, ...] = setting((), "Binary: one student per delta, the best kept "
                                            "by agreement with the teacher on generated images.",
                                            "quantization", flag="binary_delta_grid",
                                            old="delta_grid")
    # mixed precision
    mixed_budget: float = setting(0.65, "--quantize=mixed: weight-memory budget of the conv and "
                                  "dense kernels, a fraction of their int8 bytes (<= 1) or bytes "
                                  "(> 1).", "mixed precision", lower=0.0)
    mixed_assignment: str = setting("sensitivity", "--quantize=mixed: sensitivity (measured on "
                                    "generated images) or random (the control: other bits "
                                    "than the sensitivity's, where the budget allows).",
                                    "mixed precision", choices=mixed.ASSIGNMENTS)
    mixed_search_steps: int = setting(100, "--quantize=mixed: steps of the generator trained "
                                      "against the teacher to measure sensitivities on.",
                                      "mixed precision", lower=0)
    # pruning
    prune: str = setting("none", "magnitude: TF-MOT low-magnitude pruning; slim: the paper's "
                         "channel slimming (a smaller network).", "pruning", choices=_PRUNES)
    sparsity: float = setting(0.0, "--prune=magnitude: target fraction of zero weights.",
                              "pruning", flag="prune_sparsity", old="sparsity", lower=0.0,
                              upper=1.0)
    sparsity_schedule: str = setting("polynomial", "polynomial: 0 to the target over "
                                     "--prune_ramp of the updates; constant: from the start.",
                                     "pruning", flag="prune_schedule", old="sparsity_schedule",
                                     choices=_SCHEDULES)
    sparsity_ramp: float = setting(_PRUNE.ramp, "Fraction of student updates the polynomial "
                                   "schedule ramps over; the rest recover.", "pruning",
                                   flag="prune_ramp", old="sparsity_ramp", lower=0.0, upper=1.0)
    prune_ends: Optional[bool] = setting(None, "Also prune the first and last conv/dense layers "
                                         "(unset: only where the others would need > 99 %).",
                                         "pruning", kind="bool")
    sparsity_allocation: str = setting(_PRUNE.allocation, "global: one magnitude threshold over "
                                       "the layers; uniform: one rate for all.", "pruning",
                                       flag="prune_allocation", old="sparsity_allocation",
                                       choices=_ALLOCATIONS)
    # slimming
    l1_gamma: float = setting(_SLIM.l1_gamma, "--prune=slim: L1 weight gamma of the channel "
                              "scales.", "slimming", flag="slim_l1_gamma", old="l1_gamma",
                              lower=0.0)
    weight_decay: float = setting(_SLIM.weight_decay, "--prune=slim: lambda, the L2 weight of "
                                  "the other weights; mostly sets the compression.", "slimming",
                                  flag="slim_weight_decay", old="weight_decay", lower=0.0)
    threshold: float = setting(_SLIM.threshold, "--prune=slim: channels whose |scale| is below "
                               "it are removed (t_s).", "slimming", flag="slim_threshold",
                               old="threshold")
    warmup_steps: int = setting(_SLIM.warmup_steps, "--prune=slim: student updates over which "
                                "gamma and lambda ramp up from 0.", "slimming",
                                flag="slim_warmup_steps", old="warmup_steps", lower=0)
    # lottery tickets
    ticket: str = setting("", "A find_ticket .npz: its architecture, original init and fixed "
                          "mask, trained data-free.", "ticket")
    ticket_reinit: bool = setting(False, "Control: the ticket's mask with a fresh random init.",
                                  "ticket")
    recipe: str = ""  # the recipes.py recipe that filled the settings left unset ("": none)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    @property
    def quant_spec(self):
        spec = compression.parse_quantize(self.quantize, methods.added_quantize_values())
        if spec.scheme in RANGED_SCHEMES:
            spec = dataclasses.replace(spec, range_start=self.activation_ranges)
        return spec

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
        settings.check_bounds(self)  # the flags' types, choices and bounds, before any use
        if self.resolved_student_init == "teacher" and self.student != "same":
            raise ConfigError("student_init=teacher needs student=same (the teacher's shapes)")
        self._validate_quantization()
        self.prune_spec.validate()
        if error := methods.combination_error(self):
            raise ConfigError(error)
        if self.prune != "slim" and self.slim_spec != slim.SlimSpec():
            raise ConfigError("--slim_l1_gamma, --slim_weight_decay, --slim_threshold and --slim_warmup_steps "
                              "apply only to --prune=slim")
        if self.quantize != "mixed" and any(
                getattr(self, name) != _FIELD_DEFAULTS[name] for name in _MIXED_FIELDS):
            raise ConfigError("--mixed_budget, --mixed_assignment and --mixed_search_steps "
                              "apply only to --quantize=mixed")
        if not math.isfinite(self.mixed_budget) or self.mixed_budget <= 0:
            raise ConfigError(f"--mixed_budget must be a positive number, got "
                              f"{self.mixed_budget!r}")
        if self.mixed_budget > 1 and not float(self.mixed_budget).is_integer():
            raise ConfigError(
                f"--mixed_budget={self.mixed_budget!r}: above 1 it counts bytes, a whole "
                "number; for a fraction of the int8 weight bytes give a value <= 1")
        if self.ticket_reinit and not self.ticket:
            raise ConfigError("--ticket_reinit needs --ticket")
        if self.ticket and (self.prune != "none" or self.quantize != "none"
                            or self.student != "same" or self.student_init != "auto"):
            raise ConfigError("--ticket sets the student (its architecture, mask and init): it "
                              "cannot be combined with --student, --student_init, --prune or "
                              "--quantize (--ticket_reinit gives the mask a fresh init)")
        if self.strategy == "multi_worker" and self.delta_grid:
            raise ConfigError("--binary_delta_grid is not supported with --strategy=multi_worker")
        self.method.validate(self)
        self.train.validate()

    def _validate_quantization(self):
        spec = self.quant_spec
        if spec.scheme not in RANGED_SCHEMES and self.activation_ranges != "tfmot":
            raise ConfigError("--activation_ranges applies only to --quantize=w<b>a<c> and "
                              "mixed (int8 uses TF-MOT's own quantizers)")
        if spec.scheme != "binary" and (self.delta or self.delta_grid):
            raise ConfigError("--binary_delta and --binary_delta_grid apply only to --quantize=binary")
        if self.delta < 0 or any(value <= 0 for value in self.delta_grid):
            raise ConfigError("binary delta values must be positive")
        if len({f"{value:g}" for value in self.delta_grid}) != len(self.delta_grid):
            raise ConfigError(f"--binary_delta_grid has repeated values: {self.delta_grid}")


_FIELD_DEFAULTS = {field.name: field.default for field in dataclasses.fields(CompressConfig)}
