"""Spectral clustering, k-means and the mixture of a hard clustering, against known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse
import torch

from vae_zoo.metrics import ClusteringAccuracy
from vae_zoo.mixtures import fit_diagonal_gmm, gmm_from_assignment, kmeans
from vae_zoo.spectral import (
    merge_clusters,
    nearest_neighbours,
    neighbour_graph,
    spectral_clustering,
    spectral_embedding,
)


def two_moons(n: int = 600, noise: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles [n, 2] and their labels [n]: clusters no Gaussian fits."""
    generator = torch.Generator().manual_seed(seed)
    angle = torch.rand(n, generator=generator) * math.pi
    labels = torch.arange(n) % 2
    upper = torch.stack([angle.cos(), angle.sin()], -1)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], -1)
    points = torch.where(labels[:, None] == 0, upper, lower)
    return points + noise * torch.randn(n, 2, generator=generator), labels


def accuracy(assignment: torch.Tensor, labels: torch.Tensor) -> float:
    metric = ClusteringAccuracy()
    metric.update(assignment, labels)
    return float(metric.compute())


def test_spectral_clustering_separates_two_moons_where_em_cannot() -> None:
    points, labels = two_moons()
    assignment = spectral_clustering(points, 2, neighbours=10)
    assert assignment.shape == (600,) and assignment.dtype == torch.int64
    assert accuracy(assignment, labels) == 1.0
    em = fit_diagonal_gmm(points, 2, restarts=5)
    assert accuracy(em.log_joint(points).argmax(-1), labels) < 0.9


def test_nearest_neighbours_match_brute_force_and_exclude_the_point_itself() -> None:
    points = torch.randn(2500, 3, generator=torch.Generator().manual_seed(1))  # more than one chunk
    distances, indices = nearest_neighbours(points, 4)
    full = torch.cdist(points, points)
    full.fill_diagonal_(math.inf)
    expected = full.topk(4, largest=False)
    torch.testing.assert_close(distances, expected.values)
    torch.testing.assert_close(indices, expected.indices)
    assert not (indices == torch.arange(2500)[:, None]).any()


def test_neighbour_graph_is_symmetric_with_self_tuning_weights() -> None:
    points, _ = two_moons(200)
    graph = neighbour_graph(points, 8).toarray()
    np.testing.assert_array_equal(graph, graph.T)
    distances, indices = nearest_neighbours(points.double(), 8)
    scale = distances[:, 6]
    i, j = 5, int(indices[5, 0])
    expected = math.exp(-(float(distances[5, 0]) ** 2) / float(scale[i] * scale[j]))
    assert graph[i, j] == pytest.approx(expected)
    assert ((graph > 0).sum(1) >= 8).all() and (np.diag(graph) == 0).all()


def test_spectral_embedding_is_deterministic_with_unit_rows() -> None:
    points, _ = two_moons(300)
    graph = neighbour_graph(points, 8)
    first = spectral_embedding(graph, 3)
    torch.testing.assert_close(first, spectral_embedding(graph, 3))
    assert first.shape == (300, 3) and first.dtype == torch.float64
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(300, dtype=torch.float64))


def test_merging_follows_the_strongest_shares_of_edge_weight() -> None:
    # four segments of 5 points: 0-1 joined by edges of 0.5, 2-3 by edges of 0.4, 1-2 by one weak edge
    weights = np.zeros((20, 20))
    for start in range(0, 20, 5):
        weights[start : start + 5, start : start + 5] = 1.0
    weights[0:5, 5:10] = weights[5:10, 0:5] = 0.5
    weights[10:15, 15:20] = weights[15:20, 10:15] = 0.4
    weights[9, 10] = weights[10, 9] = 0.1
    np.fill_diagonal(weights, 0)
    graph = scipy.sparse.csr_matrix(weights)
    segments = torch.arange(20) // 5
    two = merge_clusters(graph, segments, 2)
    assert two.tolist() == [0] * 10 + [1] * 10
    assert merge_clusters(graph, segments, 4).tolist() == segments.tolist()
    three = merge_clusters(graph, segments, 3)
    assert three.tolist() == [0] * 10 + [1] * 5 + [2] * 5  # the first merge is the stronger 0-1


def test_two_moons_cut_into_many_segments_merge_back() -> None:
    points, labels = two_moons()
    assignment = spectral_clustering(points, 2, neighbours=10, segments=8)
    assert accuracy(assignment, labels) == 1.0


def test_duplicate_points_give_a_finite_clustering() -> None:
    points = torch.cat([torch.zeros(30, 2), torch.ones(30, 2)])  # every neighbour at distance 0
    assignment = spectral_clustering(points, 2, neighbours=5)
    assert accuracy(assignment, torch.arange(60) // 30) == 1.0


def inertia(points: torch.Tensor, assignment: torch.Tensor) -> float:
    """Within-cluster sum of squares of a hard assignment."""
    return sum(
        float(((points[assignment == k] - points[assignment == k].mean(0)) ** 2).sum())
        for k in assignment.unique()
    )


def test_kmeans_finds_separated_blobs() -> None:
    generator = torch.Generator().manual_seed(2)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    labels = torch.arange(400) % 4
    points = centres[labels] + 0.5 * torch.randn(400, 2, generator=generator)
    assert accuracy(kmeans(points, 4, restarts=10, seed=0), labels) == 1.0


def test_kmeans_keeps_the_start_of_lowest_inertia() -> None:
    points = torch.randn(300, 2, generator=torch.Generator().manual_seed(4))  # many local optima
    single = [inertia(points, kmeans(points, 8, restarts=1, iterations=3, seed=seed)) for seed in range(6)]
    best = [inertia(points, kmeans(points, 8, restarts=10, iterations=3, seed=seed)) for seed in range(6)]
    # the first of the ten starts is the single start of the same seed
    assert all(b <= s + 1e-9 for b, s in zip(best, single, strict=True))
    assert any(b < s - 1e-6 for b, s in zip(best, single, strict=True))


def test_gmm_from_assignment_is_the_mixture_of_the_clusters() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(90, 3, generator=generator)
    assignment = torch.cat([torch.zeros(20), torch.ones(70)]).long()
    gmm = gmm_from_assignment(x, assignment, 2)
    torch.testing.assert_close(gmm.weights, torch.tensor([20 / 90, 70 / 90]))
    torch.testing.assert_close(gmm.means, torch.stack([x[:20].mean(0), x[20:].mean(0)]))
    variances = torch.stack([x[:20].var(0, correction=0), x[20:].var(0, correction=0)]) + 1e-4
    torch.testing.assert_close(gmm.variances, variances)
    log_likelihood = torch.logsumexp(gmm.log_joint(x), -1).mean()
    assert gmm.log_likelihood == pytest.approx(float(log_likelihood), rel=1e-6)


@pytest.mark.parametrize(
    ("points", "clusters", "neighbours", "message"),
    [
        (torch.randn(10, 2), 2, 10, r"neighbours must be in \[1, 10\) for 10 points; got 10"),
        (torch.randn(10, 2), 2, 0, r"neighbours must be in \[1, 10\)"),
        (torch.randn(5, 2), 3, 1, r"more points than segments \(6\)"),
        (torch.full((10, 2), math.nan), 2, 3, "finite data"),
    ],
)
def test_bad_input_is_refused(points: torch.Tensor, clusters: int, neighbours: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spectral_clustering(points, clusters, neighbours)
