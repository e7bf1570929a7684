"""Test driver: trains a tiny data-free run in this process and saves the student's weights.

    python tests/distributed_run.py TEACHER OUT_DIR WEIGHTS.npz {multi_worker|two_cpus} SCHEME

`multi_worker` reads TF_CONFIG (one process per worker); `two_cpus` is the single-process
reference with the same global batch over two logical CPUs (tests run it in their own process
through `train`). SCHEME is a key of SCHEMES.
"""

import os
import sys

import numpy as np

from tfdfc import distribute, pipeline
from tfdfc.loop import Loop
from tfdfc.train import TrainConfig

CONFIG = dict(generator_channels=8,
              train=TrainConfig(steps=3, batch_size=16, student_steps=2, log_every=1,
                                checkpoint_every=1))
# What the student is: a float copy, or pruned on a schedule (whose masks follow the weights).
SCHEMES = {"float": {}, "pruned": dict(prune="magnitude", sparsity=0.5)}


def train(strategy, kind, teacher_path, out_dir, scheme):
    """Trains the tiny run of `scheme` under `strategy` (of --strategy `kind`); returns what
    main saves."""
    config = pipeline.CompressConfig(teacher=teacher_path, out_dir=out_dir, strategy=kind,
                                     **CONFIG, **SCHEMES[scheme])
    from tfdfc import teacher  # pylint: disable=import-outside-toplevel
    with strategy.scope():
        model = teacher.load(teacher_path)
    run = pipeline.seeded_build(strategy, config, model)
    loop = Loop(strategy, run.players, config.train, os.path.join(out_dir, "checkpoints"))
    loop.run()  # the trained weights, not train_one's copy (which only the chief makes)
    return dict(replicas=strategy.num_replicas_in_sync, iteration=int(loop.iteration.numpy()),
                **{f"w{i}": w for i, w in enumerate(run.players.student_model.get_weights())})


def main(teacher_path, out_dir, weights_path, mode, scheme):
    if mode == "two_cpus":
        distribute.split_cpu(2)
        strategy = distribute.make_strategy("mirrored", ["/cpu:0", "/cpu:1"])
        kind = "mirrored"
    else:
        strategy = distribute.make_strategy("multi_worker")
        kind = "multi_worker"
    np.savez(weights_path, **train(strategy, kind, teacher_path, out_dir, scheme))


if __name__ == "__main__":
    main(*sys.argv[1:6])
