"""An autoencoder warm-up, then a start set from the clusters of its codes: how the clustering
models of the zoo (:class:`~vae_zoo.models.GMMVAE`, :class:`~vae_zoo.models.GMVAE`) begin."""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from vae_zoo.models.base import LatentVariableModel, reconstruction_only
from vae_zoo.nn import split_last_linear
from vae_zoo.validation import check_int

#: at the start, the posterior's variance is this share of the prior's: the first draws stay
#: inside their cluster, whatever the scale of the warm-up's codes (with the untrained head's
#: variance, about 1, the first epochs scattered small codes' clusters: ``benchmarks/RESULTS.md``)
START_VARIANCE_SHARE = 0.01


class WarmStart(LatentVariableModel):
    """A model that trains as a deterministic autoencoder for its first ``warmup_epochs``, then
    :meth:`start_from_warmup` sets it from the codes of the training set, once, at the beginning
    of epoch ``warmup_epochs``.

    During the warm-up the training loss is the reconstruction alone
    (:func:`~vae_zoo.models.base.reconstruction_only`); evaluation always reports the model's own
    bound, so checkpoints compare across the switch. Whether the model has started is the
    ``started`` buffer, stored in checkpoints: the start is not repeated on resume.

    The start sets the encoder's last layer (:meth:`split_encoder`), which must be an
    ``nn.Linear``; a model that will start refuses another encoder when it is built.

    Subclasses call :meth:`init_warm_start` in their ``__init__``, implement
    :meth:`start_from_warmup`, and give their warm-up's code in ``loss_terms`` while
    :attr:`warming_up`.
    """

    warmup_epochs: int

    def init_warm_start(self, warmup_epochs: int, started: bool = False) -> None:
        """Check and keep ``warmup_epochs``; ``started`` marks a model that trains as it is, with
        no start (the GMVAE without a warm-up)."""
        check_int("warmup_epochs", warmup_epochs, minimum=0)
        self.warmup_epochs = warmup_epochs
        self.register_buffer("started", torch.tensor(started))
        if not started:
            self.split_encoder()  # refuse an encoder the start cannot use now, not after the warm-up

    def split_encoder(self) -> tuple[nn.Sequential, nn.Linear]:
        """The encoder as ``(body, head)``: its last hidden features and the linear layer that
        gives the posterior's parameters from them (:func:`~vae_zoo.nn.split_last_linear`)."""
        try:
            return split_last_linear(self.encoder)
        except TypeError:
            encoder = self.encoder
            last = f" ending in {type(encoder[-1]).__name__}" if isinstance(encoder, nn.Sequential) else ""
            raise TypeError(
                f"{type(self).__name__}'s start needs an encoder that is an nn.Sequential ending in "
                f"nn.Linear (the built-in 'mlp' and 'conv' are); got {type(encoder).__name__}{last}"
            ) from None

    @property
    def warming_up(self) -> bool:
        """Whether the model has not started yet (training is the autoencoder warm-up)."""
        return not bool(self.started)

    @abstractmethod
    def start_from_warmup(self) -> None:
        """Set the model from the codes of the training set and mark it ``started``; called
        once, after the warm-up."""

    def set_start_variance(self, rows: slice, log_variance: torch.Tensor) -> None:
        """Make the encoder's output ``rows`` (raw log-variances) give
        ``log_variance + log(START_VARIANCE_SHARE)`` [len(rows)] for every input: the weights of
        those rows of its last layer zero, their bias that value."""
        head = self.split_encoder()[1]
        head.weight[rows] = 0.0
        head.bias[rows] = log_variance.flatten() + math.log(START_VARIANCE_SHARE)

    def objective(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.training and self.warming_up:
            return reconstruction_only(terms)
        return super().objective(terms)

    def on_train_start(self) -> None:
        """Warn when the warm-up is as long as the fit (``trainer.max_epochs``): such a fit never
        starts the model and trains an autoencoder only."""
        super().on_train_start()
        max_epochs = self.trainer.max_epochs
        if self.warming_up and max_epochs is not None and 0 <= max_epochs <= self.warmup_epochs:
            rank_zero_warn(
                f"{type(self).__name__}'s warm-up lasts {self.warmup_epochs} epochs and "
                f"trainer.max_epochs is {max_epochs}: this fit trains the autoencoder only; raise "
                f"max_epochs above warmup_epochs to train the model itself"
            )

    def on_train_epoch_start(self) -> None:
        if self.warming_up and self.current_epoch >= self.warmup_epochs:
            self.start_from_warmup()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints from before ``started`` load as they trained: the GMM-VAE's flag was called
        ``prior_initialized``; a GMVAE's without a flag trained without a warm-up."""
        state = checkpoint["state_dict"]
        if "prior_initialized" in state:
            state["started"] = state.pop("prior_initialized")
        state.setdefault("started", torch.tensor(True))
        super().on_load_checkpoint(checkpoint)
