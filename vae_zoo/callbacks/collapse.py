"""Posterior-collapse detection from latent diagnostics computed in every validation epoch."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from vae_zoo.errors import ConfigurationError
from vae_zoo.metrics import ActiveUnits, ComponentOccupancy, KLPerDimension, MutualInformation
from vae_zoo.models.base import batch_inputs
from vae_zoo.priors import GaussianMixture, StandardNormal

MI_EXAMPLES_PER_BATCH = 256


class PosteriorCollapseError(RuntimeError):
    """Raised by :class:`CollapseDetection` with ``action="raise"``."""


class CollapseDetection(Callback):
    """Logs latent diagnostics each validation epoch and reports posterior collapse.

    Logged (for VAE-family models): ``val/active_units`` (Burda et al.: dimensions whose
    posterior mean varies over the data with variance above ``active_threshold``),
    ``val/mutual_info`` (an estimate of ``I(x; z)`` in nats over batches of 256 examples, so at
    most ``log 256 = 5.55``; see :class:`~vae_zoo.metrics.MutualInformation`), ``val/kl_dim/<j>`` (the average
    KL of each dimension, under a ``N(0, I)`` prior) and, for mixture priors,
    ``val/occupancy_min`` and ``val/occupancy_max`` (fractions of the data assigned to the least
    and most used cluster of the mixture).

    Collapse is declared when any of these holds: fewer than ``min_active_units`` active units;
    every dimension's KL below ``kl_epsilon`` for ``patience`` consecutive epochs; a cluster
    holding less than ``min_occupancy`` of the data; one cluster holding more than
    ``max_occupancy`` (not checked while a mixture model is still in its warm-up, when its prior
    is not yet fitted). Then, with the figures: ``action="warn"`` warns, ``"stop"`` also stops
    training, ``"raise"`` raises :class:`PosteriorCollapseError`. The epoch counter is part of
    the checkpoint.

    Args:
        min_active_units: the floor of active units.
        active_threshold: the variance above which a unit is active (Burda et al.: 0.01).
        kl_epsilon: the KL (nats) below which a dimension carries no information.
        patience: consecutive epochs of all-dimensions-below-``kl_epsilon`` before reporting.
        min_occupancy, max_occupancy: bounds on a mixture cluster's share of the data.
        action: ``"warn"``, ``"stop"`` or ``"raise"``.
    """

    def __init__(
        self,
        min_active_units: int = 1,
        active_threshold: float = 0.01,
        kl_epsilon: float = 0.01,
        patience: int = 2,
        min_occupancy: float = 0.01,
        max_occupancy: float = 0.9,
        action: Literal["warn", "stop", "raise"] = "warn",
    ) -> None:
        if action not in ("warn", "stop", "raise"):
            raise ValueError(f"action must be one of ['warn', 'stop', 'raise']; got {action!r}")
        if not (isinstance(min_active_units, int) and min_active_units >= 0):
            raise ValueError(f"min_active_units must be an integer >= 0; got {min_active_units!r}")
        if not (isinstance(patience, int) and patience >= 1):
            raise ValueError(f"patience must be an integer >= 1; got {patience!r}")
        if not 0 <= min_occupancy < max_occupancy <= 1:
            raise ValueError(
                f"need 0 <= min_occupancy < max_occupancy <= 1; got {min_occupancy} and {max_occupancy}"
            )
        if not (active_threshold > 0 and kl_epsilon > 0):
            raise ValueError(
                f"active_threshold and kl_epsilon must be > 0; got {active_threshold}, {kl_epsilon}"
            )
        self.min_active_units = min_active_units
        self.active_threshold = active_threshold
        self.kl_epsilon = kl_epsilon
        self.patience = patience
        self.min_occupancy = min_occupancy
        self.max_occupancy = max_occupancy
        self.action = action
        self.low_kl_epochs = 0
        self.collapsed = False
        self.metrics: dict[str, Any] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not hasattr(pl_module, "posterior"):
            raise ConfigurationError(
                f"CollapseDetection needs a model with a posterior q(z|x) (VAE family); "
                f"{type(pl_module).__name__} has none"
            )

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        prior = pl_module.prior
        metrics: dict[str, Any] = {
            "active": ActiveUnits(pl_module.latent_dim, self.active_threshold),
            "mutual_info": MutualInformation(),
        }
        if isinstance(prior, StandardNormal):
            metrics["kl_dim"] = KLPerDimension(pl_module.latent_dim)
        if isinstance(prior, GaussianMixture):
            metrics["occupancy"] = ComponentOccupancy(prior.num_clusters)
        self.metrics = {name: metric.to(pl_module.device) for name, metric in metrics.items()}

    @torch.no_grad()
    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        posterior = pl_module.posterior(batch_inputs(batch))
        self.metrics["active"].update(posterior.mean)
        sub = slice(0, MI_EXAMPLES_PER_BATCH)
        self.metrics["mutual_info"].update(posterior.loc[sub], posterior.scale[sub])
        if "kl_dim" in self.metrics:
            self.metrics["kl_dim"].update(pl_module.prior.kl_per_dim(posterior))
        if "occupancy" in self.metrics:
            self.metrics["occupancy"].update(
                pl_module.prior.cluster_responsibilities(posterior.mean).argmax(-1)
            )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        figures = {name: metric.compute() for name, metric in self.metrics.items()}
        active = int(figures["active"])
        logged = {"val/active_units": float(active), "val/mutual_info": float(figures["mutual_info"])}
        reasons = []
        if active < self.min_active_units:
            reasons.append(f"{active} active units < min_active_units={self.min_active_units}")
        if "kl_dim" in figures:
            kl = figures["kl_dim"]
            logged.update({f"val/kl_dim/{j}": float(value) for j, value in enumerate(kl)})
            below = bool((kl < self.kl_epsilon).all())
            if not trainer.sanity_checking:
                self.low_kl_epochs = self.low_kl_epochs + 1 if below else 0
            if self.low_kl_epochs >= self.patience:
                reasons.append(
                    f"every dimension's KL < {self.kl_epsilon} nats for {self.low_kl_epochs} epochs "
                    f"(largest {float(kl.max()):.4g})"
                )
        if "occupancy" in figures and not getattr(pl_module, "warming_up", False):
            share = figures["occupancy"]
            logged.update({"val/occupancy_min": float(share.min()), "val/occupancy_max": float(share.max())})
            if share.min() < self.min_occupancy:
                reasons.append(
                    f"a cluster holds {float(share.min()):.2%} < {self.min_occupancy:.0%} of the data"
                )
            if share.max() > self.max_occupancy:
                reasons.append(
                    f"one cluster holds {float(share.max()):.2%} > {self.max_occupancy:.0%} of the data"
                )
        pl_module.log_dict(logged, on_step=False, on_epoch=True)
        if trainer.sanity_checking or not reasons:
            return
        self.collapsed = True
        message = (
            f"posterior collapse at epoch {trainer.current_epoch}: "
            + "; ".join(reasons)
            + f" (mutual information {logged['val/mutual_info']:.3f} nats)"
        )
        if self.action == "raise":
            raise PosteriorCollapseError(message)
        rank_zero_warn(message)
        if self.action == "stop":
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"low_kl_epochs": self.low_kl_epochs, "collapsed": self.collapsed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.low_kl_epochs = state_dict["low_kl_epochs"]
        self.collapsed = state_dict["collapsed"]
