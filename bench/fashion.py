"""The paper's experiments on Fashion-MNIST, where compression is hard: each experiment is a
preset flagfile (flags/fashion_*.cfg, the recipe written once) run by `tfdfc.compress` over
seeds, with its no-training and with-data baselines, against targets fixed in bench/TARGETS.md.

    python bench/fashion.py --split=val --seeds=0          # tuning: the validation split
    python bench/fashion.py --experiments=distill_lenet5_half --seeds=0,1,2   # reporting (test)
    python bench/fashion.py --tiny                         # a minute, on digits (tests use it)

Teachers come from `make teacher-fashion` (their flagfiles). Runs resume: a run directory that
holds report.json is read, not re-run; each invocation adds its runs to the JSON beside
--results (one JSON per split), so several invocations build one table, and --render_only
rewrites the Markdown from it.
"""

import os
import statistics
import subprocess
import sys

from absl import app, flags

import common
from tfdfc import artifacts, data, guard, run_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# From the issue "The paper's experiments where compression is hard", set 2026-12-01 (the same
# numbers as bench/TARGETS.md): "teacher" is points against the teacher, "with_data" against the
# with-data baseline, "no_training" against the no-training baseline, "accuracy" an absolute floor,
# "accuracy_in_10_min" the same floor for runs whose training took at most 10 minutes.
TARGETS_SET = "2026-12-01"
TARGETS = {
    "distill_lenet5_half": {"accuracy": 0.885, "with_data": -1.5, "accuracy_in_10_min": 0.85},
    "int8_wrn16_1": {"teacher": -0.5},
    "w4a4_wrn16_1": {"teacher": -2.0, "no_training": 3.0},
    "binary_wrn16_1": {"teacher": -3.0, "with_data": -1.5},
    "magnitude90_wrn16_1": {"teacher": -2.0},
    "magnitude95_wrn16_1": {"teacher": -4.0},
    "magnitude90_int8_wrn16_1": {"teacher": -3.0},
    # Judged on the sweep (sweep_lines): the best point at <= 50 % of the teacher's parameters.
    "slim_wrn16_1": {"teacher_at_half_size": -1.0},
}
# The teachers' own targets (the same date and file): a floor on the test accuracy, and a ceiling
# on the minutes `make teacher-fashion` takes to train each on 2 cores.
TEACHER_TARGETS = {"lenet5_fashion": {"accuracy": 0.905, "minutes": 15},
                   "wrn16_1_fashion": {"accuracy": 0.925, "minutes": 15}}
EXPERIMENTS = ("distill_lenet5_half", "distill_wrn16_1_to_wrn10_1", "int8_wrn16_1",
               "w4a8_wrn16_1", "w4a4_wrn16_1", "binary_wrn16_1", "magnitude90_wrn16_1",
               "magnitude95_wrn16_1", "magnitude90_int8_wrn16_1", "slim_wrn16_1",
               "ticket_lenet5", "ticket_reinit_lenet5")
# A lottery ticket and its control (the same mask, a fresh initialisation): judged as a pair,
# seed by seed, on the shipped accuracy, with the control's accuracy curve to show whether it
# has plateaued (ticket_lines).
TICKET_PAIRS = {"ticket_lenet5": "ticket_reinit_lenet5"}
TICKET_EXPERIMENTS = {*TICKET_PAIRS, *TICKET_PAIRS.values()}  # they train from a ticket file
# An experiment with a sweep runs its preset once per value of one flag, each value a row (for
# slimming the paper's Table 1: lambda against size and accuracy). The slimming values are a
# ladder around the size target (half the teacher's parameters), placed by a validation pilot
# on the WRN-16-1 (bench/NOTES.md, session 49).
SWEEPS = {"slim_wrn16_1": ("--slim_weight_decay", ("1e-4", "3e-4", "6e-4", "1e-3", "2e-3"))}
TINY_SWEEP = 2  # a tiny run takes the first values of a sweep only
TINY = dict(experiments=["int8_wrn16_1"], seeds=["0"])
TINY_DIR = "exported/bench/fashion_tiny"
# Tiny runs: every experiment on a digits LeNet-5 teacher, a few iterations of a few images.
TINY_FLAGS = ("--eval_data=digits", "--steps=2", "--batch_size=16", "--student_steps=2",
              "--generator_channels=8", "--log_every=1", "--eval_every=1",
              "--checkpoint_every=2")

