"""Priors ``p(z)`` as ``nn.Module``s over ``torch.distributions``.

A prior gives ``log_prob(z)`` (summed over latent dimensions, shape ``[B]``), ``sample(n)``
and ``kl(posterior, z)``: the per-example regularizer ``KL(q(z|x) || p(z))`` or its estimate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

from vae_zoo.nn import bounded, unbounded


class Prior(nn.Module, ABC):
    """Base class of priors over a ``latent_dim``-dimensional code: a subclass must define
    :meth:`log_prob` and :meth:`sample` (it cannot be built without them)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    @abstractmethod
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z)``: [..., D] -> [...]."""

    @abstractmethod
    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws from the prior: [n, D]."""

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


PRIOR_LOG_VARIANCE_BOUNDS = (-10.0, 6.0)


class GaussianMixture(Prior):
    """A trainable mixture ``p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2))`` whose components are
    grouped into clusters.

    Means, log-variances (bounded to ``[-10, 6]`` through a sigmoid) and mixing logits
    (``pi = softmax(logits)``) are parameters. Densities come from
    ``torch.distributions.MixtureSameFamily``, which evaluates
    ``log p(z) = logsumexp_k(log pi_k + log N(z; mu_k, sigma_k^2))`` in log space.

    Component ``k`` belongs to cluster ``k // components_per_cluster``: a cluster ``c`` is the
    mixture of its ``M = components_per_cluster`` Gaussians, and ``p(c | z) = sum_{k in c} p(k | z)``
    (:meth:`cluster_responsibilities`). With ``M = 1`` clusters and components are the same.
    Several Gaussians per cluster let a cluster be curved or elongated, as the clusters of an
    autoencoder's codes are, where one diagonal Gaussian per cluster would cut through them.

    Args:
        latent_dim: ``D``.
        num_components: ``K``, the number of Gaussians (a multiple of ``components_per_cluster``).
        learn_weights: learn the mixing weights (else they stay uniform, or as last set).
        components_per_cluster: ``M``, Gaussians per cluster.
    """

    def __init__(
        self,
        latent_dim: int,
        num_components: int,
        learn_weights: bool = True,
        components_per_cluster: int = 1,
    ) -> None:
        super().__init__(latent_dim)
        if components_per_cluster < 1 or num_components % components_per_cluster:
            raise ValueError(
                f"num_components={num_components} must be a positive multiple of "
                f"components_per_cluster={components_per_cluster}"
            )
        self.num_components = num_components
        self.components_per_cluster = components_per_cluster
        self.num_clusters = num_components // components_per_cluster
        self.means = nn.Parameter(torch.randn(num_components, latent_dim))
        self.raw_log_variances = nn.Parameter(
            unbounded(torch.zeros(num_components, latent_dim), *PRIOR_LOG_VARIANCE_BOUNDS)
        )
        logits = torch.zeros(num_components)
        if learn_weights:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits)

    @property
    def log_variances(self) -> torch.Tensor:
        """``log sigma_k^2``: [K, D]."""
        return bounded(self.raw_log_variances, *PRIOR_LOG_VARIANCE_BOUNDS)

    @property
    def weights(self) -> torch.Tensor:
        """``pi``: [K]."""
        return torch.softmax(self.logits, -1)

    def components(self) -> Independent:
        """The ``K`` Gaussians, batch shape [K], event shape [D]."""
        scales = torch.exp(0.5 * self.log_variances)
        return Independent(Normal(self.means, scales, validate_args=False), 1)

    def distribution(self) -> MixtureSameFamily:
        """The mixture as a ``torch.distributions`` object."""
        return MixtureSameFamily(Categorical(logits=self.logits, validate_args=False), self.components())

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.distribution().log_prob(z)

    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        """``log pi_k + log N(z; mu_k, sigma_k^2)``: [B, D] -> [B, K]."""
        return torch.log_softmax(self.logits, -1) + self.components().log_prob(z.unsqueeze(-2))

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """``p(k | z)``: [B, D] -> [B, K], rows summing to one."""
        return torch.softmax(self.log_joint(z), -1)

    def sample(self, n: int) -> torch.Tensor:
        return self.distribution().sample((n,))

    def cluster_responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """``p(c | z) = sum_{k in c} p(k | z)``: [B, D] -> [B, C], rows summing to one."""
        return (
            self.responsibilities(z).unflatten(-1, (self.num_clusters, self.components_per_cluster)).sum(-1)
        )

    def cluster_means(self) -> torch.Tensor:
        """Mean of each cluster's mixture, ``sum_{k in c} pi_k mu_k / sum_{k in c} pi_k``: [C, D].

        The shares ``pi_k`` enter as constants: gradients through a cluster's mean reach the
        means of its Gaussians, not the mixing weights.
        """
        if self.components_per_cluster == 1:
            return self.means
        shape = (self.num_clusters, self.components_per_cluster)
        within = self.weights.detach().reshape(shape)  # [C, M]
        within = within / within.sum(-1, keepdim=True)
        return (within.unsqueeze(-1) * self.means.reshape(*shape, -1)).sum(1)

    def sample_clusters(self, n: int) -> torch.Tensor:
        """``n`` draws from each cluster's mixture: [C, n, D]."""
        shape = (self.num_clusters, self.components_per_cluster)
        components = self.components()
        scales = components.base_dist.scale.reshape(*shape, -1)  # [C, M, D]
        within = Categorical(logits=self.logits.reshape(shape), validate_args=False)
        clusters = MixtureSameFamily(
            within, Independent(Normal(self.means.reshape(*shape, -1), scales, validate_args=False), 1)
        )
        return clusters.sample((n,)).transpose(0, 1)

    def kl_responsibility(self, posterior: Normal, z: torch.Tensor) -> torch.Tensor:
        """VaDE's bound with ``q(k|x) = p(k|z)`` at the draw ``z`` (Jiang et al. 2017), per example [B]:

        ``sum_k g_k KL(q(z|x) || N(mu_k, sigma_k^2)) + sum_k g_k log(g_k / pi_k)``,
        ``g = responsibilities(z)``; each Gaussian KL is analytic.

        A component with ``g_k = 0`` adds nothing (``0 log 0 = 0``), also when its weight is
        exactly zero: there ``log g_k - log pi_k`` is ``-inf - (-inf)``, which the ``where`` keeps
        out of both the value and the gradient (a product with 0 would still give NaN).
        """
        log_gamma = torch.log_softmax(self.log_joint(z), -1)  # [B, K]
        gamma = log_gamma.exp()
        scales = torch.exp(0.5 * self.log_variances)  # [K, D]
        per_component = kl_divergence(
            Normal(posterior.loc.unsqueeze(-2), posterior.scale.unsqueeze(-2)),
            Normal(self.means, scales),
        ).sum(-1)  # [B, K]
        log_ratio = log_gamma - torch.log_softmax(self.logits, -1)  # [B, K]
        log_ratio = torch.where(gamma > 0, log_ratio, torch.zeros_like(log_ratio))
        categorical = (gamma * log_ratio).sum(-1)  # [B]
        return (gamma * per_component).sum(-1) + categorical

    @torch.no_grad()
    def set_parameters(self, weights: torch.Tensor, means: torch.Tensor, variances: torch.Tensor) -> None:
        """Set ``pi`` [K], ``mu`` [K, D] and ``sigma^2`` [K, D] (e.g. from an EM fit)."""
        low, high = PRIOR_LOG_VARIANCE_BOUNDS
        log_variances = variances.log().clamp(low + 1e-3, high - 1e-3)
        self.means.copy_(means)
        self.raw_log_variances.copy_(unbounded(log_variances, low, high))
        self.logits.copy_(weights.clamp_min(1e-8).log())


