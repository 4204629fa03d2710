"""The ``vae-zoo`` command: a LightningCLI over every model and data module.

``vae-zoo fit --config configs/vae_mnist.yaml`` trains; ``validate``, ``test`` and ``predict``
take ``--ckpt_path``. ``--model`` and ``--data`` accept a class name of the zoo (``VAE``) or the
import path of any LightningModule / LightningDataModule (``my_package.MyVAE``).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Literal, NoReturn

import lightning as L
import torch
import yaml
from jsonargparse import Namespace, lazy_instance
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from lightning.pytorch.callbacks import ProgressBar as LightningProgressBar
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
    PredictionWriter,
    ProgressBar,
    RandomStateCheckpoint,
)
from vae_zoo.checkpointing import (
    AtomicCheckpointIO,
    BestAndLastCheckpoint,
    checkpoint_data_differences,
    read_checkpoint,
)
from vae_zoo.compat import cli_config_value, started_wandb_run
from vae_zoo.console import fit_summary, quiet_third_party_notices, shown_path
from vae_zoo.data import DataError
from vae_zoo.errors import CheckpointError, ConfigurationError
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
    the run's config (key ``cli``); else as ``config.yaml`` in the logger's folder, as Lightning does.
    Without a logger only ``fit`` saves it (in ``default_root_dir``, next to ``checkpoints/``):
    ``test``, ``validate`` and ``predict`` have no run folder to put it in."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.logger is None and stage != "fit":
            return  # no run folder to keep it in: it would land in the working directory
        if not isinstance(trainer.logger, LightningWandbLogger):
            super().setup(trainer, pl_module, stage)
            if trainer.log_dir is not None:
                self.saved_path = Path(trainer.log_dir) / self.config_filename
            return
        if self.already_saved:
            return
        if trainer.is_global_zero:
            run = trainer.logger.experiment
            path = Path(run.dir) / WANDB_CONFIG_FILE
            self.parser.save(self.config, path, skip_none=False, overwrite=True, multifile=False)
            self.saved_path = path
            run.config.update({"cli": self.config.clone().as_dict()}, allow_val_change=True)
        self.already_saved = True


class ArgumentParser(LightningArgumentParser):
    """The command's parser, whose errors (a malformed config, an unknown key, a value of the wrong
    type) end with one line naming the key or file and what was expected, then one line pointing
    at ``--help``: no usage dump. Exit code 2, as argparse's."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # jsonargparse parsing on its own behalf: let it raise
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        exit_with_parser_error(parser.prog.replace(" [options]", ""), condense_parser_message(message))


def condense_parser_message(message: str) -> str:
    """jsonargparse's error, several lines deep for an argument of a subclass, on one line: the
    full key, the type expected and the value given, e.g. ``model.lr: expected float; got 'fast'``;
    other errors by their first line and first reason."""
    keys = [key for key in re.findall(r'Parser key "([^"]+)"', message) if key != "init_args"]
    got = re.search(r"Expected a <class '([\w.]+)'>\. Got value: (.*)", message)
    if keys and got:
        return f"{'.'.join(dict.fromkeys(keys))}: expected {got.group(1)}; got {got.group(2).strip()!r}"
    refused = re.search(r"class_path '([\w.]+)':\s*Option '(\w+)' is not accepted", message)
    if keys and refused:
        name = refused.group(1).rsplit(".", 1)[-1]
        return f"{keys[0]}: {name} has no argument {refused.group(2)!r}"
    expected = [
        TYPE_NAMES.get(name, name) if name else "one of " + choices
        for name, choices in re.findall(
            r"Expected a (?:<class '([\w.]+)'>|typing\.Literal\[(.*?)\])\n", message
        )
    ]
    given = re.search(r"Given value: (.*)", message)
    if keys and expected and given:
        return f"{keys[0]}: expected {' or '.join(dict.fromkeys(expected))}; got {given.group(1).strip()!r}"
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "invalid arguments"
    head = lines[0].rstrip(":")
    skipped = ("Given value", "Subtypes", "Errors")
    reasons = [line.lstrip("- ") for line in lines[1:] if not line.startswith(skipped)]
    text = f"{head}: {reasons[0]}" if reasons else head
    return text if len(text) <= 300 else text[:297] + "..."


TYPE_NAMES = {"NoneType": "null"}


def exit_with_parser_error(prog: str, message: str) -> NoReturn:
    """Print ``<prog>: error: <message>`` and a pointer to ``--help``; exit with code 2."""
    sys.stderr.write(f"{prog}: error: {message}\n(see `{prog} --help` for the accepted arguments)\n")
    raise SystemExit(BAD_INPUT_EXIT_CODE)


