"""Clusterings of a warmed-up encoder's codes that do not hang on one draw: N2D's manifold
clustering, and the consensus (medoid) of several clusterings.

The clusters of an autoencoder's codes are curved and elongated; one clustering method or one
random draw can merge two of them and split another. The consensus of clusterings made in
different ways keeps the one that agrees most with the others, so one failed draw out of three
is outvoted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics.functional.clustering import adjusted_rand_score

GMM_INITS = 5  # EM starts of the Gaussian mixture in the embedding; the most likely one is kept


def umap_gmm_clustering(
    x: torch.Tensor, num_clusters: int, neighbours: int = 20, seed: int = 0
) -> torch.Tensor:
    """N2D (McConville et al. 2020): a UMAP embedding of ``x`` [N, D] into ``num_clusters``
    dimensions (``neighbours`` nearest neighbours, ``min_dist = 0`` so that clusters pack
    tightly), then a full-covariance Gaussian mixture of ``num_clusters`` components fitted to
    the embedding (scikit-learn, best of 5 EM starts). Returns each point's most likely
    component: [N] int64 on ``x``'s device. ``seed`` seeds both UMAP and the mixture.
    """
    import umap  # numba compiles on first import: only paid by those who use this start
    from sklearn.mixture import GaussianMixture

    n = x.shape[0]
    if x.ndim != 2 or not 1 <= neighbours < n or n <= num_clusters:
        raise ValueError(
            f"UMAP clustering needs data [N, D] with N > num_clusters={num_clusters} and "
            f"1 <= neighbours={neighbours} < N; got shape {list(x.shape)}"
        )
    data = x.detach().float().cpu().numpy()
    reducer = umap.UMAP(
        n_components=num_clusters, n_neighbors=neighbours, min_dist=0.0, random_state=seed, n_jobs=1
    )
    embedding = reducer.fit_transform(data).astype(np.float64)  # [N, num_clusters]
    mixture = GaussianMixture(num_clusters, covariance_type="full", n_init=GMM_INITS, random_state=seed)
    return torch.from_numpy(mixture.fit(embedding).predict(embedding)).long().to(x.device)


def agreement_matrix(assignments: Sequence[torch.Tensor]) -> torch.Tensor:
    """Adjusted Rand index between every pair of clusterings (each [N]): [R, R], ones on the
    diagonal."""
    count = len(assignments)
    matrix = torch.ones(count, count, dtype=torch.float64)
    for i in range(count):
        for j in range(i + 1, count):
            value = float(adjusted_rand_score(assignments[i].cpu(), assignments[j].cpu()))
            matrix[i, j] = matrix[j, i] = value
    return matrix


def medoid_index(agreement: torch.Tensor) -> int:
    """The index of the clustering with the highest mean agreement to the others, from their
    :func:`agreement_matrix` [R, R] (the first of them on a tie; 0 for a single clustering)."""
    count = agreement.shape[0]
    if count == 1:
        return 0
    return int(((agreement.sum(1) - agreement.diagonal()) / (count - 1)).argmax())


def consensus_index(assignments: Sequence[torch.Tensor]) -> int:
    """The medoid of the clusterings (each [N]): the index of the one with the highest mean
    adjusted Rand index to the others (:func:`medoid_index`)."""
    if not assignments:
        raise ValueError("consensus_index needs at least one clustering")
    return medoid_index(agreement_matrix(assignments))
