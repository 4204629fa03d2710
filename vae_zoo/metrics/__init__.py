"""Metrics of the zoo, as torchmetrics Metrics."""

from vae_zoo.metrics.clustering import ClusteringAccuracy, contingency_table, hungarian_accuracy
from vae_zoo.metrics.latent import ActiveUnits, ComponentOccupancy, KLPerDimension, MutualInformation

__all__ = [
    "ActiveUnits",
    "ClusteringAccuracy",
    "ComponentOccupancy",
    "KLPerDimension",
    "MutualInformation",
    "contingency_table",
    "hungarian_accuracy",
]
