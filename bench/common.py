"""What the benchmark scripts share: the teacher, one data-free run, and target verdicts."""

import os
import statistics
import types

from absl import flags

from tfdfc import artifacts, data, metrics, pipeline, teacher
from tfdfc.train import TrainConfig

DEMO_TEACHER = "exported/teachers/lenet5_mnist5k.keras"


def ensure_teacher(tiny, out_dir):
    """The demo's mnist5k LeNet-5 teacher (trained if absent), or a tiny digits one."""
    path = DEMO_TEACHER if not tiny else os.path.join(out_dir, "digits_teacher.keras")
    if not os.path.exists(path):
        teacher.train(teacher.TeacherConfig(
            data="digits" if tiny else "mnist5k", architecture="lenet5-x0.5" if tiny else "lenet5",
            epochs=2 if tiny else 30, shift_augment=0 if tiny else 2, output=path))
    return path


def define_split():
    """The --split flag of the benches that can tune: which split of the evaluation set the
    accuracies are on (val for tuning, test to report; targets are judged on test)."""
    return flags.DEFINE_enum("split", "test", ["val", "test"], "Evaluation split: val for "
                             "tuning, test to report.")


def on_split(spec, split):
    """The data spec `spec` with `split` in the test split's place (tfdfc's `@val` suffix)."""
    return spec + data.VAL_SUFFIX if split == "val" else spec


def split_words(split):
    """How a table names the split its accuracies are on."""
    if split == "val":
        return "the validation split (for tuning; targets are judged on the test split)"
    return "the held-out test split"


def run(name, teacher_path, tiny, out_dir, steps, seed=0, divergence="kl",
        student_lr=TrainConfig.student_lr, batch_size=128, resample_latents=False, split="test",
        **overrides):
    """One data-free run (mnist5k, or seconds on digits when tiny); returns its report.

    `seed` is the training seed (generator and fresh student initialisation, latent draws);
    `divergence` the teacher-student discrepancy; `batch_size` the generated images per step;
    `resample_latents` a fresh z per student step; `split` the split accuracies are on ("val"
    or "test"); `overrides` are CompressConfig fields. The generator is --generator_channels
    wide. Tiny runs use one device: the tests run them inside their own process, whose
    MirroredStrategies they must not meet.
    """
    train = TrainConfig(seed=seed, divergence=divergence, student_lr=student_lr,
                        resample_latents=resample_latents,
                        steps=2 if tiny else steps, batch_size=16 if tiny else batch_size,
                        student_steps=2 if tiny else 10, log_every=1 if tiny else 250,
                        eval_every=2 if tiny else steps, checkpoint_every=2 if tiny else steps)
    config = pipeline.CompressConfig(
        teacher=teacher_path, out_dir=os.path.join(out_dir, name),
        eval_data=on_split("digits" if tiny else "mnist5k", split),
        generator_channels=8 if tiny else flags.FLAGS.generator_channels, train=train,
        **({"strategy": "one_device"} if tiny else {}), **overrides)
    return pipeline.run(config)


def points(value, reference):
    """value - reference in percentage points (rounded to 1e-6, so 0.985 - 0.983 compares as
    exactly 0.2), None if either is missing."""
    return None if value is None or reference is None else round(100 * (value - reference), 6)


TARGET_SEEDS = 3  # a target is judged on the mean of this many seeds (bench/TARGETS.md)


def seeds_label(count):
    """`mean of 3 seeds`; with fewer than TARGET_SEEDS the label says the verdict is provisional,
    so that a one-seed tuning table never reads as a judged target."""
    label = f"mean of {count} seeds" if count > 1 else "1 seed"
    if count >= TARGET_SEEDS:
        return label
    return f"{label}; provisional, targets need {TARGET_SEEDS}"


NOISE_SE = 2  # binomial standard errors of an evaluation split under which a difference is noise


def noise_points(accuracy, images, standard_errors=NOISE_SE):
    """`standard_errors` binomial standard errors of `accuracy` measured on `images` images, in
    points: a difference of two accuracies on that split smaller than this is noise."""
    return round(100 * metrics.binomial_noise([accuracy], images, standard_errors), 6)


