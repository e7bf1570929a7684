"""Benchmark of the first end-to-end path on mnist5k: teacher accuracy and training time, then the
demo (`python -m tfdfc.compress --flagfile=flags/demo.cfg`, a data-free full-precision student:
accuracy, time, TFLite parity). Writes a Markdown table.

    python bench/first_path.py                 # several minutes in a one-thread lane
    python bench/first_path.py --tiny          # seconds, on digits (used by the tests)
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

from tfdfc import artifacts, teacher

_TINY = flags.DEFINE_bool("tiny", False, "Seconds-long run on digits, for tests.")
_OUT_DIR = flags.DEFINE_string("out_dir", "exported/bench/first_path", "Work directory.")
_RESULTS = flags.DEFINE_string("results", "bench/RESULTS_first_path.md", "Markdown output.")
_STEPS = flags.DEFINE_integer("steps", 0, "Data-free iterations; 0 keeps the demo's.")

DEMO_FLAGFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "flags",
                             "demo.cfg")
TINY_FLAGS = ["--eval_data=digits", "--steps=2", "--batch_size=16", "--student_steps=2",
              "--generator_channels=8", "--log_every=1", "--eval_every=2", "--checkpoint_every=2"]

TARGETS = {"teacher_accuracy": 0.98, "teacher_seconds": 300, "student_accuracy": 0.97,
           "student_seconds": 600}


def measure(tiny, out_dir, steps):
    """Trains the teacher and the data-free student; returns the measured figures."""
    data_name = "digits" if tiny else "mnist5k"
    teacher_config = teacher.TeacherConfig(
        data=data_name, architecture="lenet5-x0.5" if tiny else "lenet5", epochs=2 if tiny else 30,
        shift_augment=0 if tiny else 2, output=os.path.join(out_dir, "teacher.keras"))
    started = time.time()
    _, teacher_accuracy = teacher.train(teacher_config)
    teacher_seconds = time.time() - started
    run_dir = os.path.join(out_dir, "student")
    if os.path.isdir(run_dir):
        raise SystemExit(f"{run_dir} exists: remove it for a fresh measurement")
    command = [sys.executable, "-m", "tfdfc.compress", f"--flagfile={DEMO_FLAGFILE}",
               f"--teacher={teacher_config.output}", f"--out_dir={run_dir}"]
    command += TINY_FLAGS if tiny else ([f"--steps={steps}"] if steps else [])
    started = time.time()
    subprocess.run(command, check=True)
    student_seconds = time.time() - started
    with open(os.path.join(run_dir, "report.json"), encoding="utf-8") as file:
        report = json.load(file)
    return {"data": data_name, "teacher_accuracy": teacher_accuracy,
            "teacher_seconds": teacher_seconds, "student_accuracy": report["student"]["accuracy"],
            "student_seconds": student_seconds, "steps": report["train"]["steps"],
            "batch_size": report["train"]["batch_size"],
            "train_seconds": report["train"]["seconds"],
            "tflite_accuracy": report["tflite"]["float"]["accuracy"],
            "tflite_max_abs_diff": report["tflite"]["float"]["max_abs_diff_vs_keras"]}


def markdown(figures, command):
    """The results table, each target marked met or missed."""
    def verdict(key, higher_is_better):
        value, target = figures[key], TARGETS[key]
        met = value >= target if higher_is_better else value <= target
        return "met" if met else f"MISSED by {abs(value - target):.3g}"

    rows = [
        ("teacher test accuracy", f"{figures['teacher_accuracy']:.4f}", ">= 0.98",
         verdict("teacher_accuracy", True)),
        ("teacher training time (s)", f"{figures['teacher_seconds']:.0f}", "<= 300",
         verdict("teacher_seconds", False)),
        ("data-free student accuracy", f"{figures['student_accuracy']:.4f}", ">= 0.97",
         verdict("student_accuracy", True)),
        ("data-free run time incl. start-up and export (s)",
         f"{figures['student_seconds']:.0f}", "<= 600", verdict("student_seconds", False)),
        ("TFLite float accuracy", f"{figures['tflite_accuracy']:.4f}", "= Keras",
         "met" if figures["tflite_accuracy"] == figures["student_accuracy"] else "MISSED"),
    ]
    lines = [f"# First path on {figures['data']}", "", f"Command: `{command}`", "",
             "The student is the demo: `python -m tfdfc.compress --flagfile=flags/demo.cfg` "
             "with this teacher. "
             f"{figures['steps']} data-free iterations (1 generator + 10 student steps each), "
             f"batch {figures['batch_size']}, training loop {figures['train_seconds']:.0f} s; "
             f"max |TFLite - Keras| logit difference {figures['tflite_max_abs_diff']:.2g}.", "",
             "| measure | value | target | verdict |", "|---|---|---|---|"]
    lines += [f"| {name} | {value} | {target} | {verdict_} |" for name, value, target, verdict_
              in rows]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    figures = measure(_TINY.value, _OUT_DIR.value, _STEPS.value)
    command = "python bench/first_path.py" + (" --tiny" if _TINY.value else (
        f" --steps={_STEPS.value}" if _STEPS.value else ""))
    artifacts.write_text(_RESULTS.value, markdown(figures, command))
    print(markdown(figures, command))


if __name__ == "__main__":
    app.run(main)
