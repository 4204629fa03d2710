"""Wasserstein autoencoder with the MMD penalty (WAE-MMD, Tolstikhin et al. 2018)."""

from __future__ import annotations

from typing import Any

import torch

from vae_zoo.metrics.mmd import mmd_squared
from vae_zoo.models.base import LatentVariableModel
from vae_zoo.priors import StandardNormal
from vae_zoo.validation import check_number


class WAE(LatentVariableModel):
    """A deterministic autoencoder ``z = f(x)`` whose codes, taken together, are pulled towards
    the prior ``p(z) = N(0, I)``::

        loss = mean_B -log p(x | g(f(x))) + mmd_weight * MMD^2({f(x_b)}_b, {z'_b ~ p(z)}_b)

    with the unbiased MMD estimate of each batch against as many prior draws, under the inverse
    multiquadratic kernel (:func:`~vae_zoo.metrics.mmd_squared`). A VAE pulls every ``q(z|x)``
    towards ``N(0, I)``; the WAE asks only that the *aggregate* posterior ``q(z) = E_x q(z|x)``
    match the prior, and lets each code be as sharp as reconstruction wants. :meth:`sample`
    decodes prior draws. The penalty is one number per batch; ``loss_terms`` repeats it for each
    example (its batch mean is the penalty). A batch of one example (the last of an epoch, say)
    has no MMD estimate and no penalty.

    Args:
        mmd_weight: ``lambda``, the weight of the MMD penalty.
    """

    def __init__(self, mmd_weight: float = 10.0, **kwargs: Any) -> None:
        check_number("mmd_weight", mmd_weight, minimum=0)
        super().__init__(**kwargs)
        self.mmd_weight = mmd_weight

    def build_prior(self) -> StandardNormal:
        return StandardNormal(self.latent_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encode(x)  # [B, D]
        recon = -self.likelihood.log_prob(x, self.decoder(z))  # [B]
        if z.shape[0] < 2:  # one code says nothing about the aggregate: no estimate, no penalty
            return {"recon": recon, "mmd": torch.zeros_like(recon)}
        mmd = mmd_squared(z, self.prior.sample(z.shape[0]))  # []
        return {"recon": recon, "mmd": mmd.expand(z.shape[0])}

    def loss_weights(self) -> dict[str, float]:
        return {"recon": 1.0, "mmd": self.mmd_weight}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.decode(self.prior.sample(n))
