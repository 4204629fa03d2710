"""What the ``vae-zoo`` command prints: third-party notices a user cannot act on are hidden while
the command runs (never at import of the library), and a summary ends ``fit``."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

from vae_zoo.compat import started_wandb_run

ALL_WARNINGS_VARIABLE = "VAE_ZOO_ALL_WARNINGS"
# the validation figures the summary of fit reports, those the model logged
SUMMARY_METRICS = (
    "val/loss",
    "val/elbo",
    "val/recon",
    "val/kl",
    "val/acc",
    "val/nmi",
    "val/ari",
    "val/dendrogram_purity",
    "val/active_units",
)

# (message pattern, why a user of the command cannot act on it); every warning of vae_zoo stays
THIRD_PARTY_WARNINGS: tuple[tuple[str, str], ...] = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", "Lightning's own use of a torch API"),
    (r"Sparse invariant checks are implicitly disabled", "torchmetrics' clustering metrics in torch"),
    # test/validate/predict with a checkpoint of another run: the checkpoint callback of this run,
    # which saves nothing in those commands, does not take over the other run's records
    (r"The dirpath has changed from", "ModelCheckpoint's state in a command that trains nothing"),
)
# (logger name, message pattern) of log records hidden the same way
THIRD_PARTY_LOG_RECORDS: tuple[tuple[str, str], ...] = (
    ("lightning.pytorch.utilities.rank_zero", r"Tip: For seamless cloud logging"),  # litlogger advert
)


class _DropMatching(logging.Filter):
    """Drops the records whose message matches ``pattern``."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def show_all_warnings() -> bool:
    """Whether ``VAE_ZOO_ALL_WARNINGS`` is set to anything but ``""`` or ``0``."""
    return os.environ.get(ALL_WARNINGS_VARIABLE, "") not in ("", "0")


@contextlib.contextmanager
def quiet_third_party_notices() -> Iterator[None]:
    """Within the block, hide the warnings of :data:`THIRD_PARTY_WARNINGS` and the log records of
    :data:`THIRD_PARTY_LOG_RECORDS`; nothing is hidden when ``VAE_ZOO_ALL_WARNINGS=1``. The
    previous warning filters and log filters are restored on exit."""
    if show_all_warnings():
        yield
        return
    filters = [(logging.getLogger(name), _DropMatching(pattern)) for name, pattern in THIRD_PARTY_LOG_RECORDS]
    with warnings.catch_warnings():
        for pattern, _ in THIRD_PARTY_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        for logger, log_filter in filters:
            logger.addFilter(log_filter)
        try:
            yield
        finally:
            for logger, log_filter in filters:
                logger.removeFilter(log_filter)


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as the summary prints it: relative to the working directory when inside it."""
    absolute = Path(path).resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def fit_summary(trainer: L.Trainer, config_args: Sequence[str], command: str = "vae-zoo") -> str:
    """What ``fit`` did, in a few lines: the best checkpoint and its monitored value, the last one,
    the validation figures of the last epoch (:data:`SUMMARY_METRICS`), where each logger put the
    logs and images, and the ``vae-zoo test`` command line for the best checkpoint, run with
    ``config_args`` (the saved config of the run)."""
    epochs, steps = trainer.current_epoch, trainer.global_step
    lines = [
        f"{command} fit: done, {epochs} epoch{'s' * (epochs != 1)}, {steps} training step{'s' * (steps != 1)}"
    ]
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "") or ""
    if best:
        score = getattr(checkpoint, "best_model_score", None)
        value = (
            f" ({checkpoint.monitor} {float(score):.4f})" if score is not None and checkpoint.monitor else ""
        )
        lines.append(f"  best checkpoint:  {shown_path(best)}{value}")
    last = getattr(checkpoint, "last_model_path", "") or ""
    if last and last != best:
        lines.append(f"  last checkpoint:  {shown_path(last)}")
    figures = [
        f"{name} {float(trainer.callback_metrics[name]):.4f}"
        for name in SUMMARY_METRICS
        if name in trainer.callback_metrics
    ]
    if figures:
        lines.append(f"  validation (last epoch):  {', '.join(figures)}")
    lines += [f"  {line}" for line in logger_locations(trainer)]
    if best:
        test = [command, "test", *config_args, "--ckpt_path", shown_path(best)]
        lines.append(f"  test it:  {shlex.join(test)}")
    return "\n".join(lines) + "\n"


def logger_locations(trainer: L.Trainer) -> list[str]:
    """Where each logger of ``trainer`` writes its metrics and images, one line each."""
    lines = []
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            run = started_wandb_run(logger)
            if run is None:
                continue
            folder = Path(run.dir).parent
            url = None if getattr(run, "offline", False) else getattr(run, "url", None)
            where = url if url else f"{shown_path(folder)} (offline; upload: wandb sync {shown_path(folder)})"
            lines.append(f"W&B run:  {where}; images in {shown_path(Path(run.dir) / 'media' / 'images')}")
        elif isinstance(logger, TensorBoardLogger):
            lines.append(
                f"TensorBoard logs and images:  {shown_path(logger.log_dir)} "
                f"(tensorboard --logdir {shown_path(logger.save_dir)})"
            )
        elif isinstance(logger, CSVLogger):
            log_dir = Path(logger.log_dir)
            lines.append(
                f"metrics:  {shown_path(log_dir / 'metrics.csv')}; images in {shown_path(log_dir / 'images')}"
            )
        elif logger.log_dir:
            lines.append(f"logs:  {shown_path(logger.log_dir)}")
    if not trainer.loggers:
        lines.append(f"images:  {shown_path(Path(trainer.default_root_dir) / 'images')} (no logger)")
    return lines
