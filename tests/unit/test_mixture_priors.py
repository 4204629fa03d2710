"""Mixture priors, the tree prior and EM: against torch.distributions and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.cluster import hierarchy
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vae_zoo.mixtures import fit_diagonal_gmm
from vae_zoo.priors import GaussianMixture, TreeMixture


def random_mixture(latent_dim: int = 2, k: int = 3) -> GaussianMixture:
    prior = GaussianMixture(latent_dim, k).double()
    with torch.no_grad():
        prior.means.copy_(torch.randn(k, latent_dim, dtype=torch.float64) * 2)
        prior.raw_log_variances.add_(torch.randn(k, latent_dim, dtype=torch.float64) * 0.3)
        prior.logits.copy_(torch.randn(k, dtype=torch.float64))
    return prior


def test_mixture_log_prob_is_log_sum_exp_of_weighted_components() -> None:
    prior = random_mixture(3, 4)
    z = torch.randn(7, 3, dtype=torch.float64) * 3
    weights = torch.softmax(prior.logits, -1)
    scales = torch.exp(0.5 * prior.log_variances)
    by_hand = torch.logsumexp(
        torch.stack(
            [weights[k].log() + Normal(prior.means[k], scales[k]).log_prob(z).sum(-1) for k in range(4)]
        ),
        0,
    )
    reference = MixtureSameFamily(Categorical(weights), Independent(Normal(prior.means, scales), 1))
    torch.testing.assert_close(prior.log_prob(z), by_hand)
    torch.testing.assert_close(prior.log_prob(z), reference.log_prob(z))
    far = torch.full((1, 3), 1e3, dtype=torch.float64)  # log-sum-exp keeps far points finite
    assert torch.isfinite(prior.log_prob(far)).all()


def test_responsibilities_sum_to_one_and_follow_bayes() -> None:
    prior = random_mixture(2, 5)
    z = torch.randn(11, 2, dtype=torch.float64)
    gamma = prior.responsibilities(z)
    torch.testing.assert_close(gamma.sum(-1), torch.ones(11, dtype=torch.float64))
    torch.testing.assert_close(gamma.log(), prior.log_joint(z) - prior.log_prob(z).unsqueeze(-1))


def test_monte_carlo_kl_matches_a_grid_integral() -> None:
    torch.manual_seed(0)
    prior = random_mixture(2, 3)
    posterior = Normal(
        torch.tensor([[0.5, -0.3]], dtype=torch.float64), torch.tensor([[0.6, 0.9]], dtype=torch.float64)
    )
    z = posterior.rsample((200_000,)).squeeze(1)  # [S, 2]
    expanded = Normal(posterior.loc.expand(z.shape[0], 2), posterior.scale.expand(z.shape[0], 2))
    monte_carlo = prior.kl(expanded, z)
    axis = torch.linspace(-7, 7, 701, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)  # [G, 2]
    log_q = posterior.log_prob(grid).sum(-1)
    cell = (axis[1] - axis[0]) ** 2
    integral = (log_q.exp() * (log_q - prior.log_prob(grid))).sum() * cell
    standard_error = monte_carlo.std() / math.sqrt(z.shape[0])
    assert abs(monte_carlo.mean() - integral) < 4 * standard_error + 1e-3


def test_responsibility_kl_matches_its_formula() -> None:
    prior = random_mixture(2, 3)
    posterior = Normal(torch.randn(4, 2, dtype=torch.float64), torch.rand(4, 2, dtype=torch.float64) + 0.2)
    z = posterior.rsample()
    gamma = prior.responsibilities(z)
    scales = torch.exp(0.5 * prior.log_variances)
    per_component = torch.stack(
        [
            (
                torch.log(scales[k] / posterior.scale)
                + (posterior.scale**2 + (posterior.loc - prior.means[k]) ** 2) / (2 * scales[k] ** 2)
                - 0.5
            ).sum(-1)
            for k in range(3)
        ],
        -1,
    )
    expected = (gamma * per_component).sum(-1) + (gamma * (gamma / prior.weights).log()).sum(-1)
    torch.testing.assert_close(prior.kl_responsibility(posterior, z), expected)


def test_set_parameters_round_trips() -> None:
    prior = GaussianMixture(2, 3).double()
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    means = torch.randn(3, 2, dtype=torch.float64)
    variances = torch.rand(3, 2, dtype=torch.float64) + 0.1
    prior.set_parameters(weights, means, variances)
    torch.testing.assert_close(prior.weights, weights)
    torch.testing.assert_close(prior.means, means)
    torch.testing.assert_close(prior.log_variances.exp(), variances)


def test_em_recovers_separated_clusters() -> None:
    generator = torch.Generator().manual_seed(0)
    true_means = torch.tensor([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    true_std = torch.tensor([[1.0, 0.5], [0.5, 1.0], [0.7, 0.7]])
    counts = [600, 300, 100]
    x = torch.cat(
        [
            m + s * torch.randn(n, 2, generator=generator)
            for m, s, n in zip(true_means, true_std, counts, strict=True)
        ]
    )
    gmm = fit_diagonal_gmm(x, 3, restarts=2)
    order = torch.cdist(true_means, gmm.means).argmin(-1)
    torch.testing.assert_close(gmm.means[order], true_means, atol=0.15, rtol=0)
    torch.testing.assert_close(gmm.variances[order].sqrt(), true_std, atol=0.1, rtol=0)
    torch.testing.assert_close(gmm.weights[order], torch.tensor([0.6, 0.3, 0.1]), atol=0.02, rtol=0)
    reference = MixtureSameFamily(
        Categorical(gmm.weights), Independent(Normal(gmm.means, gmm.variances.sqrt()), 1)
    )
    assert gmm.log_likelihood == pytest.approx(reference.log_prob(x).mean().item(), abs=1e-3)
    with pytest.raises(ValueError, match="N >= num_components=5"):
        fit_diagonal_gmm(x[:3], 5)


def tree_prior(k: int = 5, latent_dim: int = 2) -> tuple[TreeMixture, np.ndarray]:
    prior = TreeMixture(latent_dim, k, tree_sigma=0.7)
    linkage = hierarchy.linkage(prior.means.detach().numpy(), method="ward")
    prior.set_tree(torch.from_numpy(linkage))
    return prior, linkage


def test_internal_means_are_means_of_their_children_after_every_optimizer_step() -> None:
    prior, linkage = tree_prior()
    optimizer = torch.optim.Adam(prior.parameters(), lr=0.1)
    for _ in range(5):
        z = torch.randn(16, 2) * 3
        loss = -prior.log_prob(z).mean() + prior.tree_nll(z, prior.responsibilities(z)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        nodes = torch.cat([prior.means, prior.node_means()]).detach()
        for row, (left, right) in enumerate(linkage[:, :2].astype(int)):
            torch.testing.assert_close(nodes[5 + row], 0.5 * (nodes[left] + nodes[right]))


def test_tree_nll_averages_over_the_ancestors_of_each_leaf() -> None:
    prior, linkage = tree_prior()
    z = torch.randn(3, 2)
    gamma = prior.responsibilities(z).detach()
    nodes = prior.node_means().detach()
    leaves_under = hierarchy.to_tree(linkage, rd=True)[1][5:]
    depth = torch.zeros(5)  # number of ancestors of each leaf
    for node in leaves_under:
        depth[node.pre_order()] += 1
    expected = torch.zeros(3)
    for row, node in enumerate(leaves_under):
        nll = -Normal(nodes[row], 0.7).log_prob(z).sum(-1)
        expected += (gamma[:, node.pre_order()] / depth[node.pre_order()]).sum(-1) * nll
    torch.testing.assert_close(prior.tree_nll(z, gamma).detach(), expected)


def test_a_pull_on_one_leaf_moves_its_sibling_through_the_parent() -> None:
    prior, linkage = tree_prior()
    left, right = (int(i) for i in linkage[0, :2])  # the first merge joins two leaves
    z = prior.means[left].detach().unsqueeze(0) + 5.0
    gamma = torch.nn.functional.one_hot(torch.tensor([left]), 5).float()
    prior.tree_nll(z, gamma).sum().backward()
    assert prior.means.grad[right].abs().sum() > 0


def test_the_tree_term_does_not_move_responsibilities() -> None:
    prior, _ = tree_prior()
    z = torch.randn(4, 2, requires_grad=True)
    gamma = prior.responsibilities(z)
    prior.zero_grad()
    prior.tree_nll(z.detach(), gamma).sum().backward()
    assert prior.logits.grad is None or torch.all(prior.logits.grad == 0)


def test_tree_term_is_zero_before_the_tree_is_set() -> None:
    prior = TreeMixture(2, 4)
    z = torch.randn(3, 2)
    torch.testing.assert_close(prior.tree_nll(z, prior.responsibilities(z)), torch.zeros(3))
    with pytest.raises(ValueError, match=r"linkage must have shape \[3, >=2\] over 4 leaves"):
        prior.set_tree(torch.zeros(2, 4))