_FLAGS = common.define_flags("fashion", steps=0)
_EXPERIMENTS = flags.DEFINE_list("experiments", list(EXPERIMENTS), "Experiments (presets "
                                 "flags/fashion_<name>.cfg) to run.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds of every run.")
_WITH_DATA_SEEDS = flags.DEFINE_list(
    "with_data_seeds", ["0"], "Seeds whose runs also train the with-data baseline (it costs about "
    "as much as the run); the table's with-data column is the mean over them.")
_SPLIT = common.define_split()
_EXTRA = flags.DEFINE_list("extra", [], "More tfdfc.compress flags for every run (tuning, e.g. "
                           "--extra=--student_lr=1e-3); they become part of the run's name.")
_REUSE_VAL_TRAINING = flags.DEFINE_bool(
    "reuse_val_training", False, "With --split=test: a run whose validation twin (same name) "
    "finished resumes from its last checkpoint, so it is only exported and evaluated on the "
    "test split. Training never sees the evaluation split and a seed's run is deterministic, "
    "so it is the same student, in minutes instead of the run's time again.")
_RENDER_ONLY = flags.DEFINE_bool("render_only", False, "Rewrite the Markdown from the JSON "
                                 "beside it, training nothing.")


def flagfile(experiment):
    return os.path.join("flags", f"fashion_{experiment}.cfg")


def run_name(experiment, seed, extra):
    """The run's directory name: the experiment, any extra flags, the seed."""
    tail = "".join("_" + flag.lstrip("-").replace("=", "-").replace("/", "-") for flag in extra)
    return f"{experiment}{tail}_seed{seed}"


def compress_command(experiment, seed, out_dir, split, with_data, tiny, teacher, extra,
                     tiny_ticket=None):
    """The `tfdfc.compress` command line of one run; a tiny run trains from `teacher` (and a
    ticket experiment from `tiny_ticket`) in place of the preset's."""
    command = [sys.executable, "-m", "tfdfc.compress", f"--flagfile={flagfile(experiment)}",
               f"--seed={seed}", f"--out_dir={out_dir}",
               f"--with_data_baseline={'true' if with_data else 'false'}"]
    if tiny:
        command += [*TINY_FLAGS, f"--teacher={teacher}"]
        if experiment in TICKET_EXPERIMENTS:
            command.append(f"--ticket={tiny_ticket}")
    if split == "val":
        source = "digits" if tiny else "fashion_mnist"
        command.append(f"--eval_data={common.on_split(source, split)}")
    return command + list(extra)


def tiny_teacher(out_dir):
    """A digits LeNet-5 standing in for both Fashion teachers in tiny runs (trained once)."""
    path = os.path.join(out_dir, "digits_teacher.keras")
    if not os.path.exists(path):
        from tfdfc import teacher  # pylint: disable=import-outside-toplevel
        teacher.train(teacher.TeacherConfig(data="digits", architecture="lenet5-x0.5", epochs=2,
                                            shift_augment=0, output=path))
    return path


def sweep_extras(experiment, extra, tiny):
    """The extra flags of each of the experiment's runs: `extra`, plus one value of the
    experiment's sweep per run where it has one."""
    if experiment not in SWEEPS:
        return [list(extra)]
    flag, values = SWEEPS[experiment]
    return [list(extra) + [f"{flag}={value}"]
            for value in (values[:TINY_SWEEP] if tiny else values)]


def tiny_ticket(out_dir):
    """A one-round ticket of the tiny teacher's architecture on digits (found once)."""
    path = os.path.join(out_dir, "digits_ticket.npz")
    if not os.path.exists(path):
        from tfdfc.compression import ticket  # pylint: disable=import-outside-toplevel
        ticket.find(ticket.TicketConfig(data="digits", architecture="lenet5-x0.5", rounds=1,
                                        round_steps=5, batch_size=32, output=path))
    return path


