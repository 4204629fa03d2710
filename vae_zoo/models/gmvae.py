"""VAE with a mixture posterior q(c|x) q(z|x,c) and a Gaussian-mixture prior p(c) p(z|c): the
GMVAE of Dilokthanakul et al. 2016 in Rui Shu's explicit form."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.distributions import Categorical, Normal, kl_divergence

from vae_zoo.consensus import CLUSTERING_METHODS, ClusteringMethod, cluster_codes
from vae_zoo.mixtures import gmm_from_assignment
from vae_zoo.models.base import EvaluatedBatch, check_int
from vae_zoo.models.gmm import score_clusters
from vae_zoo.models.warm_start import WarmStart
from vae_zoo.nn import soft_clamp
from vae_zoo.priors import GaussianMixture
from vae_zoo.validation import MAX_COMPONENTS, check_choice, check_number

POSTERIOR_LOG_VARIANCE_BOUNDS = (-14.0, 8.0)


def posterior_mean(components: Categorical, gaussians: Normal) -> torch.Tensor:
    """``E_q[z] = sum_c q(c|x) mu_c(x)``: ``q(c|x)`` [B, K] and ``q(z|x,c)`` [B, K, D] -> [B, D]."""
    return (components.probs.unsqueeze(-1) * gaussians.mean).sum(-2)


def fit_softmax_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    weight_decay: float = 1e-4,
    iterations: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression of ``labels`` [N] in ``[0, num_classes)`` on ``features``
    [N, H] by L-BFGS (``iterations`` steps, strong-Wolfe line search), from zero weights::

        W, b = argmin  mean_n -log softmax(W f_n + b)[y_n] + weight_decay / 2 * ||W||^2

    Returns ``W`` [num_classes, H] and ``b`` [num_classes] in ``features``' dtype and device.
    The penalty keeps the logits finite when the classes are separable.
    """
    x = features.detach()
    weight = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, device=x.device, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(x @ weight.T + bias, labels)
        loss = loss + 0.5 * weight_decay * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


