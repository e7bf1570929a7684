"""Benchmark on real architectures: a MobileNetV2, a small BatchNorm ResNet and an MLP, trained on
Fashion-MNIST by this script, each compressed data-free by several schemes over seeds, against
the no-training and with-data baselines. Writes Markdown and the reports as JSON beside it.

    python bench/zoo.py                           # 3 teachers x 4 schemes x 3 seeds: hours
    python bench/zoo.py --split=val --seeds=0     # tuning, on the validation split
    python bench/zoo.py --tiny                    # 1-3 min, tiny teachers (tests use it)
    python bench/zoo.py --teachers=mlp,mlp_keras3 # a teacher and its Keras 3 twin

Teachers are cached under <out_dir>/teachers/ (trained only if absent); runs resume: a run whose
directory holds report.json is read, not re-run. Each invocation adds its runs to the JSON of
--results (same split), so several invocations build one table.
"""

import dataclasses
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

import common
from tfdfc import artifacts, data, pipeline, recipes
from tfdfc.errors import UserInputError
from tfdfc.keras_compat import keras
from tfdfc.compression.prune import ALLOCATIONS
from tfdfc.compression.quantize import RANGE_STARTS
from tfdfc.config import RANGED_SCHEMES as RANGED_QUANT_SCHEMES
from tfdfc.train import ATTENTION_POINTS, TrainConfig

# From the issue "Real models" (deliverable 6), set 2026-12-01: points the data-free TFLite
# accuracy may lose against the teacher, mean of 3 seeds on the Fashion-MNIST test split. Every
# run with a no-training baseline must also stay within noise of it (NOISE_SE below).
TARGETS_SET = "2026-12-01"
TARGETS = {"batchnorm": {"int8": -0.5, "w4a8": -1.5, "prune90_int8": -3.0},
           "mlp": {"int8": -0.5}}
NOISE_SE = common.NOISE_SE

TEACHERS = ("mobilenet", "resnet", "mlp")
BATCH_NORM_TEACHERS = ("mobilenet", "resnet")
SCHEMES = {  # CompressConfig fields of each scheme
    "int8": dict(quantize="int8"),
    "w4a8": dict(quantize="w4a8"),
    "prune90_int8": dict(prune="magnitude", sparsity=0.9, quantize="int8"),
    "distill": dict(quantize="none", student_init="random"),
}
# The schemes whose activation ranges --activation_ranges sets.
RANGED_SCHEMES = tuple(name for name, fields in SCHEMES.items() if pipeline.CompressConfig(
    teacher="", out_dir="", **fields).quant_spec.scheme in RANGED_QUANT_SCHEMES)
TINY = dict(teachers=["resnet", "mlp"], schemes=["int8", "distill"], seeds=["0"],
            train_images=512, eval_images=256)
TINY_DIR = "exported/bench/zoo_tiny"  # default --out_dir (and --results' folder) of --tiny
TEACHER_RATE, TEACHER_BATCH = 2e-3, 128  # Adam
BN_MOMENTUM = 0.9  # keras.applications' 0.999 leaves a few epochs' statistics near init

_FLAGS = common.define_flags("zoo", steps=0)
_TEACHERS = flags.DEFINE_list("teachers", list(TEACHERS), "Teachers to compress.")
_SCHEMES = flags.DEFINE_list("schemes", list(SCHEMES), "Schemes to run.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds of every run.")
_WITH_DATA_SEEDS = flags.DEFINE_list(
    "with_data_seeds", [], "Seeds whose runs also train the with-data baseline (it costs about "
    "as much as the run); empty: every seed. The table's with-data column is the mean over them.")
_SPLIT = common.define_split()
_TEACHER_EPOCHS = flags.DEFINE_integer("teacher_epochs", 3, "Epochs of teacher training.",
                                       lower_bound=1)
