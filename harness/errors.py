"""User-facing errors.

Anything the user can fix (a bad file, a wrong name, an unreachable server) is raised as a
`HarnessError`. The CLI prints its message and hint and exits non-zero without a traceback;
`--debug` shows the traceback. Programming errors stay ordinary exceptions.
"""
from __future__ import annotations


class HarnessError(Exception):
    """An error whose message is meant for the user, with an optional hint on how to fix it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class DatasetError(HarnessError):
    """A dataset file is missing, malformed, or cannot be obtained."""


class DownloadError(DatasetError):
    """A dataset could not be downloaded."""


class ConfigError(HarnessError):
    """A sweep file, an algorithm name or a parameter is wrong."""


class ParameterError(ConfigError, ValueError):
    """An adapter parameter has a value that is not allowed (raised by adapter constructors)."""
