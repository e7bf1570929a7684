"""One compression run end to end: load the teacher, build the (compressed) student and the
generator under a strategy, train them data-free, then export, measure and report.

The run's evaluation data (if any) is used only to measure accuracy and for the with-data
baseline, never by the data-free training itself.
"""

import dataclasses
import os
from typing import Any, Dict

from tfdfc import artifacts, baselines, batchnorm, compression, data, distribute, figures
from tfdfc import flatten, methods
from tfdfc import input_space as input_space_lib
from tfdfc import kernel_split, models, priors, recipes, report, run_dir
from tfdfc import teacher as teacher_lib
from tfdfc.compression import delta_search
from tfdfc.errors import ConfigError, UserInputError
from tfdfc.keras_compat import keras, tf
from tfdfc.loop import Loop
from tfdfc.models import channels
from tfdfc.config import CompressConfig  # noqa: F401  (callers use pipeline.CompressConfig)
from tfdfc.train import Players, make_optimizers, replay_memory, slow_copy



@dataclasses.dataclass
class Build:
    """What a run trains, and what its exports need."""

    players: Players
    method: methods.Method
    float_template: keras.Model  # the student's float architecture (before compression)
    compressed: compression.CompressedStudent
    teacher_logits: keras.Model
    input_space: input_space_lib.InputSpace  # where generated and calibration images live
    strategy: Any  # the tf.distribute strategy it was built under
    teacher: keras.Model  # the teacher it was built from (before `as_logits`)


def resolve_recipe(config, given, teacher_model):
    """`config` with its recipe chosen again now that the teacher is loaded (the tf-keras model
    `load_inputs` returns), for the settings not in `given` (the names the user set): a fresh
    student's recipe depends on whether its feature maps line up with the teacher's
    (recipes.recipe_name). Validated again, since the recipe may have changed settings."""
    resolved = recipes.resolve(config, given, lambda c: student_maps_line_up(c, teacher_model))
    resolved.validate()
    return resolved


def student_maps_line_up(config, teacher_model):
    """Whether `config`'s student, built fresh, has the loaded `teacher_model`'s feature maps, of
    the same shapes, where attention transfer would compare them (the teacher's named points,
    else its inferred ones). A student that cannot be built answers False: the run's own build
    then says why, before anything is written."""
    teacher_logits = teacher_lib.as_logits(teacher_model)
    try:
        student = config.method.build(config, teacher_logits)[1].model
    except (UserInputError, ValueError):
        return False
    both = dataclasses.replace(config.train, attention_weight=1.0, attention_points="inferred",
                               feature_weight=1.0)
    try:
        return models.check_attention_points(teacher_logits, student, both, log=lambda _: None)[0]
    except ConfigError:
        return False


def build(strategy, config, teacher_model, delta=None, log=print, plan=None):
    """Builds teacher view, compressed student, generator and optimizers under `strategy`;
    `plan` is what the method's `prepare` decided for this run."""
    with strategy.scope():
        teacher_logits = teacher_lib.as_logits(teacher_model)
        method = config.method
        float_student, compressed = method.build(config, teacher_logits, delta, plan)
        teacher_logits.trainable = False
        student = compressed.model
        batchnorm.apply(student, config.resolved_batch_norm)
        use_attention, names = models.check_attention_points(teacher_logits, student,
                                                             config.train, log)
        space = resolve_input_space(config, teacher_logits)
        generator = models.generator(tuple(teacher_logits.inputs[0].shape[1:]),
                                     config.train.latent_dim, config.generator_channels, space)
        student_optimizer, generator_optimizer = make_optimizers(config.train)
        players = Players(
            teacher=models.with_attention_outputs(teacher_logits, use_attention, names),
            student=models.with_attention_outputs(student, use_attention, names),
            student_model=student, generator=generator,
            student_optimizer=student_optimizer, generator_optimizer=generator_optimizer,
            after_student_update=(compressed.make_after_update(student_optimizer.iterations)
                                  if compressed.make_after_update else compressed.after_update),
            regularizer=(compressed.make_regularizer(student_optimizer.iterations)
                         if compressed.make_regularizer else None),
            summaries=method.summaries(config, student),
            batch_norm_prior=priors.make_batch_norm_prior(teacher_logits),
            slow_generator=slow_copy(generator) if config.train.generator_ema > 0 else None,
            replay_memory=replay_memory(config.train, generator))
    return Build(players, method, float_student, compressed, teacher_logits, space, strategy,
                 teacher_model)


