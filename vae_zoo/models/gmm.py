"""VAE with a trainable Gaussian-mixture prior (GMM-VAE), initialised from the data."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch.distributions import Normal
from torchmetrics import MetricCollection
from torchmetrics.clustering import AdjustedRandScore, NormalizedMutualInfoScore

from vae_zoo.data import InMemoryBatches
from vae_zoo.likelihoods import LikelihoodName
from vae_zoo.metrics import ClusteringAccuracy
from vae_zoo.mixtures import fit_diagonal_gmm, gmm_from_assignment
from vae_zoo.models.base import Batch, batch_inputs, check_int
from vae_zoo.models.vae import VAE
from vae_zoo.nn import Architecture
from vae_zoo.priors import GaussianMixture
from vae_zoo.spectral import spectral_clustering
from vae_zoo.validation import MAX_COMPONENTS, check_bool, check_choice, check_parameter_budget, is_int

KLEstimator = Literal["monte_carlo", "responsibility"]
PriorInit = Literal["em", "spectral"]
PRIOR_INITS: tuple[str, ...] = ("em", "spectral")


class GMMVAE(VAE):
    """VAE whose prior is a trainable mixture of ``K`` diagonal Gaussians.

    ``loss = E_q[-log p(x|z)] + kl_weight * KL`` where the KL is estimated either

    * ``"monte_carlo"``: ``log q(z|x) - logsumexp_k(log pi_k + log N(z; mu_k, sigma_k^2))`` at the
      reparameterized draw ``z``; or
    * ``"responsibility"``: VaDE's bound ``sum_k g_k KL(q || N_k) + KL(g || pi)``,
      ``g = p(k | z)``.

    To avoid collapsing into one cluster, the prior is initialised from the data: the first
    ``warmup_epochs`` train a deterministic autoencoder (``z`` = posterior mean, no KL); then the
    codes of the training set (:meth:`training_codes`) are encoded and a diagonal GMM fitted to
    them becomes the prior, with ``prior_init``

    * ``"em"``: by EM (:func:`~vae_zoo.mixtures.fit_diagonal_gmm`, on the training device); or
    * ``"spectral"``: the means, variances and shares of the clusters that spectral clustering
      of the codes finds (:func:`~vae_zoo.spectral.spectral_clustering`: ``2 K`` segments of
      their ``spectral_neighbours``-nearest-neighbour graph, merged along the graph into ``K``;
      :func:`~vae_zoo.mixtures.gmm_from_assignment`). The codes' clusters are curved and
      elongated: EM's most likely mixture cuts through them, the neighbourhood graph keeps them
      apart. On the CPU, about a minute for MNIST's 55k codes.

    The initialisation is part of ``fit``, stored in the checkpoint and not repeated on resume.

    The cluster of an input is ``argmax_k p(k | z = mu(x))`` (:meth:`predict_cluster`, and what
    ``predict`` returns). Validation and test log ``acc`` (Hungarian matching), ``nmi``
    (arithmetic normaliser) and ``ari`` when batches carry labels.

    Args:
        num_components: ``K``, the number of mixture components.
        kl_estimator: ``"monte_carlo"`` or ``"responsibility"``.
        warmup_epochs: autoencoder epochs before the mixture is fitted (0: fit to the codes of
            the untrained encoder at the start).
        learn_mixture_weights: learn ``pi`` (else fixed at the fitted estimate).
        learn_prior: learn the mixture (means, variances and, with ``learn_mixture_weights``, the
            weights) after it is fitted; ``False`` keeps the fitted mixture and trains only the
            encoder and decoder towards it. A learned prior moves towards the most likely
            mixture of the codes, which is where EM's start is (see ``prior_init``).
        em_restarts, em_iterations: of the EM fit.
        prior_init: ``"em"`` or ``"spectral"``, how the mixture is fitted to the codes.
        spectral_neighbours: neighbours of each code in the graph of ``"spectral"``.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 10,
        architecture: Architecture = "mlp",
        hidden_dims: Sequence[int] = (500, 500, 2000),
        likelihood: LikelihoodName = "bernoulli",
        likelihood_variance: float = 1.0,
        learn_likelihood_variance: bool = False,
        lr: float = 1e-3,
        num_components: int = 10,
        kl_estimator: KLEstimator = "monte_carlo",
        warmup_epochs: int = 10,
        learn_mixture_weights: bool = True,
        em_restarts: int = 3,
        em_iterations: int = 100,
        prior_init: PriorInit = "em",
        spectral_neighbours: int = 20,
        learn_prior: bool = True,
    ) -> None:
        check_int("num_components", num_components, minimum=2, maximum=MAX_COMPONENTS)
        check_int("warmup_epochs", warmup_epochs, minimum=0)
        check_int("em_restarts", em_restarts, minimum=1)
        check_int("em_iterations", em_iterations, minimum=1)
        check_choice("kl_estimator", kl_estimator, ("monte_carlo", "responsibility"))
        check_choice("prior_init", prior_init, PRIOR_INITS)
        check_int("spectral_neighbours", spectral_neighbours, minimum=1)
        check_bool("learn_mixture_weights", learn_mixture_weights)
        check_bool("learn_prior", learn_prior)
        if is_int(latent_dim):  # means and log-variances [K, D]
            check_parameter_budget(
                2 * num_components * latent_dim, {"num_components": num_components, "latent_dim": latent_dim}
            )
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
        self.kl_estimator = kl_estimator
        self.warmup_epochs = warmup_epochs
        self.prior.requires_grad_(learn_prior)
        self.register_buffer("prior_initialized", torch.tensor(False))
        clustering = MetricCollection(
            {
                "acc": ClusteringAccuracy(),
                "nmi": NormalizedMutualInfoScore(average_method="arithmetic"),
                "ari": AdjustedRandScore(),
            }
        )
        self.val_clustering = clustering.clone(prefix="val/")
        self.test_clustering = clustering.clone(prefix="test/")

    def build_prior(self) -> GaussianMixture:
        hp = self.hparams
        return GaussianMixture(self.latent_dim, hp.num_components, hp.learn_mixture_weights)

    @property
    def warming_up(self) -> bool:
        """Whether training is still in the autoencoder warm-up."""
        return not bool(self.prior_initialized)

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not (self.training and self.warming_up):
            return super().loss_terms(x)
        # autoencoder warm-up of training: z is the posterior mean; evaluation always reports the
        # model's true negative ELBO, so checkpoints compare across the switch
        posterior = self.posterior(x)
        recon = -self.likelihood.log_prob(x, self.decoder(posterior.mean))
        return {"recon": recon, **self.latent_terms(posterior, posterior.mean)}

    def objective(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        if not (self.training and self.warming_up):
            return super().objective(terms)
        # warm-up trains the reconstruction alone; the latent terms enter with weight 0 so that
        # every parameter stays in the graph, as DDP requires
        return terms["recon"].mean() + sum(
            0.0 * term.mean() for name, term in terms.items() if name != "recon"
        )

    def latent_terms(self, posterior: Normal, z: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.kl_estimator == "responsibility" and self.free_bits <= 0:
            return {"kl": self.prior.kl_responsibility(posterior, z)}
        # the Monte Carlo KL of the parent (which also refuses free bits, undefined here)
        return super().latent_terms(posterior, z)

    @torch.no_grad()
    def predict_cluster(self, x: torch.Tensor) -> torch.Tensor:
        """The most responsible component at the posterior mean: [B, *shape] -> [B] int64."""
        return self.prior.responsibilities(self.encode(x)).argmax(-1)

    # ----------------------------------------------------------------- prior initialisation
    def on_train_epoch_start(self) -> None:
        if self.warming_up and self.current_epoch >= self.warmup_epochs:
            self.initialize_prior(self.training_codes())

    @torch.no_grad()
    def training_codes(self) -> torch.Tensor:
        """Posterior means of the training examples of this process in one epoch: [N, D]; of
        every batch, or of the first ``limit_train_batches``; of the examples as they are, not
        as a data module's augmentation changes them for training."""
        loader = self.trainer.train_dataloader
        if isinstance(loader, InMemoryBatches):
            loader = loader.without_augmentation()
        limit = self.trainer.num_training_batches
        batches = itertools.islice(loader, None if math.isinf(limit) else int(limit))
        return torch.cat([self.encode(batch_inputs(batch).to(self.device)) for batch in batches])

    @torch.no_grad()
    def initialize_prior(self, codes: torch.Tensor) -> None:
        """Fit the mixture to ``codes`` [N, D] (by ``prior_init``) and make it the prior.

        Under DDP the codes of all processes are gathered and the fit of rank zero is broadcast,
        so every process starts from the same prior.
        """
        hp = self.hparams
        trainer = self._trainer  # None when called outside a Trainer
        distributed = trainer is not None and trainer.world_size > 1
        if distributed:
            codes = self.all_gather(codes).flatten(0, 1)
        if hp.prior_init == "spectral":
            assignment = spectral_clustering(codes, hp.num_components, hp.spectral_neighbours)
            gmm = gmm_from_assignment(codes, assignment, hp.num_components)
        else:
            gmm = fit_diagonal_gmm(codes, hp.num_components, hp.em_iterations, hp.em_restarts, seed=0)
        self.prior.set_parameters(gmm.weights, gmm.means, gmm.variances)
        if distributed:
            for tensor in (self.prior.means, self.prior.raw_log_variances, self.prior.logits):
                tensor.copy_(trainer.strategy.broadcast(tensor, src=0))
        self.prior_initialized.fill_(True)
        self.on_prior_initialized(codes)

    def on_prior_initialized(self, codes: torch.Tensor) -> None:
        """Called after the mixture was fitted to ``codes``; subclasses build on it."""

    # ----------------------------------------------------------------- clustering metrics
    def _evaluation_step(self, batch: Batch, stage: str) -> torch.Tensor:
        loss = super()._evaluation_step(batch, stage)
        if isinstance(batch, torch.Tensor) or len(batch) < 2:
            return loss
        metrics = self.val_clustering if stage == "val" else self.test_clustering
        metrics.update(self.predict_cluster(batch[0]), batch[1])
        self.log_dict(metrics, on_step=False, on_epoch=True)
        return loss

    def predict_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """The cluster of each input: [B] int64."""
        return self.predict_cluster(batch_inputs(batch))