# Tuning flags (validation runs with their own --results only): TrainConfig fields, then the
# CompressConfig pruning and activation-range fields, every run takes instead of its recipe's
# or the default, each with the tag its run directories get (_lr5e-05).
TUNING_TAGS = {"student_lr": "lr", "bn_prior_weight": "bnp", "attention_weight": "aw",
               "feature_weight": "fw", "balance_weight": "bal", "attention_points": "ap",
               "resample_latents": "rs", "sparsity_allocation": "alloc", "sparsity_ramp": "ramp",
               "replay_batches": "replay", "generator_ema": "gema",
               "generator_reset_every": "greset", "activation_ranges": "ranges"}
# CompressConfig's, not TrainConfig's
CONFIG_TUNING = ("sparsity_allocation", "sparsity_ramp", "activation_ranges")


def _tuning_help(name, tag):
    return (f"Tuning only (with --split=val and its own --results): every run's {name} instead "
            f"of its recipe's; run directories get a _{tag}<value> suffix. Unset: the recipe's.")


_CHOICES = {"attention_points": list(ATTENTION_POINTS), "sparsity_allocation": list(ALLOCATIONS),
            "activation_ranges": list(RANGE_STARTS)}
_BOOLS = ("resample_latents",)
_INTS = ("replay_batches", "generator_reset_every")
_TUNING = {name: (flags.DEFINE_enum(name, None, _CHOICES[name], _tuning_help(name, tag))
                  if name in _CHOICES else
                  flags.DEFINE_bool(name, None, _tuning_help(name, tag)) if name in _BOOLS else
                  flags.DEFINE_integer(name, None, _tuning_help(name, tag), lower_bound=0)
                  if name in _INTS else
                  flags.DEFINE_float(name, None, _tuning_help(name, tag), lower_bound=0.0))
           for name, tag in TUNING_TAGS.items()}


def _value_text(value):
    if isinstance(value, bool):
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)
_RENDER_ONLY = flags.DEFINE_bool("render_only", False, "Rewrite the Markdown from the JSON "
                                 "beside it, training nothing.")


# ---------------------------------------------------------------------------------------------
# Teachers and data
# ---------------------------------------------------------------------------------------------

def mobilenet(input_shape, tiny=False):
    """MobileNetV2-0.35 (0.1 when tiny), softmax head, batch-norm momentum BN_MOMENTUM."""
    model = keras.applications.MobileNetV2(input_shape=input_shape, alpha=0.1 if tiny else 0.35,
                                           weights=None, classes=10)
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "BatchNormalization":
            layer["config"]["momentum"] = BN_MOMENTUM
    return keras.Model.from_config(config)


def _conv_bn(x, filters, kernel=3, strides=1):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)


def resnet(input_shape, tiny=False):
    """Three stages of one basic block (16 / 32 / 64 channels), BN after every conv, Add
    shortcuts with a 1x1 projection where the shape changes, average pooling, logits."""
    inputs = keras.Input(input_shape)
    x = keras.layers.ReLU()(_conv_bn(inputs, 8 if tiny else 16))
    for stage, width in enumerate((8, 8, 16) if tiny else (16, 32, 64)):
        strides = 1 if stage == 0 else 2
        y = keras.layers.ReLU()(_conv_bn(x, width, strides=strides))
        y = _conv_bn(y, width)
        shortcut = x if x.shape[-1] == width and strides == 1 else _conv_bn(x, width, 1, strides)
        x = keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="resnet")


