"""The evaluation metrics against hand computations and direct formulas, the models' wiring of
them, and the same value from two merged shards as from one process, for every metric class."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal
from torchmetrics import Metric

from tests.metric_cases import BATCHES, CASES, SHARDS, as_dict, example_data, example_model, feed
from vae_zoo import metrics
from vae_zoo.metrics import (
    ELBO,
    AggregatePosteriorKL,
    BinaryCrossEntropy,
    ExampleMean,
    SquaredError,
    gaussian_moments,
)
from vae_zoo.models import GMMVAE, VAE, Autoencoder, LinearAutoencoder
from vae_zoo.priors import StandardNormal


def gaussian_kl(m_q: np.ndarray, s_q: np.ndarray, m_p: np.ndarray, s_p: np.ndarray) -> float:
    """``KL(N(m_q, S_q) || N(m_p, S_p))`` by its textbook formula, in numpy."""
    inverse = np.linalg.inv(s_p)
    diff = m_p - m_q
    return 0.5 * float(
        np.trace(inverse @ s_q)
        + diff @ inverse @ diff
        - len(m_q)
        + np.log(np.linalg.det(s_p) / np.linalg.det(s_q))
    )


# ----------------------------------------------------------------- means over examples
def test_example_mean_weights_examples_not_batches() -> None:
    metric = ExampleMean()
    metric.update(torch.tensor([10.0]))
    metric.update(torch.tensor([1.0, 2.0, 3.0]))
    assert float(metric.compute()) == pytest.approx(16 / 4)  # a mean of batch means would say 6
    with pytest.raises(ValueError, match=r"one value per example, \[B\]; got \[2, 2\]"):
        metric.update(torch.ones(2, 2))


def test_elbo_is_minus_recon_minus_kl() -> None:
    recon, kl = torch.tensor([80.0, 90.0, 100.0]), torch.tensor([5.0, 6.0, 7.0])
    metric = ELBO()
    metric.update(recon[:1], kl[:1])
    metric.update(recon[1:], kl[1:])
    assert float(metric.compute()) == pytest.approx(-(270 + 18) / 3)
    assert ELBO.higher_is_better and not SquaredError.higher_is_better


def test_reconstruction_errors_against_their_formulas() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((7, 1, 3, 3), 0.3), generator=generator)
    logits = torch.randn(7, 1, 3, 3, generator=generator) * 3
    p = torch.sigmoid(logits.double())
    by_hand = -(x * p.log() + (1 - x) * (1 - p).log()).sum((1, 2, 3)).mean()
    for metric, preds in ((BinaryCrossEntropy(), logits), (BinaryCrossEntropy(from_logits=False), p)):
        metric.update(preds[:3], x[:3])
        metric.update(preds[3:], x[3:])
        torch.testing.assert_close(metric.compute(), by_hand)
    # on binary data it is the negative Bernoulli log-likelihood of the reconstruction
    bernoulli = -Bernoulli(logits=logits.double()).log_prob(x.double()).sum((1, 2, 3)).mean()
    torch.testing.assert_close(by_hand, bernoulli)
    squared = SquaredError()
    squared.update(p, x)
    torch.testing.assert_close(squared.compute(), ((p - x) ** 2).sum((1, 2, 3)).mean())
    with pytest.raises(ValueError, match="same shape"):
        squared.update(p[:2], x[:3])


# ----------------------------------------------------------------- aggregate posterior
def test_aggregate_kl_against_a_hand_computation() -> None:
    loc = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])
    scale = torch.tensor([[0.5, 1.0], [1.0, 0.5], [2.0, 1.0]])
    # m = (0, 1); Cov(mu) = [[2, -1], [-1, 2]] / 3 (population); mean sigma^2 = (5.25, 2.25) / 3
    # S = [[29/12, -1/3], [-1/3, 17/12]]: tr S = 23/6, m.m = 1, det S = 477/144
    expected = 0.5 * (23 / 6 + 1 - 2 - math.log(477 / 144))
    metric = AggregatePosteriorKL(2)
    metric.update(loc[:1], scale[:1])
    metric.update(loc[1:], scale[1:])
    mean, covariance = metric.moments()
    torch.testing.assert_close(mean, torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(
        covariance, torch.tensor([[29 / 12, -1 / 3], [-1 / 3, 17 / 12]], dtype=torch.float64)
    )
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-12)
    metric.set_prior(StandardNormal(2).distribution())  # the same prior, given explicitly
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-12)


def test_aggregate_kl_against_a_mixture_prior_by_hand() -> None:
    loc = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]], dtype=torch.float64)
    scale = torch.tensor([[0.5, 1.0], [1.0, 0.5], [2.0, 1.0]], dtype=torch.float64)
    weights = torch.tensor([0.25, 0.75], dtype=torch.float64)
    means = torch.tensor([[-2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    scales = torch.tensor([[1.0, 0.5], [0.5, 2.0]], dtype=torch.float64)
    prior = MixtureSameFamily(Categorical(weights), Independent(Normal(means, scales), 1))
    # by hand: m_p = (-0.5+0.75, 0.75) = (0.25, 0.75); the second moment of each component is
    # diag(s^2) + mu mu^T, averaged with the weights, less m_p m_p^T
    m_p = np.array([0.25, 0.75])
    second = 0.25 * (np.diag([1.0, 0.25]) + np.outer([-2, 0], [-2, 0])) + 0.75 * (
        np.diag([0.25, 4.0]) + np.outer([1, 1], [1, 1])
    )
    s_p = second - np.outer(m_p, m_p)
    mean, covariance = gaussian_moments(prior)
    np.testing.assert_allclose(mean.numpy(), m_p)
    np.testing.assert_allclose(covariance.numpy(), s_p)
    m_q = np.array([0.0, 1.0])
    s_q = np.array([[29 / 12, -1 / 3], [-1 / 3, 17 / 12]])
    metric = AggregatePosteriorKL(2)
    metric.update(loc, scale)
    metric.set_prior(prior)
    assert float(metric.compute()) == pytest.approx(gaussian_kl(m_q, s_q, m_p, s_p), abs=1e-12)


@pytest.mark.parametrize("s", [0.1, 0.5, 0.9])
def test_aggregate_kl_is_zero_when_the_aggregate_posterior_is_the_prior(s: float) -> None:
    """mu with mean 0 and covariance exactly (1 - s^2) I over the data, sigma = s: the aggregate
    posterior has mean 0 and covariance (1 - s^2) I + s^2 I = I, the prior's."""
    z = torch.randn(500, 4, dtype=torch.float64)
    z = z - z.mean(0)
    whitening = torch.linalg.inv(torch.linalg.cholesky(z.T @ z / 500))
    loc = math.sqrt(1 - s**2) * z @ whitening.T  # population covariance exactly (1 - s^2) I
    metric = AggregatePosteriorKL(4)
    metric.update(loc[:123], torch.full((123, 4), s))
    metric.update(loc[123:], torch.full((377, 4), s))
    assert abs(float(metric.compute())) < 1e-10
    metric.update(loc[:10] + 1.0, torch.full((10, 4), s))
    assert float(metric.compute()) > 1e-3


