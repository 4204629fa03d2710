"""The ``vae-zoo`` command: a LightningCLI over every model and data module.

``vae-zoo fit --config configs/vae_mnist.yaml`` trains; ``validate``, ``test`` and ``predict``
take ``--ckpt_path``. ``--model`` and ``--data`` accept a class name of the zoo (``VAE``) or the
import path of any LightningModule / LightningDataModule (``my_package.MyVAE``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from jsonargparse import Namespace, lazy_instance
from lightning.pytorch.callbacks import Callback, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.plugins.io import CheckpointIO

import vae_zoo.callbacks
import vae_zoo.data
import vae_zoo.models  # noqa: F401  (registers the classes for short names)
from vae_zoo.callbacks import (
    NonFiniteLossError,
    NonFiniteLossGuard,
    PosteriorCollapseError,
    RandomStateCheckpoint,
)
from vae_zoo.checkpointing import AtomicCheckpointIO, BestAndLastCheckpoint
from vae_zoo.data import DataError
from vae_zoo.loggers import WandbLogger
from vae_zoo.profilers import NoProfiler

PROGRESS_REFRESH_RATE = 20
TRACEBACK_VARIABLE = "VAE_ZOO_TRACEBACK"
BAD_INPUT_EXIT_CODE = 2
TRAINING_FAULT_EXIT_CODE = 3
# errors that end training on purpose, with a message that says why: one line, not a traceback
TRAINING_FAULTS = (NonFiniteLossError, PosteriorCollapseError)
# callbacks the command adds unless the config holds one of the same class
DEFAULT_CALLBACKS: tuple[type[Callback], ...] = (NonFiniteLossGuard, RandomStateCheckpoint)
CHECKPOINT_DEFAULTS = {
    "checkpoint.monitor": "val/loss",
    "checkpoint.mode": "min",
    "checkpoint.save_top_k": 1,
    "checkpoint.save_last": True,
    "checkpoint.filename": "best-{epoch:03d}",
}


WANDB_CONFIG_FILE = "cli-config.yaml"  # W&B keeps its own ``config.yaml`` in the same folder


class SaveConfig(SaveConfigCallback):
    """Saves the resolved config: under W&B as ``cli-config.yaml`` among the run's files and as
    the run's config (key ``cli``); else as ``config.yaml`` in the logger's folder, as Lightning does."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not isinstance(trainer.logger, LightningWandbLogger):
            super().setup(trainer, pl_module, stage)
            return
        if self.already_saved:
            return
        if trainer.is_global_zero:
            run = trainer.logger.experiment
            path = Path(run.dir) / WANDB_CONFIG_FILE
            self.parser.save(self.config, path, skip_none=False, overwrite=True, multifile=False)
            run.config.update({"cli": self.config.clone().as_dict()}, allow_val_change=True)
        self.already_saved = True


class Trainer(L.Trainer):
    """Lightning's ``Trainer``, typed so that the command reads ``limit_*_batches: 1`` as one batch.

    Lightning annotates ``limit_{train,val,test,predict}_batches`` as ``float | int | None``, so
    the command's parser turned ``--trainer.limit_test_batches 1`` (and a YAML ``1``) into the
    float ``1.0``, which Lightning reads as 100% of the batches. Here they are ``int | float |
    None``: a whole number (``1``, ``5``) is a number of batches, a number with a decimal point or
    an exponent (``0.1``, ``1.0``) a fraction of them, as in Lightning's own documentation. Every
    other argument is Lightning's, unchanged.
    """

    def __init__(
        self,
        *,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        **kwargs: Any,
    ) -> None:
        limits = {
            "limit_train_batches": limit_train_batches,
            "limit_val_batches": limit_val_batches,
            "limit_test_batches": limit_test_batches,
            "limit_predict_batches": limit_predict_batches,
        }
        # only those given, so that Lightning's defaults (and its PL_TRAINER_* variables) still apply
        super().__init__(**{name: value for name, value in limits.items() if value is not None}, **kwargs)