def mlp(input_shape, tiny=False):
    """Flatten, Dense(256, relu), Dense(10) logits."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(32 if tiny else 256, activation="relu")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="mlp")


BUILDERS = {"mobilenet": (mobilenet, 32), "resnet": (resnet, 32), "mlp": (mlp, 28)}
KERAS3_SUFFIX = "_keras3"  # a teacher `<name>_keras3` is <name> saved again by Keras 3

# Run by Keras 3 (TF_USE_LEGACY_KERAS unset): read the tf-keras teacher's .h5, save it as .keras.
_KERAS3_RESAVE = """
import sys
import keras
keras.saving.load_model(sys.argv[1], compile=False).save(sys.argv[2])
"""


def _base_name(name):
    return name[:-len(KERAS3_SUFFIX)] if name.endswith(KERAS3_SUFFIX) else name


def _padded(images, size, fill):
    """Images centred in a size x size frame filled with `fill`."""
    pad = (size - images.shape[1]) // 2
    if pad == 0:
        return np.asarray(images)
    return np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=fill)


def eval_npz(out_dir, size, split, tiny, log=print):
    """Path of the .npz (train split as x_train; `split` as x_test) at `size` pixels, written if
    absent. Padding takes the standardised value of a black pixel."""
    path = os.path.join(out_dir, "data", f"fashion_mnist_{size}_{split}.npz")
    if os.path.exists(path):
        return path
    dataset = data.load("fashion_mnist")
    fill = float(-dataset.mean[0] / dataset.std[0])
    (x_train, y_train), (x_eval, y_eval) = dataset.split("train"), dataset.split(split)
    if tiny:
        x_train, y_train = x_train[:TINY["train_images"]], y_train[:TINY["train_images"]]
        x_eval, y_eval = x_eval[:TINY["eval_images"]], y_eval[:TINY["eval_images"]]
    with artifacts.atomic_path(path) as temporary:
        np.savez(temporary, x_train=_padded(x_train, size, fill), y_train=y_train,
                 x_test=_padded(x_eval, size, fill), y_test=y_eval)
    log(f"wrote {path}")
    return path


def ensure_teacher(name, out_dir, epochs, tiny, log=print):
    """(path, info) of the teacher `name`, trained on the train split if absent; info (in a JSON
    beside it) holds its validation and test accuracy."""
    path = os.path.join(out_dir, "teachers", f"{name}.keras")
    if os.path.exists(path):
        return path, artifacts.read_json(path + ".json")
    if name != _base_name(name):
        return keras3_twin(name, out_dir, epochs, tiny, log)
    builder, size = BUILDERS[name]
    train_set = data.load_npz(eval_npz(out_dir, size, "val", tiny, log))
    test_set = data.load_npz(eval_npz(out_dir, size, "test", tiny, log))
    keras.utils.set_random_seed(0)
    model = builder(train_set.input_shape, tiny)
    softmax = getattr(model.layers[-1], "activation", None) is keras.activations.softmax
    model.compile(optimizer=keras.optimizers.Adam(TEACHER_RATE), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax))
    started = time.time()
    model.fit(train_set.x_train, train_set.y_train, batch_size=TEACHER_BATCH,
              epochs=1 if tiny else epochs, shuffle=True, verbose=2)
    seconds = time.time() - started
    info = {"architecture": name, "params": int(model.count_params()),
            "epochs": 1 if tiny else epochs, "train_seconds": round(seconds, 1),
            "val_accuracy": float(model.evaluate(train_set.x_test, train_set.y_test,
                                                 verbose=0)[1]),
            "test_accuracy": float(model.evaluate(test_set.x_test, test_set.y_test,
                                                  verbose=0)[1])}
    artifacts.save_keras_model(model, path)
    artifacts.write_json(path + ".json", info)
    log(f"teacher {name}: {info}")
    return path, info


def keras3_twin(name, out_dir, epochs, tiny, log=print):
    """(path, info) of the base teacher saved again by Keras 3 (the same weights in the file
    format most users have), made once from the cached tf-keras teacher."""
    base_path, info = ensure_teacher(_base_name(name), out_dir, epochs, tiny, log)
    path = os.path.join(out_dir, "teachers", f"{name}.keras")
    h5_path = os.path.splitext(path)[0] + "_tf_keras.h5"
    keras.models.load_model(base_path, compile=False).save(h5_path)
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    with artifacts.atomic_path(path) as temporary:
        done = subprocess.run([sys.executable, "-c", _KERAS3_RESAVE, h5_path, temporary], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"Keras 3 could not re-save {h5_path}: {done.stderr[-2000:]}")
    os.remove(h5_path)
    info = dict(info, saved_by="keras3", twin_of=_base_name(name))
    artifacts.write_json(path + ".json", info)
    log(f"teacher {name}: {base_path} re-saved by Keras 3")
    return path, info


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------

def run_config(scheme, seed, teacher_path, eval_path, tiny, steps, generator_channels=0,
               with_data=True, tuning=None):
    """The CompressConfig of one run: the scheme's recipe for every setting the bench's flags
    did not set (`steps` and `generator_channels` when non-zero, the `tuning` dict's
    TrainConfig, pruning and activation-range fields; tiny runs set their own)."""
    train, explicit, extra = TrainConfig(seed=seed), set(), {}
    if tiny:
        train = dataclasses.replace(train, steps=2, batch_size=16, student_steps=2)
        explicit, extra = {"steps", "generator_channels"}, {"generator_channels": 8}
    elif steps:
        train, explicit = dataclasses.replace(train, steps=steps), {"steps"}
    tuning = tuning or {}
    config_tuning = {name: value for name, value in tuning.items() if name in CONFIG_TUNING}
    train_tuning = {name: value for name, value in tuning.items() if name not in CONFIG_TUNING}
    if train_tuning:
        train = dataclasses.replace(train, **train_tuning)
    explicit = explicit | set(tuning)
    if generator_channels and not tiny:
        explicit, extra = explicit | {"generator_channels"}, {
            "generator_channels": generator_channels}
    config = recipes.resolve(pipeline.CompressConfig(
        teacher=teacher_path, out_dir="", eval_data=eval_path, strategy="one_device",
        with_data_baseline=with_data, train=train, **extra, **config_tuning, **SCHEMES[scheme]),
        explicit)
    total = config.train.steps
    return dataclasses.replace(config, train=dataclasses.replace(
        config.train, log_every=1 if tiny else 25, eval_every=total,
        checkpoint_every=min(total, 50)))


def run_name(scheme, steps, seed, flags_in):
    """A run's directory name: every setting that differs from the recipe's is in it (a tag per
    tuning value, `_gc<N>` for an explicit generator width), so runs of different settings
    never read each other's report.json."""
    tags = [f"_{TUNING_TAGS[name]}{_value_text(value)}"
            for name, value in flags_in["tuning"].items()]
    if flags_in["generator_channels"] and not flags_in["tiny"]:
        tags.append(f"_gc{flags_in['generator_channels']}")
    return f"{scheme}_{steps}it{''.join(tags)}_seed{seed}"