class Verdicts:
    """Collects `- name: value (target ...) — met / MISSED` lines.

    With `noise` (points, e.g. from `noise_points`), a value closer to its limit than the noise
    says so: the verdict could flip with another draw of the evaluation split. `compare` states
    a difference between two accuracies as higher, lower, or within noise.
    """

    def __init__(self):
        self.lines = []

    def check(self, name, value, limit, higher_is_better, strict=False, noise=None,
              why_missed=None):
        """Adds a verdict line; `strict` asks for > (or <) instead of >= (or <=); `why_missed`,
        words the line ends with (in brackets) when the target is missed. Returns whether the
        target is met (None when not measured)."""
        if value is None:
            self.lines.append(f"- {name}: not measured")
            return None
        if higher_is_better:
            met, sign = (value > limit, ">") if strict else (value >= limit, ">=")
        else:
            met, sign = (value < limit, "<") if strict else (value <= limit, "<=")
        close = noise is not None and abs(value - limit) < noise
        self.lines.append(
            f"- {name}: {value:+.2f} (target {sign} {limit:+g}"
            + ("" if noise is None else f"; noise {noise:.2f}")
            + f") — {'met' if met else 'MISSED'}"
            + (" (within noise of the target)" if close else "")
            + (f" ({why_missed})" if why_missed and not met else ""))
        return met

    def beats(self, name, difference, noise):
        """Adds the verdict of a claim that one thing beats another by `difference` points: met
        only when it exceeds the noise; within noise it is not shown either way (the targets'
        rule: such a difference is neither a gain nor a loss). Returns whether it is met."""
        if difference is None:
            self.lines.append(f"- {name}: not measured")
            return None
        if noise is None:
            word = "not shown (no noise estimate: one seed)"
        else:
            word = ("met" if difference > noise else "MISSED" if difference <= -noise
                    else "not shown (within noise)")
        self.lines.append(f"- {name}: {difference:+.2f} (target > 0 by more than the noise"
                          + ("" if noise is None else f" {noise:.2f}") + f") — {word}")
        return word == "met"

    def compare(self, name, value, reference, noise):
        """Adds `- name: +d pt (noise n) — higher / lower / within noise`, d = value - reference
        in points; returns the word."""
        if value is None or reference is None:
            self.lines.append(f"- {name}: not measured")
            return None
        difference = points(value, reference)
        word = ("within noise" if abs(difference) < noise
                else "higher" if difference > 0 else "lower")
        self.lines.append(f"- {name}: {difference:+.2f} pt (noise {noise:.2f}) — {word}")
        return word


def define_flags(name, steps, generator_channels=16):
    """The flags every benchmark has; returns their holders as attributes.

    The generator is 16 wide by default: on mnist5k it trained binary, QAT and slimming students
    as well as the presets' 32 in less time (bench/NOTES.md). Pruning keeps 32 (see
    bench/pruning.py)."""
    return types.SimpleNamespace(
        tiny=flags.DEFINE_bool("tiny", False, "Seconds-long run on digits, for tests."),
        out_dir=flags.DEFINE_string("out_dir", f"exported/bench/{name}", "Work directory."),
        results=flags.DEFINE_string("results", f"bench/RESULTS_{name}.md", "Markdown output."),
        steps=flags.DEFINE_integer("steps", steps, "Data-free iterations per run."),
        generator_channels=flags.DEFINE_integer(
            "generator_channels", generator_channels,
            "Generator width of every data-free run (tiny runs use 8).", lower_bound=2))


def tiny_path(bench_flags, holder, tiny_dir):
    """The path flag `holder` of a bench defined by `define_flags`; a tiny run left at the
    default goes under `tiny_dir` instead, so that it never touches the real runs or table."""
    if not bench_flags.tiny.value or holder.present:
        return holder.value
    return tiny_dir if holder is bench_flags.out_dir else os.path.join(
        tiny_dir, os.path.basename(holder.value))


def tiny_choice(tiny, holder, tiny_values):
    """The value of list flag `holder`, or `tiny_values[holder.name]` in a tiny run that left
    it unset."""
    return tiny_values[holder.name] if tiny and not holder.present else holder.value


def write_results(path, lines, reports):
    """Writes the Markdown table and, beside it, the raw reports as JSON."""
    artifacts.write_text(path, "\n".join(lines) + "\n")
    artifacts.write_json(os.path.splitext(path)[0] + ".json", reports)
    print("\n".join(lines))


def mean_sd(values):
    """(mean, sample standard deviation) of seeds' values; sd None for one value, both None if
    any value is missing."""
    if not values or any(v is None for v in values):
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def mean_std(values, digits=4):
    """'mean ± sample std' of a list (std n/a for one value, n/a if any value is missing)."""
    mean, sd = mean_sd(values)
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f} ± " + ("n/a" if sd is None else f"{sd:.{digits}f}")


def command_line(script, tiny, steps, split="test"):
    """The command that regenerates a table: `python bench/<script>.py --steps=N
    --generator_channels=C` (or --tiny), with --split=val when the table is on it."""
    tail = " --split=val" if split == "val" else ""
    if tiny:
        return f"python bench/{script}.py --tiny{tail}"
    return (f"python bench/{script}.py --steps={steps} "
            f"--generator_channels={flags.FLAGS.generator_channels}{tail}")
