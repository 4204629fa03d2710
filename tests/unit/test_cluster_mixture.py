"""Clusters made of several Gaussians, the split of clusters into parts, and the consensus start."""

from __future__ import annotations

import pytest
import torch
from scipy.cluster import hierarchy

from tests.unit.test_spectral import accuracy, two_moons
from vae_zoo.consensus import agreement_matrix, consensus_index, umap_gmm_clustering
from vae_zoo.mixtures import split_clusters
from vae_zoo.models import GMMVAE, HierarchicalGMMVAE
from vae_zoo.priors import GaussianMixture, TreeMixture


def clustered_mixture(clusters: int = 3, per_cluster: int = 2, latent_dim: int = 2) -> GaussianMixture:
    prior = GaussianMixture(latent_dim, clusters * per_cluster, components_per_cluster=per_cluster).double()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        prior.means.copy_(
            torch.randn(clusters * per_cluster, latent_dim, generator=generator, dtype=torch.float64)
        )
        prior.logits.copy_(torch.randn(clusters * per_cluster, generator=generator, dtype=torch.float64))
    return prior


def test_cluster_responsibilities_sum_the_responsibilities_of_each_clusters_gaussians() -> None:
    prior = clustered_mixture(3, 2)
    z = torch.randn(9, 2, dtype=torch.float64) * 2
    gamma = prior.responsibilities(z)  # [9, 6]; Gaussians 0, 1 are cluster 0, 2, 3 cluster 1, ...
    by_hand = torch.stack(
        [gamma[:, 0] + gamma[:, 1], gamma[:, 2] + gamma[:, 3], gamma[:, 4] + gamma[:, 5]], -1
    )
    torch.testing.assert_close(prior.cluster_responsibilities(z), by_hand)
    torch.testing.assert_close(prior.cluster_responsibilities(z).sum(-1), torch.ones(9, dtype=torch.float64))
    single = clustered_mixture(4, 1)
    torch.testing.assert_close(single.cluster_responsibilities(z), single.responsibilities(z))


def test_cluster_means_weigh_each_gaussian_by_its_share_and_samples_follow_the_cluster() -> None:
    prior = clustered_mixture(3, 2)
    weights = prior.weights.detach()
    expected = torch.stack(
        [
            (weights[2 * c] * prior.means[2 * c] + weights[2 * c + 1] * prior.means[2 * c + 1])
            / weights[2 * c : 2 * c + 2].sum()
            for c in range(3)
        ]
    )
    torch.testing.assert_close(prior.cluster_means(), expected.detach())
    torch.manual_seed(0)
    samples = prior.sample_clusters(40_000)  # [3, 40000, 2]
    assert samples.shape == (3, 40_000, 2)
    torch.testing.assert_close(samples.mean(1), expected.detach(), atol=0.03, rtol=0)


def test_a_mixture_refuses_a_number_of_gaussians_that_clusters_do_not_divide() -> None:
    with pytest.raises(
        ValueError, match="num_components=5 must be a positive multiple of components_per_cluster=2"
    ):
        GaussianMixture(2, 5, components_per_cluster=2)


