"""Errors that are the user's to fix: the CLI prints them as one line, without a traceback."""
from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input or environment (bad grid file, missing data, unknown name).

    The message must say what is wrong and what would fix it, on one line.
    """


class ConfigError(UserError):
    """An invalid grid/task file: names the file, the field, the bad value and what is allowed."""


class DataError(UserError):
    """A missing, corrupt or unreadable data file."""


class ModelLoadError(UserError):
    """A model source that does not resolve or a model directory that does not load."""
