"""Benchmark of data-free mixed precision (`--quantize=mixed`): accuracy against kernel bytes
between uniform w4a8 and int8, against a random assignment at the same budget, over seeds.
Writes Markdown, the reports as JSON and a PNG of the size-accuracy front beside it.

    python bench/mixed.py --teachers=mnist5k --seeds=0,1,2          # minutes per run
    python bench/mixed.py --teachers=resnet --budgets=0.65 --seeds=0  # the zoo's ResNet
    python bench/mixed.py --split=val --seeds=0                      # tuning
    python bench/mixed.py --tiny                                     # seconds, for tests

Teachers: `mnist5k` (the demo LeNet-5), `resnet` and `mobilenet` (bench/zoo.py's Fashion-MNIST
ResNet and MobileNetV2-style network with batch norms, cached there; run zoo.py first) and
`wrn16_1` (the Fashion-MNIST WRN-16-1 of `make teacher-fashion`). Every run is trained data-free
with the scheme's recipe (recipes.py `qat`); a run whose directory holds report.json is read, not
re-run (the zoo teachers' uniform int8 and w4a8 runs are read from bench/zoo.py's, the same
runs, where it made them), and every invocation adds its runs to the JSON of --results (same
split), so several invocations build one table. A random control that draws the very bits of
the sensitivity run of its seed and budget is that run (same student, same seed) and is not
trained again; the table says so.
"""

import copy
import dataclasses
import os
import statistics

from absl import app, flags

import common
from tfdfc import artifacts, data, figures, metrics, pipeline, recipes
from tfdfc import teacher as tfdfc_teacher
from tfdfc.compression import mixed
from tfdfc.train import TrainConfig

# From the issue "Data-free mixed precision", set 2026-12-01 (bench/TARGETS.md): means of 3
# seeds on the test split, in points, and the file's kernel bytes against the budget.
TARGETS_SET = "2026-12-01"
NEAR_INT8_BUDGET, NEAR_INT8_POINTS = 0.65, -0.3
BUDGET_TOLERANCE = 0.02  # TFLite kernel bytes within 2 % of the budget
KERAS_TFLITE_POINTS = 0.3

TEACHERS = {  # name: (teacher path, evaluation data spec or zoo npz size)
    "mnist5k": (common.DEMO_TEACHER, "mnist5k"),
    "resnet": ("exported/bench/zoo/teachers/resnet.keras", 32),
    "mobilenet": ("exported/bench/zoo/teachers/mobilenet.keras", 32),
    "wrn16_1": ("exported/teachers/wrn16_1_fashion.keras", "fashion_mnist"),
}
TINY_DIR = "exported/bench/mixed_tiny"

_FLAGS = common.define_flags("mixed", steps=0)
_TEACHERS = flags.DEFINE_list("teachers", ["mnist5k"], f"Teachers: {', '.join(TEACHERS)}.")
_BUDGETS = flags.DEFINE_list("budgets", ["0.55", "0.65", "0.8"], "Budgets, fractions of the "
                             "int8 kernel bytes.")
_KINDS = flags.DEFINE_list("kinds", ["uniform", "mixed", "random"], "Points to run: uniform "
                           "(int8 and w4a8; or one of them: int8, w4a8), mixed (by "
                           "sensitivity), random (the control).")
KIND_NAMES = ("uniform", "int8", "w4a8", "mixed", "random")
flags.register_validator("kinds", lambda kinds: set(kinds) <= set(KIND_NAMES),
                         f"--kinds takes {', '.join(KIND_NAMES)}")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds of every run.")
_SPLIT = common.define_split()
_RENDER_ONLY = flags.DEFINE_bool("render_only", False, "Rewrite the Markdown and PNG from the "
                                 "JSON beside them, training nothing.")


def points(budgets, kinds=("uniform", "mixed", "random")):
    """{point name: CompressConfig fields} of `kinds`: the uniform ends (both, or the one
    named) and, per budget, the sensitivity assignment and its random control."""
    found = {end: dict(quantize=end) for end in ("int8", "w4a8")
             if "uniform" in kinds or end in kinds}
    for budget in budgets:
        for kind in ("mixed", "random"):
            if kind in kinds:
                found[f"{kind}@{budget:g}"] = dict(quantize="mixed", mixed_budget=budget,
                                                   mixed_assignment="sensitivity"
                                                   if kind == "mixed" else "random")
    return found


