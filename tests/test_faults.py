"""Faults a user meets: several workers, kill -9, SIGTERM, failed exports, bad input.

Every case runs the real binary or library in real processes.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

import distributed_run
import zoo
from conftest import ROOT, python_env, run_binary_in_process, two_replica_strategy
from tfdfc import artifacts

TINY = ["--eval_data=digits", "--batch_size=16", "--student_steps=2", "--generator_channels=8",
        "--with_data_baseline=false", "--log_every=1"]


def _start(*args):
    return subprocess.Popen([sys.executable, "-m", "tfdfc.compress", *args], env=python_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_iteration(process, at_least, timeout=300):
    """Reads progress lines until iteration >= at_least; returns the last one seen. A process
    silent past `timeout` is killed (its output then ends), so a hung run cannot hang the test."""
    fired = threading.Event()

    def stop():
        fired.set()
        process.kill()

    watchdog = threading.Timer(timeout, stop)
    watchdog.start()
    last = 0
    try:
        for line in process.stdout:
            if "iteration " in line and "/" in line and "it/s" in line:
                last = int(line.split("iteration ")[1].split("/")[0])
                if last >= at_least:
                    return last
    finally:
        watchdog.cancel()
    if fired.is_set():
        raise AssertionError(f"no iteration {at_least} within {timeout} s (killed at {last})")
    raise AssertionError(f"process ended at iteration {last}: {process.stderr.read()[-2000:]}")


def test_waiting_for_progress_gives_up_on_a_silent_process():
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with pytest.raises(AssertionError, match="no iteration 1 within 1 s"):
        _wait_for_iteration(silent, 1, timeout=1)
    assert silent.wait(timeout=10) != 0


def _student_checkpoint(out_dir):
    from tfdfc.keras_compat import tf  # pylint: disable=import-outside-toplevel
    reader = tf.train.load_checkpoint(os.path.join(out_dir, "checkpoints"))
    names = sorted(n for n in reader.get_variable_to_shape_map()
                   if n.startswith(("student/", "generator/")) and "OPTIMIZER" not in n)
    return {n: reader.get_tensor(n) for n in names}, int(reader.get_tensor(
        "iteration/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.mark.slow
def test_kill_9_resumes_from_the_last_checkpoint_and_matches_an_uninterrupted_run(
        tmp_path, digits_teacher_path):
    # Every run on one device: the resumed and the uninterrupted runs are in this process, where
    # a mirrored run over its two logical CPUs would clash, and a resume needs the same settings.
    flags = [f"--teacher={digits_teacher_path}", "--steps=60", "--checkpoint_every=5",
             "--strategy=one_device", *TINY]
    killed_dir, straight_dir = tmp_path / "killed", tmp_path / "straight"
    process = _start(*flags, f"--out_dir={killed_dir}")
    reached = _wait_for_iteration(process, 12)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = run_binary_in_process("tfdfc.compress", *flags, f"--out_dir={killed_dir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    start = int(resumed.stdout.split("resumed from")[1].split("at iteration ")[1].split()[0])
    assert reached - 5 <= start <= reached + 1, (reached, start)
    straight_run = run_binary_in_process("tfdfc.compress", *flags, f"--out_dir={straight_dir}")
    assert straight_run.returncode == 0, straight_run.stderr[-2000:]
    (killed, killed_iteration), (straight, _) = map(_student_checkpoint,
                                                    (killed_dir, straight_dir))
    assert killed_iteration == 60 and killed.keys() == straight.keys()
    for name in killed:
        np.testing.assert_allclose(killed[name], straight[name], atol=1e-4, err_msg=name)


@pytest.mark.slow
def test_sigterm_checkpoints_the_finished_iteration_and_exits_143(tmp_path, digits_teacher_path):
    flags = [f"--teacher={digits_teacher_path}", "--steps=500", "--checkpoint_every=1000",
             f"--out_dir={tmp_path}", *TINY]
    process = _start(*flags)
    _wait_for_iteration(process, 3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    stopped_at = int(stderr.split("stopped by SIGTERM after iteration ")[1].split(";")[0])
    # One line says it, on standard error, with how to resume.
    assert "run the same command again to resume" in stderr and "SIGTERM" not in stdout
    assert stderr.count("stopped by SIGTERM") == 1
    _, iteration = _student_checkpoint(str(tmp_path))
    assert iteration == stopped_at >= 3


@pytest.mark.slow
def test_sigterm_while_the_first_iteration_traces_stops_at_once(tmp_path, digits_teacher_path):
    """Tracing takes minutes on a large network: SIGTERM then must not wait for it."""
    process = _start(f"--teacher={digits_teacher_path}", "--steps=50", f"--out_dir={tmp_path}",
                     *TINY, "--log_every=5")
    for line in process.stdout:
        if "tracing the training step comes first" in line:
            process.send_signal(signal.SIGTERM)
            break
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert stderr.count("stopped by SIGTERM before an iteration of this run finished") == 1
    assert "Traceback" not in stderr and "first iteration done" not in stdout


@pytest.mark.slow
def test_sigterm_after_training_stops_in_one_line_and_leaves_nothing_half_written(
        tmp_path, digits_teacher_path):
    """Past the loop (exports, guard, baselines) SIGTERM is an exception like any failure: the
    default action would end the process at once, and a staging folder with it."""
    process = _start(f"--teacher={digits_teacher_path}", "--steps=2", f"--out_dir={tmp_path}",
                     *TINY)
    for line in process.stdout:  # the line before the conversion, the first step after training
        if "exporting: converting the trained student" in line:
            process.send_signal(signal.SIGTERM)
            break
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert stderr.count("stopped by SIGTERM; nothing half-written is left") == 1, stderr[-2000:]
    assert "Traceback" not in stderr and "SIGTERM" not in stdout
    assert not os.path.exists(tmp_path / "report.json")
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _run_two_workers(command, timeout=300):
    """Runs `command(index)` as workers 0 and 1 of a cluster on 127.0.0.1, waits for both to
    exit 0 and returns their standard outputs; kills them all on a failure or a hang."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    try:
        for index in range(2):
            env = python_env()
            env["TF_CONFIG"] = json.dumps({"cluster": cluster,
                                           "task": {"type": "worker", "index": index}})
            workers.append(subprocess.Popen(command(index), env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True))
        outputs = []
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=timeout)
            assert worker.returncode == 0, stderr[-3000:]
            outputs.append(stdout)
        return outputs
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