def resolve_input_space(config, teacher):
    """The teacher's input space: `--input_range` if given, else inferred from its layers."""
    return input_space_lib.for_teacher(config.input_range, teacher)


def load_inputs(config, teacher_model=None, teacher_conversion=None):
    """Loads and cross-checks the teacher (from `config.teacher`, or the tf-keras
    `teacher_model` given in memory, converted from Keras 3 as `teacher_conversion` says) and
    the evaluation data; writes nothing.

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
            loaded = teacher_lib.standard_form(teacher_model)
            teacher_lib.validate(loaded, source=config.teacher)
            if loaded is teacher_model:
                loaded = keras.models.clone_model(teacher_model)
                loaded.set_weights(teacher_model.get_weights())
            conversion = teacher_conversion
        teacher_model = flatten.flatten(loaded)
        if config.method.splits_kernels:
            teacher_model = kernel_split.split(teacher_model)
    if eval_set is not None:
        teacher_lib.check_eval_set(teacher_model, eval_set, config.eval_data)
    if config.train.batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"batch_size {config.train.batch_size} is not divisible by the "
                          f"{strategy.num_replicas_in_sync} replicas")
    teacher_lib.check_responds(teacher_lib.as_logits(teacher_model),
                               resolve_input_space(config, teacher_model), config.teacher)
    return strategy, teacher_model, eval_set, conversion


def _check_student(config, teacher_model):
    """Builds the compressed student once, outside any strategy, so that an unknown
    architecture, an unsupported layer or mismatched attention points fail before any output
    is written (for a delta grid, whose students are built later, one per delta)."""
    teacher_logits = teacher_lib.as_logits(teacher_model)
    student = config.method.build(config, teacher_logits)[1].model
    models.check_attention_points(teacher_logits, student, config.train, log=lambda _: None)
    models.generator(tuple(teacher_logits.inputs[0].shape[1:]), config.train.latent_dim,
                     config.generator_channels,  # raises for images it cannot make
                     resolve_input_space(config, teacher_logits))  # raises for a bad range


# Added to the training seed for the images batch norms are recalibrated on, so that they are
# none of the images other steps draw from seeds near it (the int8 calibration's at the seed,
# the binary delta grid's and the mixed-precision search's at seed + 1).
RECALIBRATION_SEED_OFFSET = 104_729

# Added to the training seed of a fresh (random) student; see `init_seed`.
FRESH_SEED_OFFSET = 1_000_003


def init_seed(config):
    """The seed every initialiser of the run draws from: the training seed, or for a fresh
    (random) student, a ticket's re-init control included, the training seed plus
    `FRESH_SEED_OFFSET`. A model of the student's architecture built right after
    `set_random_seed(seed)` (tfdfc's teacher binary, find_ticket, the benches, most training
    scripts) would otherwise hand a fresh student with the same seed that model's own initial
    weights: a lottery-ticket start, not a fresh one."""
    fresh = (config.ticket_reinit if config.ticket
             else config.resolved_student_init == "random")
    return config.train.seed + FRESH_SEED_OFFSET if fresh else config.train.seed


def seeded_build(strategy, config, teacher_model, delta=None, log=print, plan=None):
    """`build` after seeding every initialiser with `init_seed`; without a `plan`, the
    method's `prepare` makes one first (outside the strategy)."""
    plan = plan or prepare(config, teacher_model, log)
    keras.utils.set_random_seed(init_seed(config))
    return build(strategy, config, teacher_model, delta, log, plan)


def prepare(config, teacher_model, log=print):
    """What the run's method decides before its student is built (methods.Method.prepare):
    the plan a resumed run saved, else a new one; None for most methods."""
    return run_dir.saved_plan(config) or config.method.prepare(
        config, teacher_lib.as_logits(teacher_model), log)