def eval_spec(teacher, split, tiny):
    if tiny:
        return common.on_split("digits", split)
    source = TEACHERS[teacher][1]
    if isinstance(source, int):  # the zoo's padded Fashion-MNIST arrays
        return f"exported/bench/zoo/data/fashion_mnist_{source}_{split}.npz"
    return common.on_split(source, split)


def run_config(fields, seed, teacher_path, eval_path, tiny, steps, out_dir):
    """The scheme's recipe for every setting the bench's flags left unset."""
    train, explicit, extra = TrainConfig(seed=seed), set(), {}
    if tiny:
        train = dataclasses.replace(train, steps=2, batch_size=16, student_steps=2)
        explicit, extra = {"steps", "generator_channels"}, {"generator_channels": 8}
        if fields["quantize"] == "mixed":
            extra["mixed_search_steps"] = 2
    elif steps:
        train, explicit = dataclasses.replace(train, steps=steps), {"steps"}
    config = recipes.resolve(pipeline.CompressConfig(
        teacher=teacher_path, out_dir=out_dir, eval_data=eval_path, strategy="one_device",
        with_data_baseline=False, train=train, **extra, **fields), explicit)
    total = config.train.steps
    return dataclasses.replace(config, train=dataclasses.replace(
        config.train, log_every=1 if tiny else 25, eval_every=total,
        checkpoint_every=min(total, 50)))


def run_key(teacher, point, seed):
    """A run's key in the results JSON."""
    return f"{teacher}/{point}/seed{seed}"


def run_all(settings, save):
    runs = {}
    for teacher in settings["teachers"]:
        if settings["tiny"] or teacher == "mnist5k":  # the demo teacher is trained if absent
            teacher_path = common.ensure_teacher(settings["tiny"], settings["out_dir"])
        else:
            teacher_path = TEACHERS[teacher][0]
        eval_path = eval_spec(teacher, settings["split"], settings["tiny"])
        images = len(data.load(eval_path).y_test)
        for name, fields in points(settings["budgets"], settings["kinds"]).items():
            for seed in settings["seeds"]:
                out_dir = os.path.join(settings["out_dir"], "runs", settings["split"], teacher,
                                       f"{name}_seed{seed}")
                report = (artifacts.read_json(os.path.join(out_dir, "report.json"))
                          or zoo_report(teacher, name, seed, settings))
                if report is None and fields.get("mixed_assignment") == "random":
                    report = same_bits_report(runs.get(
                        run_key(teacher, name.replace("random", "mixed"), seed)), seed,
                        teacher_path)
                if report is None:
                    report = pipeline.run(run_config(fields, seed, teacher_path, eval_path,
                                                     settings["tiny"], settings["steps"],
                                                     out_dir))
                runs[run_key(teacher, name, seed)] = {
                    "teacher": teacher, "point": name, "seed": seed, "report": report,
                    "eval_images": images, "command": settings["command"]}
                save(runs)
    return runs


def same_bits_report(mixed_entry, seed, teacher_path):
    """The sensitivity run's report when the random control of the same seed and budget draws
    the very same bits (it draws again to differ, so only where the budget leaves no other
    choice): the two runs would train the same student from the same seed (the search leaves
    the training's random state as it found it), so it is not trained twice. None when the bits
    differ or the sensitivity run is not there."""
    if mixed_entry is None:
        return None
    plan = mixed_entry["report"]["student"]["mixed"]
    bits = mixed.random_bits(mixed.kernel_sizes(tfdfc_teacher.load(teacher_path)),
                             set(plan["packed"]), plan["budget_bytes"], seed, avoid=plan["bits"])
    if bits != plan["bits"]:
        return None
    report = copy.deepcopy(mixed_entry["report"])
    report["student"]["mixed"].update(assignment="random", same_as_sensitivity=True)
    report["same_bits_as"] = "mixed"
    return report