def check_config_files(args: list[str], prog: str) -> None:
    """Read every YAML file given with ``--config``/``-c`` in ``args``; a malformed one ends the
    command with its name, line and column and what the YAML parser expected (exit code 2).
    Values that are no existing file are left to the parser (it also takes a YAML string)."""
    for index, arg in enumerate(args):
        if arg in ("--config", "-c") and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        else:
            continue
        path = Path(value)
        if not path.is_file():
            continue
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            context = getattr(error, "context", None)
            reason = f"{problem} ({context})" if context else problem
            exit_with_parser_error(prog, f"{value}{where}: not valid YAML: {reason}")
        except (OSError, UnicodeDecodeError) as error:
            exit_with_parser_error(prog, f"{value}: cannot be read: {error}")


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
        kwargs.setdefault("parser_class", ArgumentParser)
        super().__init__(*args, **kwargs)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """The parser, named ``vae-zoo`` in its messages whatever ``sys.argv[0]`` is."""
        kwargs.setdefault("prog", "vae-zoo")
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # ModelCheckpoint whose last.ckpt is the last epoch, also under Lightning >= 2.6
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)
        parser.set_defaults({"trainer.logger": lazy_instance(WandbLogger)})
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")
        parser.add_argument(
            "--float32_matmul_precision",
            type=Literal["highest", "high", "medium"] | None,
            default=None,
            help=(
                "torch.set_float32_matmul_precision for the run: 'highest' computes float32 "
                "matrix products in float32; 'high' and 'medium' let GPUs with tensor cores use "
                "TF32 or bfloat16 for them (faster, about 3 decimal digits). Default: torch's own."
            ),
        )

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The trainer, with the zoo's defaults added to what is configured:

        * :class:`~vae_zoo.callbacks.ProgressBar`, which redraws every ``PROGRESS_REFRESH_RATE``
          training steps and after every evaluation batch, unless one is configured: Lightning's
          default redraws every step, which on a CPU costs as much as the rest of the framework;
        * in ``predict``, :class:`~vae_zoo.callbacks.PredictionWriter`, unless a
          ``BasePredictionWriter`` is configured;
        * :class:`~vae_zoo.callbacks.NonFiniteLossGuard` and
          :class:`~vae_zoo.callbacks.RandomStateCheckpoint`, unless one of the same class is
          configured;
        * :class:`~vae_zoo.checkpointing.AtomicCheckpointIO` in ``plugins``, unless a
          ``CheckpointIO`` is configured there;
        * :class:`~vae_zoo.profilers.NoProfiler`, unless a profiler is configured.
        """
        trainer_config = cli_config_value(self, self.config_init, "trainer", default={})
        callbacks = as_list(trainer_config.get("callbacks"))
        defaults: list[Callback] = []
        if trainer_config.get("enable_progress_bar", True) is not False and not any(
            isinstance(callback, LightningProgressBar) for callback in callbacks
        ):
            defaults.append(ProgressBar(refresh_rate=PROGRESS_REFRESH_RATE))
        if getattr(self, "subcommand", None) == "predict" and not any(
            isinstance(callback, BasePredictionWriter) for callback in callbacks
        ):
            defaults.append(PredictionWriter())
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

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse the arguments; a malformed config file, or a ``--ckpt_path`` that is no readable
        checkpoint or was trained on other data than the config gives, ends the command with one
        line and exit code 2. A checkpoint of another model than the config's is used, as
        Lightning does, and a note says so."""
        arguments = args if isinstance(args, list) else (sys.argv[1:] if args is None else [])
        subcommand = next((a for a in arguments if not a.startswith("-")), "")
        check_config_files(arguments, f"{parser.prog} {subcommand}".strip())
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand and self.config[subcommand].get("ckpt_path"):
            self._check_checkpoint(subcommand, self.config[subcommand])

    def _check_checkpoint(self, subcommand: str, config: Namespace) -> None:
        try:
            checkpoint = read_checkpoint(config.ckpt_path)
            if checkpoint is None:
                return
            model, data = config.get("model"), config.get("data")
            saved_model = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
            if saved_model and isinstance(model, Namespace) and model.get("class_path"):
                saved_name, configured = short_name(saved_model), short_name(model.class_path)
                if saved_name != configured:
                    sys.stderr.write(
                        f"vae-zoo {subcommand}: note: {config.ckpt_path} holds a {saved_name}; it is "
                        f"used with its own hyperparameters, not the config's {configured}\n"
                    )
            if isinstance(data, Namespace) and data.get("class_path"):
                arguments = data.get("init_args") or Namespace()
                differences = checkpoint_data_differences(checkpoint, data.class_path, arguments.as_dict())
                if differences:
                    raise CheckpointError(
                        f"ckpt_path={config.ckpt_path!r} was trained on other data than the config gives "
                        f"({'; '.join(differences)}); pass the checkpoint's values (--data.<name> <value>) "
                        "or the config of the run that wrote it"
                    )
        except CheckpointError as error:
            self._exit_with(error, subcommand=subcommand)

    def _run_subcommand(self, subcommand: str) -> None:
        """Run ``subcommand``; missing or bad data found while loading it (a truncated IDX file,
        a batch larger than the split) and the library's own checks of the inputs
        (:class:`~vae_zoo.errors.ConfigurationError`) end it with their message and exit code 2,
        a training fault (a non-finite loss, posterior collapse with ``action="raise"``) with its
        message and exit code 3. Any other exception keeps its traceback."""
        try:
            super()._run_subcommand(subcommand)
        except (FileNotFoundError, DataError, ConfigurationError) as error:
            self._exit_with(error)
        except TRAINING_FAULTS as error:
            self._exit_with(error, TRAINING_FAULT_EXIT_CODE)

    def _exit_with(
        self, error: BaseException, code: int = BAD_INPUT_EXIT_CODE, subcommand: str | None = None
    ) -> None:
        """Print the first error raised (the root of the chain, or the library's own error that
        explains it) on one line and exit with ``code``; ``VAE_ZOO_TRACEBACK=1`` re-raises it with
        its traceback instead."""
        if os.environ.get(TRACEBACK_VARIABLE):
            raise error
        root = error
        while root.__cause__ is not None and not isinstance(root, ConfigurationError):
            root = root.__cause__
        subcommand = subcommand or getattr(self, "subcommand", None) or ""
        sys.stderr.write(
            f"vae-zoo {subcommand}: error: {type(root).__name__}: {root}\n"
            f"(run with {TRACEBACK_VARIABLE}=1 for the full traceback)\n"
        )
        raise SystemExit(code)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("float32_matmul_precision") is not None:
            torch.set_float32_matmul_precision(config.float32_matmul_precision)
        logger = config.get("trainer", {}).get("logger")
        model_name = config.model.class_path.rsplit(".", 1)[-1]
        if isinstance(logger, Namespace) and logger.get("class_path", "").endswith("WandbLogger"):
            init_args = logger.init_args
            if "group" in init_args and init_args.group is None:
                init_args.group = model_name
            if "tags" in init_args and not init_args.tags:
                init_args.tags = [model_name]

    def after_fit(self) -> None:
        """On rank zero, once ``fit`` is over: close the W&B run (so that its own closing lines come
        first) and print :func:`~vae_zoo.console.fit_summary`."""
        trainer = self.trainer
        if not trainer.is_global_zero:
            return
        saver = next((c for c in trainer.callbacks if isinstance(c, SaveConfigCallback)), None)
        config = getattr(saver, "saved_path", None)
        config_args = (
            ["--config", shown_path(config)] if config is not None else config_arguments(sys.argv[1:])
        )
        summary = fit_summary(trainer, config_args)
        for logger in trainer.loggers:
            run = started_wandb_run(logger) if isinstance(logger, LightningWandbLogger) else None
            if run is not None:
                run.finish()
        sys.stdout.write(summary)
        sys.stdout.flush()


def short_name(class_path: str) -> str:
    """The class name of an import path: ``vae_zoo.models.VAE`` -> ``VAE``."""
    return class_path.rsplit(".", 1)[-1]


def config_arguments(args: list[str]) -> list[str]:
    """The ``--config`` arguments of a command line, e.g. ``["--config", "a.yaml"]``."""
    kept: list[str] = []
    for index, arg in enumerate(args):
        if arg in ("--config", "-c") and index + 1 < len(args):
            kept += ["--config", args[index + 1]]
        elif arg.startswith("--config="):
            kept += ["--config", arg.split("=", 1)[1]]
    return kept


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
    DDP process runs it, and closes its process group on the way out. Third-party notices that a
    user cannot act on are hidden while it runs (``VAE_ZOO_ALL_WARNINGS=1`` shows them)."""
    try:
        with quiet_third_party_notices():
            VaeZooCLI(*cli_classes(), args=args)
    finally:
        close_process_group()


if __name__ == "__main__":
    main()