@pytest.mark.slow
def test_two_workers_of_a_batch_norm_run_evaluate_export_and_report(tmp_path):
    """Batch norms' moving statistics are read through collectives under multi-worker training:
    the chief alone once crashed on them, in evaluations and in its exports; it now also trains
    the with-data baseline, alone, on a one-device copy."""
    model = zoo.trained_teacher("resnet")
    teacher_path = str(tmp_path / "resnet.keras")
    model.save(teacher_path)
    images = np.random.default_rng(1).uniform(0.0, 1.0, (32,) + zoo.SHAPE).astype(np.float32)
    labels = np.argmax(model.predict(images, verbose=0), axis=-1)
    np.savez(tmp_path / "eval.npz", x_train=images, y_train=labels, x_test=images,
             y_test=labels)
    chief, other = _run_two_workers(lambda index: [
        sys.executable, "-m", "tfdfc.compress", f"--teacher={teacher_path}",
        f"--eval_data={tmp_path / 'eval.npz'}", f"--out_dir={tmp_path / 'run'}",
        "--strategy=multi_worker", "--prune=magnitude", "--prune_sparsity=0.8",
        "--recalibrate_batch_norm", "--steps=2", "--eval_every=1", "--batch_size=16",
        "--student_steps=2", "--generator_channels=8"])
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["train"]["replicas"] == 2
    recalibrated = "batch norms: "  # after training, on the one-device copy only the chief makes
    assert recalibrated in chief and recalibrated not in other
    with_data = report["baselines"]["with_data"]  # the chief's, beside its copy
    assert 0.0 <= with_data["accuracy"] <= 1.0 and "after training" in with_data["method"]
    assert report["student"]["sparsity"] == pytest.approx(0.8, abs=0.01)  # the trained masks
    assert [point[0] for point in report["train"]["evaluations"]] == [1, 2]
    float_file = report["tflite"]["float"]
    assert float_file["accuracy"] == pytest.approx(report["student"]["accuracy"], abs=0.07)
    assert not any(name.startswith(".worker") for name in os.listdir(tmp_path / "run"))


@pytest.mark.slow
@pytest.mark.parametrize("scheme", sorted(distributed_run.SCHEMES))
def test_two_workers_end_identical_and_equal_a_single_process_run(tmp_path, digits_teacher_path,
                                                                  scheme):
    driver = os.path.join(ROOT, "tests", "distributed_run.py")
    _run_two_workers(lambda index: [sys.executable, driver, digits_teacher_path,
                                    str(tmp_path / "mw"), str(tmp_path / f"worker{index}.npz"),
                                    "multi_worker", scheme])
    # The single-process reference in this process, over its two logical CPUs.
    single = distributed_run.train(two_replica_strategy(), "mirrored", digits_teacher_path,
                                   str(tmp_path / "single"), scheme)
    results = [np.load(tmp_path / name) for name in ("worker0.npz", "worker1.npz")] + [single]
    assert [int(r["replicas"]) for r in results] == [2, 2, 2]
    assert [int(r["iteration"]) for r in results] == [3, 3, 3]
    weights = [k for k in results[0].files if k.startswith("w")]
    for key in weights:
        np.testing.assert_array_equal(results[0][key], results[1][key])
        np.testing.assert_allclose(results[0][key], results[2][key], atol=1e-4)
    most_zeros = max(np.mean(results[0][key] == 0) for key in weights
                     if results[0][key].ndim >= 2)
    assert (most_zeros > 0.4) == (scheme == "pruned")  # the masks compared above have pruned
    assert os.path.isdir(tmp_path / "mw" / "checkpoints")
    assert not any(name.startswith(".worker") for name in os.listdir(tmp_path / "mw"))


