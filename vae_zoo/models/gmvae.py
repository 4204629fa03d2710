"""VAE with a mixture posterior q(c|x) q(z|x,c) and a Gaussian-mixture prior p(c) p(z|c): the
GMVAE of Dilokthanakul et al. 2016 in Rui Shu's explicit form."""

from __future__ import annotations

from typing import Any

import torch
from torch.distributions import Categorical, Normal, kl_divergence

from vae_zoo.metrics import ELBO
from vae_zoo.models.base import EvaluatedBatch, LatentVariableModel, check_int
from vae_zoo.models.gmm import score_clusters
from vae_zoo.nn import soft_clamp
from vae_zoo.priors import GaussianMixture
from vae_zoo.validation import MAX_COMPONENTS, check_number

POSTERIOR_LOG_VARIANCE_BOUNDS = (-14.0, 8.0)


def posterior_mean(components: Categorical, gaussians: Normal) -> torch.Tensor:
    """``E_q[z] = sum_c q(c|x) mu_c(x)``: ``q(c|x)`` [B, K] and ``q(z|x,c)`` [B, K, D] -> [B, D]."""
    return (components.probs.unsqueeze(-1) * gaussians.mean).sum(-2)


class GMVAE(LatentVariableModel):
    """A two-level latent variable ``(c, z)``: the posterior first picks a component,
    ``q(c|x) = Cat(softmax(l(x)))``, then a Gaussian ``q(z|x,c) = N(mu_c(x), diag sigma_c^2(x))``;
    the prior is ``p(c) = 1/K`` and ``p(z|c) = N(m_c, diag s_c^2)`` with learned ``m_c, s_c``.

    The discrete choice is not reparameterized: the bound sums over the ``K`` components
    exactly, with one reparameterized draw ``z_c = mu_c + sigma_c eps`` per component::

        -ELBO = sum_c q(c|x) [ -log p(x|z_c) + log q(z_c|x,c) - log p(z_c|c) ] + KL(q(c|x) || p(c))

    (``recon`` the first sum's likelihood part, ``kl`` the rest: the Gaussian KL of each component
    estimated at its draw, plus the categorical KL in closed form). It costs ``K`` decoder passes
    per example. One encoder gives the ``K`` logits and the ``K`` Gaussians' parameters.

    The categorical KL, averaged over the data, is the mutual information of ``x`` and ``c``
    under ``q`` plus the divergence of the aggregate ``q(c) = E_x q(c|x)`` from ``p(c)``
    (Hoffman & Johnson's "ELBO surgery")::

        E_x KL(q(c|x) || p(c)) = E_x KL(q(c|x) || q(c)) + KL(q(c) || p(c))

    The first part penalises the very information that clustering needs, and the ELBO alone
    leaves components unused (MNIST, K = 10: four of ten empty, test accuracy 0.49). The
    objective therefore gives back ``information_weight`` times the batch's estimate of it,
    ``info = KL(q(c|x) || mean_batch q(c|x))`` per example: with weight 1 the categorical part of
    the objective is ``KL(q(c) || p(c))``, which asks for every component to be used. The
    logged ``elbo`` and ``kl`` stay the true bound's.

    :meth:`predict_cluster` is ``argmax_c q(c|x)``; validation and test log ``acc``, ``nmi`` and
    ``ari`` as the other mixture models, and ``elbo``. :meth:`encode` is the posterior mean
    ``sum_c q(c|x) mu_c(x)``.

    Args:
        num_components: ``K``.
        information_weight: the share in [0, 1] of the batch's mutual information ``I(x; c)``
            given back to the objective (0: the plain ELBO; 1: the aggregate's KL only).
    """

    progress_bar_metrics = ("elbo", "acc")

    def __init__(self, num_components: int = 10, information_weight: float = 1.0, **kwargs: Any) -> None:
        check_int("num_components", num_components, minimum=2, maximum=MAX_COMPONENTS)
        check_number("information_weight", information_weight, minimum=0, maximum=1)
        self.num_components = num_components  # read by build_prior and encoder_out_features
        self.information_weight = float(information_weight)
        super().__init__(**kwargs)

    @property
    def encoder_out_features(self) -> int:
        return self.num_components * (1 + 2 * self.latent_dim)  # K logits, K means, K log-variances

    def build_prior(self) -> GaussianMixture:
        return GaussianMixture(self.latent_dim, self.num_components, learn_weights=False)

    def mixture_posterior(self, x: torch.Tensor) -> tuple[Categorical, Normal]:
        """``q(c|x)`` (batch [B], K categories) and ``q(z|x,c)`` for every ``c`` (batch [B, K, D])."""
        k, d = self.num_components, self.latent_dim
        out = self.encoder(x)  # [B, K (1 + 2 D)]
        logits, mean, raw_log_variance = out.split([k, k * d, k * d], -1)
        log_variance = soft_clamp(raw_log_variance, *POSTERIOR_LOG_VARIANCE_BOUNDS)
        gaussians = Normal(
            mean.unflatten(-1, (k, d)),
            torch.exp(0.5 * log_variance).unflatten(-1, (k, d)),
            validate_args=False,
        )
        return Categorical(logits=logits, validate_args=False), gaussians

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return posterior_mean(*self.mixture_posterior(x))

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        components, gaussians = self.mixture_posterior(x)
        b, k = components.probs.shape
        z = gaussians.rsample()  # [B, K, D]
        params = self.decoder(z.flatten(0, 1))  # [B K, *shape]
        repeated = x.unsqueeze(1).expand(b, k, *x.shape[1:]).flatten(0, 1)
        recon = -self.likelihood.log_prob(repeated, params).unflatten(0, (b, k))  # [B, K]
        log_q = gaussians.log_prob(z).sum(-1)  # [B, K]
        log_p = self.prior.components().log_prob(z)  # [B, K]
        prior_c = Categorical(logits=self.prior.logits, validate_args=False)
        q = components.probs  # [B, K]
        aggregate = Categorical(probs=q.mean(0), validate_args=False)  # q(c), the batch's estimate
        return {
            "recon": (q * recon).sum(-1),
            "kl": (q * (log_q - log_p)).sum(-1) + kl_divergence(components, prior_c),
            "info": kl_divergence(components, aggregate),  # [B]; its batch mean estimates I(x; c)
        }

    def loss_weights(self) -> dict[str, float]:
        return {"recon": 1.0, "kl": 1.0, "info": -self.information_weight}

    @torch.no_grad()
    def predict_cluster(self, x: torch.Tensor) -> torch.Tensor:
        """``argmax_c q(c|x)``: [B, *shape] -> [B] int64."""
        return self.mixture_posterior(x)[0].probs.argmax(-1)

    def aggregate_posterior_draws(self, x: torch.Tensor) -> torch.Tensor:
        """``c ~ q(c|x)``, then ``z ~ q(z|x,c)``: [B, *shape] -> [B, D]."""
        components, gaussians = self.mixture_posterior(x)
        chosen = components.sample()  # [B]
        draws = gaussians.sample()  # [B, K, D]
        return draws[torch.arange(draws.shape[0], device=draws.device), chosen]

    def update_evaluation_metrics(self, batch: EvaluatedBatch, stage: str) -> None:
        """Adds ``elbo`` and, with labels, ``acc``, ``nmi`` and ``ari`` of :meth:`predict_cluster`."""
        super().update_evaluation_metrics(batch, stage)
        self.evaluation_metric(stage, "elbo", ELBO).update(batch.terms["recon"], batch.terms["kl"])
        if batch.labels is not None:
            score_clusters(self, self.predict_cluster(batch.x), batch.labels, stage)

    def stage_metrics(
        self, loss: torch.Tensor, terms: dict[str, torch.Tensor], stage: str
    ) -> dict[str, torch.Tensor]:
        metrics = super().stage_metrics(loss, terms, stage)
        metrics[f"{stage}/elbo"] = -(metrics[f"{stage}/recon"] + metrics[f"{stage}/kl"])
        return metrics

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.decode(self.prior.sample(n))

    @torch.no_grad()
    def predictions(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``code`` (the posterior mean) [B, D], ``cluster`` [B] and ``responsibilities``
        ``q(c|x)`` [B, K]."""
        components, gaussians = self.mixture_posterior(x)
        q = components.probs  # [B, K]
        return {"code": posterior_mean(components, gaussians), "cluster": q.argmax(-1), "responsibilities": q}