def test_split_clusters_numbers_part_m_of_cluster_c_as_c_times_parts_plus_m() -> None:
    x = torch.cat([torch.randn(40, 2), torch.randn(40, 2) + 10, torch.tensor([[50.0, 50.0], [51.0, 50.0]])])
    assignment = torch.cat([torch.zeros(40), torch.ones(40), torch.full((2,), 2)]).long()
    parts = split_clusters(x, assignment, 3, 3)
    torch.testing.assert_close(parts // 3, assignment)
    assert set(parts[:40].tolist()) == {0, 1, 2} and set(parts[40:80].tolist()) == {3, 4, 5}
    assert set(parts[80:].tolist()) == {6, 7}  # two points: two parts, the third stays empty


def test_consensus_keeps_the_clustering_that_agrees_most_with_the_others() -> None:
    truth = torch.arange(300) % 3
    merged = torch.where(truth == 2, torch.ones_like(truth), truth)  # two clusters merged
    split = torch.where((truth == 0) & (torch.arange(300) % 2 == 0), torch.full_like(truth, 2), truth)
    noisy = truth.clone()
    noisy[:10] = (noisy[:10] + 1) % 3
    candidates = [merged, noisy, split, truth]
    matrix = agreement_matrix(candidates)
    torch.testing.assert_close(matrix, matrix.T)
    torch.testing.assert_close(matrix.diag(), torch.ones(4, dtype=torch.float64))
    assert consensus_index(candidates) in (1, 3)
    assert consensus_index([merged]) == 0
    with pytest.raises(ValueError, match="at least one clustering"):
        consensus_index([])


def test_umap_clustering_finds_separated_blobs() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 8.0, 0.0]])
    labels = torch.arange(300) % 3
    x = centres[labels] + torch.randn(300, 3, generator=generator)
    assert accuracy(umap_gmm_clustering(x, 3, neighbours=15, seed=0), labels) == 1.0
    with pytest.raises(ValueError, match="neighbours=300 < N"):
        umap_gmm_clustering(x, 3, neighbours=300)


def test_several_gaussians_per_cluster_follow_clusters_that_one_gaussian_cuts() -> None:
    codes, labels = two_moons()
    accuracies = {}
    for per_cluster in (1, 6):
        model = GMMVAE(
            latent_dim=2,
            hidden_dims=[8],
            num_components=2,
            prior_init="spectral",
            spectral_neighbours=10,
            components_per_cluster=per_cluster,
        )
        model.initialize_prior(codes)
        assert model.prior.num_components == 2 * per_cluster and model.prior.num_clusters == 2
        predicted = model.prior.cluster_responsibilities(codes).argmax(-1)
        accuracies[per_cluster] = accuracy(predicted, labels)
    assert accuracies[6] > 0.99 and accuracies[1] < 0.95, accuracies


def test_the_tree_prior_has_one_leaf_per_cluster() -> None:
    centres = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    codes = torch.cat([centre + 0.3 * torch.randn(50, 2) for centre in centres])
    model = HierarchicalGMMVAE(
        input_shape=[1, 8, 8], latent_dim=2, hidden_dims=[8], num_components=3, components_per_cluster=2
    )
    assert isinstance(model.prior, TreeMixture) and model.prior.num_components == 6
    model.initialize_prior(codes)
    linkage = model.linkage_matrix()
    assert linkage.shape == (2, 4) and hierarchy.is_valid_linkage(linkage)
    order = torch.cdist(centres, model.prior.cluster_means().detach()).argmin(-1)
    torch.testing.assert_close(model.prior.cluster_means().detach()[order], centres, atol=0.2, rtol=0)
    z = torch.randn(5, 2)
    assert model.prior.tree_nll(z, model.prior.cluster_responsibilities(z)).shape == (5,)


def test_the_prior_learns_at_its_own_rate() -> None:
    model = GMMVAE(latent_dim=2, hidden_dims=[8], num_components=2, lr=1e-3, prior_lr=1e-4)
    optimizer = model.configure_optimizers()
    networks, prior = optimizer.param_groups
    assert networks["lr"] == 1e-3 and prior["lr"] == 1e-4
    assert {id(p) for p in prior["params"]} == {id(p) for p in model.prior.parameters()}
    assert len(networks["params"]) + len(prior["params"]) == len(list(model.parameters()))
    default = GMMVAE(latent_dim=2, hidden_dims=[8], num_components=2, lr=1e-3).configure_optimizers()
    assert [group["lr"] for group in default.param_groups] == [1e-3]
    with pytest.raises(ValueError, match=r"prior_lr must be None or a positive finite number; got 0\.0"):
        GMMVAE(latent_dim=2, hidden_dims=[8], num_components=2, prior_lr=0.0)