def zoo_report(teacher, name, seed, settings):
    """bench/zoo.py's report of the same uniform run (a zoo teacher, int8 or w4a8, its recipe,
    one device, same split), with the kernel bytes its int8 file holds; None if that run has
    not been made (then this bench makes it)."""
    if (not TEACHERS[teacher][0].startswith("exported/bench/zoo/")
            or name not in ("int8", "w4a8") or settings["tiny"] or settings["steps"]):
        return None
    out_dir = os.path.join("exported/bench/zoo/runs", settings["split"], teacher,
                           f"{name}_{recipes.RECIPES['qat'].steps}it_seed{seed}")
    report = artifacts.read_json(os.path.join(out_dir, "report.json"))
    if report is None:
        return None
    with open(os.path.join(out_dir, "student_int8.tflite"), "rb") as handle:
        report["tflite"]["int8"]["kernel_bytes"] = metrics.tflite_kernel_bytes(handle.read())
    report["from"] = out_dir
    return report


def summarise(entries):
    """Means over seeds of one point's reports."""
    reports = [entry["report"] for entry in entries]
    int8 = [report["tflite"]["int8"] for report in reports]
    plan = reports[0]["student"].get("mixed")
    return {"seeds": len(reports), "teacher": reports[0]["teacher"]["accuracy"],
            "tflite": [entry["accuracy"] for entry in int8],
            "tflite_mean": statistics.mean(entry["accuracy"] for entry in int8),
            "keras_gap": max(abs(report["student"]["accuracy"] - entry["accuracy"])
                             for report, entry in zip(reports, int8)),
            "bytes": statistics.mean(entry["kernel_bytes"] for entry in int8),
            "budget_bytes": plan["budget_bytes"] if plan else None,
            "int8_bytes": plan["int8_bytes"] if plan else None,
            "fullest_bytes": _fullest_bytes(plan, entries[0]["teacher"]),
            "fours": (sum(bits == 4 for bits in plan["bits"].values()), len(plan["bits"]))
            if plan else None,
            "bits": {entry["seed"]: (entry["report"]["student"].get("mixed") or {}).get("bits")
                     for entry in entries},
            "no_training": statistics.mean(
                (report["baselines"]["no_training"] or {}).get("accuracy", float("nan"))
                for report in reports),
            "minutes": sum(report["train"]["seconds"] for report in reports) / 60}


def _fullest_bytes(plan, teacher):
    """The most kernel bytes any assignment holds within the plan's budget: the plan's own
    figure, or for a run made before plans carried it, worked out again from the teacher's
    kernel sizes (its file, if present; None otherwise)."""
    if not plan:
        return None
    if "fullest_bytes" in plan:
        return plan["fullest_bytes"]
    path = TEACHERS.get(teacher, (None,))[0]
    if path is None or not os.path.exists(path):
        return None
    return mixed.fullest_bytes(mixed.kernel_sizes(tfdfc_teacher.load(path)),
                               set(plan["packed"]), plan["budget_bytes"])


def _same_bits_seeds(sensitivity, control):
    """The seeds at which the random control's bits are the sensitivity assignment's."""
    if sensitivity is None or control is None:
        return []
    return [seed for seed, bits in control["bits"].items()
            if bits is not None and bits == sensitivity["bits"].get(seed)]


def _order(name):
    """Uniform int8, uniform w4a8, then by budget, mixed before its random control."""
    if "@" not in name:
        return (0, name != "int8", 0.0)
    kind, budget = name.split("@")
    return (1, float(budget), kind != "mixed")


def _line(summaries, size):
    """Accuracy on the straight line from uniform w4a8 to int8 at `size` kernel bytes."""
    low, high = summaries.get("w4a8"), summaries.get("int8")
    if low is None or high is None or high["bytes"] == low["bytes"]:
        return None
    share = (size - low["bytes"]) / (high["bytes"] - low["bytes"])
    return low["tflite_mean"] + share * (high["tflite_mean"] - low["tflite_mean"])


HEADER = ["| point | seeds | kernel bytes | of int8 | 4-bit layers | TFLite int8 (mean ± sd) | "
          "no training | line w4a8-int8 | Δ vs line (pt) | train min (all seeds) |",
          "|---|---|---|---|---|---|---|---|---|---|"]


