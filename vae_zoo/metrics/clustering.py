"""Clustering quality of predicted cluster ids against class labels, as torchmetrics Metrics."""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def contingency_table(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Counts ``w[c, y]`` of examples in cluster ``c`` with label ``y``: [N], [N] -> [C, Y]."""
    num_clusters = int(preds.max()) + 1
    num_classes = int(target.max()) + 1
    flat = preds.long() * num_classes + target.long()
    return torch.bincount(flat, minlength=num_clusters * num_classes).reshape(num_clusters, num_classes)


def hungarian_accuracy(preds: torch.Tensor, target: torch.Tensor) -> float:
    """``max_m (1/N) sum_i 1{y_i = m(c_i)}`` over one-to-one maps ``m`` from clusters to labels.

    Solved by the Hungarian algorithm on the contingency table (scipy's
    ``linear_sum_assignment``, maximising); with more clusters than labels, the unmatched
    clusters count as errors. Cluster ids and labels need not be contiguous: ids that never
    occur are empty rows of the table, which the matching leaves aside.
    """
    if preds.numel() == 0 or preds.shape != target.shape:
        raise ValueError(
            f"hungarian_accuracy needs at least one example and as many labels as cluster ids; "
            f"got {list(preds.shape)} and {list(target.shape)}"
        )
    table = contingency_table(preds, target).cpu().numpy()
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum()) / preds.numel()


class ClusteringAccuracy(Metric):
    """Clustering accuracy with the Hungarian matching (as VaDE and DEC report it).

    The predictions and labels are gathered across processes before matching, so the value is
    the same on one device or many.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add cluster ids ``preds`` [N] and labels ``target`` [N]."""
        self.preds.append(preds.detach().long())
        self.target.append(target.detach().long())

    def compute(self) -> torch.Tensor:
        if isinstance(self.preds, list) and not self.preds:
            raise ValueError("ClusteringAccuracy has no examples: call update before compute")
        return torch.tensor(hungarian_accuracy(dim_zero_cat(self.preds), dim_zero_cat(self.target)))