def run_one(teacher_name, scheme, seed, teacher_path, eval_path, flags_in, log=print):
    """One run's entry for the JSON: its report (read back when report.json exists), or why
    the scheme refused the teacher."""
    with_data = not flags_in["with_data_seeds"] or seed in flags_in["with_data_seeds"]
    config = run_config(scheme, seed, teacher_path, eval_path, flags_in["tiny"], flags_in["steps"],
                        flags_in["generator_channels"], with_data, flags_in["tuning"])
    out_dir = os.path.join(flags_in["out_dir"], "runs", flags_in["split"], teacher_name,
                           run_name(scheme, config.train.steps, seed, flags_in))
    config = dataclasses.replace(config, out_dir=out_dir)
    entry = {"teacher": teacher_name, "scheme": scheme, "seed": seed, "out_dir": out_dir,
             "command": flags_in["command"], "report": None, "skipped": None}
    existing = artifacts.read_json(os.path.join(out_dir, "report.json"))
    if existing is not None:
        log(f"{out_dir}: report.json exists, reading it")
        return dict(entry, report=existing, minutes=None)
    started = time.time()
    try:
        entry["report"] = pipeline.run(config, log=log)
    except UserInputError as error:  # the scheme refuses this teacher (nothing written)
        entry["skipped"] = str(error).splitlines()[0]
        log(f"{teacher_name} {scheme}: skipped: {entry['skipped']}")
    entry["minutes"] = round((time.time() - started) / 60, 1)
    return entry


