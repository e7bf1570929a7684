"""`tfdfc.evaluate` measures every exported format with the accuracy the run reported, and
report.md sits beside report.json."""

import dataclasses
import json

import pytest

from conftest import quiet, run_binary_in_process
from tfdfc import data, evaluation, pipeline
from tfdfc.errors import UserInputError
from tfdfc.train import TrainConfig

pytestmark = pytest.mark.slow  # every test reads one whole int8 run with all its exports


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory, digits_teacher_path):
    out_dir = tmp_path_factory.mktemp("run")
    config = pipeline.CompressConfig(
        teacher=digits_teacher_path, out_dir=str(out_dir), quantize="int8", eval_data="digits",
        generator_channels=8, strategy="one_device", with_data_baseline=False,
        train=TrainConfig(steps=2, batch_size=16, student_steps=2, log_every=1))
    return out_dir, pipeline.run(config, log=quiet)


def test_evaluate_agrees_with_the_report_for_every_format(int8_run):
    out_dir, report = int8_run
    digits = data.load("digits")
    saved = evaluation.evaluate(str(out_dir / "saved_model"), digits)
    assert saved["format"] == "keras"
    assert saved["accuracy"] == pytest.approx(report["student"]["accuracy"], abs=1e-9)
    for variant in ("int8", "float"):
        result = evaluation.evaluate(str(out_dir / f"student_{variant}.tflite"), digits)
        assert result["accuracy"] == pytest.approx(report["tflite"][variant]["accuracy"],
                                                   abs=1e-9)
        assert result["bytes"] == report["tflite"][variant]["bytes"]


def test_report_md_names_the_accuracies(int8_run):
    out_dir, report = int8_run
    text = (out_dir / "report.md").read_text()
    assert f"{100 * report['student']['accuracy']:.2f} %" in text
    assert "student_int8.tflite" in text and "| teacher |" in text


def _evaluate_cli(*args):
    return run_binary_in_process("tfdfc.evaluate", *args)


def test_cli_prints_json_and_exits_2_on_a_bad_file(int8_run, tmp_path):
    """The binary: the JSON line, and exit 2 with one line (each bad case is below)."""
    out_dir, report = int8_run
    result = _evaluate_cli(f"--model={out_dir / 'student_int8.tflite'}", "--eval_data=digits",
                           "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["accuracy"] == pytest.approx(
        report["tflite"]["int8"]["accuracy"])
    missing = _evaluate_cli(f"--model={tmp_path / 'missing.keras'}", "--eval_data=digits")
    assert missing.returncode == 2 and "model not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_bad_files_are_refused_with_one_line(int8_run, tmp_path):
    out_dir, _ = int8_run
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer")
    for path, data_name, message in (
            (tmp_path / "missing.keras", "digits", "model not found"),
            (junk, "digits", "is not a TFLite model"),
            (out_dir / "saved_model", "mnist5k", r"^\S*saved_model takes images of shape "
                                                r"\(8, 8, 1\), but mnist5k has shape"),
            (out_dir / "student_int8.tflite", "mnist5k", r"takes images of shape \(8, 8, 1\), "
                                                       r"but mnist5k has shape \(28, 28, 1\)")):
        with pytest.raises(UserInputError, match=message) as raised:
            evaluation.evaluate(str(path), data.load(data_name))
        assert "\n" not in str(raised.value)
    digits = data.load("digits")
    labels = digits.y_test.copy()
    labels[:3] = [10, 42, -1]
    for path in (out_dir / "student_int8.tflite", out_dir / "saved_model"):
        with pytest.raises(UserInputError, match="has 3 labels outside the model's 10 classes"):
            evaluation.evaluate(str(path), dataclasses.replace(digits, y_test=labels))