def run_one(experiment, seed, settings, log=print):
    """One run's entry: its report (read back when report.json exists)."""
    out_dir = os.path.join(settings["out_dir"], "runs", settings["split"],
                           run_name(experiment, seed, settings["extra"]))
    entry = {"experiment": experiment, "seed": seed, "out_dir": out_dir,
             "extra": settings["extra"], "command": settings["command"]}
    report = artifacts.read_json(os.path.join(out_dir, "report.json"))
    if report is None and settings.get("reuse_val_training") and not os.path.exists(out_dir):
        twin = os.path.join(settings["out_dir"], "runs", "val", os.path.basename(out_dir))
        if artifacts.read_json(os.path.join(twin, "report.json")) is not None:
            log(f"{os.path.basename(out_dir)}: resuming the validation run's training ({twin})")
            run_dir.copy_trained_state(twin, out_dir)
            entry["trained_in"] = twin
    if report is None:
        command = compress_command(experiment, seed, out_dir, settings["split"],
                                   seed in settings["with_data_seeds"], settings["tiny"],
                                   settings["teacher"], settings["extra"],
                                   settings.get("tiny_ticket"))
        log(" ".join(command[1:]))
        result = subprocess.run(command, cwd=ROOT, check=False)
        if result.returncode:
            raise SystemExit(f"{experiment} seed {seed}: tfdfc.compress exited "
                             f"{result.returncode}: see {out_dir}")
        report = artifacts.read_json(os.path.join(out_dir, "report.json"))
    return dict(entry, report=report)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

QUANTIZED = ("int8", "w4a", "binary")  # experiment names whose student is quantized


def shipped_accuracy(experiment, report):
    """The accuracy of the file a user ships: the int8 TFLite file of a quantized student, the
    float one otherwise (a full-precision student's int8 file is a post-training extra)."""
    tflite = report["tflite"]
    quantized = any(part in experiment for part in QUANTIZED) and tflite.get("int8")
    return (tflite["int8"] if quantized else tflite["float"])["accuracy"]


def summarise(entries):
    """Means over the seeds of one experiment's (and extra flags') runs."""
    reports = [e["report"] for e in entries]
    shipped = [shipped_accuracy(e["experiment"], e["report"]) for e in entries]
    no_training = [(r["baselines"]["no_training"] or {}).get("accuracy") for r in reports]
    with_data = [r["baselines"]["with_data"]["accuracy"] for r in reports
                 if r["baselines"]["with_data"]]
    return {"seeds": len(reports), "teacher": reports[0]["teacher"]["accuracy"],
            "teachers": sorted({round(r["teacher"]["accuracy"], 4) for r in reports}),
            "shipped": shipped, "shipped_mean": common.mean_sd(shipped)[0],
            "no_training": common.mean_sd(no_training)[0],
            "with_data": common.mean_sd(with_data)[0], "with_data_seeds": len(with_data),
            "params": reports[0]["student"]["params"],
            "nonzero": reports[0]["student"]["nonzero_params"],
            "iterations": reports[0]["train"]["steps"],
            "minutes": sum(r["train"]["seconds"] for r in reports) / 60 / len(reports)}


def verdicts_of(experiment, s, images, verdicts):
    """Adds the experiment's target verdicts (points, with the split's noise) to `verdicts`."""
    seeds = common.seeds_label(s["seeds"])
    for against, limit in TARGETS.get(experiment, {}).items():
        if against in ("accuracy", "accuracy_in_10_min"):  # a floor on the accuracy itself
            value, floor_noise = common.points(s["shipped_mean"], 0.0), round(
                common.noise_points(limit, images), 2)
            name = f"{experiment}: accuracy ({seeds}, %)"
            if against == "accuracy_in_10_min":  # runs longer than 10 minutes do not count
                name = (f"{experiment}: accuracy after {s['minutes']:.1f} min of training "
                        f"({seeds}, %)")
                value = value if s["minutes"] <= 10 else None
            verdicts.check(name, value, 100 * limit, True, noise=floor_noise)
            continue
        reference = s[against]
        noise = None if reference is None else round(common.noise_points(reference, images), 2)
        verdicts.check(f"{experiment}: vs {against.replace('_', ' ')} ({seeds}, pt)",
                       common.points(s["shipped_mean"], reference), limit, True, noise=noise)


def _text(value):
    return "n/a" if value is None else f"{value:.4f}"