def run_all(flags_in, save, log=print):
    """Runs every requested teacher, scheme and seed, calling `save(runs, teachers)` after each
    run (so an interrupted bench leaves its table so far); returns the same two dicts."""
    runs, teachers = {}, {}
    for name in flags_in["teachers"]:
        path, teachers[name] = ensure_teacher(name, flags_in["out_dir"],
                                              flags_in["teacher_epochs"], flags_in["tiny"], log)
        eval_path = eval_npz(flags_in["out_dir"], BUILDERS[_base_name(name)][1], flags_in["split"],
                             flags_in["tiny"], log)
        for scheme in flags_in["schemes"]:
            for seed in flags_in["seeds"]:
                runs[f"{name}/{scheme}/seed{seed}"] = run_one(name, scheme, seed, path,
                                                              eval_path, flags_in, log)
                save(runs, teachers)
    save(runs, teachers)
    return runs, teachers


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

def _tflite(report):
    return report["tflite"].get("int8") or report["tflite"]["float"]


def _mean(values):
    return None if not values or None in values else statistics.mean(values)


def _text(value, digits=4):
    return "n/a" if value is None else f"{value:.{digits}f}"


def target_for(teacher_name, scheme):
    teacher_name = _base_name(teacher_name)
    group = "batchnorm" if teacher_name in BATCH_NORM_TEACHERS else teacher_name
    return TARGETS.get(group, {}).get(scheme)


def _dense_baseline(report):
    """Whether a pruning run's no-training baseline is the dense teacher's (reports written
    before the pruning schemes' baseline pruned the teacher once): no noise check then."""
    baseline = report["baselines"]["no_training"] or {}
    return report["student"].get("prune", "none") != "none" and baseline and (
        "pruned once" not in baseline.get("method", ""))


def summarise(entries):
    """Means over seeds of one (teacher, scheme)'s reports."""
    reports = [e["report"] for e in entries]
    first = reports[0]
    tflite = [_tflite(r)["accuracy"] for r in reports]
    return {
        "seeds": len(reports), "teacher": first["teacher"]["accuracy"],
        "tflite": tflite, "tflite_mean": _mean(tflite),
        "no_training": _mean([(r["baselines"]["no_training"] or {}).get("accuracy")
                              for r in reports]),
        "vs_no_training": [(e["seed"], _tflite(e["report"])["accuracy"],
                            (e["report"]["baselines"]["no_training"] or {}).get("accuracy"))
                           for e in entries],
        "dense_baseline": any(_dense_baseline(r) for r in reports),
        "with_data": _mean([r["baselines"]["with_data"]["accuracy"] for r in reports
                            if r["baselines"]["with_data"]]),
        "with_data_seeds": sum(bool(r["baselines"]["with_data"]) for r in reports),
        "params": first["student"]["params"], "nonzero": first["student"]["nonzero_params"],
        "bytes": _tflite(first)["bytes"],
        "untrained_exported": sum((r.get("guard") or {}).get("exported") == "untrained"
                                  for r in reports),
        "iterations": first["train"]["steps"],
        "minutes": sum(r["train"]["seconds"] for r in reports) / 60}


