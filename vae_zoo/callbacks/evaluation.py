"""Evaluation that is too costly for every validation epoch, run at ``vae-zoo test``."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from vae_zoo.errors import ConfigurationError
from vae_zoo.metrics import IWAENegativeLogLikelihood
from vae_zoo.models.base import batch_inputs


class IWAEEvaluation(Callback):
    """Logs ``test/nll_iwae``: the mean over the test set of ``-log p(x)`` estimated with
    ``num_samples`` importance samples (Burda et al. 2015; 5000 in their Table 1), decoded
    ``chunk_size`` at a time. For models with a posterior ``q(z|x)`` and a prior (the VAE family).

        vae-zoo test --config configs/vae_mnist.yaml --ckpt_path <checkpoint> \\
            --trainer.callbacks+=vae_zoo.callbacks.IWAEEvaluation --trainer.callbacks.num_samples 5000

    The estimate is a lower bound on ``log p(x)``: ``test/nll_iwae`` lies at or below ``-test/elbo``
    up to Monte Carlo noise, and falls as ``num_samples`` grows.
    """

    def __init__(self, num_samples: int = 5000, chunk_size: int = 500) -> None:
        self.metric = IWAENegativeLogLikelihood(num_samples, chunk_size)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not all(hasattr(pl_module, name) for name in ("posterior", "prior", "decoder", "likelihood")):
            raise ConfigurationError(
                f"IWAEEvaluation needs a model with a posterior and a prior (VAE family); "
                f"{type(pl_module).__name__} has none"
            )

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.metric = self.metric.to(pl_module.device)
        self.metric.reset()

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.metric.update(pl_module, batch_inputs(batch))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # compute() already reduced the states of every process, so each holds the same value and
        # the mean that sync_dist takes leaves it unchanged (without it Lightning warns under DDP)
        pl_module.log("test/nll_iwae", self.metric.compute(), sync_dist=True)
