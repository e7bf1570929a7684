"""The paper-scale CIFAR-10 presets parse and run two iterations on random CIFAR-shaped data
(random, untrained WRN-10-1 teachers in place of the presets' WRN-40-2 and WRN-16-2: this
checks the wiring, not accuracy); the small mnist5k
flagfiles parse with their modules' flags."""

import glob
import json
import os

import numpy as np
import pytest
from absl import flags

from conftest import ROOT, binary_module, run_binary_in_process, tiny_fashion_dir
from tfdfc import artifacts, models
from tfdfc.compression import ticket

pytestmark = pytest.mark.slow  # the CIFAR presets train WRNs

COMPRESS_PRESETS = sorted(os.path.basename(path) for path in
                          glob.glob(os.path.join(ROOT, "flags", "cifar10_*.cfg"))
                          if not path.endswith("cifar10_ticket_wrn16_2.cfg"))
_QUICK = ["--steps=2", "--batch_size=8", "--student_steps=1", "--generator_channels=8",
          "--log_every=1", "--eval_every=2", "--checkpoint_every=2", "--with_data_baseline=false"]


def _run(module, *args):
    """Binary `module` run in this process from the checkout (its flagfiles name paths
    relative to it)."""
    working_dir = os.getcwd()
    os.chdir(ROOT)
    try:
        result = run_binary_in_process(module, *args)
    finally:
        os.chdir(working_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def cifar_files(tmp_path_factory):
    """A CIFAR-shaped .npz of random uint8 images, random teachers and a one-round ticket."""
    root = tmp_path_factory.mktemp("cifar")
    rng = np.random.default_rng(0)
    np.savez(root / "cifar10.npz",
             x_train=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(16) % 10,
             x_test=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
             y_test=np.arange(16) % 10)
    for name in ("40_2", "16_2"):  # a WRN-10-1 in place of each: the wiring, at a fifth the time
        artifacts.save_keras_model(models.build("wrn-10-1", (32, 32, 3), 10),
                                   str(root / f"{name}.keras"))
    _run("tfdfc.find_ticket", "--flagfile=flags/cifar10_ticket_wrn16_2.cfg",
         f"--data=cifar10:{root / 'cifar10.npz'}", "--rounds=1", "--round_steps=1",
         "--batch_size=8", f"--output={root / 'ticket.npz'}")
    return root


def test_presets_exist_for_every_paper_experiment():
    assert {"cifar10_binary_wrn16_2_from_wrn40_2.cfg", "cifar10_binary_wrn16_2_from_wrn16_2.cfg",
            "cifar10_slim_wrn16_2.cfg", "cifar10_ticket_wrn16_2_train.cfg"} <= \
        set(COMPRESS_PRESETS)
    for name in COMPRESS_PRESETS + ["cifar10_ticket_wrn16_2.cfg", "teacher_cifar10_wrn40_2.cfg"]:
        header = open(os.path.join(ROOT, "flags", name), encoding="utf-8").read()
        assert "# Command:" in header and "# Time:" in header and "# Expected:" in header, name


@pytest.mark.parametrize("preset", COMPRESS_PRESETS)
def test_compress_preset_runs_two_iterations(preset, cifar_files, tmp_path):
    with open(os.path.join(ROOT, "flags", preset), encoding="utf-8") as handle:
        teacher = next(line.split("=", 1)[1].strip() for line in handle
                       if line.startswith("--teacher="))
    teacher_file = cifar_files / ("40_2.keras" if "wrn40_2" in teacher else "16_2.keras")
    text = open(os.path.join(ROOT, "flags", preset), encoding="utf-8").read()
    extra = [f"--ticket={cifar_files / 'ticket.npz'}"] if "ticket" in preset else []
    if "delta_grid" in text:
        extra.append("--binary_delta_grid=0.02")  # the grid machinery, with one candidate
    if "--student=wrn-" in text:
        extra.append("--student=wrn-10-1")  # the preset's wiring with a fifth of the network
    # In this process on one device: MirroredStrategy runs in one process clash (conftest.py).
    result = run_binary_in_process(
        "tfdfc.compress", f"--flagfile={os.path.join(ROOT, 'flags', preset)}",
        f"--teacher={teacher_file}", f"--eval_data=cifar10:{cifar_files / 'cifar10.npz'}",
        f"--out_dir={tmp_path / 'run'}", "--strategy=one_device", *_QUICK, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "report.json").exists()
    assert (tmp_path / "run" / "student_float.tflite").exists() or \
        (tmp_path / "run" / "student_int8.tflite").exists()


def test_teacher_preset_trains_on_cifar_shaped_data(cifar_files, tmp_path):
    _run("tfdfc.train_teacher", "--flagfile=flags/teacher_cifar10_wrn40_2.cfg",
         f"--data=cifar10:{cifar_files / 'cifar10.npz'}", "--epochs=1", "--batch_size=8",
         "--architecture=wrn-10-1", f"--output={tmp_path / 'teacher.keras'}")
    assert (tmp_path / "teacher.keras").exists()


@pytest.mark.parametrize("preset", ["teacher_fashion_lenet5.cfg", "teacher_fashion_wrn16_1.cfg"])
def test_fashion_teacher_preset_trains_on_a_small_slice(preset, tmp_path):
    """The Fashion-MNIST teachers' flagfiles, as written, on 120 Fashion-format images for one
    epoch of two batches: their architecture and augmentation run on 28x28 grey images."""
    slice_dir = tiny_fashion_dir(tmp_path)
    _run("tfdfc.train_teacher", f"--flagfile=flags/{preset}", f"--data=fashion_mnist:{slice_dir}",
         "--epochs=1", "--batch_size=64", f"--output={tmp_path / 'teacher.keras'}")
    report = json.loads((tmp_path / "teacher.keras.json").read_text())
    assert report["data"] == "fashion_mnist" and report["config"]["flip_augment"] is True
    with open(os.path.join(ROOT, "flags", preset), encoding="utf-8") as handle:
        assert f"--architecture={report['architecture']}\n" in handle.read()


def test_fashion_ticket_preset_searches_a_small_slice(tmp_path):
    """The Fashion-MNIST ticket's flagfile, as written but for one short round, on 120
    Fashion-format images: a ticket of the LeNet-5 teacher's architecture."""
    slice_dir = tiny_fashion_dir(tmp_path)
    _run("tfdfc.find_ticket", "--flagfile=flags/ticket_fashion_lenet5.cfg",
         f"--data=fashion_mnist:{slice_dir}", "--rounds=1", "--round_steps=2",
         "--batch_size=16", f"--output={tmp_path / 'ticket.npz'}")
    meta, _, _ = ticket.load(str(tmp_path / "ticket.npz"))
    assert meta["architecture"] == "lenet5" and meta["input_shape"] == [28, 28, 1]
    assert abs(meta["kept_fraction"] - 0.8) < 0.01  # one round of the preset's 20 %


def _module_for(flagfile):
    name = os.path.basename(flagfile)
    if name.startswith("teacher_"):
        return "tfdfc.train_teacher"
    return "tfdfc.find_ticket" if name.startswith("ticket_") else "tfdfc.compress"


# Every flagfile a user runs on data this machine has; a `*_base.cfg` is parsed through the
# presets that read it (alone it names no teacher).
MNIST_FLAGFILES = sorted(path for path in glob.glob(os.path.join(ROOT, "flags", "*.cfg"))
                         if not os.path.basename(path).startswith(("cifar10_", "teacher_cifar"))
                         and not path.endswith("_base.cfg"))


def parse_flagfiles(module, paths):
    """Parses each flagfile in `paths` with the flags of binary `module` (run from the checkout:
    flagfiles name their base flagfile relative to it); fails naming the first bad one."""
    with binary_module(module):
        for path in paths:
            flags.FLAGS.unparse_flags()
            try:
                flags.FLAGS(["check", "--flagfile=" + path])
            except flags.Error as error:
                raise AssertionError(f"{path}: {error}") from error


@pytest.mark.parametrize("module", sorted({_module_for(path) for path in MNIST_FLAGFILES}))
def test_every_small_flagfile_names_only_real_flags_with_valid_values(module, monkeypatch):
    """Parses each flagfile of `module` with its flags: absl raises for an unknown flag or a
    value its validators refuse."""
    monkeypatch.chdir(ROOT)
    parse_flagfiles(module, [path for path in MNIST_FLAGFILES if _module_for(path) == module])
