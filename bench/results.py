"""Gathers the benchmark tables (bench/RESULTS_<name>.md) into one RESULTS.md, in reading order,
with the commands that regenerate them. `make bench` runs every benchmark and then this.

    python bench/results.py [--input_dir=bench] [--output=RESULTS.md]
        [--times=exported/bench/times.txt]
"""

import importlib.metadata
import os
import platform
import re
import subprocess
import time

from absl import app, flags

from tfdfc import artifacts

ORDER = ("first_path", "quantization", "binary", "binary_delta", "pruning", "slimming", "ticket",
         "zoo", "fashion", "mixed", "speed")
_INPUT_DIR = flags.DEFINE_string("input_dir", "bench", "Where the RESULTS_<name>.md files are.")
_OUTPUT = flags.DEFINE_string("output", "RESULTS.md", "The combined file.")
_TIMES = flags.DEFINE_string("times", None, "`make bench`'s time log: lines of `<lane> <script> "
                             "<seconds>`, the last `alone speed+all <seconds>`.")


def time_lines(path):
    """RESULTS.md's account of how long `make bench` took, from its time log."""
    lanes, total = {}, None
    with open(path, encoding="utf-8") as handle:
        for lane, script, seconds in (line.split() for line in handle if line.strip()):
            if script == "speed+all":
                total = int(seconds)
            else:
                lanes.setdefault(lane, []).append((script, int(seconds)))
    parts = [f"{lane} ({sum(s for _, s in runs) / 60:.0f} min: "
             + ", ".join(f"{script} {seconds / 60:.1f}" for script, seconds in runs) + ")"
             for lane, runs in sorted(lanes.items())]
    head = (f"`make bench` took {total / 60:.0f} min" if total is not None
            else "`make bench` did not finish")
    return [f"{head}: two one-thread lanes side by side, {'; '.join(parts)}, then speed alone.",
            ""]


def stamp():
    """The commit (with `-dirty` if the tree has changes) and the versions the figures come
    from."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    versions = ", ".join(f"{name} {importlib.metadata.version(package)}" for name, package in (
        ("TensorFlow", "tensorflow"), ("TF-MOT", "tensorflow-model-optimization"),
        ("LiteRT", "ai-edge-litert")))
    return f"commit {commit}; {versions}"


# How the `make bench` time paragraph starts: `time_lines`' two forms, and an older one.
_TIME_PARAGRAPHS = ("`make bench` took", "`make bench` did not finish",
                    "The last whole `make bench`")


def previous_times(path):
    """The `make bench` time paragraph of an earlier RESULTS.md at `path` (kept when no time
    log is given), or []."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        kept = [line for line in handle.read().split("\n\n")
                if line.startswith(_TIME_PARAGRAPHS)]
    return [kept[0], ""] if kept else []


def section(name, text, folder=""):
    """One benchmark's table with its headings moved one level down, and its pictures' links
    (written beside the table) made relative to the combined file: `folder` is the tables'
    directory seen from there."""
    lines = [("#" + line) if line.startswith("#") else line for line in text.splitlines()]
    text = "\n".join(lines + [""])
    if not folder:
        return text
    return re.sub(r"\]\((RESULTS_[^)/]+\.png)\)",
                  lambda match: f"]({os.path.join(folder, match.group(1))})", text)


def main(argv):
    del argv
    found = [(name, os.path.join(_INPUT_DIR.value, f"RESULTS_{name}.md")) for name in ORDER]
    present = [(name, path) for name, path in found if os.path.exists(path)]
    missing = [name for name, path in found if not os.path.exists(path)]
    parts = ["# tfdfc benchmark results", "",
             f"Gathered {time.strftime('%Y-%m-%d')} by `python bench/results.py` on "
             f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()} "
             f"({stamp()}). "
             "Each section names the command that made it (`make bench` runs them all); "
             "accuracies are fractions on the held-out test split of mnist5k (1,000 real MNIST "
             "digits never seen in data-free training), except the zoo's and the Fashion-MNIST "
             "experiments': Fashion-MNIST, on the split each section names. The tables of a "
             "section may come from earlier commits: each names the command that made it.", ""]
    if _TIMES.value and os.path.exists(_TIMES.value):
        parts += time_lines(_TIMES.value)
    else:
        parts += previous_times(_OUTPUT.value)
    if missing:
        parts += [f"Not yet run: {', '.join(missing)}.", ""]
    for name, path in present:
        with open(path, encoding="utf-8") as handle:
            parts.append(section(name, handle.read(), os.path.relpath(
                _INPUT_DIR.value, os.path.dirname(os.path.abspath(_OUTPUT.value)))))
    artifacts.write_text(_OUTPUT.value, "\n".join(parts))
    print(f"wrote {_OUTPUT.value} from {len(present)} benchmark(s)")


if __name__ == "__main__":
    app.run(main)