def test_atomic_write_leaves_the_previous_file_and_no_temporary_on_failure(tmp_path):
    target = tmp_path / "student.tflite"
    artifacts.write_bytes(str(target), b"good")
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(str(target)) as temporary:
            with open(temporary, "wb") as handle:
                handle.write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["student.tflite"]


@pytest.mark.slow
def test_failed_export_keeps_previous_outputs(tmp_path, digits_teacher_path, monkeypatch):
    from tfdfc import export, pipeline  # pylint: disable=import-outside-toplevel
    from tfdfc.train import TrainConfig  # pylint: disable=import-outside-toplevel
    config = pipeline.CompressConfig(
        teacher=digits_teacher_path, out_dir=str(tmp_path), eval_data="digits",
        generator_channels=8, strategy="one_device", with_data_baseline=False,
        train=TrainConfig(steps=2, batch_size=16, student_steps=2))
    pipeline.run(config, log=lambda _: None)
    before = {name: (tmp_path / name).read_bytes()
              for name in ("report.json", "student_float.tflite", "student_int8.tflite")}

    def broken_converter(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(export, "tflite_int8", broken_converter)
    with pytest.raises(RuntimeError, match="converter crashed"):
        pipeline.run(config, log=lambda _: None)
    for name, payload in before.items():
        assert (tmp_path / name).read_bytes() == payload, name
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp")]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    from tfdfc.keras_compat import keras  # pylint: disable=import-outside-toplevel
    folder = tmp_path_factory.mktemp("bad")
    (folder / "corrupt.keras").write_bytes(b"PK\x03\x04 this is not a keras archive")
    inputs = keras.Input((8, 8, 1))
    doubled = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(doubled))).save(
        folder / "lambda.keras")
    images = np.random.default_rng(0).random((20, 8, 8, 1)).astype(np.float32)
    labels = np.arange(20) % 10
    np.savez(folder / "label_42.npz", x_train=images, y_train=labels, x_test=images,
             y_test=np.where(labels == 3, 42, labels))
    return folder


@pytest.mark.parametrize("case, args, message", [
    ("missing teacher", ["--teacher={folder}/nope.keras"], "teacher not found"),
    ("corrupt teacher", ["--teacher={folder}/corrupt.keras"], "could not be loaded"),
    ("unsafe teacher", ["--teacher={folder}/lambda.keras"], "--unsafe_load"),
    ("wrong input shape", ["--eval_data=mnist5k"], "takes images of shape (8, 8, 1)"),
    ("labels outside the classes", ["--eval_data={folder}/label_42.npz"],
     "has 2 labels outside the model's 10 classes (0 to 9), e.g. 42"),
    ("unknown flag value", ["--strategy=tpu"], "strategy"),
    ("unknown flag", ["--no_such_flag=1"], "no_such_flag"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, digits_teacher_path,
                                                           bad_files, case, args, message):
    out_dir = tmp_path / "out"
    args = [arg.format(folder=bad_files) for arg in args]
    result = run_binary_in_process("tfdfc.compress", f"--teacher={digits_teacher_path}",
                                   f"--out_dir={out_dir}", "--steps=1", *args)
    assert result.returncode == 2, (case, result.stderr[-2000:])
    assert message in result.stderr and "Traceback" not in result.stderr, case
    assert not out_dir.exists(), case


def _compress_in_process(*args):
    """The binary in this process (see run_binary_in_process) on one device: several mirrored
    strategies over this process's two logical CPUs would clash."""
    return run_binary_in_process("tfdfc.compress", "--strategy=one_device", *args, *TINY)


def test_unsafe_teacher_loads_with_unsafe_load(tmp_path, bad_files):
    result = _compress_in_process(f"--teacher={bad_files}/lambda.keras", f"--out_dir={tmp_path}",
                                  "--steps=1", "--unsafe_load", "--attention_weight=0")
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_out_dir_of_another_run_is_refused_unless_overwrite(tmp_path, digits_teacher_path):
    base = [f"--teacher={digits_teacher_path}", f"--out_dir={tmp_path}", "--steps=2"]
    assert _compress_in_process(*base).returncode == 0
    before = (tmp_path / "report.json").read_bytes()
    refused = _compress_in_process(*base, "--seed=7")
    assert refused.returncode == 2 and "settings differ: --seed)" in refused.stderr
    assert "--overwrite" in refused.stderr
    assert (tmp_path / "report.json").read_bytes() == before
    assert _compress_in_process(*base, "--seed=7", "--overwrite").returncode == 0
    assert json.loads((tmp_path / "config.json").read_text())["train"]["seed"] == 7


@pytest.mark.slow
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, digits_teacher_path):
    base = [f"--teacher={digits_teacher_path}", f"--out_dir={tmp_path}", "--steps=2"]
    assert _compress_in_process(*base).returncode == 0
    for name in os.listdir(tmp_path / "checkpoints"):
        if ".data-" in name:
            (tmp_path / "checkpoints" / name).write_bytes(b"\0" * 64)
    result = _compress_in_process(*base)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "cannot restore checkpoint" in result.stderr and "--overwrite" in result.stderr
