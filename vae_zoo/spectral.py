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


def spectral_embedding(x: torch.Tensor, dimensions: int, neighbours: int = 20) -> torch.Tensor:
    """The rows of the top ``dimensions`` eigenvectors of the normalised affinity of the
    symmetric ``neighbours``-nearest-neighbour graph of ``x`` [N, D], each scaled to unit length:
    [N, dimensions] float64 on ``x``'s device.

    Affinity ``w_ij = exp(-d_ij^2 / (s_i s_j))`` for ``j`` among the neighbours of ``i`` or ``i``
    among those of ``j`` (0 otherwise), with the local scale ``s_i`` the distance from ``i`` to
    its 7th neighbour (Zelnik-Manor and Perona 2004); ``M = D^-1/2 W D^-1/2`` with ``D`` the
    degrees; eigenvectors by ARPACK (``scipy.sparse.linalg.eigsh``) from a fixed start, so the
    result is deterministic.
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
    graph = graph.maximum(graph.T)  # symmetric: i ~ j when either is among the other's neighbours
    inverse_sqrt_degree = scipy.sparse.diags(1 / np.sqrt(np.maximum(np.asarray(graph.sum(1)).ravel(), tiny)))
    normalised = inverse_sqrt_degree @ graph @ inverse_sqrt_degree
    _, vectors = scipy.sparse.linalg.eigsh(normalised, k=dimensions, which="LA", v0=np.ones(n))  # [N, dims]
    embedding = torch.from_numpy(vectors).to(x.device)
    return embedding / embedding.norm(dim=-1, keepdim=True).clamp_min(tiny)


def spectral_clustering(
    x: torch.Tensor, num_clusters: int, neighbours: int = 20, restarts: int = 10, seed: int = 0
) -> torch.Tensor:
    """Ng-Jordan-Weiss spectral clustering of ``x`` [N, D] into ``num_clusters``: k-means (best of
    ``restarts``, seeded by ``seed``) on :func:`spectral_embedding` with as many dimensions as
    clusters. Returns the assignment [N] int64.

    Raises a ``ValueError`` unless ``num_clusters < N`` and ``1 <= neighbours < N``.
    """
    n = x.shape[0]
    if x.ndim != 2 or not num_clusters < n:
        raise ValueError(
            f"spectral clustering needs data [N, D] with more points than clusters ({num_clusters}); "
            f"got shape {list(x.shape)}"
        )
    if not 1 <= neighbours < n:
        raise ValueError(f"neighbours must be in [1, {n}) for {n} points; got {neighbours}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("spectral clustering needs finite data; the points hold NaN or infinite values")
    embedding = spectral_embedding(x, num_clusters, neighbours)
    return kmeans(embedding, num_clusters, restarts, seed=seed)
