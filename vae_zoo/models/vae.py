"""Gaussian VAE and beta-VAE."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.distributions import Normal

from vae_zoo.likelihoods import LikelihoodName
from vae_zoo.models.base import LatentVariableModel, check_int
from vae_zoo.nn import Architecture, soft_clamp
from vae_zoo.priors import Prior, StandardNormal

POSTERIOR_LOG_VARIANCE_BOUNDS = (-14.0, 8.0)


class VAE(LatentVariableModel):
    """Variational autoencoder with a diagonal Gaussian posterior and a ``N(0, I)`` prior.

    ``q(z|x) = N(mu(x), diag(sigma^2(x)))``, sampled by ``z = mu + sigma * eps``,
    ``eps ~ N(0, I)``; the loss is the negative ELBO with a KL weight (1 by default)::

        loss = E_q[-log p(x|z)] + kl_weight * KL(q(z|x) || p(z))

    The encoder outputs ``[mu, log sigma^2]``; the log-variance is bounded smoothly to
    ``[-14, 8]``. ``kl_weight`` is a plain attribute so that annealing callbacks can set it.
    """

    kl_weight: float = 1.0

    @property
    def encoder_out_features(self) -> int:
        return 2 * self.latent_dim

    def build_prior(self) -> Prior:
        return StandardNormal(self.latent_dim)

    def posterior(self, x: torch.Tensor) -> Normal:
        """``q(z|x)`` as an element-wise Normal with batch shape [B, D]."""
        mean, raw_log_variance = self.encoder(x).chunk(2, dim=-1)
        log_variance = soft_clamp(raw_log_variance, *POSTERIOR_LOG_VARIANCE_BOUNDS)
        return Normal(mean, torch.exp(0.5 * log_variance), validate_args=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x).mean

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        posterior = self.posterior(x)
        z = posterior.rsample()  # [B, D]
        recon = -self.likelihood.log_prob(x, self.decoder(z))  # [B]
        return {"recon": recon, **self.latent_terms(posterior, z)}

    def latent_terms(self, posterior: Normal, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The regularizers of the code, each [B]: here ``{"kl": KL(q(z|x) || p(z))}``."""
        return {"kl": self.prior.kl(posterior, z)}

    def loss_weights(self) -> dict[str, float]:
        return {"recon": 1.0, "kl": self.kl_weight}

    def step_metrics(self, x: torch.Tensor, stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, metrics = super().step_metrics(x, stage)
        metrics[f"{stage}/elbo"] = -(metrics[f"{stage}/recon"] + metrics[f"{stage}/kl"])
        if stage == "train":
            metrics["train/kl_weight"] = torch.tensor(float(self.kl_weight))
        return loss, metrics

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.decode(self.prior.sample(n))


class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017) and its capacity form (Burgess et al. 2018).

    * ``capacity_max=None``: ``loss = E_q[-log p(x|z)] + beta * KL``.
    * ``capacity_max=C_max``: ``loss = E_q[-log p(x|z)] + gamma * |KL - C(t)|`` with
      ``C(t) = C_max * min(1, t / capacity_steps)`` at global step ``t``, KL averaged over the
      batch. ``C`` is a pure function of the step, so a resumed run continues it exactly.

    Args:
        beta: the KL weight (``beta = 1`` is the plain VAE).
        capacity_max: target KL ``C_max`` in nats, or ``None`` for the beta form.
        gamma: the weight of ``|KL - C|`` in the capacity form.
        capacity_steps: optimizer steps over which ``C`` rises linearly from 0 to ``C_max``.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        architecture: Architecture = "mlp",
        hidden_dims: Sequence[int] = (512, 256),
        likelihood: LikelihoodName = "bernoulli",
        likelihood_variance: float = 1.0,
        learn_likelihood_variance: bool = False,
        lr: float = 1e-3,
        beta: float = 4.0,
        capacity_max: float | None = None,
        gamma: float = 1000.0,
        capacity_steps: int = 100_000,
    ) -> None:
        super().__init__(
            input_shape,
            latent_dim,
            architecture,
            hidden_dims,
            likelihood,
            likelihood_variance,
            learn_likelihood_variance,
            lr,
        )
        if not (beta >= 0 and math.isfinite(beta)):
            raise ValueError(f"beta must be a finite number >= 0; got {beta}")
        if capacity_max is not None and not (capacity_max >= 0 and math.isfinite(capacity_max)):
            raise ValueError(f"capacity_max must be None or a finite number >= 0; got {capacity_max}")
        if not (gamma >= 0 and math.isfinite(gamma)):
            raise ValueError(f"gamma must be a finite number >= 0; got {gamma}")
        check_int("capacity_steps", capacity_steps, minimum=1)
        self.kl_weight = beta

    def capacity(self) -> float:
        """The target KL ``C(t)`` at the current global step (nats)."""
        hp = self.hparams
        return hp.capacity_max * min(1.0, self.global_step / hp.capacity_steps)

    def objective(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.hparams.capacity_max is None:
            return super().objective(terms)
        return terms["recon"].mean() + self.hparams.gamma * (terms["kl"].mean() - self.capacity()).abs()
