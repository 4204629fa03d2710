"""Observation models ``p(x | z)``: the decoder outputs their parameters.

Every ``log_prob`` returns the log-density of each example, summed over data dimensions
(nats per example, shape ``[B]``), computed by ``torch.distributions`` (the Bernoulli one by
the function its ``log_prob`` calls, without its element-wise negation).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import nn
from torch.distributions import Bernoulli, Normal

from vae_zoo.nn import bounded, unbounded

LikelihoodName = Literal["bernoulli", "gaussian"]
LIKELIHOODS: tuple[str, ...] = ("bernoulli", "gaussian")

LOG_VARIANCE_BOUNDS = (-10.0, 5.0)


class Likelihood(nn.Module, ABC):
    """Base class: turns decoder outputs into a distribution over ``x``; a subclass must define
    :meth:`distribution` (it cannot be built without it)."""

    @abstractmethod
    def distribution(self, params: torch.Tensor) -> torch.distributions.Distribution:
        """The element-wise distribution of ``x`` given decoder outputs ``params`` [B, *shape]."""

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``log p(x | z)`` summed over data dimensions: [B, *shape] -> [B]."""
        return self.distribution(params).log_prob(x).flatten(1).sum(1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """``E[x | z]``, the reconstruction shown to users: [B, *shape]."""
        return self.distribution(params).mean


class BernoulliLikelihood(Likelihood):
    """``p(x | z) = prod_i Bernoulli(x_i; sigmoid(logits_i))``; the decoder outputs logits.

    ``log p(x|z) = sum_i x_i log s_i + (1 - x_i) log(1 - s_i)``, the negative binary cross-entropy.
    """

    def distribution(self, params: torch.Tensor) -> Bernoulli:
        return Bernoulli(logits=params, validate_args=False)

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``-BCE(logits, x)`` summed over data dimensions: [B, *shape] -> [B].

        ``Bernoulli(logits).log_prob(x)`` is ``-binary_cross_entropy_with_logits`` element-wise;
        negating the sum [B] instead of every element [B, *shape] saves two passes over the
        decoder's output (forward and backward) in each training step.
        """
        return -nn.functional.binary_cross_entropy_with_logits(params, x, reduction="none").flatten(1).sum(1)


class GaussianLikelihood(Likelihood):
    """``p(x | z) = N(x; f(z), c I)`` with a fixed or learned scalar variance ``c``.

    ``log p(x|z) = -||x - f(z)||^2 / (2c) - (D/2) log(2 pi c)``. A learned ``c`` is
    parameterized as ``log c = low + (high - low) * sigmoid(raw)``, bounded to
    ``[exp(-10), exp(5)]`` and starting exactly at the given variance.
    """

    def __init__(self, variance: float = 1.0, learn_variance: bool = False) -> None:
        super().__init__()
        low, high = LOG_VARIANCE_BOUNDS
        if not (math.exp(low) < variance < math.exp(high)):
            raise ValueError(
                f"likelihood_variance must be in ({math.exp(low):.3g}, {math.exp(high):.3g}); got {variance}"
            )
        self.learn_variance = learn_variance
        if learn_variance:
            log_variance = torch.tensor(math.log(variance), dtype=torch.float64)
            self.raw_log_variance = nn.Parameter(unbounded(log_variance, low, high).float())
        else:
            self.register_buffer("raw_log_variance", torch.tensor(math.log(variance)))

    @property
    def log_variance(self) -> torch.Tensor:
        """``log c`` (a scalar tensor)."""
        if not self.learn_variance:
            return self.raw_log_variance
        return bounded(self.raw_log_variance, *LOG_VARIANCE_BOUNDS)

    def distribution(self, params: torch.Tensor) -> Normal:
        scale = torch.exp(0.5 * self.log_variance).to(params.dtype)
        return Normal(params, scale, validate_args=False)


def build_likelihood(name: str, variance: float = 1.0, learn_variance: bool = False) -> Likelihood:
    """Build the likelihood called ``name`` (one of :data:`LIKELIHOODS`)."""
    if name == "bernoulli":
        return BernoulliLikelihood()
    if name == "gaussian":
        return GaussianLikelihood(variance, learn_variance)
    raise ValueError(f"likelihood must be one of {list(LIKELIHOODS)}; got {name!r}")