def teacher_section(teacher, entries):
    images = entries[0]["eval_images"]
    names = sorted({entry["point"] for entry in entries}, key=_order)
    summaries = {name: summarise([e for e in entries if e["point"] == name]) for name in names}
    int8_bytes = next((s["int8_bytes"] for s in summaries.values() if s["int8_bytes"]), None)
    lines, verdicts = [f"### {teacher}", ""] + HEADER, common.Verdicts()
    first = next(iter(summaries.values()))
    for name, s in summaries.items():
        line = _line(summaries, s["bytes"]) if name.startswith(("mixed", "random")) else None
        fours = f"{s['fours'][0]} of {s['fours'][1]}" if s["fours"] else "—"
        share = f"{s['bytes'] / int8_bytes:.3f}" if int8_bytes else "—"
        lines.append("| " + " | ".join([
            name, str(s["seeds"]), f"{s['bytes']:,.0f}", share, fours,
            common.mean_std(s["tflite"]), f"{s['no_training']:.4f}",
            "—" if line is None else f"{line:.4f}",
            "—" if line is None else f"{common.points(s['tflite_mean'], line):+.2f}",
            f"{s['minutes']:.1f}"]) + " |")
        _verdicts(teacher, name, s, summaries, line, verdicts, images)
    for name, s in summaries.items():
        same = (_same_bits_seeds(summaries.get(name.replace("random", "mixed")), s)
                if name.startswith("random") else [])
        if same:
            lines += ["", f"{name}: at seed(s) {', '.join(map(str, same))} the random draw gave "
                      "the sensitivity assignment's bits, so it is the same student as the "
                      "sensitivity point's."]
    lines += _teachers_apart(summaries)
    lines += ["", f"Teacher {first['teacher']:.4f}. Targets (set {TARGETS_SET}):", ""]
    return lines + (verdicts.lines or ["- none measured"]) + [""], summaries


def _teachers_apart(summaries):
    """A line naming which points were made on which teacher, where they were not all made on
    one (a teacher file lost and trained again gives other weights): the line, the random
    control and the int8 comparison then mix teachers, and the reader has to know."""
    by_teacher = {}
    for name, s in summaries.items():
        by_teacher.setdefault(f"{s['teacher']:.4f}", []).append(name)
    if len(by_teacher) < 2:
        return []
    return ["", "Made on different teachers (the file was trained again in between), so "
            "comparisons across them mix teachers: " + "; ".join(
                f"{', '.join(names)} on a teacher at {accuracy}"
                for accuracy, names in by_teacher.items()) + "."]


def _verdicts(teacher, name, s, summaries, line, verdicts, images):
    noise = round(common.noise_points(s["tflite_mean"], images), 2)
    label = f"{teacher} {name}"
    seeds = common.seeds_label(s["seeds"])
    if s["budget_bytes"]:
        fullest, unreachable = s["fullest_bytes"], None
        if fullest is not None and abs(fullest / s["budget_bytes"] - 1) > BUDGET_TOLERANCE:
            unreachable = (f"no assignment can meet it: the fullest of 4 or 8 bits per layer "
                           f"within the budget holds {fullest:,} bytes, "
                           f"{fullest / s['budget_bytes'] - 1:+.1%}")
        verdicts.check(f"{label}: |kernel bytes in the file / budget - 1|",
                       round(abs(s["bytes"] / s["budget_bytes"] - 1), 4), BUDGET_TOLERANCE,
                       False, why_missed=unreachable)
        verdicts.check(f"{label}: |Keras - TFLite| (worst seed, pt)",
                       round(100 * s["keras_gap"], 4), KERAS_TFLITE_POINTS, False)
    if not name.startswith("mixed"):
        return
    if line is not None:
        verdicts.beats(f"{label}: above the w4a8-int8 line ({seeds}, pt)",
                       common.points(s["tflite_mean"], line), noise)
    control = summaries.get(name.replace("mixed", "random"))
    if control and len(_same_bits_seeds(s, control)) == control["seeds"]:
        verdicts.lines.append(f"- {label}: above random at the same budget — not tested: every "
                              "random draw gave the sensitivity assignment's bits")
    elif control:
        verdicts.beats(f"{label}: above random at the same budget ({seeds}, pt)",
                       common.points(s["tflite_mean"], control["tflite_mean"]), noise)
    if name == f"mixed@{NEAR_INT8_BUDGET:g}" and "int8" in summaries:
        verdicts.check(f"{label}: vs data-free int8 ({seeds}, pt)", common.points(
            s["tflite_mean"], summaries["int8"]["tflite_mean"]), NEAR_INT8_POINTS, True,
            noise=noise)


