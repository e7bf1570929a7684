"""Shared test set-up: two logical CPUs (for MirroredStrategy tests) and a tiny trained teacher.

The CPU split must happen before TensorFlow runs its first op, so it is done at import time.
"""

import contextlib
import gzip
import functools
import importlib
import importlib.util
import io
import os
import sys
import types

import numpy as np
import pytest
from absl import flags

from tfdfc import distribute, pipeline, teacher
from tfdfc.keras_compat import keras
from tfdfc.train import TrainConfig

distribute.split_cpu(2)

TWO_CPUS = ["/cpu:0", "/cpu:1"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=None)
def two_replica_strategy():
    """One MirroredStrategy over two logical CPUs for the whole session: several strategies
    over the same devices in one process reuse collective instance keys and then clash."""
    return distribute.make_strategy("mirrored", TWO_CPUS)


@pytest.fixture(scope="session")
def digits_teacher_path(tmp_path_factory):
    """A LeNet-5 (half width) trained on the 8x8 digits (about 0.95 accuracy); a few seconds."""
    path = str(tmp_path_factory.mktemp("teacher") / "digits_teacher.keras")
    teacher.train(teacher.TeacherConfig(data="digits", architecture="lenet5-x0.5", epochs=15,
                                        batch_size=32, shift_augment=0, seed=0,
                                        output=path),
                  log=lambda message: None)
    return path


@pytest.fixture
def seeded():
    keras.utils.set_random_seed(0)


def quiet(message):
    """A log function that drops progress lines."""
    del message


def python_env():
    """Environment for subprocesses running the binaries from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_binary_in_process(module_name, *args):
    """Runs a binary's main through cli.run in this process, as `python -m module_name *args`
    would, without paying a TensorFlow import (a fresh copy of the module: see
    binary_module); returns its exit code, stdout and stderr."""
    from tfdfc import cli  # pylint: disable=import-outside-toplevel
    out, err, code = io.StringIO(), io.StringIO(), 0
    with binary_module(module_name) as module:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.run(module.main, argv=[module_name, *args])
            except SystemExit as exit_:
                code = exit_.code or 0
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def tiny_train_config(**overrides):
    """A TrainConfig of seconds-long runs: 2 iterations of 2 student steps on 16 images."""
    values = dict(steps=2, batch_size=16, student_steps=2, log_every=1, eval_every=1,
                  checkpoint_every=1, seed=3)
    values.update(overrides)
    return TrainConfig(**values)


def tiny_players(strategy, teacher_path, config, quantize="none"):
    """The players of a run on `teacher_path` with an 8-wide generator, built under `strategy`."""
    keras.utils.set_random_seed(0)
    run_config = pipeline.CompressConfig(teacher=teacher_path, out_dir="unused",
                                         generator_channels=8, quantize=quantize, train=config)
    with strategy.scope():
        model = teacher.load(teacher_path)
    return pipeline.build(strategy, run_config, model, log=quiet).players


def write_idx(path, magic, array):
    """Writes `array` as a gzipped idx file with the magic number `magic` (Fashion-MNIST's
    format: 2051 for uint8 images, 2049 for uint8 labels)."""
    header = [magic, *array.shape]
    payload = b"".join(size.to_bytes(4, "big") for size in header) + array.tobytes()
    with gzip.open(path, "wb") as file:
        file.write(payload)


def tiny_fashion_dir(directory, train=120, test=20):
    """Four Fashion-MNIST idx files of random 28x28 images in `directory` (12 training images per
    class by default), for `fashion_mnist:<directory>`."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("t10k", test)):
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", 2051,
                  rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", 2049,
                  (np.arange(count) % 10).astype(np.uint8))
    return directory


@contextlib.contextmanager
def _only_absl_flags():
    """Hides every flag not defined by absl itself while a binary or bench defines and parses
    its own (they share names such as --out_dir, and absl keeps one set of flags per process),
    then drops those and puts the hidden flags back, unparsed."""
    def ours():
        return [(module, flag) for module, module_flags in
                flags.FLAGS.flags_by_module_dict().items() if not module.startswith("absl")
                for flag in module_flags]

    def remove(entries):
        doomed = {id(flag) for _, flag in entries}
        for name in [name for name in flags.FLAGS if id(flags.FLAGS[name]) in doomed]:
            delattr(flags.FLAGS, name)

    hidden = ours()
    remove(hidden)
    try:
        yield
    finally:
        flags.FLAGS.unparse_flags()
        remove(ours())
        for module, flag in hidden:
            if flag.name not in flags.FLAGS:
                flags.FLAGS[flag.name] = flag
            flags.FLAGS.register_flag_by_module(module, flag)


@contextlib.contextmanager
def binary_module(module_name):
    """A fresh copy of binary `module_name` (e.g. tfdfc.compress) run in this process, its flags
    the only ones beside absl's until the block ends, at their defaults."""
    spec = importlib.util.find_spec(module_name)
    module = importlib.util.module_from_spec(spec)
    with _only_absl_flags():
        spec.loader.exec_module(module)
        yield module


@contextlib.contextmanager
def bench_module(script):
    """Bench `script` (a path under the checkout) imported in this process, its flags defined
    (not parsed) until the block ends, the working directory the checkout's."""
    name = "bench_" + os.path.splitext(os.path.basename(script))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, script))
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.join(ROOT, "bench"))  # the benches import `common`
    sys.modules[name] = module
    working_dir = os.getcwd()
    os.chdir(ROOT)
    try:
        with _only_absl_flags():
            spec.loader.exec_module(module)
            yield module
    finally:
        os.chdir(working_dir)
        del sys.modules[name]
        sys.path.remove(os.path.join(ROOT, "bench"))


def run_bench_in_process(script, *args):
    """Runs bench `script`'s main as `python script *args` would, in this process (which has
    paid for TensorFlow's import and traced much of tfdfc already)."""
    with bench_module(script) as module:
        module.main(flags.FLAGS([script, *args]))
