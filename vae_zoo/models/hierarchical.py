"""VAE with the hierarchical mixture prior: clusters on the leaves of a binary tree."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy.cluster import hierarchy
from torch.distributions import Normal

from vae_zoo.metrics.hierarchy import DendrogramPurity, LeafPurity
from vae_zoo.models.gmm import GMMVAE
from vae_zoo.priors import TreeMixture
from vae_zoo.validation import check_choice, check_number, is_number

LinkageMethod = Literal["ward", "average", "complete", "single"]
LINKAGE_METHODS: tuple[str, ...] = ("ward", "average", "complete", "single")


class HierarchicalGMMVAE(GMMVAE):
    """GMM-VAE whose ``K`` clusters are the leaves of a binary tree (a leaf's mean is the mean of
    its cluster's mixture, :meth:`~vae_zoo.priors.GaussianMixture.cluster_means`).

    Every internal node is a Gaussian ``N(m_n, tree_sigma^2 I)`` with ``m_n`` the mean of its two
    children's means (:class:`~vae_zoo.priors.TreeMixture`). The loss adds, for each example,
    the tree term ``tree_weight * sum_c g_c mean_{n in ancestors(c)} -log N(z; m_n, tree_sigma^2 I)``
    with the cluster responsibilities ``g = p(c | z)`` held constant: a code pulled to leaf ``a`` is
    also pulled to ``a``'s parents, and through them pulls on ``a``'s sibling. (Summing over the
    ancestors instead, or letting ``g`` move, makes the shallowest leaf the cheapest and collapses all
    codes into it.)

    **How the tree is obtained.** ``K`` need not be a power of two, so the tree is not a fixed
    balanced one: after the autoencoder warm-up and the fit of the leaves (see
    :class:`GMMVAE`), the leaf means are merged agglomeratively (scipy's ``linkage`` with
    ``linkage_method``) and the merge order is fixed from then on; the node means keep moving
    with the leaves. :meth:`linkage_matrix` gives the current hierarchy as a scipy linkage
    matrix, :meth:`plot_dendrogram` draws it, :meth:`predict_hierarchy` assigns clusters at
    every level.

    Args:
        tree_sigma: standard deviation of the internal nodes' Gaussians.
        tree_weight: weight of the tree term in the loss.
        linkage_method: how the leaves are merged into the tree.
    """

    def __init__(
        self,
        tree_sigma: float = 1.0,
        tree_weight: float = 0.1,
        linkage_method: LinkageMethod = "ward",
        **kwargs: Any,
    ) -> None:
        if not (is_number(tree_sigma) and math.isfinite(tree_sigma) and tree_sigma > 0):
            raise ValueError(f"tree_sigma must be > 0 and finite; got {tree_sigma!r}")
        check_number("tree_weight", tree_weight, minimum=0)
        check_choice("linkage_method", linkage_method, LINKAGE_METHODS)
        self.tree_sigma = tree_sigma  # read by build_prior, which the base __init__ calls
        super().__init__(**kwargs)
        self.tree_weight = tree_weight
        self.linkage_method = linkage_method

    def build_prior(self) -> TreeMixture:
        return TreeMixture(
            self.latent_dim,
            self.num_components * self.components_per_cluster,
            self.learn_mixture_weights,
            self.tree_sigma,
            self.components_per_cluster,
        )

    def latent_terms(self, posterior: Normal, z: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = super().latent_terms(posterior, z)
        terms["tree"] = self.prior.tree_nll(z, self.prior.cluster_responsibilities(z))
        return terms

    def loss_weights(self) -> dict[str, float]:
        return {**super().loss_weights(), "tree": self.tree_weight}

    def update_clustering_metrics(self, clusters: torch.Tensor, labels: torch.Tensor, stage: str) -> None:
        """Adds ``dendrogram_purity`` (of the current tree) and ``leaf_purity`` once the tree is
        built."""
        super().update_clustering_metrics(clusters, labels, stage)
        if not bool(self.prior.has_tree):
            return
        k = self.num_components
        purity = partial(DendrogramPurity, k, self.tree_merges)
        self.evaluation_metric(stage, "dendrogram_purity", purity).update(clusters, labels)
        self.evaluation_metric(stage, "leaf_purity", partial(LeafPurity, k)).update(clusters, labels)

    def tree_merges(self) -> torch.Tensor:
        """The tree's merges [K-1, 2] (rows of a scipy linkage matrix over the leaves)."""
        return self.prior.merges

    def on_prior_initialized(self, codes: torch.Tensor) -> None:
        means = self.prior.cluster_means().detach().double().cpu().numpy()
        linkage = hierarchy.linkage(means, method=self.linkage_method)
        self.prior.set_tree(torch.from_numpy(linkage))

    @torch.no_grad()
    def linkage_matrix(self) -> np.ndarray:
        """The current hierarchy as a scipy linkage matrix [K-1, 4].

        Rows keep the merge order fixed at initialisation; a row's height is the distance between
        its two children's current means, raised where needed to its children's heights so that
        the matrix stays a valid (monotone) dendrogram.
        """
        prior = self.prior
        k = prior.num_clusters
        nodes = torch.cat([prior.cluster_means(), prior.node_means()]).double().cpu()  # [2K-1, D]
        heights = np.zeros(2 * k - 1)
        sizes = np.ones(2 * k - 1)
        rows = []
        for row, (left, right) in enumerate(prior.merges.tolist()):
            distance = float(torch.linalg.vector_norm(nodes[left] - nodes[right]))
            heights[k + row] = max(distance, heights[left], heights[right])
            sizes[k + row] = sizes[left] + sizes[right]
            rows.append([left, right, heights[k + row], sizes[k + row]])
        return np.array(rows)

    def hierarchy_levels(self) -> torch.Tensor:
        """Leaf-to-cluster table at every level: [K, K]; row ``k`` is leaf ``k``, column ``j`` its
        cluster when the tree is cut into ``j + 1`` clusters by undoing the last ``j`` merges
        (clusters numbered by their smallest leaf's rank; column ``K - 1`` is the leaves)."""
        k = self.prior.num_clusters
        table = torch.zeros(k, k, dtype=torch.long)
        merges = self.prior.merges.tolist()
        for clusters in range(1, k + 1):
            parent = list(range(2 * k - 1))  # union-find over nodes: apply the first K - n merges
            for row, (left, right) in enumerate(merges[: k - clusters]):
                parent[left] = parent[right] = k + row

            def root(node: int, parent: list[int] = parent) -> int:
                while parent[node] != node:
                    node = parent[node]
                return node

            roots = [root(leaf) for leaf in range(k)]
            first_seen = {r: i for i, r in reversed(list(enumerate(roots)))}
            order = sorted(set(roots), key=first_seen.get)
            table[:, clusters - 1] = torch.tensor([order.index(r) for r in roots])
        return table

    @torch.no_grad()
    def predict_hierarchy(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster of each input at every level: [B, *shape] -> [B, K]; column ``j`` is its
        cluster when the tree is cut into ``j + 1`` clusters (see :meth:`hierarchy_levels`)."""
        leaves = self.predict_cluster(x)
        return self.hierarchy_levels().to(x.device)[leaves]

    def plot_dendrogram(self, leaf_labels: Sequence[str] | None = None) -> Figure:
        """A matplotlib figure of :meth:`linkage_matrix` (leaves labelled by ``leaf_labels``);
        save it with ``figure.savefig(path)``."""
        figure = Figure(figsize=(6, 3.5))
        axis = figure.subplots()
        hierarchy.dendrogram(self.linkage_matrix(), labels=leaf_labels, ax=axis, leaf_rotation=90)
        axis.set_xlabel("leaf (cluster)")
        axis.set_ylabel("distance between child means")
        figure.tight_layout()
        return figure
