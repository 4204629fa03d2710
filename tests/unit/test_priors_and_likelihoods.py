"""Closed forms of the priors and likelihoods against torch.distributions and Monte Carlo."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from vae_zoo.likelihoods import BernoulliLikelihood, GaussianLikelihood, Likelihood, build_likelihood
from vae_zoo.priors import Prior, StandardNormal

finite = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False)
log_variances = st.floats(min_value=-4.0, max_value=2.0, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(mu=st.lists(finite, min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_standard_normal_kl_matches_closed_form_and_torch(mu: list[float], seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    loc = torch.tensor([mu], dtype=torch.float64)
    log_var = torch.empty_like(loc).uniform_(-4, 2, generator=generator)
    posterior = Normal(loc, torch.exp(0.5 * log_var))
    prior = StandardNormal(len(mu)).double()
    closed_form = 0.5 * (loc**2 + log_var.exp() - 1 - log_var).sum(-1)
    reference = kl_divergence(Independent(posterior, 1), Independent(Normal(0.0, torch.ones_like(loc)), 1))
    z = posterior.rsample()
    torch.testing.assert_close(prior.kl(posterior, z), closed_form)
    torch.testing.assert_close(prior.kl(posterior, z), reference)


@settings(max_examples=15, deadline=None)
@given(mu=finite, log_var=log_variances)
def test_standard_normal_kl_matches_monte_carlo(mu: float, log_var: float) -> None:
    posterior = Normal(
        torch.tensor([[mu]], dtype=torch.float64),
        torch.tensor([[math.exp(0.5 * log_var)]], dtype=torch.float64),
    )
    prior = StandardNormal(1).double()
    z = posterior.sample((200_000,))  # [S, 1, 1]
    monte_carlo = (posterior.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).mean()
    analytic = prior.kl(posterior, z[0]).item()
    standard_error = (posterior.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).std().item() / math.sqrt(200_000)
    assert abs(monte_carlo.item() - analytic) < 5 * standard_error + 1e-9


def test_standard_normal_log_prob_and_sample() -> None:
    prior = StandardNormal(3)
    z = torch.randn(5, 3)
    torch.testing.assert_close(prior.log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1))
    draws = prior.sample(20_000)
    assert draws.shape == (20_000, 3)
    assert draws.mean(0).abs().max() < 0.05 and (draws.std(0) - 1).abs().max() < 0.05


def test_bernoulli_log_prob_is_negative_binary_cross_entropy() -> None:
    logits = torch.randn(4, 1, 5, 5)
    x = torch.bernoulli(torch.rand(4, 1, 5, 5))
    expected = Independent(Bernoulli(logits=logits), 3).log_prob(x)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    got = BernoulliLikelihood().log_prob(x, logits)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, -bce)
    torch.testing.assert_close(BernoulliLikelihood().mean(logits), torch.sigmoid(logits))


@pytest.mark.parametrize("variance", [0.1, 1.0, 2.5])
def test_gaussian_log_prob_with_variance_c(variance: float) -> None:
    mean = torch.randn(3, 10)
    x = torch.randn(3, 10)
    d = x.shape[1]
    expected = -((x - mean) ** 2).sum(1) / (2 * variance) - 0.5 * d * math.log(2 * math.pi * variance)
    torch.testing.assert_close(GaussianLikelihood(variance).log_prob(x, mean), expected)
    torch.testing.assert_close(GaussianLikelihood(variance).mean(mean), mean)


def test_learned_gaussian_variance_is_a_parameter_and_receives_gradient() -> None:
    likelihood = GaussianLikelihood(0.5, learn_variance=True)
    assert [name for name, _ in likelihood.named_parameters()] == ["raw_log_variance"]
    torch.testing.assert_close(likelihood.log_variance.exp(), torch.tensor(0.5))
    likelihood.log_prob(torch.randn(4, 6), torch.zeros(4, 6)).sum().backward()
    assert likelihood.raw_log_variance.grad is not None and likelihood.raw_log_variance.grad != 0
    assert list(GaussianLikelihood(0.5).parameters()) == []


def test_likelihood_errors_name_the_parameter() -> None:
    with pytest.raises(
        ValueError, match=r"likelihood must be one of \['bernoulli', 'gaussian'\]; got 'poisson'"
    ):
        build_likelihood("poisson")
    for variance in (0.0, -1.0, 1e6, float("nan")):
        with pytest.raises(ValueError, match=r"likelihood_variance must be in \(4.54e-05, 148\); got"):
            GaussianLikelihood(variance)


def test_an_incomplete_prior_or_likelihood_cannot_be_built() -> None:
    class NoSample(Prior):
        def log_prob(self, z: torch.Tensor) -> torch.Tensor:
            return z.sum(-1)

    class NoDistribution(Likelihood):
        pass

    with pytest.raises(TypeError, match=r"abstract method.*sample"):
        NoSample(2)
    with pytest.raises(TypeError, match=r"abstract method.*distribution"):
        NoDistribution()
