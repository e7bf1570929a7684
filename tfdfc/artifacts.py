"""Atomic writes of run outputs: a file or directory appears whole under its final name or not.

Everything is written beside its destination under a temporary name and renamed into place, so a
crash or a failed export never leaves a half-written model, TFLite file or report, and the
previous good output stays untouched until the new one is complete.
"""

import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading


@contextlib.contextmanager
def _signals_deferred():
    """SIGTERM and SIGINT that arrive in the block are noted and raised again after it, to the
    handlers they would have met. (A signal mask would not do: the process's other threads,
    TensorFlow's, would take the signal and Python run its handler in the block all the same.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread sets handlers, and runs them
        return
    noted = []
    previous = {number: signal.signal(number, lambda number, frame: noted.append(number))
                for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        for number in noted:
            signal.raise_signal(number)


@contextlib.contextmanager
def atomic_path(destination, is_directory=False):
    """Yields a temporary path beside `destination`; renames it into place on success."""
    parent = os.path.dirname(os.path.abspath(destination)) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    temporary = os.path.join(staging, os.path.basename(destination))
    try:
        yield temporary
        if not (is_directory and os.path.isdir(destination)):
            os.replace(temporary, destination)
            return
        # A directory cannot replace a non-empty one in one rename: the old one moves aside
        # first and comes back if the new one cannot take its place. Between the two renames
        # (a kill -9 there) the previous copy stays in the staging folder beside it; a signal
        # whose handler raises (cli.py, loop.py) waits until both are done, or the cleanup
        # below would remove both copies.
        old = os.path.join(staging, "previous")
        with _signals_deferred():
            os.replace(destination, old)
            try:
                os.replace(temporary, destination)
            except OSError:
                os.replace(old, destination)
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_bytes(path, payload):
    """Writes `payload` to `path` atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(payload)


def write_text(path, text):
    """Writes `text` to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, value):
    """Writes `value` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path):
    """The JSON value in `path`, or None for a missing or unreadable file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


# tf-keras warns on every SavedModel save of a model that was never compiled; tfdfc compiles no
# student (its training step is its own), so the warning says nothing about the run.
_UNCOMPILED_SAVE_WARNING = "Compiled the loaded model, but the compiled metrics have yet to be"


class _DropUncompiledSaveWarning(logging.Filter):
    def filter(self, record):
        return not record.getMessage().startswith(_UNCOMPILED_SAVE_WARNING)


@contextlib.contextmanager
def _without_uncompiled_save_warning():
    """TensorFlow's logger without that one warning, while the block runs (for the command
    line and the Python API alike; other warnings pass)."""
    logger, dropper = logging.getLogger("tensorflow"), _DropUncompiledSaveWarning()
    logger.addFilter(dropper)
    try:
        yield
    finally:
        logger.removeFilter(dropper)


def save_keras_model(model, path):
    """Saves a Keras model (.keras/.h5 file, or SavedModel directory otherwise) atomically."""
    is_directory = not path.endswith((".keras", ".h5"))
    with atomic_path(path, is_directory=is_directory) as temporary, \
            _without_uncompiled_save_warning():
        if path.endswith(".keras"):
            model.save(temporary)
        else:
            model.save(temporary, include_optimizer=False,
                       save_format="tf" if is_directory else "h5")
