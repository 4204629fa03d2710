"""Gaussian VAE and beta-VAE."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch.distributions import Normal

from vae_zoo.metrics import AggregatePosteriorKL
from vae_zoo.models.base import EvaluatedBatch, LatentVariableModel, check_int, weighted_sum
from vae_zoo.nn import soft_clamp
from vae_zoo.priors import Prior, StandardNormal
from vae_zoo.schedules import KLSchedule
from vae_zoo.validation import check_number

POSTERIOR_LOG_VARIANCE_BOUNDS = (-14.0, 8.0)


class VAE(LatentVariableModel):
    """Variational autoencoder with a diagonal Gaussian posterior and a ``N(0, I)`` prior.

    ``q(z|x) = N(mu(x), diag(sigma^2(x)))``, sampled by ``z = mu + sigma * eps``,
    ``eps ~ N(0, I)``; the loss is the negative ELBO with a weighted KL::

        loss = E_q[-log p(x|z)] + kl_weight * KL                       (kl_capacity is None)
        loss = E_q[-log p(x|z)] + kl_weight * |KL - kl_capacity|       (Burgess et al.)

    with ``KL`` averaged over the batch, or with free bits (Kingma et al. 2016) replaced by
    ``sum_g max(free_bits, sum_{j in g} mean_B KL_j)`` over groups ``g`` of latent dimensions
    (each dimension its own group unless ``free_bits_groups`` is set). ``kl_weight`` and
    ``kl_capacity`` are set before every training step from ``kl_schedule``, the one
    :class:`~vae_zoo.schedules.KLSchedule` of the model (from its own arguments, as
    :class:`BetaVAE`'s capacity, or from the :class:`~vae_zoo.callbacks.KLAnnealing` callback;
    ``None``: the weight stays as it is); ``free_bits`` and ``free_bits_groups`` come from
    ``KLAnnealing``. The logged ``kl`` is always the true, unweighted KL. The encoder outputs
    ``[mu, log sigma^2]``; the log-variance is bounded
    smoothly to ``[-14, 8]``.
    """

    progress_bar_metrics = ("elbo",)
    kl_weight: float = 1.0
    kl_capacity: float | None = None
    free_bits: float = 0.0
    free_bits_groups: int | None = None
    kl_schedule: KLSchedule | None = None

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """``kl_weight, kl_capacity = w(t), C(t)`` of :attr:`kl_schedule` at this step."""
        if self.kl_schedule is not None:
            self.kl_weight, self.kl_capacity = self.kl_schedule.values(self.trainer)

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

    def aggregate_posterior_draws(self, x: torch.Tensor) -> torch.Tensor:
        """One draw ``z ~ q(z|x)`` of each input: [B, *shape] -> [B, D]."""
        return self.posterior(x).sample()

    @torch.no_grad()
    def predictions(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``mean`` and ``variance`` of the posterior ``q(z|x)``, each [B, D]."""
        posterior = self.posterior(x)
        return {"mean": posterior.mean, "variance": posterior.variance}

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        posterior = self.posterior(x)
        z = posterior.rsample()  # [B, D]
        recon = -self.likelihood.log_prob(x, self.decoder(z))  # [B]
        return {"recon": recon, **self.latent_terms(posterior, z)}

    def latent_terms(self, posterior: Normal, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The regularizers of the code, each [B]: ``{"kl": KL(q(z|x) || p(z))}``, and with free
        bits ``"kl_penalized"``, the free-bits KL of the batch repeated per example."""
        if self.free_bits <= 0:
            return {"kl": self.prior.kl(posterior, z)}
        if not isinstance(self.prior, StandardNormal):
            raise ValueError(
                f"free_bits needs a per-dimension KL, which {type(self).__name__}'s "
                f"{type(self.prior).__name__} prior does not have; use it with VAE or BetaVAE"
            )
        per_dim = self.prior.kl_per_dim(posterior)  # [B, D]
        penalized = free_bits_kl(per_dim, self.free_bits, self.free_bits_groups)
        return {"kl": per_dim.sum(-1), "kl_penalized": penalized.expand(per_dim.shape[0])}

    def loss_weights(self) -> dict[str, float]:
        return {"recon": 1.0, "kl": self.kl_weight}

    def objective(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = self.loss_weights()
        kl_name = "kl_penalized" if "kl_penalized" in terms else "kl"
        others = {name: term for name, term in terms.items() if name not in ("kl", "kl_penalized")}
        if self.kl_capacity is None:  # mean_B (sum_k w_k term_k + w_kl kl), as one sum per example
            weighted = {**others, kl_name: terms[kl_name]}
            return weighted_sum(weighted, {**weights, kl_name: weights["kl"]}).mean()
        kl = terms[kl_name].mean()
        return weighted_sum(others, weights).mean() + weights["kl"] * (kl - self.kl_capacity).abs()

    def stage_metrics(
        self, loss: torch.Tensor, terms: dict[str, torch.Tensor], stage: str
    ) -> dict[str, torch.Tensor]:
        metrics = super().stage_metrics(loss, terms, stage)
        if stage == "train":
            metrics["train/kl_weight"] = torch.tensor(float(self.kl_weight))
            if self.kl_capacity is not None:
                metrics["train/kl_capacity"] = torch.tensor(float(self.kl_capacity))
        return metrics

    def update_evaluation_metrics(self, batch: EvaluatedBatch, stage: str) -> None:
        """Adds to the metrics of every model ``aggregate_kl``, how far the average posterior over
        the data is from the prior (see :class:`~vae_zoo.metrics.AggregatePosteriorKL`)."""
        super().update_evaluation_metrics(batch, stage)
        distribution = getattr(self.prior, "distribution", None)
        if distribution is None:  # a prior of the user's own without a torch.distributions object
            return
        with torch.no_grad():
            posterior = self.posterior(batch.x)
            aggregate = self.evaluation_metric(
                stage, "aggregate_kl", partial(AggregatePosteriorKL, self.latent_dim)
            )
            aggregate.set_prior(distribution())
        aggregate.update(posterior.loc, posterior.scale)

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
        beta: float = 4.0,
        capacity_max: float | None = None,
        gamma: float = 1000.0,
        capacity_steps: int = 100_000,
        **kwargs: Any,
    ) -> None:
        check_number("beta", beta, minimum=0)
        check_number("capacity_max", capacity_max, minimum=0, optional=True)
        check_number("gamma", gamma, minimum=0)
        check_int("capacity_steps", capacity_steps, minimum=1)
        super().__init__(**kwargs)
        if capacity_max is None:
            self.kl_weight = beta
        else:
            self.kl_schedule = KLSchedule(
                "capacity", duration=capacity_steps, capacity_max=capacity_max, gamma=gamma
            )
            self.kl_weight, self.kl_capacity = gamma, 0.0

    def capacity(self) -> float | None:
        """The target KL ``C(t) = C_max * min(1, t / capacity_steps)`` at the current step (nats);
        ``None`` without a capacity schedule."""
        return None if self.kl_schedule is None else self.kl_schedule.capacity_at(self.global_step)


def free_bits_kl(kl_per_dim: torch.Tensor, floor: float, groups: int | None = None) -> torch.Tensor:
    """Free bits (Kingma et al. 2016): ``sum_g max(floor, sum_{j in g} mean_B KL_j)``.

    ``kl_per_dim`` [B, D]; ``groups`` splits the ``D`` dimensions into that many contiguous
    groups of equal size (``None``: one group per dimension). Returns a scalar; a group whose
    KL is below ``floor`` contributes the constant ``floor`` and so gets no gradient.
    """
    per_dim = kl_per_dim.mean(0)  # [D]
    if groups is not None:
        if per_dim.shape[0] % groups:
            raise ValueError(f"free_bits_groups={groups} must divide the latent size {per_dim.shape[0]}")
        per_dim = per_dim.reshape(groups, -1).sum(-1)  # [G]
    return per_dim.clamp_min(floor).sum()
