"""Clusterings of a warmed-up encoder's codes that do not hang on one draw: N2D's manifold
clustering, and the consensus (medoid) of several clusterings.

The clusters of an autoencoder's codes are curved and elongated; one clustering method or one
random draw can merge two of them and split another. The consensus of clusterings made in
different ways keeps the one that agrees most with the others, so one failed draw out of three
is outvoted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics.functional.clustering import adjusted_rand_score

from vae_zoo.mixtures import fit_diagonal_gmm
from vae_zoo.spectral import spectral_clustering

#: how a warmed-up encoder's codes are clustered to start a mixture model (:func:`cluster_codes`)
ClusteringMethod = Literal["em", "spectral", "consensus"]
CLUSTERING_METHODS: tuple[str, ...] = ("em", "spectral", "consensus")
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


def cluster_codes(
    codes: torch.Tensor,
    num_clusters: int,
    method: ClusteringMethod,
    neighbours: int = 20,
    umap_runs: int = 2,
    em_iterations: int = 100,
    em_restarts: int = 3,
    announce_as: str = "vae-zoo",
) -> torch.Tensor:
    """The ``num_clusters`` clusters of ``codes`` [N, D]: [N] int64 in ``[0, num_clusters)``.

    * ``"em"``: the most likely component of each code under a diagonal Gaussian mixture fitted
      by EM (:func:`~vae_zoo.mixtures.fit_diagonal_gmm`, ``em_restarts`` starts of
      ``em_iterations`` steps, on the codes' device);
    * ``"spectral"``: :func:`~vae_zoo.spectral.spectral_clustering` of the codes'
      ``neighbours``-nearest-neighbour graph;
    * ``"consensus"``: of the spectral clustering and ``umap_runs`` N2D clusterings
      (:func:`umap_gmm_clustering`, seeds ``0 .. umap_runs - 1``), the medoid
      (:func:`medoid_index`), so that one clustering that merges two clusters and splits another
      is outvoted.

    Each clustering is announced in the log under ``announce_as`` with the seconds taken so far,
    and the consensus with the adjusted Rand index between the candidates.
    """
    if method == "em":
        gmm = fit_diagonal_gmm(codes, num_clusters, em_iterations, em_restarts, seed=0)
        return gmm.log_joint(codes.detach().to(gmm.means.dtype)).argmax(-1)
    methods: dict[str, Callable[[], torch.Tensor]] = {
        "spectral": partial(spectral_clustering, codes, num_clusters, neighbours)
    }
    if method == "consensus":
        for seed in range(umap_runs):
            methods[f"umap seed {seed}"] = partial(umap_gmm_clustering, codes, num_clusters, neighbours, seed)
    start = time.perf_counter()
    candidates = []
    for index, (name, cluster) in enumerate(methods.items()):
        rank_zero_info(
            f"{announce_as}: clustering {codes.shape[0]} codes, {name} ({index + 1} of {len(methods)}, "
            f"{time.perf_counter() - start:.0f} s so far)"
        )
        candidates.append(cluster())
    if len(candidates) == 1:
        return candidates[0]
    agreement = agreement_matrix(candidates)
    chosen = medoid_index(agreement)
    rank_zero_info(
        f"{announce_as}: start by consensus of {', '.join(methods)}; adjusted Rand index between "
        f"them {[[round(v, 3) for v in row] for row in agreement.tolist()]}; kept "
        f"{list(methods)[chosen]} ({time.perf_counter() - start:.0f} s)"
    )
    return candidates[chosen]
