"""Errors caused by the user's input (files, data, flag values), as opposed to bugs.

The binaries turn these into a one-line message and exit code 2; anything else is a bug and
keeps its traceback.
"""


class UserInputError(ValueError):
    """Bad input from the user; the message says what is wrong and how to fix it."""


class ConfigError(UserInputError):
    """A flag or configuration value that cannot work."""
