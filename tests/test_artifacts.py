"""Atomic writes: an output appears whole under its final name or not at all, and a failure
leaves the previous good output untouched and no staging files behind."""

import os
import signal

import pytest

from tfdfc import artifacts


class Boom(Exception):
    pass


def test_json_round_trips_and_leaves_no_staging_files(tmp_path):
    path = str(tmp_path / "out" / "report.json")  # the parent is created
    artifacts.write_json(path, {"b": [1, 2], "a": None})
    assert artifacts.read_json(path) == {"a": None, "b": [1, 2]}
    assert os.listdir(tmp_path / "out") == ["report.json"]


def test_a_failed_write_keeps_the_previous_file_and_cleans_up(tmp_path):
    path = str(tmp_path / "student.tflite")
    artifacts.write_bytes(path, b"good")
    with pytest.raises(Boom):
        with artifacts.atomic_path(path) as temporary:
            with open(temporary, "wb") as handle:
                handle.write(b"half")
            raise Boom()
    with open(path, "rb") as handle:
        assert handle.read() == b"good"
    assert os.listdir(tmp_path) == ["student.tflite"]


def test_a_directory_is_replaced_whole(tmp_path):
    path = str(tmp_path / "saved_model")
    for version in ("old", "new"):
        with artifacts.atomic_path(path, is_directory=True) as temporary:
            os.makedirs(temporary)
            with open(os.path.join(temporary, version), "w") as handle:
                handle.write(version)
    assert os.listdir(path) == ["new"]
    assert os.listdir(tmp_path) == ["saved_model"]


def test_a_directory_that_cannot_take_the_old_ones_place_gives_it_back(tmp_path):
    """The new directory is missing when it is renamed into place: the move fails, and the
    previous directory, already moved aside, is back under its name."""
    path = str(tmp_path / "saved_model")
    os.makedirs(path)
    (tmp_path / "saved_model" / "old").write_text("old")
    with pytest.raises(FileNotFoundError):
        with artifacts.atomic_path(path, is_directory=True):
            pass  # nothing written
    assert os.listdir(path) == ["old"]
    assert os.listdir(tmp_path) == ["saved_model"]


@pytest.mark.parametrize("content", [None, "{not json"])
def test_read_json_of_a_missing_or_broken_file_is_none(tmp_path, content):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    assert artifacts.read_json(str(path)) is None


def test_saving_an_uncompiled_model_says_nothing_and_other_warnings_pass(tmp_path, caplog):
    """tf-keras warns of missing compiled metrics on every SavedModel save of a model never
    compiled (every student): dropped for the save, for the API as for the command line."""
    import logging  # pylint: disable=import-outside-toplevel
    from tfdfc.keras_compat import keras  # pylint: disable=import-outside-toplevel
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        artifacts.save_keras_model(model, str(tmp_path / "saved_model"))
        logging.getLogger("tensorflow").warning("another warning")
    assert os.path.isdir(tmp_path / "saved_model")
    assert [record.getMessage() for record in caplog.records] == ["another warning"]


def test_a_signal_during_a_directory_swap_reaches_its_handler_after_the_swap():
    """A handler that raises (cli.py) must not run between the two renames of a directory
    replacing another, where the cleanup would remove both copies."""
    order = []
    previous = signal.signal(signal.SIGTERM, lambda number, frame: order.append("handler"))
    try:
        with artifacts._signals_deferred():  # pylint: disable=protected-access
            signal.raise_signal(signal.SIGTERM)
            order.append("swap done")
        assert order == ["swap done", "handler"]
    finally:
        signal.signal(signal.SIGTERM, previous)
