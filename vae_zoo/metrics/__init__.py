"""Metrics of the zoo, as torchmetrics Metrics whose states reduce across processes by summing
(totals over counts) or by concatenation (examples gathered before an exact computation)."""

from vae_zoo.metrics.clustering import ClusteringAccuracy, contingency_table, hungarian_accuracy
from vae_zoo.metrics.elbo import ELBO, ExampleMean
from vae_zoo.metrics.hierarchy import DendrogramPurity, LeafPurity, dendrogram_purity, leaf_purity
from vae_zoo.metrics.latent import (
    ActiveUnits,
    AggregatePosteriorKL,
    ComponentOccupancy,
    KLPerDimension,
    MutualInformation,
    gaussian_moments,
)
from vae_zoo.metrics.likelihood import IWAENegativeLogLikelihood, iwae_log_likelihood
from vae_zoo.metrics.mmd import PriorMMD, imq_kernel, mmd_squared
from vae_zoo.metrics.reconstruction import BinaryCrossEntropy, SquaredError
from vae_zoo.metrics.sample_quality import LeNetFeatures, frechet_distance

__all__ = [
    "ELBO",
    "ActiveUnits",
    "AggregatePosteriorKL",
    "BinaryCrossEntropy",
    "ClusteringAccuracy",
    "ComponentOccupancy",
    "DendrogramPurity",
    "ExampleMean",
    "IWAENegativeLogLikelihood",
    "KLPerDimension",
    "LeNetFeatures",
    "LeafPurity",
    "MutualInformation",
    "PriorMMD",
    "SquaredError",
    "contingency_table",
    "dendrogram_purity",
    "frechet_distance",
    "gaussian_moments",
    "hungarian_accuracy",
    "imq_kernel",
    "iwae_log_likelihood",
    "leaf_purity",
    "mmd_squared",
]
