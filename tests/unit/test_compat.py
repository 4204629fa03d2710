"""Each use of a private internal of Lightning (vae_zoo.compat), so that a release that changes
one fails here."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import wandb
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.demos.boring_classes import BoringModel
from torchmetrics import MeanMetric

from vae_zoo.compat import (
    HOOK_NAME_ATTRIBUTE,
    checkpoint_schedule,
    cli_config_value,
    drop_wandb_anonymous_setting,
    forget_computed_value,
    is_local_path,
    save_last_unless_saved,
    saves_at_train_epoch_end,
    started_wandb_run,
)
from vae_zoo.loggers import WandbLogger


def test_the_wandb_logger_passes_no_anonymous_setting_and_wandb_says_nothing_of_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, quiet=False)
    assert "anonymous" not in logger._wandb_init and logger._wandb_init["project"] == "vae-zoo"
    drop_wandb_anonymous_setting(logger)  # a second call changes nothing
    try:
        logger.experiment.log({"x": 1.0})
    finally:
        wandb.finish()
    assert "anonymous" not in capfd.readouterr().err


def test_started_wandb_run_never_starts_one(tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    assert started_wandb_run(logger) is None and wandb.run is None
    try:
        run = logger.experiment
        assert started_wandb_run(logger) is run
    finally:
        wandb.finish()


def test_checkpoint_internals_read_what_lightning_holds(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path, monitor="val/loss", every_n_epochs=2, save_last=True)
    assert checkpoint_schedule(callback) == ("val/loss", "min", 0, 2, None)
    assert is_local_path(tmp_path / "a.ckpt") and not is_local_path("s3://bucket/a.ckpt")
    model = BoringModel()
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=0,
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model)
    assert saves_at_train_epoch_end(callback, trainer)  # no validation: at the end of the epoch
    (tmp_path / "last.ckpt").unlink()
    save_last_unless_saved(callback, trainer)  # this step was saved already: nothing written
    assert not (tmp_path / "last.ckpt").exists()
    # that it writes last.ckpt otherwise: test_resume.py's BestAndLastCheckpoint tests


def test_forget_computed_value_makes_a_metric_compute_anew() -> None:
    metric = MeanMetric()
    metric.update(torch.tensor([1.0, 3.0]))
    assert float(metric.compute()) == 2.0
    metric.mean_value.fill_(10.0)  # changed behind torchmetrics' back: the cached value stays
    assert float(metric.compute()) == 2.0
    forget_computed_value(metric)
    assert float(metric.compute()) == 5.0


def test_lightning_calls_hooks_with_the_hook_name_attribute() -> None:
    seen = []

    class Recorder(BoringModel):
        def on_train_start(self) -> None:
            seen.append(getattr(self, HOOK_NAME_ATTRIBUTE))

    L.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(Recorder())
    assert seen == ["on_train_start"]


def test_cli_config_value_reads_the_subcommands_config() -> None:
    config = Namespace(subcommand="fit", fit=Namespace(trainer=Namespace(max_epochs=3)))
    cli = LightningCLI.__new__(LightningCLI)
    cli.subcommand = "fit"
    assert cli_config_value(cli, config, "trainer").max_epochs == 3
    assert cli_config_value(cli, config, "missing", default={}) == {}