HEADER = ["| experiment | extra flags | seeds | iterations | student params | teacher | data-free "
          "(mean ± sd) | no training | with data | Δ vs teacher (pt) | train min per seed |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]


def render(results):
    """The Markdown of the results JSON."""
    split, images = results["split"], results["eval_images"]
    lines = ["# The paper's experiments on Fashion-MNIST", "",
             f"Evaluation split: **{split}** ({images:,} images"
             + (", for tuning; targets are judged on the test split" if split == "val" else "")
             + "). Commands:", ""]
    lines += [f"- `{c}`" for c in sorted({e["command"] for e in results["runs"].values()})]
    lines += ["", "Each row runs the preset `flags/fashion_<experiment>.cfg` (plus the extra "
              "flags) through `tfdfc.compress`. Data-free: the file a user ships (the int8 "
              "TFLite file of a quantized student, the float TFLite file otherwise). No "
              "training: the same scheme without training (post-training quantization "
              "calibrated on noise; none for distillation into a fresh network). With data: "
              "the same student steps on real training images. "
              f"Targets (bench/TARGETS.md, set {TARGETS_SET}) are judged on the mean of the "
              f"seeds; noise is {common.NOISE_SE} binomial standard errors of the split.", ""]
    lines += HEADER
    verdicts = common.Verdicts()
    groups = {}
    for entry in results["runs"].values():
        groups.setdefault((entry["experiment"], tuple(entry["extra"])), []).append(entry)
    for (experiment, extra), entries in sorted(
            groups.items(), key=lambda item: (EXPERIMENTS.index(item[0][0]), item[0][1])):
        s = summarise(entries)
        params = f"{s['params']:,}" + (f" ({s['nonzero']:,} nonzero)"
                                       if s["nonzero"] < 0.95 * s["params"] else "")
        apart = len(s["teachers"]) > 1  # seeds made on a teacher since lost and on its twin
        delta = None if apart else common.points(s["shipped_mean"], s["teacher"])
        with_data = _text(s["with_data"]) + (f" ({s['with_data_seeds']} of {s['seeds']} seeds)"
                                             if 0 < s["with_data_seeds"] < s["seeds"] else "")
        lines.append("| " + " | ".join([
            experiment, " ".join(extra) or "—", str(s["seeds"]), str(s["iterations"]), params,
            " / ".join(f"{t:.4f}" for t in s["teachers"]) if apart else _text(s["teacher"]),
            common.mean_std(s["shipped"]), _text(s["no_training"]),
            with_data, "n/a" if delta is None else f"{delta:+.1f}", f"{s['minutes']:.1f}"]) + " |")
        if apart:
            verdicts.lines.append(f"- {experiment}: not judged: its seeds were made on teachers "
                                  f"of different accuracy ({' / '.join(map(str, s['teachers']))})"
                                  "; run them all on one")
        elif not extra and experiment not in SWEEPS and experiment not in TICKET_PAIRS:
            verdicts_of(experiment, s, images, verdicts)
    lines += ["", "Targets:", ""] + (verdicts.lines or ["- none measured"]) + [""]
    for (experiment, extra), entries in sorted(groups.items()):
        if not extra:
            lines += sub_byte_lines(experiment, entries)
    for experiment in SWEEPS:
        lines += sweep_lines(experiment, groups, images)
    for ticket, control in TICKET_PAIRS.items():
        lines += ticket_lines(groups.get((ticket, ()), []), groups.get((control, ()), []),
                              images)
    if split == "test" and results.get("teachers"):
        lines += teacher_lines(results["teachers"], images)
    return lines


def trained_keras_accuracy(report):
    """The trained student's own Keras accuracy, whichever model the guard shipped: as the
    guard measured it where it judged the SavedModels apart; else the report's where the
    trained SavedModel shipped; else the loop's evaluation at its last iteration."""
    entry = report.get("guard") or {}
    measured = entry.get("saved_model", {}).get("eval_accuracy", {}).get("trained")
    if measured is not None:
        return measured
    if not guard.saved_model_fell_back(entry):
        return report["student"]["accuracy"]
    return dict(map(tuple, report["train"].get("evaluations", []))).get(report["train"]["steps"])


def shipped_twin(report):
    """Whether the run's fallback guard shipped the untrained twin's files."""
    return guard.fell_back(report.get("guard") or {})


def sub_byte_lines(experiment, entries):
    """The section of a row whose activations are below 8 bits (one with no extra flags): its
    shipped int8 file runs them at 8 bits (TFLite has no kernels for fewer), while the with-data
    column measures the Keras model at the trained bits; per seed, the trained student's Keras
    accuracy beside both files the guard chose between. Empty for other rows."""
    entries = sorted(entries, key=lambda e: e["seed"])
    bits = entries[0]["report"]["student"].get("act_bits")
    if bits is None or bits >= 8:
        return []
    lines = [f"## {experiment}: the {bits}-bit activations in Keras and in the file", "",
             f"The shipped int8 TFLite file runs {bits}-bit activation ranges at 8 bits; the "
             f"with-data column measures its model in Keras, at {bits} bits: compare it with "
             "the trained student's Keras column. The guard ships the untrained twin's file "
             "where the trained student's disagrees more with the teacher on generated images, "
             "and judges the SavedModel (the model at the trained bits) apart since 3becfad.",
             "", f"| seed | trained, Keras (a{bits}) | trained, file | untrained twin, file | "
             "shipped |", "|---|---|---|---|---|"]
    columns = [[], [], []]
    for entry in entries:
        report = entry["report"]
        files = (report.get("guard") or {}).get("eval_accuracy") or {}
        if not files and not shipped_twin(report):
            files = {"trained": shipped_accuracy(experiment, report)}
        values = [trained_keras_accuracy(report), files.get("trained"), files.get("untrained")]
        for column, value in zip(columns, values):
            column.append(value)
        lines.append(f"| {entry['seed']} | " + " | ".join(_text(v) for v in values)
                     + f" | {'twin' if shipped_twin(report) else 'trained'} |")
    lines.append("| mean ± sd | " + " | ".join(common.mean_std(c) for c in columns) + " | |")
    return lines + [""]


def sweep_lines(experiment, groups, images):
    """The section of an experiment's sweep (`groups`: the table's runs by (experiment, extra
    flags)): a row per value with the student's size against the teacher's, and the target,
    judged on the most accurate point at most half the teacher's parameters. Empty when none of
    its runs is in the table."""
    flag, values = SWEEPS[experiment]
    rows = {value: groups[(experiment, (f"{flag}={value}",))] for value in values
            if (experiment, (f"{flag}={value}",)) in groups}
    if not rows:
        return []
    lines = [f"## {experiment}: the {flag.lstrip('-')} sweep", "",
             "Each value's runs as in the table above; parameters and MACs of the student "
             "as exported, mean over the seeds.", "",
             f"| {flag.lstrip('-')} | seeds | student params | of the teacher's | MACs | "
             "data-free (mean ± sd) | Δ vs teacher (pt) | with data |",
             "|---|---|---|---|---|---|---|---|"]
    small = []  # (mean accuracy, seeds, teacher accuracy) of points at <= half the parameters
    for value, entries in rows.items():
        s = summarise(entries)
        params = statistics.mean(e["report"]["student"]["params"] for e in entries)
        share = params / entries[0]["report"]["teacher"]["params"]
        macs = statistics.mean(e["report"]["student"]["macs"] for e in entries)
        delta = common.points(s["shipped_mean"], s["teacher"])
        lines.append(f"| {value} | {s['seeds']} | {params:,.0f} | {share:.1%} | {macs:,.0f} | "
                     f"{common.mean_std(s['shipped'])} | "
                     f"{'n/a' if delta is None else f'{delta:+.1f}'} | {_text(s['with_data'])} |")
        if share <= 0.5 and s["shipped_mean"] is not None:
            small.append((s["shipped_mean"], s["seeds"], s["teacher"]))
    verdicts = common.Verdicts()
    limit = TARGETS.get(experiment, {}).get("teacher_at_half_size")
    if limit is not None and not small:
        verdicts.lines.append(f"- {experiment}: vs teacher at <= 50 % of its parameters: not "
                              "measured (no point of the sweep is that small)")
    elif limit is not None:
        best, seeds, teacher = max(small)
        verdicts.check(f"{experiment}: best point at <= 50 % of the teacher's parameters vs "
                       f"teacher ({common.seeds_label(seeds)}, pt)", common.points(best, teacher),
                       limit, True, noise=round(common.noise_points(teacher, images), 2))
    return lines + ["", "Targets:", ""] + (verdicts.lines or ["- none set"]) + [""]


def ticket_lines(tickets, controls, images):
    """The section of a lottery ticket against its control (their runs, any seeds): the
    paired differences of the seeds both have, the mean accuracy curves, and two verdicts:
    the ticket beats the control by more than noise, and the control has plateaued (its mean
    gain over the last third of its iterations is within noise). Empty without a pair."""
    by_seed = {e["seed"]: e for e in controls}
    pairs = [(e, by_seed[e["seed"]]) for e in sorted(tickets, key=lambda e: e["seed"])
             if e["seed"] in by_seed]
    if not pairs:
        return []
    name = pairs[0][0]["experiment"]
    lines = [f"## {name}: the lottery ticket against its re-initialised control", "",
             "The same mask and settings; the control draws fresh weights. Shipped accuracy "
             "(float TFLite) by seed:", "",
             "| seed | ticket | re-init | ticket − re-init (pt) |", "|---|---|---|---|"]
    shipped = [(shipped_accuracy(t["experiment"], t["report"]),
                shipped_accuracy(c["experiment"], c["report"])) for t, c in pairs]
    differences = [common.points(t, c) for t, c in shipped]
    for (ticket, _), (t, c), difference in zip(pairs, shipped, differences):
        lines.append(f"| {ticket['seed']} | {t:.4f} | {c:.4f} | {difference:+.2f} |")
    lines.append(f"| mean ± sd | {common.mean_std([t for t, _ in shipped])} | "
                 f"{common.mean_std([c for _, c in shipped])} | "
                 f"{common.mean_std(differences, 2)} |")
    curves = [_mean_curve([entry[side]["report"] for entry in pairs]) for side in (0, 1)]
    lines += ["", "Accuracy curve, mean over the seeds (the Keras student on the evaluation "
              "split, at each evaluation):", "", "| iteration | ticket | re-init |",
              "|---|---|---|"]
    lines += [f"| {iteration} | {curves[0].get(iteration, float('nan')):.4f} | "
              f"{accuracy:.4f} |" for iteration, accuracy in sorted(curves[1].items())]
    control_mean = statistics.mean(c for _, c in shipped)
    noise = round(common.noise_points(control_mean, images), 2)
    verdicts = common.Verdicts()
    label = common.seeds_label(len(pairs))
    verdicts.beats(f"{name}: ticket minus re-init ({label}, pt)",
                   common.points(statistics.mean(t for t, _ in shipped), control_mean),
                   noise)
    verdicts.check(f"{name}: the control's gain over the last third of its iterations "
                   f"({label}, pt; it has plateaued when within noise)",
                   _late_gain(curves[1]), noise, False)
    return lines + ["", "Targets:", ""] + verdicts.lines + [""]


def _mean_curve(reports):
    """{iteration: mean accuracy} over the reports' train.evaluations, at the iterations
    every report evaluated."""
    curves = [dict(map(tuple, r["train"].get("evaluations", []))) for r in reports]
    shared = set.intersection(*(set(curve) for curve in curves)) if curves else set()
    return {i: statistics.mean(curve[i] for curve in curves) for i in sorted(shared)}


def _late_gain(curve):
    """The curve's last accuracy minus its accuracy at the evaluation nearest two thirds of
    the way, in points; None with fewer than two evaluations."""
    if len(curve) < 2:
        return None
    iterations = sorted(curve)
    earlier = min(iterations[:-1], key=lambda i: abs(i - 2 * iterations[-1] / 3))
    return common.points(curve[iterations[-1]], curve[earlier])


def teacher_lines(teachers, images):
    """The section on the teachers the runs trained from, with their own targets' verdicts."""
    lines = ["## Fashion-MNIST teachers", "",
             "Trained with data by `make teacher-fashion` (flags/teacher_fashion_*.cfg), as the "
             "latest runs found them: test accuracy on the test split, validation on the "
             "images held out of training, minutes of training as `tfdfc.train_teacher` timed "
             "them. A row above made on an earlier training of a teacher shows another teacher "
             "accuracy.", "",
             "| teacher | architecture | params | epochs | validation | test | train min |",
             "|---|---|---|---|---|---|---|"]
    verdicts = common.Verdicts()
    for path, training in sorted(teachers.items()):
        name = os.path.splitext(os.path.basename(path))[0]
        minutes = training["train_seconds"] / 60
        lines.append(f"| {name} | {training['architecture']} | {training['params']:,} | "
                     f"{training['config']['epochs']} | {training['val_accuracy']:.4f} | "
                     f"{training['test_accuracy']:.4f} | {minutes:.1f} |")
        for against, limit in TEACHER_TARGETS.get(name, {}).items():
            if against == "accuracy":
                verdicts.check(f"teacher {name}: test accuracy (%)",
                               common.points(training["test_accuracy"], 0.0), 100 * limit, True,
                               noise=round(common.noise_points(limit, images), 2))
            else:
                verdicts.check(f"teacher {name}: minutes of training", round(minutes, 2), limit,
                               False)
    return lines + ["", "Targets:", ""] + (verdicts.lines or ["- none set"]) + [""]


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def _settings():
    tiny = _FLAGS.tiny.value
    experiments = common.tiny_choice(tiny, _EXPERIMENTS, TINY)
    for name in experiments:
        if name not in EXPERIMENTS:
            raise app.UsageError(f"--experiments: unknown {name!r} (use {', '.join(EXPERIMENTS)})")
    out_dir = common.tiny_path(_FLAGS, _FLAGS.out_dir, TINY_DIR)
    seeds = [int(s) for s in common.tiny_choice(tiny, _SEEDS, TINY)]
    command = (["python bench/fashion.py", "--tiny"] if tiny else
               ["python bench/fashion.py", f"--experiments={','.join(experiments)}",
                f"--seeds={','.join(map(str, seeds))}", f"--split={_SPLIT.value}"]
               + ([f"--extra={','.join(_EXTRA.value)}"] if _EXTRA.value else []))
    command += ["--reuse_val_training"] if _REUSE_VAL_TRAINING.value else []
    return {"tiny": tiny, "out_dir": out_dir, "split": _SPLIT.value, "experiments": experiments,
            "seeds": seeds, "with_data_seeds": [int(s) for s in _WITH_DATA_SEEDS.value],
            "extra": list(_EXTRA.value), "command": " ".join(command),
            "reuse_val_training": _REUSE_VAL_TRAINING.value and _SPLIT.value == "test",
            "teacher": tiny_teacher(out_dir) if tiny else None,
            "tiny_ticket": (tiny_ticket(out_dir) if tiny and TICKET_EXPERIMENTS & set(experiments)
                            else None)}


def _eval_images(settings):
    spec = "digits" if settings["tiny"] else "fashion_mnist"
    return len(data.load(common.on_split(spec, settings["split"])).y_test)


def record(runs, split, eval_images, json_path, results_path):
    """Adds this invocation's `runs` (and their teachers' training) to the results JSON, read
    afresh because two lanes build one table, and rewrites the table."""
    results = artifacts.read_json(json_path) or {"split": split, "runs": {}}
    results["eval_images"] = eval_images
    results["runs"].update(runs)
    for made in runs.values():  # each teacher's training, as its runs recorded it
        training = made["report"]["teacher"].get("training")
        if training:
            results.setdefault("teachers", {})[made["report"]["teacher"]["path"]] = training
    common.write_results(results_path, render(results), results)


def main(argv):
    del argv
    results_path = common.tiny_path(_FLAGS, _FLAGS.results, TINY_DIR)
    if _SPLIT.value == "val":  # tuning tables never overwrite the reported one
        results_path = os.path.splitext(results_path)[0] + "_val.md"
    json_path = os.path.splitext(results_path)[0] + ".json"
    if _RENDER_ONLY.value:
        results = artifacts.read_json(json_path)
        if results is None:
            raise app.UsageError(f"--render_only: no results in {json_path}")
        common.write_results(results_path, render(results), results)
        return
    settings = _settings()
    eval_images, runs = _eval_images(settings), {}
    for experiment in settings["experiments"]:
        for extra in sweep_extras(experiment, settings["extra"], settings["tiny"]):
            for seed in settings["seeds"]:
                entry = run_one(experiment, seed, dict(settings, extra=extra))
                runs[os.path.basename(entry["out_dir"])] = entry
                record(runs, settings["split"], eval_images, json_path, results_path)


if __name__ == "__main__":
    app.run(main)