class GMVAE(WarmStart):
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

    Trained from its random initialisation (``warmup_epochs = 0``, as published) the components
    settle on styles as much as on classes (MNIST: 4 of 10 left empty, accuracy 0.49). By default
    (``warmup_epochs > 0``) the model starts as the GMM-VAE does
    (:class:`~vae_zoo.models.warm_start.WarmStart`): those epochs train a deterministic
    autoencoder whose code is the mean of the ``K`` component means, ``z = mean_c mu_c(x)``; then
    the codes of the training set are clustered by ``start``
    (:func:`~vae_zoo.consensus.cluster_codes`) and the model is set to that clustering
    (:meth:`start_from_warmup`): every component's mean takes the code's weights, ``p(z|c)``
    becomes the mean and variance of cluster ``c``'s codes (and ``q(z|x,c)`` a hundredth of that
    variance), and the logits of ``q(c|x)`` the softmax regression of the clusters on the encoder's
    last hidden features (:func:`fit_softmax_regression`). The start is part of ``fit``, stored in
    the checkpoint and not repeated on resume.

    :meth:`predict_cluster` is ``argmax_c q(c|x)``; validation and test log ``acc``, ``nmi`` and
    ``ari`` as the other mixture models once the model has started, and ``elbo``. :meth:`encode`
    is the posterior mean ``sum_c q(c|x) mu_c(x)`` (during the warm-up, the warm-up's code).

    Args:
        num_components: ``K``.
        information_weight: the share in [0, 1] of the batch's mutual information ``I(x; c)``
            given back to the objective (0: the plain ELBO; 1: the aggregate's KL only).
        warmup_epochs: autoencoder epochs before the start (0: no warm-up and no start).
        start: how the warm-up's codes are clustered, ``"em"``, ``"spectral"`` or
            ``"consensus"`` (:func:`~vae_zoo.consensus.cluster_codes`).
        spectral_neighbours: neighbours of each code in the graphs of the spectral and UMAP
            clusterings.
        umap_runs: N2D clusterings in the ``"consensus"`` start.
    """

    progress_bar_metrics = ("elbo", "acc")

    def __init__(
        self,
        num_components: int = 10,
        information_weight: float = 1.0,
        warmup_epochs: int = 30,
        start: ClusteringMethod = "consensus",
        spectral_neighbours: int = 20,
        umap_runs: int = 2,
        **kwargs: Any,
    ) -> None:
        check_int("num_components", num_components, minimum=2, maximum=MAX_COMPONENTS)
        check_number("information_weight", information_weight, minimum=0, maximum=1)
        check_choice("start", start, CLUSTERING_METHODS)
        check_int("spectral_neighbours", spectral_neighbours, minimum=1)
        check_int("umap_runs", umap_runs, minimum=1)
        self.num_components = num_components  # read by build_prior and encoder_out_features
        self.information_weight = float(information_weight)
        super().__init__(**kwargs)
        self.start = start
        self.spectral_neighbours = spectral_neighbours
        self.umap_runs = umap_runs
        self.init_warm_start(warmup_epochs, started=warmup_epochs == 0)

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
        components, gaussians = self.mixture_posterior(x)
        if self.warming_up:
            return gaussians.mean.mean(-2)  # the warm-up's code, mean_c mu_c(x)
        return posterior_mean(components, gaussians)

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        components, gaussians = self.mixture_posterior(x)
        if self.training and self.warming_up:
            # autoencoder warm-up of training; evaluation always reports the true bound
            code = gaussians.mean.mean(-2)  # [B, D]
            recon = -self.likelihood.log_prob(x, self.decoder(code))
            return {"recon": recon, **self.latent_terms(components, gaussians)}
        b, k = components.probs.shape
        z = gaussians.rsample()  # [B, K, D]
        params = self.decoder(z.flatten(0, 1))  # [B K, *shape]
        repeated = x.unsqueeze(1).expand(b, k, *x.shape[1:]).flatten(0, 1)
        recon = -self.likelihood.log_prob(repeated, params).unflatten(0, (b, k))  # [B, K]
        return {"recon": (components.probs * recon).sum(-1), **self.latent_terms(components, gaussians)}

    def latent_terms(self, components: Categorical, gaussians: Normal) -> dict[str, torch.Tensor]:
        """``kl``, the bound's divergence ``sum_c q(c|x) KL(q(z|x,c) || p(z|c)) + KL(q(c|x) || p(c))``
        with every Gaussian KL in closed form, and ``info``, ``KL(q(c|x) || mean_batch q(c|x))``,
        whose batch mean estimates ``I(x; c)``; each [B]."""
        q = components.probs  # [B, K]
        prior_z = Normal(self.prior.means, torch.exp(0.5 * self.prior.log_variances), validate_args=False)
        gaussian_kl = kl_divergence(gaussians, prior_z).sum(-1)  # [B, K]
        prior_c = Categorical(logits=self.prior.logits, validate_args=False)
        aggregate = Categorical(probs=q.mean(0), validate_args=False)  # q(c), the batch's estimate
        return {
            "kl": (q * gaussian_kl).sum(-1) + kl_divergence(components, prior_c),
            "info": kl_divergence(components, aggregate),
        }

    def loss_weights(self) -> dict[str, float]:
        return {"recon": 1.0, "kl": 1.0, "info": -self.information_weight}

    # ----------------------------------------------------------------- the start
    @torch.no_grad()
    def start_from_warmup(self) -> None:
        """Set the model to the ``K`` clusters of the warm-up's codes of the training set.

        With ``f`` the encoder's last hidden features [N, H] and the warm-up's code
        ``z = mean_c mu_c(x)`` [N, D]: every ``mu_c`` takes the weights of ``z`` (so
        ``mu_c(x) = z`` for all ``c``), the codes are clustered by ``start``, ``p(z|c)`` becomes the
        mean and variance of cluster ``c``'s codes (``p(c)`` stays uniform), ``q(z|x,c)``'s
        variance :data:`~vae_zoo.models.warm_start.START_VARIANCE_SHARE` of it, and the logits
        of ``q(c|x)`` the softmax regression of the clusters on ``f``. Under DDP the features are
        those of all processes, and rank zero's result is broadcast.
        """
        body, head = self.split_encoder()
        k, d = self.num_components, self.latent_dim
        means_weight = head.weight[k : k + k * d].unflatten(0, (k, d))  # [K, D, H]
        means_bias = head.bias[k : k + k * d].unflatten(0, (k, d))  # [K, D]
        means_weight.copy_(means_weight.mean(0, keepdim=True).expand_as(means_weight))
        means_bias.copy_(means_bias.mean(0, keepdim=True).expand_as(means_bias))
        log_variance_rows = slice(k + k * d, k + 2 * k * d)
        features = self.map_training_set(lambda x: body(x).flatten(1))  # [N, H]
        codes = features @ means_weight[0].T + means_bias[0]  # [N, D]
        name = type(self).__name__
        clusters = cluster_codes(
            codes, k, self.start, self.spectral_neighbours, self.umap_runs, announce_as=f"{name} start"
        )
        gmm = gmm_from_assignment(codes, clusters, k)
        self.prior.set_parameters(torch.full_like(gmm.weights, 1 / k), gmm.means, gmm.variances)
        self.set_start_variance(log_variance_rows, self.prior.log_variances)  # [K, D]
        features = features.float()  # the regression in float32 at least, also under bf16
        weight, bias = fit_softmax_regression(features, clusters, k)
        head.weight[:k] = weight
        head.bias[:k] = bias
        agreement = ((features @ weight.T + bias).argmax(-1) == clusters).float().mean()
        rank_zero_info(
            f"{name} start: q(c|x) agrees with the clusters of {agreement:.1%} of "
            f"the {codes.shape[0]} training codes"
        )
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            for tensor in (head.weight, head.bias, self.prior.means, self.prior.raw_log_variances):
                tensor.copy_(trainer.strategy.broadcast(tensor, src=0))
        self.started.fill_(True)

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
        """Adds, with labels once the model has started, ``acc``, ``nmi`` and ``ari`` of
        :meth:`predict_cluster`."""
        super().update_evaluation_metrics(batch, stage)
        if not self.warming_up and batch.labels is not None:
            score_clusters(self, self.predict_cluster(batch.x), batch.labels, stage)

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