def front_figure(summaries, path):
    """The size-accuracy front of one teacher: uniform ends, mixed and random points."""
    series = {}
    for name, s in sorted(summaries.items(), key=lambda item: item[1]["bytes"]):
        kind = name.split("@")[0] if "@" in name else "uniform"
        series.setdefault(kind, []).append((s["bytes"], s["tflite_mean"]))
    figures.write_series(series, path, "kernel bytes in the TFLite file", "TFLite int8 accuracy")


def render(results, results_path):
    commands = sorted({entry["command"] for entry in results["runs"].values()})
    lines = ["# Data-free mixed precision", "",
             f"Evaluation split: **{results['split']}**. Commands:", ""]
    lines += [f"- `{command}`" for command in commands] + [
        "", "Every point trained data-free with the `qat` recipe; kernel bytes are the conv and "
        "dense kernels as the TFLite int8 file stores them (INT4 packed two per byte). mixed@b: "
        "bits by sensitivity under b of the int8 kernel bytes; random@b: the random control at "
        "the same budget. No training: the same file's assignment, untrained, calibrated on "
        f"noise. Noise: {common.NOISE_SE} binomial standard errors of the split.", ""]
    for teacher in TEACHERS:
        entries = [e for e in results["runs"].values() if e["teacher"] == teacher]
        if not entries:
            continue
        section, summaries = teacher_section(teacher, entries)
        picture = f"{os.path.splitext(results_path)[0]}_{teacher}.png"
        front_figure(summaries, picture)
        lines += section + [f"![{teacher}: accuracy against kernel bytes]"
                            f"({os.path.basename(picture)})", ""]
    return lines


def main(argv):
    del argv
    results_path = common.tiny_path(_FLAGS, _FLAGS.results, TINY_DIR)
    json_path = os.path.splitext(results_path)[0] + ".json"
    if _RENDER_ONLY.value:
        previous = artifacts.read_json(json_path)
        if previous is None:
            raise app.UsageError(f"--render_only: no results in {json_path}")
        common.write_results(results_path, render(previous, results_path), previous)
        return
    tiny = _FLAGS.tiny.value
    teachers = ["mnist5k"] if tiny and not _TEACHERS.present else _TEACHERS.value
    for name in teachers:
        if name not in TEACHERS:
            raise app.UsageError(f"--teachers: unknown {name!r} (use {', '.join(TEACHERS)})")
    settings = {"tiny": tiny, "out_dir": common.tiny_path(_FLAGS, _FLAGS.out_dir, TINY_DIR),
                "teachers": teachers, "split": _SPLIT.value, "steps": _FLAGS.steps.value,
                "kinds": _KINDS.value,
                "budgets": [float(b) for b in (["0.7"] if tiny and not _BUDGETS.present
                                               else _BUDGETS.value)],
                "seeds": [int(s) for s in (["0"] if tiny and not _SEEDS.present
                                           else _SEEDS.value)]}
    settings["command"] = ("python bench/mixed.py --tiny" if tiny else
                           f"python bench/mixed.py --teachers={','.join(teachers)} "
                           f"--budgets={','.join(f'{b:g}' for b in settings['budgets'])} "
                           f"--seeds={','.join(map(str, settings['seeds']))} "
                           f"--kinds={','.join(settings['kinds'])} "
                           f"--split={settings['split']}"
                           + (f" --steps={settings['steps']}" if settings["steps"] else ""))
    key = (settings["split"], tiny)

    def save(runs):
        results = {"split": key[0], "tiny": key[1], "runs": {}}
        on_disk = artifacts.read_json(json_path)
        if on_disk and (on_disk.get("split"), on_disk.get("tiny")) == key:
            results["runs"] = on_disk["runs"]
        results["runs"].update(runs)
        common.write_results(results_path, render(results, results_path), results)

    run_all(settings, save)


if __name__ == "__main__":
    app.run(main)
