"""Metrics of the zoo, as torchmetrics Metrics."""

from vae_zoo.metrics.clustering import ClusteringAccuracy, contingency_table, hungarian_accuracy

__all__ = ["ClusteringAccuracy", "contingency_table", "hungarian_accuracy"]
