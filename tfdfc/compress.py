"""Compresses a trained Keras classifier data-free: the adversarial generator/student loop, then
SavedModel and TFLite exports and a report.

    python -m tfdfc.compress --flagfile=flags/demo.cfg

Into --out_dir it writes flags.txt, config.json, checkpoints/, tensorboard/, saved_model/,
student_<float|dynamic|int8>.tflite, report.json and report.md. A run interrupted and started
again with the same --out_dir resumes from its last checkpoint.
"""

from absl import flags

from tfdfc import cli, compression, data, distribute, losses, models, pipeline, recipes
from tfdfc.compression import prune, slim
from tfdfc.errors import ConfigError
from tfdfc.train import TrainConfig

_DEFAULTS = TrainConfig()

_TEACHER = flags.DEFINE_string("teacher", None, "Trained teacher: .keras, .h5 or SavedModel dir.")
_STUDENT = flags.DEFINE_string("student", "same",
                               f"'same' (the teacher's architecture) or one of: {models.NAMES_HELP}.")
_STUDENT_INIT = flags.DEFINE_enum(
    "student_init", "auto", pipeline.STUDENT_INITS,
    "random, teacher (its weights; needs --student=same), or auto: teacher when quantizing a "
    "same-architecture student, else random.")
_BATCH_NORM = flags.DEFINE_enum(
    "batch_norm", "auto", pipeline.BATCH_NORM_POLICIES, "The student's batch norms: "
    "frozen_statistics keeps the teacher's moving statistics (inference mode, scale and offset "
    "still trained), trained updates them on generated images; auto: frozen when the student "
    "starts from the teacher's weights, else trained.")
_QUANTIZE = flags.DEFINE_string("quantize", "none", f"Quantization: {compression.SCHEMES_HELP}.")
_DELTA = flags.DEFINE_float("delta", 0.0, "Binary weight scale; 0 = mean |w| of the student's "
                            "binarised kernels at initialisation (the teacher's when "
                            "--student_init resolves to teacher).", lower_bound=0.0)
_DELTA_GRID = flags.DEFINE_list("delta_grid", [], "Binary: train one student per delta and keep "
                                "the best by agreement with the teacher on generated images.")
_PRUNE = flags.DEFINE_enum("prune", "none", prune.PRUNES,
                           "magnitude: TF-MOT low-magnitude pruning of conv and dense kernels; "
                           "slim: the paper's channel slimming (a physically smaller network).")
_SPARSITY = flags.DEFINE_float("sparsity", 0.0, "Target fraction of zero weights (--prune).",
                               lower_bound=0.0, upper_bound=1.0)
_SPARSITY_SCHEDULE = flags.DEFINE_enum(
    "sparsity_schedule", "polynomial", prune.SCHEDULES,
    "polynomial: 0 to --sparsity over the first --sparsity_ramp of student updates; constant: "
    "from the start.")
_SPARSITY_RAMP = flags.DEFINE_float(
    "sparsity_ramp", prune.PruneSpec.ramp, "--sparsity_schedule=polynomial: the fraction of "
    "student updates that ramp up to --sparsity; the rest recover at it.", lower_bound=0.0,
    upper_bound=1.0)
_PRUNE_ENDS = flags.DEFINE_bool("prune_ends", None, "--prune=magnitude: also prune the first and "
                                "last conv/dense layers; --noprune_ends: never (default: they "
                                "stay dense unless the others would then need over 99 %).")
_SPARSITY_ALLOCATION = flags.DEFINE_enum(
    "sparsity_allocation", prune.PruneSpec.allocation, prune.ALLOCATIONS,
    "--prune=magnitude: how the pruned layers share the zeros. global: one magnitude threshold "
    "over them, taken on the teacher (big layers give more); uniform: one rate for all.")
_SLIM_DEFAULTS = slim.SlimSpec()
_L1_GAMMA = flags.DEFINE_float("l1_gamma", _SLIM_DEFAULTS.l1_gamma, "--prune=slim: L1 weight "
                               "gamma of the channel scales (divided by each feature map's "
                               "width).", lower_bound=0.0)
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", _SLIM_DEFAULTS.weight_decay, "--prune=slim: "
                                   "lambda, the L2 weight of every other weight; mostly sets the "
                                   "compression.", lower_bound=0.0)
_THRESHOLD = flags.DEFINE_float("threshold", _SLIM_DEFAULTS.threshold, "--prune=slim: channels "
                                "whose |scale| is below it are removed after training (t_s).")
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", _SLIM_DEFAULTS.warmup_steps,
                                     "--prune=slim: student updates over which gamma and lambda "
                                     "ramp linearly from 0 (0: none).", lower_bound=0)
_TICKET = flags.DEFINE_string("ticket", "", "A lottery ticket from find_ticket: train its "
                              "architecture and original init data-free with its mask fixed.")
