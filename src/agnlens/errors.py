"""Exceptions and warnings of agnlens.

Every error a user can trigger with bad input is one of these, with a message that names the file
(or object) and says what was expected and what came.
"""


class AgnlensError(Exception):
    """Base class of every error agnlens raises on purpose."""


class ReadError(AgnlensError, ValueError):
    """A file could not be read as a spectrum or a catalogue.

    The message starts with the path, then the reason, so it fits on one log line.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # pickled whole (a Dask worker's error reaches the client as a ReadError)
        return type(self), (self.path, self.reason)


class RejectedSpectrum(AgnlensError, ValueError):
    """A spectrum was read but cannot be used (redshift, coverage, bad pixels...)."""

    def __init__(self, source, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class ModelFileError(AgnlensError, ValueError):
    """A model file is not an agnlens model, was tampered with, or does not fit the data."""


class UsageError(AgnlensError):
    """A command or function was called wrongly (the CLI exits with status 2)."""


class ModelPinError(ModelFileError, UsageError):
    """A model file is not the one pinned by its SHA-256 (``--model-sha256``); the CLI exits 2."""


class AgnlensWarning(UserWarning):
    """Recoverable trouble: the result is usable but the user should know."""