def train_one(config, strategy, teacher_model, eval_set, out_dir, delta=None, log=print,
              built=None):
    """Builds (unless given `built`, from `seeded_build`) and trains one student data-free in
    `out_dir`; returns (the trained build, loop): after multi-worker training, its
    `local_copy` on the chief and None on the other workers."""
    run = built or seeded_build(strategy, config, teacher_model, delta, log)
    scheme = config.quantize if config.quantize != "none" else run.method.name
    scales = sum(layer.count_params() for layer in run.float_template.layers
                 if isinstance(layer, channels.ChannelScale))
    log(f"teacher {teacher_model.name}: {report.parameter_count(run.teacher_logits):,} "
        f"parameters; student ({scheme}): "
        f"{report.parameter_count(report.counted_network(config, run, run.float_template)):,}"
        " parameters"
        + (f" ({scales:,} of them channel scales, which leave with the channels slimming cuts)"
           if scales else "") + f"; {strategy.num_replicas_in_sync} replica(s)")
    student = run.players.student_model

    def evaluate():
        if eval_set is None:
            return None
        with strategy.scope():  # pruning wrappers apply their masks only inside it
            return report.keras_accuracy(student, eval_set)

    loop = Loop(strategy, run.players, config.train,
                checkpoint_dir=os.path.join(out_dir, "checkpoints"),
                summary_dir=os.path.join(out_dir, "tensorboard"), evaluate=evaluate,
                show_images=report.image_view(eval_set), log=log,
                recalibrate=lambda done: recalibrate_batch_norms(config, run, strategy, done))
    loop.run()
    trained = local_copy(config, run) if config.strategy == "multi_worker" else run
    if trained is None:  # another worker than the chief: its part is done
        return None, loop
    trained.method.after_training(trained, trained.strategy)
    if config.recalibrate_batch_norm:
        count = recalibrate_batch_norms(config, trained, trained.strategy)
        log(f"batch norms: {count} recalibrated on {batchnorm.RECALIBRATION_IMAGES:,} generated "
            "images" if count else f"batch norms: {batchnorm.NOTHING_TO_RECALIBRATE}")
    return trained, loop


def local_copy(config, run):
    """On the chief, a copy of the trained `run` built under a one-device strategy, for what
    follows multi-worker training; None on the other workers. Reading a batch norm's moving
    statistics under MultiWorkerMirroredStrategy (in a Keras call or an export) is a collective
    that every worker must join, so the chief could not export or measure alone. Every worker
    reads the weights, in the same order; only the chief builds the copy, which it exports,
    measures and trains the with-data baseline beside. The other workers then exit: nothing
    after this may run a collective of the training strategy."""
    networks = [name for name in ("student_model", "generator", "slow_generator")
                if getattr(run.players, name) is not None]
    weights = {name: getattr(run.players, name).get_weights() for name in networks}
    teacher_weights = run.teacher.get_weights()
    if not distribute.is_chief(run.strategy):
        return None
    local = distribute.make_strategy(
        "one_device", ["/gpu:0"] if tf.config.list_physical_devices("GPU") else None)
    with local.scope():
        teacher_copy = keras.models.clone_model(run.teacher)
        teacher_copy.set_weights(teacher_weights)
    local_run = _fresh_build(config, run, local, teacher_copy)
    with local.scope():
        for name in networks:
            getattr(local_run.players, name).set_weights(weights[name])
    return local_run


def recalibrate_batch_norms(config, run, strategy, iteration=0):
    """The student's frozen batch norms take their statistics from images of the generator as
    it is (batchnorm.recalibrate): after training (`--recalibrate_batch_norm`) or after
    `iteration` of it (`--recalibrate_batch_norm_every`), each on images of its own seed.
    Returns how many batch norms changed."""
    batches = report.generated_batches(run.players.generator, batchnorm.RECALIBRATION_IMAGES,
                                       config.train.latent_dim,
                                       config.train.seed + RECALIBRATION_SEED_OFFSET + iteration,
                                       batchnorm.RECALIBRATION_BATCH)
    with strategy.scope():  # pruning wrappers apply their masks only inside it
        return batchnorm.recalibrate(run.players.student_model, batches)


