"""Reconstruction errors per example (summed over data dimensions), as torchmetrics Metrics."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from vae_zoo.metrics.elbo import ExampleMean


def _check_shapes(preds: torch.Tensor, target: torch.Tensor) -> None:
    if preds.shape != target.shape or preds.ndim < 1:
        raise ValueError(
            f"preds and target must be batches [B, ...] of the same shape; "
            f"got {list(preds.shape)} and {list(target.shape)}"
        )


class SquaredError(ExampleMean):
    """``mean_x ||x - x_hat||^2``: squared error summed over data dimensions, averaged over examples."""

    higher_is_better = False

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add reconstructions ``preds`` and inputs ``target``, both [B, ...]."""
        _check_shapes(preds, target)
        error = (preds.detach().double() - target.detach().double()) ** 2
        super().update(error.reshape(error.shape[0], -1).sum(1))


class BinaryCrossEntropy(ExampleMean):
    """``mean_x -sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)]``: the binary cross-entropy summed over
    data dimensions (nats per example), for data in ``[0, 1]``; with binary data it is the negative
    Bernoulli log-likelihood of the reconstruction.

    Args:
        from_logits: ``preds`` are logits ``log(p / (1 - p))`` (computed stably) rather than
            probabilities ``p`` (whose logarithms are clamped at -100, as PyTorch's BCE does).
    """

    higher_is_better = False

    def __init__(self, from_logits: bool = True) -> None:
        super().__init__()
        self.from_logits = from_logits

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add predictions ``preds`` (logits or probabilities) and data ``target``, both [B, ...]."""
        _check_shapes(preds, target)
        preds, target = preds.detach().double(), target.detach().double()
        if self.from_logits:
            error = F.binary_cross_entropy_with_logits(preds, target, reduction="none")
        else:
            error = F.binary_cross_entropy(preds, target, reduction="none")
        super().update(error.reshape(error.shape[0], -1).sum(1))
