"""On a CUDA device: a training step that does not log never waits for the device.

Skipped where there is no CUDA device (CI's machines); ``benchmarks/gpu_check.sh`` runs it on one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from vae_zoo.callbacks import ProgressBar
from vae_zoo.data import ArrayDataModule
from vae_zoo.models import VAE

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

LOG_EVERY = 5


class FailOnHostSync(Callback):
    """Makes any synchronisation with the host an error, from the start of each step that neither
    logs, nor redraws the progress bar, nor is the first, to the start of the next: the step, its
    hooks, the fetching of the next batch."""

    def __init__(self) -> None:
        self.watched = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        logs = pl_module._writes_step_logs() or pl_module._redraws_progress_bar(batch_idx)  # the model's say
        watched = batch_idx > 0 and not logs
        self.watched += int(watched)
        torch.cuda.set_sync_debug_mode("error" if watched else "default")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("progress_bar", [False, True])
def test_steps_that_do_not_log_never_wait_for_the_device(tmp_path: Path, progress_bar: bool) -> None:
    images = (np.random.default_rng(0).random((400, 1, 8, 8)) > 0.5).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    data = ArrayDataModule(str(tmp_path / "images.npy"), val_size=0, batch_size=16)
    watch = FailOnHostSync()
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        accelerator="gpu",
        devices=1,
        max_epochs=1,
        log_every_n_steps=LOG_EVERY,
        limit_val_batches=0,
        callbacks=[watch, ProgressBar(refresh_rate=20)] if progress_bar else [watch],  # the command's bar
        enable_checkpointing=False,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
    )
    try:
        trainer.fit(VAE(input_shape=[1, 8, 8], latent_dim=3, hidden_dims=[16]), datamodule=data)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert watch.watched >= 15  # 25 steps: 5 log, at most 2 redraw the bar, the first is not watched
