"""Numerical faults: bounded log-variances, degenerate mixtures."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from vae_zoo.mixtures import fit_diagonal_gmm
from vae_zoo.nn import soft_clamp
from vae_zoo.priors import PRIOR_LOG_VARIANCE_BOUNDS, GaussianMixture


# ----------------------------------------------------------------------------- bounded, log-space
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_soft_clamp_saturates_at_its_bounds_for_huge_and_infinite_inputs(dtype: torch.dtype) -> None:
    # before the fix: 1e4 (bf16) and 1e12 (float32) gave 0 by cancellation, +-inf gave NaN
    x = torch.tensor([1e4, 1e12, math.inf, -1e4, -1e12, -math.inf, 100.0, -100.0, 1.0]).to(dtype)
    y = soft_clamp(x, -14.0, 8.0)
    expected = torch.tensor([8.0, 8.0, 8.0, -14.0, -14.0, -14.0, 8.0, -14.0, 1.0])
    torch.testing.assert_close(y.float(), expected, atol=0.07, rtol=0)
    z = torch.linspace(-1e6, 1e6, 1001, dtype=dtype)
    assert bool((soft_clamp(z, -14.0, 8.0).float().diff() >= 0).all())  # monotone


def test_mixture_log_variances_stay_bounded_for_extreme_raw_parameters() -> None:
    prior = GaussianMixture(2, 3)
    with torch.no_grad():
        prior.raw_log_variances.copy_(torch.tensor([[1e30, -1e30], [math.inf, -math.inf], [0.0, 1.0]]))
    low, high = PRIOR_LOG_VARIANCE_BOUNDS
    assert bool(((prior.log_variances >= low) & (prior.log_variances <= high)).all())
    assert bool(torch.isfinite(prior.log_prob(torch.randn(5, 2) * 100)).all())


def test_em_with_fewer_distinct_points_than_components_does_not_crash_or_spike() -> None:
    # k-means++ divided 0 by 0 once every point was a centre (RuntimeError from multinomial), and
    # an empty component sat at the origin with variance 1e-4, far from all data
    for x in (torch.full((40, 2), 3.0), torch.tensor([[10.0, 10.0], [12.0, 10.0]]).repeat(20, 1)):
        gmm = fit_diagonal_gmm(x, 3, restarts=2)
        for value in (gmm.weights, gmm.means, gmm.variances):
            assert bool(torch.isfinite(value).all())
        low, high = x.min(0).values, x.max(0).values
        assert bool(((gmm.means >= low) & (gmm.means <= high)).all()), gmm.means
        assert float(gmm.weights.sum()) == pytest.approx(1.0)


def test_em_refuses_non_finite_codes_and_returns_float32_for_bf16_codes() -> None:
    x = torch.randn(30, 2)
    x[4, 1] = math.nan
    with pytest.raises(ValueError, match="needs finite data; 1 of the 30 points hold NaN or infinite"):
        fit_diagonal_gmm(x, 2)
    gmm = fit_diagonal_gmm(torch.randn(30, 2).bfloat16(), 2)
    assert gmm.means.dtype == gmm.variances.dtype == gmm.weights.dtype == torch.float32


def test_responsibility_kl_of_a_component_with_zero_weight_is_finite_with_finite_gradients() -> None:
    prior = GaussianMixture(2, 3)
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([0.0, 0.0, -math.inf]))  # an empty component
    loc = torch.randn(6, 2, requires_grad=True)
    posterior = Normal(loc, torch.full((6, 2), 0.5))
    kl = prior.kl_responsibility(posterior, posterior.rsample())
    assert bool(torch.isfinite(kl).all()) and bool((kl >= -1e-5).all())
    kl.sum().backward()
    for gradient in (loc.grad, prior.means.grad, prior.logits.grad, prior.raw_log_variances.grad):
        assert bool(torch.isfinite(gradient).all())
    # the same mixture without the empty component gives the same KL
    reference = GaussianMixture(2, 2)
    with torch.no_grad():
        reference.means.copy_(prior.means[:2])
        reference.raw_log_variances.copy_(prior.raw_log_variances[:2])
    z = posterior.rsample()
    expected = reference.kl_responsibility(posterior, z)
    torch.testing.assert_close(prior.kl_responsibility(posterior, z), expected)