_TICKET_REINIT = flags.DEFINE_bool("ticket_reinit", False, "Control run: the ticket's mask with "
                                   "a fresh random initialisation.")
_INT8_IO = flags.DEFINE_bool("int8_io", False, "Give the int8 TFLite int8 inputs and outputs.")
_WITH_DATA_BASELINE = flags.DEFINE_bool(
    "with_data_baseline", True, "Also train the same student on real training images (needs "
    "--eval_data with a training split) to report what data-free costs.")
_EVAL_DATA = flags.DEFINE_string(
    "eval_data", "", f"Evaluation only, never trained on (its test split, x_test/y_test): "
    f"{data.SPECS_HELP}; or empty for none.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Run directory (resumes if it holds checkpoints).")
_STRATEGY = flags.DEFINE_enum(
    "strategy", "mirrored", distribute.STRATEGIES,
    "mirrored: every visible GPU of this machine (else the CPU); multi_worker: several machines, "
    "configured by TF_CONFIG; one_device.")
_GENERATOR_CHANNELS = flags.DEFINE_integer("generator_channels", 128,
                                           "Generator width (the paper: 128). Unset: the recipe's "
                                           "(see --steps).", lower_bound=2)
_INPUT_RANGE = flags.DEFINE_string(
    "input_range", "", "low,high of the pixels the teacher takes (e.g. 0,255), where its first "
    "layers do not tell: generated images get mean (low+high)/2 and std (high-low)/4. Empty: "
    "inferred from a leading Rescaling or Normalization layer, else standardised inputs.")
_UNSAFE_LOAD = flags.DEFINE_bool("unsafe_load", False,
                                 "Allow loading a teacher that holds code (Lambda layers).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Discard checkpoints of a different run "
                               "found in --out_dir (else such a run is refused).")
_STEPS = flags.DEFINE_integer("steps", _DEFAULTS.steps, "Iterations (1 generator + "
                              "--student_steps student updates each). Unset, this, "
                              "--student_lr, --divergence and --generator_channels take the "
                              "recipe of the run's scheme and init: "
                              f"{recipes.defaults_help()}.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size,
                                   "Global batch of generated images.", lower_bound=1)
_STUDENT_STEPS = flags.DEFINE_integer("student_steps", _DEFAULTS.student_steps,
                                      "Student updates per generator update.", lower_bound=1)
_ON_COLLAPSE = flags.DEFINE_enum(
    "on_collapse", _DEFAULTS.on_collapse, ["warn", "reset"], "When the teacher has put the "
    "generated images in under 1.2 effective classes for 50 iterations (a collapsed "
    "generator): reset = warn and re-initialise the generator and its Adam moments, up to 3 "
    "times (not the paper's; bench/NOTES.md holds the runs); warn = only log and report it (the paper's "
    "behaviour).")
_RESAMPLE_LATENTS = flags.DEFINE_bool(
    "resample_latents", _DEFAULTS.resample_latents, "Give every student step its own z "
    "through the iteration's generator, instead of reusing the generator step's images (the "
    "paper's way): more time per iteration (RESULTS.md, speed).")
_STUDENT_LR = flags.DEFINE_float("student_lr", _DEFAULTS.student_lr,
                                 "Student Adam lr (cosine). Unset: the recipe's (see --steps).",
                                 lower_bound=0.0)
_GENERATOR_LR = flags.DEFINE_float("generator_lr", _DEFAULTS.generator_lr,
                                   "Generator Adam lr (cosine).", lower_bound=0.0)
_CLIP_NORM = flags.DEFINE_float("clip_norm", _DEFAULTS.clip_norm, "Global gradient-norm clip.",
                                lower_bound=0.0)
_LATENT_DIM = flags.DEFINE_integer("latent_dim", _DEFAULTS.latent_dim, "Size of z.",
                                   lower_bound=1)
_DIVERGENCE = flags.DEFINE_enum("divergence", _DEFAULTS.divergence, sorted(losses.DIVERGENCES),
                                "kl: KL(T||S); skl: symmetric KL (the paper's JSD); l1: logits.")
_TEMPERATURE = flags.DEFINE_float("temperature", _DEFAULTS.temperature, "Softmax temperature.",
                                  lower_bound=0.0)
_REDUCTION = flags.DEFINE_enum("reduction", _DEFAULTS.reduction, losses.REDUCTIONS,
                               "mean: KL / classes (MS19's scale for beta=250); batchmean: KL.")
_ATTENTION_WEIGHT = flags.DEFINE_float("attention_weight", _DEFAULTS.attention_weight,
                                       "Attention-transfer weight beta (0: off).", lower_bound=0.0)
_BN_PRIOR_WEIGHT = flags.DEFINE_float(
    "bn_prior_weight", _DEFAULTS.bn_prior_weight, "Generator: weight of the prior that matches "
    "the teacher's batch-norm statistics (priors.py); no effect on a teacher without batch "
    "norms. Unset: the recipe's (see --steps).", lower_bound=0.0)
