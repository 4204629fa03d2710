"""Hierarchy quality: dendrogram purity and leaf purity of points assigned to the leaves of a tree."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def node_class_counts(
    leaves: torch.Tensor, labels: torch.Tensor, merges: torch.Tensor, num_leaves: int
) -> torch.Tensor:
    """Counts ``n[v, c]`` of points of class ``c`` below every node ``v`` of the tree: [2K-1, C].

    ``merges`` [K-1, 2] is the first two columns of a scipy linkage matrix over ``K`` leaves:
    row ``i`` joins nodes ``merges[i]`` into node ``K + i``.
    """
    num_classes = int(labels.max()) + 1
    counts = torch.zeros(2 * num_leaves - 1, num_classes, dtype=torch.float64)
    counts[:num_leaves] = (
        torch.bincount(leaves.long() * num_classes + labels.long(), minlength=num_leaves * num_classes)
        .reshape(num_leaves, num_classes)
        .double()
    )
    for row, (left, right) in enumerate(merges.long().tolist()):
        counts[num_leaves + row] = counts[left] + counts[right]
    return counts


def dendrogram_purity(
    leaves: torch.Tensor, labels: torch.Tensor, merges: torch.Tensor, num_leaves: int
) -> float:
    """Dendrogram purity (Heller & Ghahramani 2005; Kobren et al. 2017), as TreeVAE reports it.

    ``DP = (1 / |P|) sum_{(i, j) in P} |lvs(lca(i, j)) with class c_i| / |lvs(lca(i, j))|`` over the
    set ``P`` of unordered pairs of points of the same class; points in the same leaf have that
    leaf as their lowest common ancestor. Computed exactly from per-node class counts:
    pairs inside leaf ``l`` contribute ``C(n_lc, 2) n_lc / n_l``, pairs split at node ``v`` with
    children ``a, b`` contribute ``n_ac n_bc n_vc / n_v``.
    """
    counts = node_class_counts(leaves, labels, merges, num_leaves)
    sizes = counts.sum(1, keepdim=True).clamp_min(1)  # [2K-1, 1]
    purity = counts / sizes
    leaf = counts[:num_leaves]
    total = (leaf * (leaf - 1) / 2 * purity[:num_leaves]).sum()
    children = merges.long()
    split_pairs = counts[children[:, 0]] * counts[children[:, 1]]  # [K-1, C]
    total += (split_pairs * purity[num_leaves:]).sum()
    class_sizes = counts[-1]
    pairs = (class_sizes * (class_sizes - 1) / 2).sum()
    return float(total / pairs)


def leaf_purity(leaves: torch.Tensor, labels: torch.Tensor, num_leaves: int) -> float:
    """The fraction of points whose leaf's majority class is their own class."""
    num_classes = int(labels.max()) + 1
    table = torch.bincount(leaves.long() * num_classes + labels.long(), minlength=num_leaves * num_classes)
    return float(table.reshape(num_leaves, num_classes).max(1).values.sum()) / leaves.numel()


class _LeafAssignments(Metric):
    """Leaf ids and class labels of every example seen, gathered across processes."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_leaves: int) -> None:
        super().__init__()
        self.num_leaves = num_leaves
        self.add_state("leaves", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, leaves: torch.Tensor, labels: torch.Tensor) -> None:
        """Add leaf ids [N] and class labels [N]."""
        self.leaves.append(leaves.detach().long())
        self.labels.append(labels.detach().long())

    def assignments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All leaf ids and labels seen: ([N], [N]) on the CPU."""
        return dim_zero_cat(self.leaves).cpu(), dim_zero_cat(self.labels).cpu()


class DendrogramPurity(_LeafAssignments):
    """Dendrogram purity (:func:`dendrogram_purity`) of leaf assignments under a tree: the
    merges [K-1, 2] of a scipy linkage matrix over the leaves, given by ``set_tree(merges)`` or,
    read at every ``compute``, by ``tree()`` (a model's current tree).

    Assignments and labels are gathered across processes before the exact computation.
    """

    def __init__(self, num_leaves: int, tree: Callable[[], torch.Tensor] | None = None) -> None:
        super().__init__(num_leaves)
        self.tree = tree
        self.merges: torch.Tensor | None = None

    def set_tree(self, merges: torch.Tensor) -> None:
        """The tree: merges [K-1, 2] of a scipy linkage matrix over the leaves."""
        self.merges = merges.detach().cpu()

    def compute(self) -> torch.Tensor:
        merges = self.tree() if self.tree is not None else self.merges
        if merges is None:
            raise RuntimeError("DendrogramPurity needs a tree: set_tree(merges) or tree= before compute()")
        leaves, labels = self.assignments()
        return torch.tensor(dendrogram_purity(leaves, labels, merges.detach().cpu(), self.num_leaves))


class LeafPurity(_LeafAssignments):
    """Leaf purity (:func:`leaf_purity`): the fraction of examples whose leaf's majority class is
    their own; gathered across processes."""

    def compute(self) -> torch.Tensor:
        return torch.tensor(leaf_purity(*self.assignments(), self.num_leaves))
