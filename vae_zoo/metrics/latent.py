"""Latent diagnostics as torchmetrics Metrics: sums over the data, reduced across processes."""

from __future__ import annotations

import math

import torch
from torch.distributions import (
    Distribution,
    Independent,
    LowRankMultivariateNormal,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    kl_divergence,
)
from torchmetrics import Metric

from vae_zoo.compat import forget_computed_value


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


def gaussian_moments(distribution: Distribution) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean [..., D] and covariance [..., D, D] of a distribution over ``R^D``.

    Exact for (low-rank) multivariate normals, for factorised distributions (an ``Independent``
    over one dimension, or an element-wise distribution whose last batch dimension is taken as
    ``D``, like :meth:`vae_zoo.priors.StandardNormal.distribution`) and for a
    ``MixtureSameFamily`` of those, by the law of total covariance:
    ``mean = sum_k pi_k m_k``, ``cov = sum_k pi_k (C_k + m_k m_k^T) - mean mean^T``.
    """
    if isinstance(distribution, MixtureSameFamily):
        weights = distribution.mixture_distribution.probs  # [..., K]
        means, covariances = gaussian_moments(distribution.component_distribution)  # [..., K, D(, D)]
        mean = (weights.unsqueeze(-1) * means).sum(-2)
        second = covariances + means.unsqueeze(-1) * means.unsqueeze(-2)
        second = (weights.unsqueeze(-1).unsqueeze(-1) * second).sum(-3)
        return mean, second - mean.unsqueeze(-1) * mean.unsqueeze(-2)
    if isinstance(distribution, (MultivariateNormal, LowRankMultivariateNormal)):
        return distribution.mean, distribution.covariance_matrix
    factorised = (isinstance(distribution, Independent) and distribution.reinterpreted_batch_ndims == 1) or (
        distribution.event_shape == () and len(distribution.batch_shape) >= 1
    )
    if not factorised or len(distribution.event_shape) > 1:
        raise TypeError(
            f"gaussian_moments needs a distribution over vectors that is factorised, a multivariate "
            f"normal or a MixtureSameFamily of those; got {distribution}"
        )
    return distribution.mean, torch.diag_embed(distribution.variance)


class AggregatePosteriorKL(Metric):
    """How far the aggregate posterior ``q(z) = mean_x q(z|x)`` over the data is from the prior:
    ``KL(N(m, S) || N(m_p, S_p))`` between Gaussians with the first two moments of each.

    For diagonal Gaussian posteriors ``N(mu(x), diag(sigma^2(x)))`` the aggregate posterior's
    moments follow from sums over the data (law of total covariance, population covariance over
    the ``N`` examples seen): ``m = mean_x mu(x)``, ``S = Cov_x(mu(x)) + mean_x diag(sigma^2(x))``.
    The prior's moments come from :meth:`set_prior` (``N(0, I)`` until it is called); for
    ``N(0, I)`` the value is the closed form ``(tr S + m^T m - D - log det S) / 2``.

    A mixture prior is moment-matched in the same way (:func:`gaussian_moments`). This was chosen
    over an MMD estimate between samples of ``q(z)`` and ``p(z)``: the states are sums, so the
    value is exact under DDP with ``O(D^2)`` memory and no examples gathered; it is deterministic,
    so epochs compare without sampling noise; it has no kernel bandwidth to choose; and for
    ``N(0, I)`` it is the same quantity. What it cannot see: only the first two moments are
    compared, so codes that fill the mixture's overall spread but not its components (mass in the
    holes between them) score near 0; component occupancy and the clustering metrics see that.

    How to read it (seed 004; Hoffman & Johnson 2016): ``E_x KL(q(z|x) || p(z)) = I(x; z) +
    KL(q(z) || p(z))``, and for a Gaussian prior the moment-matched KL is at most the true
    ``KL(q(z) || p(z))`` (a Gaussian has the largest entropy for its covariance); so with a
    ``N(0, I)`` prior ``aggregate_kl <= kl``. Near 0 the prior is a good sampling distribution
    for the decoder (also the case under posterior collapse: read it with ``kl`` and the active
    units); large values mean samples from the prior fall where the decoder has seen no code.

    Args:
        latent_dim: ``D``.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        zeros = torch.zeros(latent_dim, dtype=torch.float64)
        self.add_state("loc_sum", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state(
            "outer_sum",
            default=torch.zeros(latent_dim, latent_dim, dtype=torch.float64),
            dist_reduce_fx="sum",
        )
        self.add_state("variance_sum", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.prior_mean: torch.Tensor | None = None
        self.prior_covariance: torch.Tensor | None = None

    def set_prior(self, prior: Distribution) -> None:
        """Compare with ``prior`` (see :func:`gaussian_moments`), whose moments are read now."""
        mean, covariance = gaussian_moments(prior)
        if mean.shape != (self.latent_dim,):
            raise ValueError(
                f"the prior must be over {self.latent_dim} dimensions; its mean is {list(mean.shape)}"
            )
        self.prior_mean = mean.detach().double()
        self.prior_covariance = covariance.detach().double()
        forget_computed_value(self)  # torchmetrics caches compute() until the next update

    def update(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        """Add a batch of diagonal Gaussian posteriors: ``loc`` and ``scale`` [B, D]."""
        if loc.shape != scale.shape or loc.ndim != 2 or loc.shape[1] != self.latent_dim:
            raise ValueError(
                f"loc and scale must be [B, {self.latent_dim}]; got {list(loc.shape)} and {list(scale.shape)}"
            )
        loc, scale = loc.detach().double(), scale.detach().double()
        self.loc_sum += loc.sum(0)
        self.outer_sum += loc.T @ loc
        self.variance_sum += (scale**2).sum(0)
        self.count += loc.shape[0]

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The aggregate posterior's mean [D] and covariance [D, D] (on this process's data until
        ``compute`` has synchronised the states)."""
        mean = self.loc_sum / self.count
        covariance = self.outer_sum / self.count - torch.outer(mean, mean)
        covariance = 0.5 * (covariance + covariance.T) + torch.diag(self.variance_sum / self.count)
        return mean, covariance

    def compute(self) -> torch.Tensor:
        mean, covariance = self.moments()
        if self.prior_mean is None:
            prior_mean, prior_covariance = (
                torch.zeros_like(mean),
                torch.eye(self.latent_dim, dtype=mean.dtype),
            )
        else:
            prior_mean, prior_covariance = self.prior_mean, self.prior_covariance
        prior = MultivariateNormal(
            prior_mean.to(mean.device),
            covariance_matrix=prior_covariance.to(mean.device),
            validate_args=False,
        )
        aggregate = MultivariateNormal(mean, covariance_matrix=covariance, validate_args=False)
        return kl_divergence(aggregate, prior)
