"""The importance-weighted log-likelihood estimate of Burda et al. (2015), as a Metric."""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric


@torch.no_grad()
def iwae_log_likelihood(
    model: torch.nn.Module, x: torch.Tensor, num_samples: int, chunk_size: int = 500
) -> torch.Tensor:
    """``log p(x) ~ logsumexp_s(log p(x|z_s) + log p(z_s) - log q(z_s|x)) - log k``, ``z_s ~ q(z|x)``.

    A lower bound on ``log p(x)`` that tightens as ``k = num_samples`` grows (Burda et al. 2015);
    with ``k = 1`` its expectation is the ELBO. Needs a model with ``posterior(x)`` (a
    ``torch.distributions.Normal`` of batch shape [B, D]), a ``decoder``, a ``likelihood`` and a
    ``prior``; the ``k`` draws are decoded ``chunk_size`` at a time, so memory stays bounded.
    Returns [B].
    """
    if num_samples < 1 or chunk_size < 1:
        raise ValueError(f"num_samples and chunk_size must be >= 1; got {num_samples} and {chunk_size}")
    posterior = model.posterior(x)
    batch = x.shape[0]
    log_weights = []
    for start in range(0, num_samples, chunk_size):
        draws = min(chunk_size, num_samples - start)
        z = posterior.sample((draws,))  # [S, B, D]
        params = model.decoder(z.flatten(0, 1))  # [S*B, *shape]
        repeated = x.unsqueeze(0).expand(draws, *x.shape).flatten(0, 1)
        log_px = model.likelihood.log_prob(repeated, params).view(draws, batch)  # [S, B]
        log_pz = model.prior.log_prob(z)  # [S, B]
        log_qz = posterior.log_prob(z).sum(-1)  # [S, B]
        log_weights.append(log_px + log_pz - log_qz)
    return torch.logsumexp(torch.cat(log_weights), 0) - math.log(num_samples)


class IWAENegativeLogLikelihood(Metric):
    """Mean over examples of ``-log p(x)`` estimated with ``num_samples`` importance samples
    (nats per example); sums and counts reduce across processes."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, num_samples: int = 5000, chunk_size: int = 500) -> None:
        super().__init__()
        if num_samples < 1 or chunk_size < 1:
            raise ValueError(f"num_samples and chunk_size must be >= 1; got {num_samples} and {chunk_size}")
        self.num_samples = num_samples
        self.chunk_size = chunk_size
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, model: torch.nn.Module, x: torch.Tensor) -> None:
        """Estimate ``log p(x)`` for a batch ``x`` under ``model`` and add it."""
        log_px = iwae_log_likelihood(model, x, self.num_samples, self.chunk_size)
        self.total += -log_px.double().sum()
        self.count += x.shape[0]

    def compute(self) -> torch.Tensor:
        return self.total / self.count
