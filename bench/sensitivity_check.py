"""Does the data-free layer sensitivity of `--quantize=mixed` rank layers as real images do?

For one teacher and budget, each layer TFLite packs at 4 bits gets three scores: the sensitivity
the mixed run measures without data (KL growth on a searched generator's images,
tfdfc/sensitivity.py), the same KL growth on real images of the evaluation split, and the
accuracy it loses there. The table gives their rank correlations and then the real accuracy
of assignments under the budget: the one the data-free scores choose, the one the real-image
scores would choose, and random draws in the same band. Weights only: a float copy of the
teacher with its kernels on the 4- or 8-bit grid and float activations, the part of the
student the assignment decides. No student is trained; the evaluation data never reaches the
data-free scores.

Example: `python bench/sensitivity_check.py --teacher=exported/teachers/wrn16_1_fashion.keras
--eval_data=fashion_mnist@val --budget=0.65 --seed=0`
"""

import os
import statistics

import numpy as np
from absl import app, flags

import common
from tfdfc import api, data, input_space, metrics, sensitivity
from tfdfc import teacher as tfdfc_teacher
from tfdfc.compression import mixed
from tfdfc.keras_compat import keras
from tfdfc.methods.mixed_precision import packed_layers

TINY_DIR = "exported/bench/sensitivity_check_tiny"
KL_IMAGES = sensitivity.IMAGES  # real images the KL scores use, as many as the generated ones

_FLAGS = common.define_flags("sensitivity_check", steps=0)
# A diagnostic run by hand, not one of make bench's tables: its output stays out of bench/.
flags.FLAGS.set_default("results", "exported/bench/sensitivity_check/RESULTS.md")
_TEACHER = flags.DEFINE_string("teacher", common.DEMO_TEACHER, "Teacher .keras file.")
_EVAL_DATA = flags.DEFINE_string("eval_data", "mnist5k@val", "Real images to score on (a "
                                 "tfdfc data spec; @val for tuning, as everywhere).")
_BUDGET = flags.DEFINE_float("budget", 0.65, "Budget, a fraction of the int8 kernel bytes.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the generator search and of the draws.")
_DRAWS = flags.DEFINE_integer("random_draws", 20, "Random assignments drawn in the band.",
                              lower_bound=1)


def rank_correlation(first, second):
    """Spearman's rank correlation of two equally long sequences (average ranks for ties)."""
    def ranks(values):
        values = np.asarray(values, dtype=float)
        order = np.argsort(values, kind="stable")
        result = np.empty(len(values))
        result[order] = np.arange(len(values), dtype=float)
        for value in np.unique(values):  # ties share their mean rank
            result[values == value] = result[values == value].mean()
        return result
    a, b = ranks(first), ranks(second)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def real_scores(copy, teacher, sizes, packed, images, labels):
    """{layer: (KL growth, accuracy drop)} on real images, and the all-8-bit copy's accuracy."""
    kl_images = images[:KL_IMAGES]
    growth, _ = sensitivity.kl_growth(copy, metrics.keras_logits(teacher, kl_images), kl_images,
                                      sizes, packed)
    eight = dict.fromkeys(sizes, 8)
    copy.set_bits(eight)
    base_accuracy = metrics.keras_accuracy(copy.model, images, labels)
    scores = {}
    for name in growth:
        copy.set_bits(dict(eight, **{name: 4}))
        scores[name] = (growth[name], base_accuracy - metrics.keras_accuracy(copy.model, images,
                                                                             labels))
    return scores, base_accuracy


