"""Means over examples, in nats per example: the ELBO and its parts, as torchmetrics Metrics."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class ExampleMean(Metric):
    """The mean over examples of a per-example quantity, e.g. a loss term in nats per example.

    The states are the float64 sum of the values and the number of examples, both summed across
    processes, so the result is the mean over every example of every process whatever the split
    (never a mean of per-process means, which weights a short shard like a long one).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better: bool | None = None

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor) -> None:
        """Add one value per example: [B]."""
        if values.ndim != 1:
            raise ValueError(
                f"{type(self).__name__} takes one value per example, [B]; got {list(values.shape)}"
            )
        self.total += values.detach().double().sum()
        self.count += values.shape[0]

    def compute(self) -> torch.Tensor:
        return self.total / self.count


class ELBO(ExampleMean):
    """The evidence lower bound ``mean_x (E_q[log p(x|z)] - KL(q(z|x) || p(z)))`` in nats per example
    (higher is better), from each example's ``recon = -log p(x|z)`` at a draw ``z ~ q(z|x)`` and its
    ``kl`` (analytic, or a Monte Carlo estimate at the same draw): ``-mean_x (recon + kl)``.
    """

    higher_is_better = True

    def update(self, recon: torch.Tensor, kl: torch.Tensor) -> None:
        """Add per-example ``recon`` [B] and ``kl`` [B]."""
        if recon.shape != kl.shape:
            raise ValueError(
                f"recon and kl must have the same shape; got {list(recon.shape)}, {list(kl.shape)}"
            )
        super().update(-(recon.detach().double() + kl.detach().double()))
