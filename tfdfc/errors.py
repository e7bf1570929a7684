"""Errors caused by the user's input (files, data, flag values), as opposed to bugs.

The binaries turn these into a one-line message and exit code 2; anything else is a bug and
keeps its traceback. Every user-facing error type is here (the modules that raise them import
them, so `tfdfc.data.DataError` and `tfdfc.errors.DataError` are one class).
"""


class UserInputError(ValueError):
    """Bad input from the user; the message says what is wrong and how to fix it."""


class ConfigError(UserInputError):
    """A flag or configuration value that cannot work."""


class ModelFileError(UserInputError):
    """A model path that cannot be evaluated (tfdfc.evaluation)."""


class TeacherError(UserInputError):
    """A teacher file or model that tfdfc cannot use (tfdfc.teacher)."""


class CheckpointError(UserInputError):
    """A checkpoint that cannot be restored: corrupt, or from another model (tfdfc.loop)."""


class Keras3ImportError(UserInputError):
    """A Keras 3 model file that cannot become an equivalent tf-keras model
    (tfdfc.keras3_import)."""


class TicketError(UserInputError):
    """A lottery-ticket file that cannot be used (tfdfc.compression.ticket)."""


class DataError(UserInputError):
    """An unknown data set name, or arrays that cannot be used (tfdfc.data)."""


def first_line(error):
    """The first line of `error`'s message (or its type's name when it has none): what a
    one-line message quotes of an exception raised by a library."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