class VaeZooCLI(LightningCLI):
    """LightningCLI with the zoo's defaults: subclass mode for model and data, W&B logging, best
    and last checkpoints, seed 0, the data module's ``input_shape`` linked into the model, and
    :class:`Trainer` (``limit_*_batches: 1`` is one batch)."""

    def __init__(self, *args, **kwargs) -> None:
        if len(args) < 5:  # trainer_class is LightningCLI's fifth positional argument
            kwargs.setdefault("trainer_class", Trainer)
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_callback", SaveConfig)
        # without a logger the config goes to the unversioned default_root_dir: refusing to
        # overwrite it would make every second run in a folder fail
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("seed_everything_default", 0)
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # ModelCheckpoint whose last.ckpt is the last epoch, also under Lightning >= 2.6
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)
        parser.set_defaults({"trainer.logger": lazy_instance(WandbLogger)})
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The trainer, with the zoo's defaults added to what is configured:

        * a progress bar that redraws every ``PROGRESS_REFRESH_RATE`` steps unless one is
          configured: Lightning's default redraws every step, which costs about a millisecond a
          step on a CPU, as much as the rest of the framework together;
        * :class:`~vae_zoo.callbacks.NonFiniteLossGuard` and
          :class:`~vae_zoo.callbacks.RandomStateCheckpoint`, unless one of the same class is
          configured;
        * :class:`~vae_zoo.checkpointing.AtomicCheckpointIO` in ``plugins``, unless a
          ``CheckpointIO`` is configured there;
        * :class:`~vae_zoo.profilers.NoProfiler`, unless a profiler is configured.
        """
        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = as_list(trainer_config.get("callbacks"))
        defaults: list[Callback] = []
        if trainer_config.get("enable_progress_bar", True) is not False and not any(
            isinstance(callback, ProgressBar) for callback in callbacks
        ):
            defaults.append(TQDMProgressBar(refresh_rate=PROGRESS_REFRESH_RATE))
        for default in DEFAULT_CALLBACKS:
            if not any(isinstance(callback, default) for callback in callbacks):
                defaults.append(default())
        if defaults:
            kwargs.setdefault("callbacks", [*callbacks, *defaults])
        plugins = as_list(trainer_config.get("plugins"))
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            kwargs.setdefault("plugins", [*plugins, AtomicCheckpointIO()])
        if trainer_config.get("profiler") is None:
            kwargs.setdefault("profiler", NoProfiler())
        return super().instantiate_trainer(**kwargs)

    def instantiate_classes(self) -> None:
        """Build model, data and trainer; a bad argument ends the command with its own message
        (e.g. "latent_dim must be an integer >= 1; got 0") and exit code 2, not a traceback."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, FileNotFoundError) as error:
            self._exit_with(error)

    def _run_subcommand(self, subcommand: str) -> None:
        """Run ``subcommand``; missing or bad data found while loading it (a truncated IDX file,
        a batch larger than the split) ends it with its message and exit code 2, a training fault
        (a non-finite loss, posterior collapse with ``action="raise"``) with its message and exit
        code 3."""
        try:
            super()._run_subcommand(subcommand)
        except (FileNotFoundError, DataError) as error:
            self._exit_with(error)
        except TRAINING_FAULTS as error:
            self._exit_with(error, TRAINING_FAULT_EXIT_CODE)

    def _exit_with(self, error: BaseException, code: int = BAD_INPUT_EXIT_CODE) -> None:
        """Print the first error raised (the root of the chain) on one line and exit with ``code``;
        ``VAE_ZOO_TRACEBACK=1`` re-raises it with its traceback instead."""
        if os.environ.get(TRACEBACK_VARIABLE):
            raise error
        root = error
        while root.__cause__ is not None:
            root = root.__cause__
        sys.stderr.write(
            f"vae-zoo {self.subcommand}: error: {type(root).__name__}: {root}\n"
            f"(run with {TRACEBACK_VARIABLE}=1 for the full traceback)\n"
        )
        raise SystemExit(code)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        logger = config.get("trainer", {}).get("logger")
        model_name = config.model.class_path.rsplit(".", 1)[-1]
        if isinstance(logger, Namespace) and logger.get("class_path", "").endswith("WandbLogger"):
            init_args = logger.init_args
            if "group" in init_args and init_args.group is None:
                init_args.group = model_name
            if "tags" in init_args and not init_args.tags:
                init_args.tags = [model_name]


def as_list(value: Any) -> list[Any]:
    """A config value that may be None, one item or a list of them, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def cli_classes() -> tuple[type[L.LightningModule], type[L.LightningDataModule]]:
    """The base classes the command accepts for ``--model`` and ``--data``."""
    return L.LightningModule, L.LightningDataModule


def close_process_group() -> None:
    """Destroy the ``torch.distributed`` process group a DDP run opened, if one is open.

    Lightning destroys NCCL groups at exit but leaves gloo (CPU) groups to the interpreter's
    shutdown, where gloo's worker threads can abort the process ("terminate called without an
    active exception", exit code -6) after training has finished; destroying the group while
    the interpreter is alive avoids that."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``vae-zoo`` command (``args`` for calls from Python and tests); every
    DDP process runs it, and closes its process group on the way out."""
    try:
        VaeZooCLI(*cli_classes(), args=args)
    finally:
        close_process_group()


if __name__ == "__main__":
    main()
