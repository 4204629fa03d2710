"""One recipe per metric class (how to build it, feed it a slice of a fixed data set, and finish it
before ``compute``), shared by the in-process (``merge_state``) and the two-process (gloo) tests
that check every metric gives the same value on one process as on two with an uneven split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchmetrics import Metric
from torchmetrics.clustering import AdjustedRandScore, NormalizedMutualInfoScore

from vae_zoo import metrics
from vae_zoo.models import VAE
from vae_zoo.priors import GaussianMixture

N, LATENT, LEAVES = 61, 3, 4
# (start, stop) of each batch; rank 0 of two holds the first 37 examples, rank 1 the last 24
BATCHES = [(0, 20), (20, 37), (37, 50), (50, 61)]
SHARDS = {0: [0, 1], 1: [2, 3]}  # batch indices of each rank
MERGES = torch.tensor([[0, 1], [2, 3], [4, 5]])  # a tree over the 4 leaves


def example_data() -> dict[str, torch.Tensor]:
    """The fixed data set every recipe reads (the same in every process)."""
    generator = torch.Generator().manual_seed(0)
    return {
        "x": torch.bernoulli(torch.full((N, 1, 4, 4), 0.4), generator=generator),
        "logits": torch.randn(N, 1, 4, 4, generator=generator),
        "values": torch.randn(N, generator=generator) * 10,
        "kl": torch.rand(N, generator=generator) * 5,
        "loc": torch.randn(N, LATENT, generator=generator) * 2 + 0.5,
        "scale": torch.rand(N, LATENT, generator=generator) + 0.2,
        "clusters": torch.randint(0, 6, (N,), generator=generator),  # 6 clusters for 3 classes
        "labels": torch.randint(0, 3, (N,), generator=generator),
        "leaves": torch.randint(0, LEAVES, (N,), generator=generator),
        "prior_draws": torch.randn(N, LATENT, generator=generator),
    }


def example_model() -> VAE:
    """A small untrained VAE over the data's 1x4x4 inputs, the same in every process."""
    torch.manual_seed(0)
    return VAE(input_shape=[1, 4, 4], latent_dim=LATENT, hidden_dims=[8]).eval()


def mixture_prior() -> torch.distributions.Distribution:
    torch.manual_seed(1)
    return GaussianMixture(LATENT, 3).distribution()


@dataclass
class Case:
    make: Callable[[], Metric]
    update: Callable[[Metric, dict[str, torch.Tensor], slice, VAE], None]
    finish: Callable[[Metric], None] = lambda metric: None


CASES: dict[str, Case] = {
    "ExampleMean": Case(metrics.ExampleMean, lambda m, d, s, _: m.update(d["values"][s])),
    "ELBO": Case(metrics.ELBO, lambda m, d, s, _: m.update(d["values"][s], d["kl"][s])),
    "SquaredError": Case(metrics.SquaredError, lambda m, d, s, _: m.update(d["logits"][s], d["x"][s])),
    "BinaryCrossEntropy": Case(
        metrics.BinaryCrossEntropy, lambda m, d, s, _: m.update(d["logits"][s], d["x"][s])
    ),
    "AggregatePosteriorKL": Case(
        lambda: metrics.AggregatePosteriorKL(LATENT),
        lambda m, d, s, _: m.update(d["loc"][s], d["scale"][s]),
        lambda m: m.set_prior(mixture_prior()),
    ),
    "ActiveUnits": Case(
        lambda: metrics.ActiveUnits(LATENT, threshold=3.9), lambda m, d, s, _: m.update(d["loc"][s])
    ),
    "KLPerDimension": Case(
        lambda: metrics.KLPerDimension(LATENT),
        lambda m, d, s, _: m.update(d["kl"][s].unsqueeze(-1) * d["scale"][s]),
    ),
    "MutualInformation": Case(
        metrics.MutualInformation, lambda m, d, s, _: m.update(d["loc"][s], d["scale"][s])
    ),
    "ComponentOccupancy": Case(
        lambda: metrics.ComponentOccupancy(LEAVES), lambda m, d, s, _: m.update(d["leaves"][s])
    ),
    "IWAENegativeLogLikelihood": Case(
        lambda: metrics.IWAENegativeLogLikelihood(num_samples=7, chunk_size=3),
        lambda m, d, s, model: m.update(model, d["x"][s]),
    ),
    "ClusteringAccuracy": Case(
        metrics.ClusteringAccuracy, lambda m, d, s, _: m.update(d["clusters"][s], d["labels"][s])
    ),
    "DendrogramPurity": Case(
        lambda: metrics.DendrogramPurity(LEAVES),
        lambda m, d, s, _: m.update(d["leaves"][s], d["labels"][s]),
        lambda m: m.set_tree(MERGES),
    ),
    "DendrogramPurity(tree=...)": Case(
        lambda: metrics.DendrogramPurity(LEAVES, tree=lambda: MERGES),
        lambda m, d, s, _: m.update(d["leaves"][s], d["labels"][s]),
    ),
    "PriorMMD": Case(metrics.PriorMMD, lambda m, d, s, _: m.update(d["loc"][s], d["prior_draws"][s])),
    "LeafPurity": Case(
        lambda: metrics.LeafPurity(LEAVES), lambda m, d, s, _: m.update(d["leaves"][s], d["labels"][s])
    ),
    "NormalizedMutualInfoScore": Case(
        lambda: NormalizedMutualInfoScore(average_method="arithmetic"),
        lambda m, d, s, _: m.update(d["clusters"][s], d["labels"][s]),
    ),
    "AdjustedRandScore": Case(
        AdjustedRandScore, lambda m, d, s, _: m.update(d["clusters"][s], d["labels"][s])
    ),
}


def feed(name: str, metric: Metric, batches: list[int], data: dict, model: VAE) -> Metric:
    """Update ``metric`` with the given batches, each drawn with its own seed (so that stochastic
    metrics draw the same numbers for a batch wherever it is processed)."""
    for index in batches:
        start, stop = BATCHES[index]
        torch.manual_seed(1000 + index)
        CASES[name].update(metric, data, slice(start, stop), model)
    return metric


def as_dict(value: torch.Tensor | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A metric's value as ``{name: float64 tensor}`` for comparisons."""
    items = value.items() if isinstance(value, dict) else [("value", value)]
    return {key: torch.as_tensor(item).detach().cpu().double() for key, item in items}


def single_process_values() -> dict[str, dict[str, torch.Tensor]]:
    """Every metric's value on the whole data set in one process."""
    data, model = example_data(), example_model()
    values = {}
    for name, case in CASES.items():
        metric = feed(name, case.make(), list(range(len(BATCHES))), data, model)
        case.finish(metric)
        values[name] = as_dict(metric.compute())
    return values