class TreeMixture(GaussianMixture):
    """A mixture whose clusters are the leaves of a binary tree (the hierarchical prior).

    Each internal node ``n`` is a Gaussian ``N(m_n, tree_sigma^2 I)`` whose mean is the mean of
    its two children's means, ``m_n = (m_left + m_right) / 2`` (a leaf's mean is its cluster's
    mean, :meth:`~GaussianMixture.cluster_means`). Internal means are not parameters:
    ``m = A @ mu`` with a fixed averaging matrix ``A`` [C-1, C] over the ``C`` leaves, so the
    identity holds after every optimizer step and a pull on a parent moves both children.
    :meth:`tree_nll` gives the term that ties a code to every ancestor of its leaf.

    The tree is set by :meth:`set_tree` from a scipy linkage matrix over the leaves (the models
    build it by agglomerative merging of the leaf means); before that the tree term is zero.
    """

    def __init__(
        self,
        latent_dim: int,
        num_components: int,
        learn_weights: bool = True,
        tree_sigma: float = 1.0,
        components_per_cluster: int = 1,
    ) -> None:
        super().__init__(latent_dim, num_components, learn_weights, components_per_cluster)
        self.tree_sigma = tree_sigma
        leaves = self.num_clusters
        self.register_buffer("merges", torch.zeros(leaves - 1, 2, dtype=torch.long))
        self.register_buffer("averaging", torch.zeros(leaves - 1, leaves))
        self.register_buffer("ancestors", torch.zeros(leaves, leaves - 1))
        self.register_buffer("has_tree", torch.tensor(False))

    @torch.no_grad()
    def set_tree(self, linkage: torch.Tensor) -> None:
        """Fix the tree from a scipy linkage matrix [K-1, 4] over the ``K`` leaves (the clusters).

        Row ``i`` merges nodes ``linkage[i, 0]`` and ``linkage[i, 1]`` into node ``K + i``
        (nodes below ``K`` are leaves), as :func:`scipy.cluster.hierarchy.linkage` returns.
        """
        k = self.num_clusters
        children = torch.as_tensor(linkage[:, :2], dtype=torch.long)
        if children.shape != (k - 1, 2) or children.max() >= 2 * k - 1:
            raise ValueError(
                f"linkage must have shape [{k - 1}, >=2] over {k} leaves; got {list(linkage.shape)}"
            )
        # weight of each leaf in each node's mean: leaves are one-hot, a parent averages its children
        node_weights = torch.cat([torch.eye(k), torch.zeros(k - 1, k)])  # [2K-1, K]
        leaf_sets = [{leaf} for leaf in range(k)] + [set() for _ in range(k - 1)]
        for row, (left, right) in enumerate(children.tolist()):
            node_weights[k + row] = 0.5 * (node_weights[left] + node_weights[right])
            leaf_sets[k + row] = leaf_sets[left] | leaf_sets[right]
        ancestors = torch.zeros(k, k - 1)
        for row in range(k - 1):
            ancestors[sorted(leaf_sets[k + row]), row] = 1.0
        self.merges.copy_(children)
        self.averaging.copy_(node_weights[k:])
        self.ancestors.copy_(ancestors)
        self.has_tree.fill_(True)

    def node_means(self) -> torch.Tensor:
        """Means of the ``C - 1`` internal nodes, in linkage order: [C-1, D]."""
        return self.averaging @ self.cluster_means()

    def tree_nll(self, z: torch.Tensor, responsibilities: torch.Tensor) -> torch.Tensor:
        """``sum_c g_c mean_{n in ancestors(c)} -log N(z; m_n, tree_sigma^2 I)``: per example [B].

        ``responsibilities`` ``g`` [B, C] of the clusters weight the leaves and are treated as
        constants: the mixture decides where a code belongs, the tree only pulls it (and, through the
        node means, its leaf's relatives) towards its ancestors. The mean over ancestors, not their sum,
        keeps leaves of different depths on an equal footing: a sum would make the shallowest leaf the
        cheapest and draw every code to it. Zero before a tree is set.
        """
        if not bool(self.has_tree):
            return z.new_zeros(z.shape[0])
        nodes = Independent(Normal(self.node_means(), self.tree_sigma, validate_args=False), 1)
        node_nll = -nodes.log_prob(z.unsqueeze(-2))  # [B, K-1]
        ancestor_weights = self.ancestors / self.ancestors.sum(-1, keepdim=True)  # [C, C-1], rows sum to 1
        return ((responsibilities.detach() @ ancestor_weights) * node_nll).sum(-1)
