"""The binaries as a user runs them: a real tiny run, and exit code 2 with one clear line for bad
input, writing nothing (each bad-input case in-process; one subprocess checks the exit code a
shell sees)."""

import json
import re
import subprocess
import sys

import pytest

from conftest import python_env, run_binary_in_process


def _run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, env=python_env(), timeout=300, check=False)


@pytest.mark.slow
def test_compress_runs_end_to_end_and_writes_resolved_flags(tmp_path, digits_teacher_path):
    out_dir = tmp_path / "run"
    result = _run("tfdfc.compress", f"--teacher={digits_teacher_path}", f"--out_dir={out_dir}",
                  "--eval_data=digits", "--steps=2", "--batch_size=16", "--student_steps=2",
                  "--generator_channels=8", "--log_every=1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "it/s" in result.stdout and "ETA" in result.stdout
    for noise in ("Assets written to", "Sharding callback", "Compiled the loaded model"):
        assert noise not in result.stderr + result.stdout
    flags_text = (out_dir / "flags.txt").read_text()
    assert "--steps=2" in flags_text and "--student_lr" not in flags_text  # the recipe's
    report = json.loads((out_dir / "report.json").read_text())
    assert report["train"]["steps"] == 2 and report["tflite"]["float"]["accuracy"] is not None


@pytest.mark.parametrize("args, message", [
    (["--teacher=missing.keras"], "teacher not found: missing.keras"),
    (["--divergence=jsd"], "divergence"),
    (["--steps=0"], "steps"),
    (["--eval_data=imagenet"], "unknown data set 'imagenet'"),
    (["--student=resnet"], "unknown architecture 'resnet'"),
    (["--quantize=int4"], "unknown --quantize value 'int4'"),
    (["--quantize=binary", "--binary_delta_grid=0.1,abc"], "comma-separated numbers"),
])
def test_compress_bad_input_exits_2_and_writes_nothing(tmp_path, digits_teacher_path, args,
                                                      message):
    out_dir = tmp_path / "run"
    defaults = [f"--teacher={digits_teacher_path}", f"--out_dir={out_dir}", "--steps=1"]
    result = run_binary_in_process("tfdfc.compress", *defaults, *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out_dir.exists()


@pytest.mark.slow
def test_compress_requires_teacher_and_out_dir():
    result = _run("tfdfc.compress")
    assert result.returncode == 2 and "teacher" in result.stderr


def test_train_teacher_rejects_an_unknown_architecture(tmp_path):
    output = tmp_path / "t.keras"
    result = run_binary_in_process("tfdfc.train_teacher", "--data=digits", "--architecture=vgg",
                                   "--epochs=1", f"--output={output}")
    assert result.returncode == 2 and "unknown architecture 'vgg'" in result.stderr
    assert not output.exists()


@pytest.mark.slow
def test_find_ticket_then_compress_with_it(tmp_path, digits_teacher_path):
    ticket_file = tmp_path / "ticket.npz"
    found = run_binary_in_process("tfdfc.find_ticket", "--data=digits",
                                  "--architecture=lenet5-x0.5", "--rounds=1", "--round_steps=5",
                                  "--batch_size=32", f"--output={ticket_file}")
    assert found.returncode == 0, found.stderr[-2000:]
    assert "round 1/1" in found.stdout and ticket_file.exists()
    out_dir = tmp_path / "run"
    result = run_binary_in_process(
        "tfdfc.compress", f"--teacher={digits_teacher_path}", f"--out_dir={out_dir}",
        f"--ticket={ticket_file}", "--ticket_reinit", "--eval_data=digits", "--steps=1",
        "--batch_size=16", "--student_steps=1", "--generator_channels=8",
        "--with_data_baseline=false", "--strategy=one_device")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out_dir / "report.json").read_text())
    assert report["student"]["ticket_reinit"] is True and report["student"]["sparsity"] > 0.15
    # The ticket's architecture and the control's fresh init, not the teacher's or --student's.
    assert (report["student"]["architecture"], report["student"]["init"]) == ("lenet5-x0.5",
                                                                             "random")
    assert re.search(r"student \(ticket\): [0-9,]+ parameters", result.stdout)
