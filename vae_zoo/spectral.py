"""Spectral clustering on a k-nearest-neighbour graph (Ng, Jordan and Weiss 2002).

Used to initialise the mixture priors: the codes of a warmed-up autoencoder lie on curved,
elongated clusters that a Gaussian mixture fitted by EM cuts in the wrong places, while their
neighbourhood graph keeps the clusters apart.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from vae_zoo.mixtures import kmeans

LOCAL_SCALE_NEIGHBOUR = 7  # Zelnik-Manor and Perona's choice of the neighbour that sets sigma_i
DISTANCE_CHUNK = 1024  # rows of the [chunk, N] distance matrix computed at once


def nearest_neighbours(x: torch.Tensor, neighbours: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``neighbours`` nearest other points of each point of ``x`` [N, D], by Euclidean
    distance: ``(distances, indices)``, each [N, neighbours], nearest first. Computed in chunks
    of rows, on ``x``'s device."""
    distances, indices = [], []
    for start in range(0, x.shape[0], DISTANCE_CHUNK):
        rows = x[start : start + DISTANCE_CHUNK]
        d = torch.cdist(rows, x)  # [chunk, N]
        d[torch.arange(rows.shape[0], device=x.device), torch.arange(start, start + rows.shape[0])] = (
            torch.inf
        )
        nearest = d.topk(neighbours, largest=False)
        distances.append(nearest.values)
        indices.append(nearest.indices)
    return torch.cat(distances), torch.cat(indices)


def neighbour_graph(x: torch.Tensor, neighbours: int) -> scipy.sparse.csr_matrix:
    """The symmetric ``neighbours``-nearest-neighbour graph of ``x`` [N, D] as a sparse [N, N]
    affinity matrix (float64, on the CPU).

    ``w_ij = exp(-d_ij^2 / (s_i s_j))`` when ``j`` is among the neighbours of ``i`` or ``i`` among
    those of ``j``, 0 otherwise, with the local scale ``s_i`` the distance from ``i`` to its 7th
    neighbour (Zelnik-Manor and Perona 2004).
    """
    n = x.shape[0]
    distances, indices = nearest_neighbours(x.detach().double(), neighbours)  # [N, k] each
    scale = distances[:, min(LOCAL_SCALE_NEIGHBOUR, neighbours) - 1]  # [N]
    tiny = torch.finfo(torch.float64).tiny
    affinity = torch.exp(-(distances**2) / (scale[:, None] * scale[indices]).clamp_min(tiny))  # [N, k]
    rows = np.repeat(np.arange(n), neighbours)
    graph = scipy.sparse.csr_matrix(
        (affinity.cpu().numpy().ravel(), (rows, indices.cpu().numpy().ravel())), shape=(n, n)
    )
    return graph.maximum(graph.T)


def spectral_embedding(graph: scipy.sparse.spmatrix, dimensions: int) -> torch.Tensor:
    """The rows of the top ``dimensions`` eigenvectors of ``M = D^-1/2 W D^-1/2`` (``W`` the
    affinity ``graph`` [N, N], ``D`` its degrees), each scaled to unit length: [N, dimensions]
    float64. Eigenvectors by ARPACK (``scipy.sparse.linalg.eigsh``) from a fixed start, so the
    result is deterministic."""
    n = graph.shape[0]
    tiny = np.finfo(np.float64).tiny
    inverse_sqrt_degree = scipy.sparse.diags(1 / np.sqrt(np.maximum(np.asarray(graph.sum(1)).ravel(), tiny)))
    normalised = inverse_sqrt_degree @ graph @ inverse_sqrt_degree
    _, vectors = scipy.sparse.linalg.eigsh(normalised, k=dimensions, which="LA", v0=np.ones(n))  # [N, dims]
    embedding = torch.from_numpy(vectors)
    return embedding / embedding.norm(dim=-1, keepdim=True).clamp_min(tiny)


def merge_clusters(graph: scipy.sparse.spmatrix, assignment: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Merge the clusters of ``assignment`` [N] greedily until ``num_clusters`` are left, each time
    the pair ``(a, b)`` joined by the largest share of their edge weight in ``graph`` [N, N]:
    ``C_ab (1 / vol_a + 1 / vol_b)``, with ``C_ab`` the weight of the edges between ``a`` and
    ``b`` and ``vol_a = sum_b C_ab``. Returns the assignment [N] to ``0 .. num_clusters - 1``.
    """
    segments = int(assignment.max()) + 1
    n = graph.shape[0]
    member = scipy.sparse.csr_matrix(
        (np.ones(n), (np.arange(n), assignment.cpu().numpy())), shape=(n, segments)
    )
    between = (member.T @ graph @ member).toarray()  # [S, S]
    group = np.arange(segments)  # the cluster each segment belongs to now
    alive = [segment for segment in range(segments) if member[:, segment].nnz]  # k-means may leave one empty
    while len(alive) > num_clusters:
        volume = np.maximum(between[np.ix_(alive, alive)].sum(1), np.finfo(np.float64).tiny)  # [A]
        share = between[np.ix_(alive, alive)] * (1 / volume[:, None] + 1 / volume[None, :])
        np.fill_diagonal(share, -np.inf)
        a, b = np.unravel_index(np.argmax(share), share.shape)
        keep, gone = alive[min(a, b)], alive[max(a, b)]
        between[keep] += between[gone]
        between[:, keep] += between[:, gone]
        group[group == gone] = keep
        alive.remove(gone)
    relabel = {cluster: index for index, cluster in enumerate(alive)}
    final = np.array([relabel.get(group[segment], 0) for segment in range(segments)])  # empty ones: any
    return torch.from_numpy(final)[assignment.cpu()].to(assignment.device)


def spectral_clustering(
    x: torch.Tensor,
    num_clusters: int,
    neighbours: int = 20,
    segments: int | None = None,
    restarts: int = 10,
    seed: int = 0,
) -> torch.Tensor:
    """Spectral clustering of ``x`` [N, D] into ``num_clusters``: k-means (best of ``restarts``,
    seeded by ``seed``) into ``segments`` clusters (default ``2 * num_clusters``) on the
    :func:`spectral_embedding` of the :func:`neighbour_graph` with as many dimensions as segments
    (Ng, Jordan and Weiss 2002), then :func:`merge_clusters` down to ``num_clusters``. Returns
    the assignment [N] int64 on ``x``'s device.

    Splitting into more segments than clusters and merging them along the graph lets a class
    with two modes (upright and slanted 1s) end in one cluster and two close classes (3 and 8)
    in two, where k-means on ``num_clusters`` eigenvectors can split the first and merge the
    others; it does not always succeed (``benchmarks/RESULTS.md``).

    Raises a ``ValueError`` unless ``num_clusters <= segments < N`` and ``1 <= neighbours < N``.
    """
    n = x.shape[0]
    segments = 2 * num_clusters if segments is None else segments
    if x.ndim != 2 or not num_clusters <= segments < n:
        raise ValueError(
            f"spectral clustering needs data [N, D] with more points than segments ({segments}) and "
            f"at least as many segments as clusters ({num_clusters}); got shape {list(x.shape)}"
        )
    if not 1 <= neighbours < n:
        raise ValueError(f"neighbours must be in [1, {n}) for {n} points; got {neighbours}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("spectral clustering needs finite data; the points hold NaN or infinite values")
    graph = neighbour_graph(x, neighbours)
    assignment = kmeans(spectral_embedding(graph, segments), segments, restarts, seed=seed)
    return merge_clusters(graph, assignment, num_clusters).to(x.device)
