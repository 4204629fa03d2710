"""VAE with the VampPrior (Tomczak & Welling 2018): the prior is a mixture of the model's own
posteriors at learned pseudo-inputs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vae_zoo.mixtures import diagonal_normal_log_prob
from vae_zoo.models.base import check_int
from vae_zoo.models.vae import VAE
from vae_zoo.priors import Prior
from vae_zoo.validation import MAX_COMPONENTS


class VampPrior(Prior):
    """``p(z) = (1/K) sum_k q(z | u_k)``: the variational mixture of posteriors at ``K`` learned
    pseudo-inputs ``u_k = hardtanh(w_k, 0, 1)`` [K, *input_shape] (pixel intensities), through
    the encoder's ``posterior`` (a function ``[K, *input_shape] -> Normal`` with batch shape
    [K, D]). The prior moves with the encoder, and its pseudo-inputs are trained with the model.

    The KL is the parent's one-sample Monte Carlo estimate ``log q(z|x) - log p(z)``.

    Args:
        latent_dim: ``D``.
        num_pseudo_inputs: ``K`` (500 in the paper).
        input_shape: the shape of one input.
        posterior: the encoder's ``q(z | x)``.
        init_mean, init_std: the pseudo-inputs start as ``N(init_mean, init_std^2)`` draws (the
            paper's 0.05 and 0.01 for binary MNIST).
    """

    def __init__(
        self,
        latent_dim: int,
        num_pseudo_inputs: int,
        input_shape: Sequence[int],
        posterior: Callable[[torch.Tensor], Normal],
        init_mean: float = 0.05,
        init_std: float = 0.01,
    ) -> None:
        super().__init__(latent_dim)
        self.pseudo_input_weights = nn.Parameter(
            init_mean + init_std * torch.randn(num_pseudo_inputs, *input_shape)
        )
        self.posterior = posterior

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        """``u_k`` in ``[0, 1]``: [K, *input_shape]."""
        return nn.functional.hardtanh(self.pseudo_input_weights, 0.0, 1.0)

    def distribution(self) -> MixtureSameFamily:
        """The mixture as a ``torch.distributions`` object (event shape [D])."""
        components = self.posterior(self.pseudo_inputs)  # batch [K, D]
        k = components.loc.shape[0]
        weights = Categorical(logits=components.loc.new_zeros(k), validate_args=False)
        return MixtureSameFamily(
            weights, Independent(components, 1, validate_args=False), validate_args=False
        )

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``logsumexp_k log q(z | u_k) - log K``: [..., D] -> [...], the components' densities by
        :func:`~vae_zoo.mixtures.diagonal_normal_log_prob` (no [..., K, D] tensor)."""
        components = self.posterior(self.pseudo_inputs)  # batch [K, D]
        log_densities = diagonal_normal_log_prob(z, components.loc, components.scale.square())  # [..., K]
        return torch.logsumexp(log_densities, -1) - math.log(log_densities.shape[-1])

    def sample(self, n: int) -> torch.Tensor:
        return self.distribution().sample((n,))


class VampVAE(VAE):
    """The Gaussian VAE with a :class:`VampPrior` of ``num_pseudo_inputs`` pseudo-inputs; the
    loss is the negative ELBO with the Monte Carlo KL ``log q(z|x) - log p(z)``.

    Args:
        num_pseudo_inputs: ``K``, the mixture's components.
    """

    def __init__(self, num_pseudo_inputs: int = 500, **kwargs: Any) -> None:
        check_int("num_pseudo_inputs", num_pseudo_inputs, minimum=1, maximum=MAX_COMPONENTS)
        self.num_pseudo_inputs = num_pseudo_inputs  # read by build_prior, which the base __init__ calls
        super().__init__(**kwargs)

    def build_prior(self) -> VampPrior:
        return VampPrior(self.latent_dim, self.num_pseudo_inputs, self.input_shape, self.posterior)
