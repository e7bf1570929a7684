"""Benchmark of data-free quantization on mnist5k: int8, binary, w4a8, w4a4 against the teacher,
the no-training baseline and the with-data baseline at equal student steps. Writes Markdown.

    python bench/quantization.py                  # about 25 min on 2 cores
    python bench/quantization.py --tiny           # seconds, on digits (used by the tests)
"""

import json
import os

from absl import app, flags

from tfdfc import artifacts, pipeline, teacher
from tfdfc.train import TrainConfig

_TINY = flags.DEFINE_bool("tiny", False, "Seconds-long run on digits, for tests.")
_OUT_DIR = flags.DEFINE_string("out_dir", "exported/bench/quantization", "Work directory.")
_RESULTS = flags.DEFINE_string("results", "bench/RESULTS_quantization.md", "Markdown output.")
_STEPS = flags.DEFINE_integer("steps", 1500, "Data-free iterations per scheme.")
_SCHEMES = flags.DEFINE_list("schemes", ["int8", "binary", "w4a8", "w4a4"], "Schemes to run.")


def ensure_teacher(tiny, out_dir):
    """The mnist5k LeNet-5 teacher of the demo (trained if absent), or a tiny digits one."""
    path = ("exported/teachers/lenet5_mnist5k.keras" if not tiny
            else os.path.join(out_dir, "digits_teacher.keras"))
    if not os.path.exists(path):
        teacher.train(teacher.TeacherConfig(
            data="digits" if tiny else "mnist5k", architecture="lenet5-x0.5" if tiny else "lenet5",
            epochs=2 if tiny else 30, shift_augment=0 if tiny else 2, output=path))
    return path


def run_scheme(scheme, teacher_path, tiny, out_dir, steps):
    """One data-free run of `scheme` with its baselines; returns report.json's content."""
    train = TrainConfig(steps=2 if tiny else steps, batch_size=16 if tiny else 128,
                        student_steps=2 if tiny else 10, log_every=1 if tiny else 250,
                        eval_every=2 if tiny else steps, checkpoint_every=2 if tiny else steps)
    config = pipeline.CompressConfig(
        teacher=teacher_path, out_dir=os.path.join(out_dir, scheme), quantize=scheme,
        eval_data="digits" if tiny else "mnist5k", generator_channels=8 if tiny else 32,
        train=train)
    return pipeline.run(config)


def _points(value, reference):
    return None if value is None or reference is None else 100 * (value - reference)


def row(scheme, result):
    """One Markdown table row of a run's figures."""
    tflite = result["tflite"].get("int8") or result["tflite"].get("float")
    base = result["baselines"]
    accuracies = [result["teacher"]["accuracy"], result["student"]["accuracy"],
                  tflite["accuracy"], (base["no_training"] or {}).get("accuracy"),
                  (base["with_data"] or {}).get("accuracy")]
    sizes = [tflite["bytes"], tflite["gzip_bytes"], result["tflite"]["float"]["bytes"]]
    cells = ([scheme] + ["n/a" if a is None else f"{a:.4f}" for a in accuracies]
             + [f"{size:,}" for size in sizes] + [f"{result['train']['seconds']:.0f}"])
    return "| " + " | ".join(cells) + " |"


def verdicts(results):
    """The issue's targets, each with the measured value and met / MISSED."""
    lines = []

    def check(name, value, limit, higher_is_better):
        if value is None:
            lines.append(f"- {name}: not measured")
            return
        met = value >= limit if higher_is_better else value <= limit
        lines.append(f"- {name}: {value:+.2f} (target {'>=' if higher_is_better else '<='} "
                     f"{limit:+g}) — {'met' if met else 'MISSED'}")

    if "int8" in results:
        r = results["int8"]
        check("int8 TFLite vs float teacher (pt)",
              _points(r["tflite"]["int8"]["accuracy"], r["teacher"]["accuracy"]), -0.3, True)
        check("int8 file / float file", r["tflite"]["int8"]["bytes"] / r["tflite"]["float"]["bytes"],
              0.3, False)
        check("|Keras QAT - TFLite int8| (pt)", abs(_points(r["tflite"]["int8"]["accuracy"],
                                                           r["student"]["accuracy"])), 0.2, False)
    if "binary" in results:
        r = results["binary"]
        check("binary vs teacher (pt)", _points(r["student"]["accuracy"], r["teacher"]["accuracy"]),
              -2.0, True)
        check("binary vs sign-only, no training (pt)", _points(
            r["student"]["accuracy"], (r["baselines"]["no_training"] or {}).get("accuracy")),
            20.0, True)
    if "w4a4" in results:
        r = results["w4a4"]
        check("w4a4 (Keras QAT) vs teacher (pt)",
              _points(r["student"]["accuracy"], r["teacher"]["accuracy"]), -1.5, True)
    for scheme, r in results.items():
        check(f"{scheme}: data-free vs with-data at equal student steps (pt)", _points(
            r["student"]["accuracy"], (r["baselines"]["with_data"] or {}).get("accuracy")),
            -0.5, True)
    return lines


def main(argv):
    del argv
    teacher_path = ensure_teacher(_TINY.value, _OUT_DIR.value)
    results = {scheme: run_scheme(scheme, teacher_path, _TINY.value, _OUT_DIR.value, _STEPS.value)
               for scheme in _SCHEMES.value}
    command = "python bench/quantization.py" + (" --tiny" if _TINY.value else
                                                f" --steps={_STEPS.value}")
    steps = next(iter(results.values()))["train"]["steps"]
    lines = ["# Data-free quantization", "", f"Command: `{command}` (seed 0, {steps} iterations "
             "of 1 generator + student steps; the with-data baseline takes the same student "
             "steps on real training images). Accuracies on the held-out test split.", "",
             "| scheme | teacher | data-free (Keras) | TFLite (int8, else float) | no training | "
             "with data | TFLite bytes | gzip bytes | float TFLite bytes | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [row(scheme, result) for scheme, result in results.items()]
    lines += ["", "Targets:", ""] + verdicts(results)
    artifacts.write_text(_RESULTS.value, "\n".join(lines) + "\n")
    artifacts.write_json(os.path.splitext(_RESULTS.value)[0] + ".json", results)
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