def scheme_row(teacher_name, scheme, s, verdicts, images):
    """One Markdown row, and its verdict lines added to `verdicts`."""
    delta = common.points(s["tflite_mean"], s["teacher"])
    limit, label = target_for(teacher_name, scheme), f"{teacher_name} {scheme}"
    seeds = common.seeds_label(s["seeds"])
    verdict = "no target"
    if limit is not None:
        verdict = ("not measured" if delta is None
                   else f"{'met' if delta >= limit else 'MISSED'} (>= {limit:+g})")
        verdicts.check(f"{label}: TFLite vs teacher ({seeds}, pt)", delta, limit, True,
                       noise=round(common.noise_points(s["teacher"], images), 2))
    if s["no_training"] is not None and not s["dense_baseline"]:
        worst_run_vs_no_training(label, s["vs_no_training"], verdicts, images)
    params = f"{s['params']:,}" + (f" ({s['nonzero']:,} nonzero)"
                                   if s["nonzero"] < 0.95 * s["params"] else "")
    mark = f" ({s['untrained_exported']} guarded)" if s["untrained_exported"] else ""
    cells = [scheme, str(s["seeds"]), str(s["iterations"]), params, f"{s['bytes']:,}",
             _text(s["teacher"]), common.mean_std(s["tflite"]) + mark,
             _text(s["no_training"]) + ("*" if s["dense_baseline"] else ""),
             _text(s["with_data"]) + (f" ({s['with_data_seeds']} of {s['seeds']} seeds)"
                                      if 0 < s["with_data_seeds"] < s["seeds"] else ""),
             "n/a" if delta is None else f"{delta:+.1f}", verdict,
             f"{s['minutes']:.1f}"]
    return "| " + " | ".join(cells) + " |"


def worst_run_vs_no_training(label, runs, verdicts, images):
    """The target is per run (no run below its own no-training baseline by more than noise):
    the verdict of the run that comes closest to missing it, or misses it by most."""
    margins = [(common.points(accuracy, baseline),
                round(common.noise_points(baseline, images), 2), seed)
               for seed, accuracy, baseline in runs if baseline is not None]
    if not margins:
        return
    difference, noise, seed = min(margins, key=lambda margin: margin[0] + margin[1])
    verdicts.check(f"{label}: TFLite vs its no-training baseline, worst of {len(margins)} "
                   f"run{'s' if len(margins) > 1 else ''} (seed {seed}, pt)", difference, -noise,
                   True)