_BALANCE_WEIGHT = flags.DEFINE_float(
    "balance_weight", _DEFAULTS.balance_weight, "Generator: weight of the class-balance prior "
    "(priors.py).", lower_bound=0.0)
_SMOOTHNESS_WEIGHT = flags.DEFINE_float(
    "smoothness_weight", _DEFAULTS.smoothness_weight, "Generator: weight of the total-variation "
    "prior that keeps generated images from turning into noise-like textures (priors.py).",
    lower_bound=0.0)
_GENERATOR_EMA = flags.DEFINE_float(
    "generator_ema", _DEFAULTS.generator_ema, "Student: also learn on images of a slow copy of "
    "the generator, the moving average of its weights with this decay (e.g. 0.99), so earlier "
    "images are not forgotten; 0: off. Costs a larger student batch (train.py).",
    lower_bound=0.0, upper_bound=0.999999)
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed (init and z).")
_LOG_EVERY = flags.DEFINE_integer("log_every", _DEFAULTS.log_every,
                                  "Iterations between progress lines.", lower_bound=1)
_EVAL_EVERY = flags.DEFINE_integer("eval_every", _DEFAULTS.eval_every,
                                   "Iterations between evaluations and image grids.",
                                   lower_bound=1)
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every,
                                         "Iterations between checkpoints.", lower_bound=1)

flags.mark_flags_as_required(["teacher", "out_dir"])


def config_from_flags():
    """The frozen run configuration the flags describe; settings left unset take the recipe of
    the run's scheme and init (recipes.py)."""
    config = _config_as_given()
    explicit = {name for name in recipes.CONFIG_FIELDS + recipes.TRAIN_FIELDS
                if flags.FLAGS[name].present}
    return recipes.resolve(config, explicit)


def _config_as_given():
    return pipeline.CompressConfig(
        teacher=_TEACHER.value, out_dir=_OUT_DIR.value, student=_STUDENT.value,
        student_init=_STUDENT_INIT.value, batch_norm=_BATCH_NORM.value,
        quantize=_QUANTIZE.value, delta=_DELTA.value,
        delta_grid=_parse_floats("delta_grid", _DELTA_GRID.value), int8_io=_INT8_IO.value,
        prune=_PRUNE.value, sparsity=_SPARSITY.value, sparsity_schedule=_SPARSITY_SCHEDULE.value,
        prune_ends=_PRUNE_ENDS.value, sparsity_allocation=_SPARSITY_ALLOCATION.value,
        sparsity_ramp=_SPARSITY_RAMP.value,
        l1_gamma=_L1_GAMMA.value, weight_decay=_WEIGHT_DECAY.value, threshold=_THRESHOLD.value,
        warmup_steps=_WARMUP_STEPS.value,
        ticket=_TICKET.value, ticket_reinit=_TICKET_REINIT.value,
        with_data_baseline=_WITH_DATA_BASELINE.value,
        eval_data=_EVAL_DATA.value, strategy=_STRATEGY.value,
        generator_channels=_GENERATOR_CHANNELS.value, input_range=_INPUT_RANGE.value,
        unsafe_load=_UNSAFE_LOAD.value,
        overwrite=_OVERWRITE.value,
        train=TrainConfig(
            steps=_STEPS.value, batch_size=_BATCH_SIZE.value, student_steps=_STUDENT_STEPS.value,
            resample_latents=_RESAMPLE_LATENTS.value,
            generator_ema=_GENERATOR_EMA.value, on_collapse=_ON_COLLAPSE.value,
            student_lr=_STUDENT_LR.value, generator_lr=_GENERATOR_LR.value,
            clip_norm=_CLIP_NORM.value, latent_dim=_LATENT_DIM.value,
            divergence=_DIVERGENCE.value, temperature=_TEMPERATURE.value,
            reduction=_REDUCTION.value, attention_weight=_ATTENTION_WEIGHT.value,
            bn_prior_weight=_BN_PRIOR_WEIGHT.value, balance_weight=_BALANCE_WEIGHT.value,
            smoothness_weight=_SMOOTHNESS_WEIGHT.value, seed=_SEED.value,
            log_every=_LOG_EVERY.value, eval_every=_EVAL_EVERY.value,
            checkpoint_every=_CHECKPOINT_EVERY.value))


def _parse_floats(name, values):
    try:
        return tuple(float(value) for value in values)
    except ValueError as error:
        raise ConfigError(f"--{name} takes comma-separated numbers, got {','.join(values)}") \
            from error


def main(argv):
    del argv  # cli.run refuses positional arguments
    config = config_from_flags()
    pipeline.run(config, log=cli.log, flags_text=cli.module_flags(__name__))


if __name__ == "__main__":
    cli.run(main)
