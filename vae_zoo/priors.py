"""Priors ``p(z)`` as ``nn.Module``s over ``torch.distributions``.

A prior gives ``log_prob(z)`` (summed over latent dimensions, shape ``[B]``), ``sample(n)``
and ``kl(posterior, z)``: the per-example regularizer ``KL(q(z|x) || p(z))`` or its estimate.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence


class Prior(nn.Module):
    """Base class of priors over a ``latent_dim``-dimensional code."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z)``: [..., D] -> [...]."""
        raise NotImplementedError

    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws from the prior: [n, D]."""
        raise NotImplementedError

    def kl(self, posterior: Normal, z: torch.Tensor) -> torch.Tensor:
        """``KL(q(z|x) || p(z))`` per example, [B]; the default is the one-sample Monte Carlo
        estimate ``log q(z|x) - log p(z)`` at the reparameterized draw ``z`` [B, D]."""
        return posterior.log_prob(z).sum(-1) - self.log_prob(z)


class StandardNormal(Prior):
    """``p(z) = N(0, I)``, with the analytic KL of a diagonal Gaussian posterior.

    ``KL(N(mu, diag(s^2)) || N(0, I)) = 1/2 sum_j (mu_j^2 + s_j^2 - 1 - log s_j^2)``.
    """

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim)
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def distribution(self) -> Normal:
        """The element-wise ``N(0, 1)`` over the ``D`` latent dimensions."""
        return Normal(self.loc, self.scale, validate_args=False)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.distribution().log_prob(z).sum(-1)

    def sample(self, n: int) -> torch.Tensor:
        return self.distribution().sample((n,))

    def kl_per_dim(self, posterior: Normal) -> torch.Tensor:
        """Analytic KL of each latent dimension: [B, D]."""
        return kl_divergence(posterior, self.distribution())

    def kl(self, posterior: Normal, z: torch.Tensor) -> torch.Tensor:
        return self.kl_per_dim(posterior).sum(-1)