def test_aggregate_kl_is_zero_when_the_posteriors_are_the_mixture_components() -> None:
    """Posteriors equal to the components, in proportion to the weights 1:2:3: the aggregate
    posterior is the mixture itself."""
    means = torch.tensor([[-3.0, 0.0], [2.0, 1.0], [0.0, -2.0]])
    scales = torch.tensor([[1.0, 0.5], [0.3, 2.0], [0.7, 0.7]])
    prior = MixtureSameFamily(
        Categorical(torch.tensor([1.0, 2.0, 3.0]) / 6), Independent(Normal(means, scales), 1)
    )
    index = torch.tensor([0, 1, 1, 2, 2, 2])
    metric = AggregatePosteriorKL(2)
    metric.set_prior(prior)
    metric.update(means[index], scales[index])
    assert abs(float(metric.compute())) < 1e-10


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 40), spread=st.floats(0.1, 3.0))
def test_with_a_standard_normal_prior_aggregate_kl_is_at_most_the_mean_kl(
    seed: int, n: int, spread: float
) -> None:
    """KL(moment-matched q(z) || N(0, I)) <= KL(q(z) || N(0, I)) <= mean_x KL(q(z|x) || N(0, I))."""
    generator = torch.Generator().manual_seed(seed)
    loc = torch.randn(n, 3, generator=generator, dtype=torch.float64) * spread
    scale = torch.rand(n, 3, generator=generator, dtype=torch.float64) * spread + 0.01
    metric = AggregatePosteriorKL(3)
    metric.update(loc, scale)
    mean_kl = StandardNormal(3).double().kl(Normal(loc, scale), loc).mean()
    assert 0 <= float(metric.compute()) <= float(mean_kl) + 1e-9


def test_gaussian_moments_match_samples_and_refuse_what_they_cannot_do() -> None:
    torch.manual_seed(0)
    mixture = MixtureSameFamily(
        Categorical(torch.tensor([0.2, 0.8])),
        Independent(
            Normal(torch.tensor([[0.0, 3.0], [2.0, -1.0]]), torch.tensor([[1.0, 0.5], [0.3, 1.0]])), 1
        ),
    )
    samples = mixture.sample((400_000,)).double()
    mean, covariance = gaussian_moments(mixture)
    torch.testing.assert_close(mean.double(), samples.mean(0), atol=0.02, rtol=0)
    torch.testing.assert_close(covariance.double(), samples.T.cov(correction=0), atol=0.03, rtol=0)
    with pytest.raises(TypeError, match="gaussian_moments needs a distribution over vectors"):
        gaussian_moments(Normal(torch.tensor(0.0), torch.tensor(1.0)))


