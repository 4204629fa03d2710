"""The uses of private internals of Lightning (and one of torchmetrics) that the zoo cannot
avoid, in one place; each is tested (``tests/unit/test_compat.py``) so that a release that
changes one fails there. ``vae_zoo.cli`` also overrides LightningCLI's ``_run_subcommand``, the
one hook it has for errors raised while a subcommand runs."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import WandbLogger
from torchmetrics import Metric


def drop_wandb_anonymous_setting(logger: WandbLogger) -> None:
    """Stop ``logger`` from passing ``anonymous=None`` to ``wandb.init``.

    Lightning's ``WandbLogger`` always passes the ``anonymous`` setting, ``None`` unless asked
    for; wandb >= 0.19 ignores it and prints "The anonymous setting has no effect and will be
    removed in a future version" at every run. Without the key wandb behaves the same and says
    nothing. Reads Lightning's private ``_wandb_init`` (the keyword arguments of ``wandb.init``).
    """
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)


def started_wandb_run(logger: WandbLogger) -> Any | None:
    """The W&B run of ``logger`` if it has started one, else ``None``: unlike ``logger.experiment``,
    never starts a run. Reads Lightning's private ``_experiment``."""
    return getattr(logger, "_experiment", None)


# ----------------------------------------------------------------- LightningModule
#: the attribute Lightning sets on a module around every hook it calls (the hook's name, or
#: None); :class:`~vae_zoo.models.LatentVariableModel` stores it without ``nn.Module``'s checks
HOOK_NAME_ATTRIBUTE = "_current_fx_name"


# ----------------------------------------------------------------- checkpoints
def is_local_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is on the local file system (not ``s3://`` and the like), as Lightning's
    private ``_is_local_file_protocol`` decides."""
    return _is_local_file_protocol(path)


def checkpoint_schedule(callback: ModelCheckpoint) -> tuple[Any, ...]:
    """The settings of ``callback`` that its ``state_key`` names: monitor, mode, and the private
    ``_every_n_train_steps``, ``_every_n_epochs`` and ``_train_time_interval``."""
    return (
        callback.monitor,
        callback.mode,
        callback._every_n_train_steps,
        callback._every_n_epochs,
        callback._train_time_interval,
    )


def saves_at_train_epoch_end(callback: ModelCheckpoint, trainer: L.Trainer) -> bool:
    """Whether ``callback`` saves at the end of the training epoch (else after validation):
    Lightning's private ``_should_save_on_train_epoch_end``."""
    return callback._should_save_on_train_epoch_end(trainer)


def save_last_unless_saved(callback: ModelCheckpoint, trainer: L.Trainer) -> None:
    """Write ``callback``'s ``last.ckpt`` now, unless it is off or Lightning skips saving at this
    step (something was saved at this step already, and then so was ``last.ckpt``; the sanity
    check; outside fit; ``fast_dev_run``). Uses the private ``_should_skip_saving_checkpoint``,
    ``_save_last_checkpoint`` and ``_monitor_candidates``."""
    if callback.save_last and not callback._should_skip_saving_checkpoint(trainer):
        callback._save_last_checkpoint(trainer, callback._monitor_candidates(trainer))


# ----------------------------------------------------------------- torchmetrics
def forget_computed_value(metric: Metric) -> None:
    """Make ``metric`` compute anew at its next ``compute()``: torchmetrics caches the value in the
    private ``_computed`` until the next ``update``."""
    metric._computed = None


# ----------------------------------------------------------------- LightningCLI
def cli_config_value(cli: LightningCLI, config: Namespace, key: str, default: Any = None) -> Any:
    """``config[key]`` of the running subcommand (or the top level without one), through
    LightningCLI's private ``_get``."""
    return cli._get(config, key, default=default)