def main(argv):
    del argv
    tiny = _FLAGS.tiny.value
    out_dir = common.tiny_path(_FLAGS, _FLAGS.out_dir, TINY_DIR)
    results_path = common.tiny_path(_FLAGS, _FLAGS.results, TINY_DIR)
    teacher_path = (common.ensure_teacher(True, out_dir) if tiny and not _TEACHER.present
                    else _TEACHER.value)
    eval_data = "digits@val" if tiny and not _EVAL_DATA.present else _EVAL_DATA.value
    seed, budget = _SEED.value, _BUDGET.value
    settings = dict(quantize="mixed", mixed_budget=budget, seed=seed, eval_data=eval_data)
    if tiny:
        settings.update(mixed_search_steps=2, generator_channels=8, batch_size=16)
    config = api.config_for(teacher_path, os.path.join(out_dir, "unused"), **settings)
    teacher = tfdfc_teacher.as_logits(tfdfc_teacher.load(teacher_path))
    images, labels = data.load(eval_data).split("test")  # @val puts validation here

    keras.utils.set_random_seed(seed)  # as the mixed run's plan: the same search
    sizes = mixed.kernel_sizes(teacher)
    space = input_space.for_teacher(config.input_range, teacher)
    packed = packed_layers(teacher, sizes, seed, space)
    limit = mixed.budget_bytes(budget, sizes)
    free, _ = sensitivity.measure(teacher, sizes, packed, config, space)
    copy = sensitivity.GridCopy(teacher, list(sizes))
    real, eight_accuracy = real_scores(copy, teacher, sizes, packed, images, labels)

    names = [name for name in sizes if name in packed]
    correlations = {
        "real KL growth": rank_correlation([free[n] for n in names], [real[n][0] for n in names]),
        "real accuracy drop": rank_correlation([free[n] for n in names],
                                               [real[n][1] for n in names])}
    assignments = {"data-free sensitivity": mixed.solve(sizes, packed, free, limit),
                   "real-image KL sensitivity": mixed.solve(
                       sizes, packed, {n: real[n][0] for n in names}, limit)}
    draws = []
    for draw in range(_DRAWS.value):
        bits = mixed.random_bits(sizes, packed, limit, seed * 1000 + draw)
        if bits not in draws:
            draws.append(bits)
    assignments.update({f"random draw {index}": bits for index, bits in enumerate(draws)})
    accuracy = {}
    for label, bits in assignments.items():
        copy.set_bits(bits)
        accuracy[label] = metrics.keras_accuracy(copy.model, images, labels)

    random_accuracies = [accuracy[f"random draw {index}"] for index in range(len(draws))]
    chosen = accuracy["data-free sensitivity"]
    below = sum(value < chosen for value in random_accuracies)
    level = sum(value == chosen for value in random_accuracies)
    command = ("python bench/sensitivity_check.py --tiny" if tiny else
               f"python bench/sensitivity_check.py --teacher={teacher_path} "
               f"--eval_data={eval_data} --budget={budget:g} --seed={seed} "
               f"--random_draws={_DRAWS.value}")
    lines = ["# Data-free layer sensitivity against real images", "",
             f"Command: `{command}`", "",
             f"Teacher {teacher_path}; {len(labels):,} real images ({eval_data}); the float copy "
             f"with every kernel on the 8-bit grid: {eight_accuracy:.4f}. KL scores on "
             f"{min(KL_IMAGES, len(labels))} images; weights only (activations float). Budget "
             f"{budget:g} of {mixed.int8_bytes(sizes):,} int8 kernel bytes = {limit:,}.", "",
             "| layer | kernel weights | data-free KL growth | real KL growth | real accuracy "
             "drop (pt) |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {sizes[n]:,} | {free[n]:.2e} | {real[n][0]:.2e} | "
              f"{100 * real[n][1]:+.2f} |" for n in names]
    lines += ["", "Rank correlation (Spearman) of the data-free scores with: " + "; ".join(
        f"{what} {value:+.2f}" for what, value in correlations.items()) + ".", "",
              "| assignment | 4-bit layers | kernel bytes | of budget | real accuracy |",
              "|---|---|---|---|---|"]
    for label, bits in assignments.items():
        size = mixed.weight_bytes(sizes, bits)
        lines.append(f"| {label} | {sum(b == 4 for b in bits.values())} of {len(names)} | "
                     f"{size:,} | {size / limit:.3f} | {accuracy[label]:.4f} |")
    spread = (statistics.stdev(random_accuracies) if len(random_accuracies) > 1 else 0.0)
    lines += ["", f"Random draws ({len(draws)} distinct): {statistics.mean(random_accuracies):.4f}"
              f" ± {spread:.4f}; the data-free assignment is above {below} of them, level with "
              f"{level}, below {len(draws) - below - level}.", ""]
    common.write_results(results_path, lines, {
        "command": command, "teacher": teacher_path, "eval_data": eval_data, "budget": budget,
        "seed": seed, "eight_bit_accuracy": eight_accuracy, "sizes": sizes,
        "data_free": free, "real": {n: {"kl": real[n][0], "accuracy_drop": real[n][1]}
                                    for n in names},
        "correlations": correlations, "accuracy": accuracy,
        "bits": {label: bits for label, bits in assignments.items()}})


if __name__ == "__main__":
    app.run(main)
