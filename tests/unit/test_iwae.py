"""The importance-weighted log-likelihood against a closed form and against the ELBO."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from vae_zoo.metrics import IWAENegativeLogLikelihood, iwae_log_likelihood
from vae_zoo.models import GMMVAE, VAE

D, K, C = 6, 2, 0.3  # data size, latent size, likelihood variance


def linear_gaussian_vae() -> tuple[VAE, torch.Tensor, torch.Tensor]:
    """A VAE that is the linear-Gaussian model x = W z + b + e, z ~ N(0, I), e ~ N(0, C I),
    with W's columns orthogonal so the exact posterior is diagonal, and its encoder set to it."""
    torch.manual_seed(0)
    model = VAE(
        input_shape=[D], latent_dim=K, hidden_dims=[], likelihood="gaussian", likelihood_variance=C
    ).double()
    weight = torch.linalg.qr(torch.randn(D, K, dtype=torch.float64))[0] * torch.tensor(
        [2.0, 0.7], dtype=torch.float64
    )
    bias = torch.randn(D, dtype=torch.float64)
    # posterior: covariance S = (I + W^T W / C)^-1 (diagonal), mean S W^T (x - b) / C
    covariance = torch.linalg.inv(torch.eye(K, dtype=torch.float64) + weight.T @ weight / C)
    gain = covariance @ weight.T / C  # [K, D]
    with torch.no_grad():
        decoder = model.decoder[0][0]
        decoder.weight.copy_(weight)
        decoder.bias.copy_(bias)
        encoder = model.encoder[1][0]
        encoder.weight.zero_()
        encoder.weight[:K].copy_(gain)
        encoder.bias[:K].copy_(-gain @ bias)
        encoder.bias[K:].copy_(torch.diagonal(covariance).log())
    marginal = MultivariateNormal(bias, weight @ weight.T + C * torch.eye(D, dtype=torch.float64))
    x = marginal.sample((50,))
    return model, x, marginal.log_prob(x)


def test_with_the_exact_posterior_every_weight_is_the_marginal_likelihood() -> None:
    model, x, exact = linear_gaussian_vae()
    # 1e-3: the bounded log-variance and float32 constants; a wrong estimator is off by > 0.1
    torch.testing.assert_close(iwae_log_likelihood(model, x, num_samples=1), exact, atol=1e-3, rtol=0)
    several = iwae_log_likelihood(model, x, num_samples=64, chunk_size=10)
    torch.testing.assert_close(several, exact, atol=1e-3, rtol=0)


def test_with_a_poor_posterior_the_bound_tightens_towards_the_truth() -> None:
    model, x, exact = linear_gaussian_vae()
    with torch.no_grad():
        model.encoder[1][0].bias[K:] += 1.5  # posterior variances e^1.5 too wide
    torch.manual_seed(1)
    estimates = {k: iwae_log_likelihood(model, x, num_samples=k).mean().item() for k in (1, 10, 1000)}
    assert estimates[1] < estimates[10] < estimates[1000] <= exact.mean().item() + 0.01  # Monte Carlo noise
    assert abs(exact.mean().item() - estimates[1000]) < 0.05
    assert exact.mean().item() - estimates[1] > 0.5


def test_one_sample_averages_to_the_elbo() -> None:
    model, x, _ = linear_gaussian_vae()
    with torch.no_grad():
        model.encoder[1][0].bias[K:] += 1.0
        model.eval()
        elbo = -(model.objective(model.loss_terms(x.repeat(2000, 1))))
    one_sample = iwae_log_likelihood(model, x.repeat(2000, 1), num_samples=1).mean()
    assert one_sample.item() == pytest.approx(elbo.item(), abs=0.05)


def test_metric_reports_the_mean_negative_log_likelihood_and_merges() -> None:
    model, x, exact = linear_gaussian_vae()
    first, second = IWAENegativeLogLikelihood(num_samples=4), IWAENegativeLogLikelihood(num_samples=4)
    first.update(model, x[:20])
    second.update(model, x[20:])
    first.merge_state(second)
    assert float(first.compute()) == pytest.approx(-exact.mean().item(), abs=1e-3)
    assert math.isfinite(float(first.compute()))
    with pytest.raises(ValueError, match="num_samples and chunk_size must be >= 1"):
        IWAENegativeLogLikelihood(num_samples=0)


def test_one_sample_is_the_models_own_elbo_estimate_at_the_same_draw() -> None:
    """k = 1 with the same noise: log p(x|z) + log p(z) - log q(z|x) is the negative of the model's
    recon + Monte Carlo KL at that z (here a mixture prior, whose KL has no closed form)."""
    torch.manual_seed(0)
    model = GMMVAE(
        input_shape=[D],
        latent_dim=K,
        hidden_dims=[8],
        likelihood="gaussian",
        num_components=3,
        kl_estimator="monte_carlo",
    ).double()
    model.eval()
    x = torch.randn(20, D, dtype=torch.float64)
    torch.manual_seed(5)
    one_sample = iwae_log_likelihood(model, x, num_samples=1)
    torch.manual_seed(5)
    with torch.no_grad():
        posterior = model.posterior(x)
        z = posterior.sample((1,))[0]  # the draw iwae_log_likelihood made
        recon = -model.likelihood.log_prob(x, model.decoder(z))
        kl = model.latent_terms(posterior, z)["kl"]
    torch.testing.assert_close(one_sample, -(recon + kl))


def test_the_bound_grows_with_k_on_a_trained_model() -> None:
    """E[L_k] rises with k (Burda et al., Theorem 1); on a small VAE trained on four kinds of
    binary images the steps are about 0.7 nats (k = 1 to 10) and 0.1 nats (10 to 100), with
    Monte Carlo noise below 0.1 and 0.01 nats."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    kind = torch.arange(256) % 4
    x = torch.zeros(256, 1, 8, 8)
    for k, (row, col) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        x[kind == k, :, row : row + 4, col : col + 4] = 1.0
    x = torch.bernoulli(0.8 * x + 0.1, generator=generator)
    model = VAE(input_shape=[1, 8, 8], latent_dim=4, hidden_dims=[32])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model.objective(model.loss_terms(x[torch.randint(0, 256, (64,), generator=generator)]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    torch.manual_seed(1)
    one = iwae_log_likelihood(model, x.repeat(10, 1, 1, 1), num_samples=1).mean().item()
    ten = iwae_log_likelihood(model, x, num_samples=10).mean().item()
    hundred = iwae_log_likelihood(model, x, num_samples=100).mean().item()
    with torch.no_grad():
        elbo = -model.objective(model.loss_terms(x.repeat(20, 1, 1, 1))).item()  # analytic KL
    assert one == pytest.approx(elbo, abs=0.3)
    assert one + 0.3 < ten and ten + 0.03 < hundred