def test_set_prior_after_compute_changes_the_value() -> None:
    metric = AggregatePosteriorKL(2)
    metric.update(torch.zeros(4, 2), torch.ones(4, 2))
    assert abs(float(metric.compute())) < 1e-12
    metric.set_prior(Independent(Normal(torch.ones(2), torch.ones(2)), 1))
    assert float(metric.compute()) == pytest.approx(1.0)  # |m - m_p|^2 / 2 with m_p = (1, 1)
    with pytest.raises(ValueError, match="over 2 dimensions"):
        metric.set_prior(StandardNormal(3).distribution())


# ----------------------------------------------------------------- the models' wiring
def evaluation_loader(x: torch.Tensor) -> torch.utils.data.DataLoader:
    labels = torch.arange(len(x)) % 2
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, labels), batch_size=16)


def validate(model: L.LightningModule, x: torch.Tensor) -> dict[str, float]:
    trainer = L.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu"
    )
    return trainer.validate(model, evaluation_loader(x), verbose=False)[0]


@pytest.mark.parametrize("model_class", [VAE, GMMVAE])
def test_models_log_means_over_examples_of_every_evaluation_metric(model_class: type) -> None:
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((50, 1, 4, 4), 0.3))  # batches of 16, 16, 16 and 2
    model = model_class(input_shape=[1, 4, 4], latent_dim=2, hidden_dims=[8]).double()
    model.eval()
    logged = validate(model, x.double())
    expected_names = {"loss", "recon", "kl", "elbo", "sq_error", "bce", "aggregate_kl"}
    assert expected_names <= {name.removeprefix("val/") for name in logged}
    assert logged["val/elbo"] == pytest.approx(-(logged["val/recon"] + logged["val/kl"]))
    assert logged["val/loss"] == pytest.approx(logged["val/recon"] + logged["val/kl"])
    with torch.no_grad():
        x = x.double()
        squared = ((model.reconstruct(x) - x) ** 2).sum((1, 2, 3)).mean()
        bce = -model.likelihood.log_prob(x, model.decoder(model.encode(x))).mean()
        posterior = model.posterior(x)
    assert logged["val/sq_error"] == pytest.approx(float(squared))  # over the 50, not the 4 batches
    assert logged["val/bce"] == pytest.approx(float(bce))
    aggregate = AggregatePosteriorKL(2)
    aggregate.update(posterior.loc, posterior.scale)
    aggregate.set_prior(model.prior.distribution())  # N(0, I), or the model's mixture
    assert logged["val/aggregate_kl"] == pytest.approx(float(aggregate.compute()))
    if model_class is VAE:
        assert logged["val/aggregate_kl"] <= logged["val/kl"]


def test_models_without_a_posterior_or_a_bernoulli_likelihood_log_what_applies() -> None:
    x = torch.bernoulli(torch.full((20, 1, 4, 4), 0.3))
    names = {
        name.removeprefix("val/") for name in validate(Autoencoder(input_shape=[1, 4, 4], hidden_dims=[8]), x)
    }
    assert names == {"loss", "recon", "sq_error", "bce"}
    names = {
        name.removeprefix("val/")
        for name in validate(LinearAutoencoder(input_shape=[1, 4, 4], latent_dim=2), x)
    }
    assert names == {"loss", "recon", "sq_error", "explained_variance"}


def test_a_value_that_a_subclass_adds_in_stage_metrics_is_still_logged() -> None:
    class WithExtra(VAE):
        def stage_metrics(self, loss, terms, stage):
            return {
                **super().stage_metrics(loss, terms, stage),
                f"{stage}/mean_code": terms["kl"].mean() * 0 + 7,
            }

    logged = validate(
        WithExtra(input_shape=[1, 4, 4], latent_dim=2, hidden_dims=[8]), torch.rand(20, 1, 4, 4)
    )
    assert logged["val/mean_code"] == 7 and "val/elbo" in logged


# ----------------------------------------------------------------- two processes in one
def test_every_metric_class_has_an_equivalence_case() -> None:
    classes = {
        name
        for name in metrics.__all__
        if isinstance(getattr(metrics, name), type) and issubclass(getattr(metrics, name), Metric)
    }
    case_classes = {name.split("(")[0] for name in CASES}  # "DendrogramPurity(tree=...)": a variant
    assert classes | {"NormalizedMutualInfoScore", "AdjustedRandScore"} == case_classes


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_merged_uneven_shards_give_the_single_process_value(name: str) -> None:
    """Rank 0's 37 examples and rank 1's 24, merged as torchmetrics merges processes, against
    all 61 in one metric."""
    data, model, case = example_data(), example_model(), CASES[name]
    single = feed(name, case.make(), [0, 1, 2, 3], data, model)
    first, second = (feed(name, case.make(), SHARDS[rank], data, model) for rank in (0, 1))
    assert sum(BATCHES[i][1] - BATCHES[i][0] for i in SHARDS[0]) == 37
    first.merge_state(second)
    for metric in (single, first):
        case.finish(metric)
    expected, merged = as_dict(single.compute()), as_dict(first.compute())
    assert merged.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(merged[key], expected[key], rtol=1e-10, atol=1e-10)
        assert torch.isfinite(expected[key]).all()
