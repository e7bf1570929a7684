"""Grid search of the binary scale delta, as the paper does, without touching test data.

Each delta trains its own binary student data-free in `<out_dir>/delta_grid/delta_<value>/`.
The winner is the student that agrees most with the teacher (top-1) on a pool of generated
images drawn from *every* candidate's trained generator, so no candidate is judged on its own
(possibly easy) samples. Each row also records the mean KL(teacher || student) on that pool, a
finer data-free measure than top-1 agreement (which a pool of this size resolves to a couple of
points only), so that the two criteria can be compared. Test accuracy is reported for each delta
but never used to choose.
"""

import os

import numpy as np

from tfdfc import losses, metrics, report

POOL_PER_RUN = 256


def run(config, train_one, eval_set, log=print):
    """Trains one binary student per delta with `train_one(out_dir, delta)` (pipeline's, which
    returns (build, loop)); returns (best build, its loop, grid table)."""
    candidates = []
    for delta in config.delta_grid:
        log(f"delta grid: training with delta={delta:g}")
        out_dir = os.path.join(config.out_dir, "delta_grid", f"delta_{delta:g}")
        built, loop = train_one(out_dir, delta)
        candidates.append((delta, built, loop))
    pool = np.concatenate([
        report.generated_images(built.players.generator, POOL_PER_RUN, config.train.latent_dim,
                                config.train.seed + 1) for _, built, _ in candidates])
    teacher_logits = metrics.keras_logits(candidates[0][1].teacher_logits, pool)
    teacher_labels = np.argmax(teacher_logits, -1)
    table = []
    for delta, built, _ in candidates:
        student = built.players.student_model
        student_logits = metrics.keras_logits(student, pool)
        student_labels = np.argmax(student_logits, -1)
        kl = losses.kl_divergence(teacher_logits, student_logits, reduction="batchmean")
        table.append({"delta": delta, "agreement": float(np.mean(student_labels == teacher_labels)),
                      "kl": float(np.mean(kl)),
                      "accuracy": (report.keras_accuracy(student, eval_set)
                                   if eval_set is not None else None)})
    best = max(range(len(table)), key=lambda index: table[index]["agreement"])
    for row in table:
        row["chosen"] = row is table[best]
    log(f"delta grid: chose delta={table[best]['delta']:g} (agreement "
        f"{table[best]['agreement']:.4f} on {len(pool)} generated images)")
    return candidates[best][1], candidates[best][2], table
