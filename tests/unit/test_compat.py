"""Each use of a private internal of Lightning (vae_zoo.compat), so that a release that changes
one fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
import wandb

from vae_zoo.compat import drop_wandb_anonymous_setting, started_wandb_run
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