HEADER = ["| scheme | seeds | iterations | params | TFLite bytes | teacher | data-free TFLite "
          "(mean ± sd) | no training | with data | Δ vs teacher (pt) | verdict | "
          "train min (all seeds) |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]


def teacher_section(name, runs, info, images, split="test"):
    """Heading, table and verdicts of one teacher."""
    verdicts = common.Verdicts()
    lines = [f"## {name}", ""]
    if info and any(abs(e["report"]["teacher"]["accuracy"] - info[f"{split}_accuracy"]) > 1e-4
                    for e in runs if e["report"]):
        lines += ["Rows whose teacher column differs from the teacher below were measured on an "
                  "earlier training of it, lost with its machine (bench/NOTES.md, \"A new "
                  "machine\"); each row's Δ is against its own teacher.", ""]
    if info:
        lines += [f"Teacher: {info['params']:,} params, {info['epochs']} epoch(s) in "
                  f"{info['train_seconds'] / 60:.1f} min (Adam {TEACHER_RATE:g}, batch "
                  f"{TEACHER_BATCH}); validation {info['val_accuracy']:.4f}, "
                  f"test {info['test_accuracy']:.4f}." + (
                      f" The {info['twin_of']} teacher saved again by Keras 3: tfdfc converts "
                      "it back to tf-keras." if info.get("twin_of") else ""), ""]
    lines += HEADER
    for scheme in [s for s in SCHEMES if any(e["scheme"] == s for e in runs)]:
        entries = [e for e in runs if e["scheme"] == scheme]
        done = [e for e in entries if e["report"] is not None]
        if not done:
            reason = next((e["skipped"] for e in entries if e["skipped"]), "not run")
            lines.append(f"| {scheme} | skipped: {reason} |" + " |" * 10)
            continue
        lines.append(scheme_row(name, scheme, summarise(done), verdicts, images))
    lines += _sparsity_short(runs)
    return lines + ["", "Targets:", ""] + (verdicts.lines or ["- none measured"]) + [""]


def _sparsity_short(runs):
    """A line for each pruning row whose runs reached another sparsity over all kernels than the
    scheme asks: runs made before depthwise kernels counted in the target (they stayed dense
    outside it), whose row is then not at the sparsity its name says."""
    lines = []
    for scheme, fields in SCHEMES.items():
        reached = [e["report"]["student"]["sparsity"] for e in runs
                   if e["scheme"] == scheme and e["report"] and fields.get("sparsity")]
        if reached and abs(statistics.mean(reached) - fields["sparsity"]) > 0.005:
            lines += ["", f"{scheme}: the runs' sparsity over all convolution and dense kernels "
                      f"is {statistics.mean(reached):.4f}, not {fields['sparsity']:g}: made "
                      "before depthwise kernels counted in the target (they stay dense; "
                      "bench/NOTES.md, session 67)."]
    return lines


NOTE = ("Each run: the scheme's recipe (recipes.py) unless --steps says otherwise, one device; "
        "TFLite is the int8 file (float where none). No training: the teacher compressed without "
        "training (int8: post-training int8 calibrated on noise; pruning: the teacher pruned "
        "once to the run's rates); with data: the same student "
        "steps on real training images. Targets from the issue \"Real models\" (set "
        f"{TARGETS_SET}): mean of 3 seeds on the test split; noise is {NOISE_SE} binomial standard "
        "errors. \"guarded\": runs whose fallback guard exported the untrained model. *: runs "
        "made before the pruning baseline pruned: the dense teacher's post-training int8, no "
        "noise check.")


def render(results):
    """The Markdown of the results JSON."""
    split, images = results["split"], results["eval_images"]
    commands = sorted({e["command"] for e in results["runs"].values()})
    lines = ["# Data-free compression of real architectures (Fashion-MNIST)", "",
             f"Evaluation split: **{split}** ({images:,} images"
             + (", for tuning: the targets are stated on the test split" if split == "val"
                else "") + "). Commands:", ""]
    lines += [f"- `{c}`" for c in commands] or ["- (none: no runs yet)"]
    lines += ["", NOTE, ""]
    for name in [n for base in TEACHERS for n in (base, base + KERAS3_SUFFIX)]:
        runs = [e for e in results["runs"].values() if e["teacher"] == name]
        if runs or name in results["teachers"]:
            lines += teacher_section(name, runs, results["teachers"].get(name), images, split)
            if name.endswith(KERAS3_SUFFIX):
                lines += twin_verdicts(name, results, images)
    return lines


def twin_verdicts(name, results, images):
    """The Keras 3 twin against its tf-keras teacher, scheme by scheme: the difference of the
    mean TFLite accuracies, within noise (NOISE_SE binomial standard errors) or not."""
    lines = [f"Keras 3 twin against `{_base_name(name)}` (same accuracy within noise):", ""]
    for scheme in SCHEMES:
        done = [[e for e in results["runs"].values()
                 if e["teacher"] == teacher and e["scheme"] == scheme and e["report"]]
                for teacher in (name, _base_name(name))]
        if not all(done):
            continue
        means = [summarise(entries)["tflite_mean"] for entries in done]
        difference, noise = common.points(*means), common.noise_points(means[1], images)
        lines.append(f"- {scheme}: {difference:+.2f} pt (noise {noise:.2f}) — "
                     f"{'met' if abs(difference) <= noise else 'MISSED'}")
    return lines + [""]


def command_line(flags_in):
    if flags_in["tiny"]:
        return "python bench/zoo.py --tiny"
    parts = ["python bench/zoo.py", f"--teachers={','.join(flags_in['teachers'])}",
             f"--schemes={','.join(flags_in['schemes'])}",
             f"--seeds={','.join(str(s) for s in flags_in['seeds'])}",
             f"--split={flags_in['split']}"]
    if flags_in["with_data_seeds"]:
        parts.append("--with_data_seeds=" + ",".join(str(s) for s in flags_in["with_data_seeds"]))
    for name in ("steps", "generator_channels"):
        if flags_in[name]:
            parts.append(f"--{name}={flags_in[name]}")
    parts += [f"--{name}={_value_text(value)}" for name, value in flags_in["tuning"].items()]
    if _TEACHER_EPOCHS.value != _TEACHER_EPOCHS.default:
        parts.append(f"--teacher_epochs={_TEACHER_EPOCHS.value}")
    for holder in (_FLAGS.out_dir, _FLAGS.results):
        if holder.value != holder.default:
            parts.append(f"--{holder.name}={holder.value}")
    return " ".join(parts)


def _flags_in():
    tiny = _FLAGS.tiny.value
    values = {"tiny": tiny, "out_dir": common.tiny_path(_FLAGS, _FLAGS.out_dir, TINY_DIR),
              "steps": _FLAGS.steps.value,
              "generator_channels": (_FLAGS.generator_channels.value
                                     if flags.FLAGS["generator_channels"].present else 0),
              "split": _SPLIT.value, "teacher_epochs": _TEACHER_EPOCHS.value,
              "tuning": {name: holder.value for name, holder in _TUNING.items()
                         if holder.value is not None},
              "teachers": common.tiny_choice(tiny, _TEACHERS, TINY),
              "schemes": common.tiny_choice(tiny, _SCHEMES, TINY),
              "seeds": [int(s) for s in common.tiny_choice(tiny, _SEEDS, TINY)],
              "with_data_seeds": [int(s) for s in _WITH_DATA_SEEDS.value]}
    if values["tuning"] and (values["split"] != "val" or not _FLAGS.results.present):
        raise app.UsageError(f"--{', --'.join(values['tuning'])}: for tuning only: give "
                             "--split=val and a --results of its own (the report table holds "
                             "recipe runs only)")
    for name in values["teachers"]:
        if _base_name(name) not in BUILDERS:
            raise app.UsageError(f"--teachers: unknown {name!r} (use {', '.join(TEACHERS)}, "
                                 f"each optionally with {KERAS3_SUFFIX}: its Keras 3 twin)")
    for name in values["schemes"]:
        if name not in SCHEMES:
            raise app.UsageError(f"--schemes: unknown {name!r} (use {', '.join(SCHEMES)})")
    unranged = [name for name in values["schemes"] if name not in RANGED_SCHEMES]
    if "activation_ranges" in values["tuning"] and unranged:
        raise app.UsageError(f"--activation_ranges: only the schemes {', '.join(RANGED_SCHEMES)} "
                             f"have them; leave out {', '.join(unranged)} (--schemes)")
    return dict(values, command=command_line(values))


def main(argv):
    del argv
    results_path = common.tiny_path(_FLAGS, _FLAGS.results, TINY_DIR)
    json_path = os.path.splitext(results_path)[0] + ".json"
    previous = artifacts.read_json(json_path)
    if _RENDER_ONLY.value:
        if previous is None:
            raise app.UsageError(f"--render_only: no results in {json_path}")
        common.write_results(results_path, render(previous), previous)
        return
    flags_in = _flags_in()
    eval_images = len(data.load_npz(eval_npz(flags_in["out_dir"], 28, flags_in["split"],
                                             flags_in["tiny"])).y_test)
    key = (flags_in["split"], flags_in["tiny"])

    def save(runs, teachers):
        """Writes this invocation's runs over those on disk, read afresh: two lanes of the bench
        add to one table."""
        results = {"split": key[0], "tiny": key[1], "eval_images": eval_images, "runs": {},
                   "teachers": {}}
        on_disk = artifacts.read_json(json_path)
        if on_disk and (on_disk.get("split"), on_disk.get("tiny")) == key:
            results.update(runs=on_disk["runs"], teachers=on_disk["teachers"])
        results["runs"].update(runs)
        results["teachers"].update(teachers)
        common.write_results(results_path, render(results), results)

    run_all(flags_in, save)


if __name__ == "__main__":
    app.run(main)