def _fresh_build(config, trained, strategy=None, teacher_model=None):
    """An untrained build of the same run as `trained` (its delta and plan), under its strategy
    and from its teacher unless given others."""
    return seeded_build(trained.strategy if strategy is None else strategy, config,
                        trained.teacher if teacher_model is None else teacher_model,
                        trained.compressed.delta, log=lambda _: None,
                        plan=trained.compressed.plan)


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


def compress(config, log=print, flags_text=None, teacher_model=None, teacher_conversion=None,
             given=None):
    """`run`, returning an Outcome; `teacher_model` (tf-keras, in memory; converted from Keras 3
    as `teacher_conversion` says) replaces the file `config.teacher` names, which is then only
    its label in the report. With `given` (the names of the settings the user set, as the API
    passes them), the recipe is chosen again on the loaded teacher (`resolve_recipe`)."""
    strategy, teacher_model, eval_set, conversion = load_inputs(config, teacher_model,
                                                                teacher_conversion)
    if given is not None:
        config = resolve_recipe(config, given, teacher_model)
    built = _prepare(config, strategy, teacher_model, eval_set, log)
    chief = distribute.is_chief(strategy)
    if chief:
        run_dir.claim(config)
        if flags_text is not None:
            artifacts.write_text(os.path.join(config.out_dir, "flags.txt"), flags_text)
        if built is not None and built.compressed.plan is not None:
            run_dir.save_plan(config, built.compressed.plan)
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
    return _export_and_report(config, strategy, trained, loop, grid, eval_set, conversion, log)


def _prepare(config, strategy, teacher_model, eval_set, log):
    """The start lines and the checks that write nothing; returns the built student (None for
    a delta grid, which builds one per delta). The student is built before anything is
    written, so that an unknown architecture, an unsupported layer or mismatched attention
    points leave no output behind."""
    recipe_line = recipes.run_line(config)
    if recipe_line:
        log(recipe_line)
    if distribute.is_chief(strategy):
        run_dir.check_claimable(config)  # before the build: a method's prepare may take minutes
    if config.delta_grid:  # one build per delta, later: check that one would succeed
        _check_student(config, teacher_model)
        built = None
    else:
        built = seeded_build(strategy, config, teacher_model, log=log)
    space = resolve_input_space(config, teacher_model)
    if not space.is_standard:  # once per run, not once per delta of a grid
        log(f"generated images live in the teacher's input space: {space.source}")
    if eval_set is not None:
        warning = input_space_lib.mismatch(space, eval_set.x_test,
                                           f"the evaluation images of {config.eval_data}")
        if warning:
            log(f"WARNING: {warning}")
    return built


def _export_and_report(config, strategy, trained, loop, grid, eval_set, conversion, log):
    """The chief's end of a run: exports, accuracies, baselines, figures, report.json and
    report.md; returns the Outcome."""
    result, student = report.export_and_measure(config, trained, eval_set, log)
    result["train"] = report.train_summary(config, loop, strategy)
    training = teacher_lib.training_record(config.teacher)
    if training is not None:
        result["teacher"]["training"] = training
    if conversion is not None:
        result["teacher"]["converted_from"] = conversion["converted_from"]
        result["teacher"]["max_abs_logit_difference"] = conversion["max_abs_output_difference"]
    if grid is not None:
        result["delta_grid"] = grid
    # After multi-worker training, on the chief's one-device copy and the chief alone.
    result["baselines"] = baselines.measure(config, trained.strategy, trained, eval_set,
                                            rebuild=lambda: _fresh_build(config, trained),
                                            log=log)
    if eval_set is not None and (warning := baselines.below_no_training_warning(
            result, len(eval_set.y_test))):
        log(warning)
    result["figures"] = _write_figures(config, trained, result)
    report_path = os.path.join(config.out_dir, "report.json")
    artifacts.write_json(report_path, result)
    artifacts.write_text(os.path.join(config.out_dir, "report.md"), report.to_markdown(result))
    log(f"wrote {report_path} and report.md")
    files = {"saved_model": os.path.join(config.out_dir, "saved_model"), "report": report_path}
    files.update({f"tflite_{variant}": os.path.join(config.out_dir, f"student_{variant}.tflite")
                  for variant in result["tflite"]})
    return Outcome(report=result, student=student, files=files)
