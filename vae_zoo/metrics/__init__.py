"""Metrics of the zoo, as torchmetrics Metrics."""

from vae_zoo.metrics.clustering import ClusteringAccuracy, contingency_table, hungarian_accuracy
from vae_zoo.metrics.latent import ActiveUnits, ComponentOccupancy, KLPerDimension, MutualInformation
from vae_zoo.metrics.likelihood import IWAENegativeLogLikelihood, iwae_log_likelihood

__all__ = [
    "ActiveUnits",
    "ClusteringAccuracy",
    "ComponentOccupancy",
    "IWAENegativeLogLikelihood",
    "KLPerDimension",
    "MutualInformation",
    "contingency_table",
    "hungarian_accuracy",
    "iwae_log_likelihood",
]
