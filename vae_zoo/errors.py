"""The library's own error for bad input found once a run has started."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """A combination of inputs that the library's own checks refuse after the command started: a
    callback that does not fit the model (``KLAnnealing`` on a model without a KL term), a file
    given as ``--ckpt_path`` that is no readable checkpoint, a config whose data differ from the
    checkpoint's. The ``vae-zoo`` command ends with its message on one line and exit code 2; any
    other exception raised during a run is a bug and keeps its traceback. A ``ValueError``, so
    that code catching those still catches it."""


class CheckpointError(ConfigurationError):
    """A ``--ckpt_path`` that cannot be used: missing, unreadable, not a checkpoint, or trained on
    other data than the config gives."""
