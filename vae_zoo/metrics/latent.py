"""Latent diagnostics as torchmetrics Metrics: sums over the data, reduced across processes."""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal
from torchmetrics import Metric


class ActiveUnits(Metric):
    """Burda et al.'s active units: dimensions ``u`` with ``Var_x(E_q[z_u | x]) > threshold``.

    ``update`` takes posterior means [B, D]; the variance over the data is computed from summed
    first and second moments, so it is the same on one process or many.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, latent_dim: int, threshold: float = 0.01) -> None:
        super().__init__()
        self.threshold = threshold
        self.add_state("total", default=torch.zeros(latent_dim, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total_sq", default=torch.zeros(latent_dim, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, means: torch.Tensor) -> None:
        """Add posterior means [B, D]."""
        means = means.detach().double()
        self.total += means.sum(0)
        self.total_sq += (means**2).sum(0)
        self.count += means.shape[0]

    def variances(self) -> torch.Tensor:
        """``Var_x(E[z_u | x])`` per dimension (population variance): [D]."""
        mean = self.total / self.count
        return (self.total_sq / self.count - mean**2).clamp_min(0)

    def compute(self) -> torch.Tensor:
        return (self.variances() > self.threshold).sum()


class KLPerDimension(Metric):
    """The average over the data of each dimension's ``KL(q(z_j | x) || N(0, 1))``: [D]."""

    full_state_update = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.add_state("total", default=torch.zeros(latent_dim, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, kl_per_dim: torch.Tensor) -> None:
        """Add per-example, per-dimension KLs [B, D]."""
        self.total += kl_per_dim.detach().double().sum(0)
        self.count += kl_per_dim.shape[0]

    def compute(self) -> torch.Tensor:
        return self.total / self.count


class MutualInformation(Metric):
    """An estimate of ``I(x; z)`` under the encoder's joint ``q(z | x) p(x)`` (Hoffman & Johnson
    2016; the estimator of He et al. 2019), averaged over batches:

    ``I = E_x E_{q(z|x)} [log q(z | x) - log q(z)]``, with the aggregate posterior ``q(z)``
    estimated within each batch by ``log q(z) ~ logsumexp_j log q(z | x_j) - log B``.

    The estimate is bounded above by ``log B`` (a batch cannot tell apart more than ``B``
    inputs): near ``log B`` it says "informative", near 0 it says "collapsed", which is what
    collapse detection needs; it is not a tight estimate of a large mutual information.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        """Add a batch of diagonal Gaussian posteriors, ``loc`` and ``scale`` [B, D]."""
        posterior = Normal(loc.detach().double(), scale.detach().double())
        z = posterior.sample()  # [B, D]
        log_q_own = posterior.log_prob(z).sum(-1)  # [B]
        log_q_all = posterior.log_prob(z.unsqueeze(1)).sum(-1)  # [B (z_i), B (x_j)]
        log_aggregate = torch.logsumexp(log_q_all, -1) - math.log(loc.shape[0])
        self.total += (log_q_own - log_aggregate).sum()
        self.count += loc.shape[0]

    def compute(self) -> torch.Tensor:
        return self.total / self.count


class ComponentOccupancy(Metric):
    """The fraction of examples assigned to each of ``K`` mixture components: [K]."""

    full_state_update = False

    def __init__(self, num_components: int) -> None:
        super().__init__()
        self.add_state(
            "counts", default=torch.zeros(num_components, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, assignments: torch.Tensor) -> None:
        """Add component ids [B]."""
        self.counts += torch.bincount(assignments.detach(), minlength=self.counts.shape[0]).double()

    def compute(self) -> torch.Tensor:
        return self.counts / self.counts.sum()
