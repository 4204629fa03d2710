"""VAE with a trainable Gaussian-mixture prior (GMM-VAE), initialised from the data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Literal

import torch
from torch.distributions import Normal
from torchmetrics import Metric
from torchmetrics.clustering import AdjustedRandScore, NormalizedMutualInfoScore

from vae_zoo.consensus import CLUSTERING_METHODS, ClusteringMethod, cluster_codes
from vae_zoo.metrics import ClusteringAccuracy
from vae_zoo.mixtures import fit_diagonal_gmm, gmm_from_assignment, split_clusters
from vae_zoo.models.base import EvaluatedBatch, LatentVariableModel, check_int, fused_adam_supported
from vae_zoo.models.vae import VAE
from vae_zoo.models.warm_start import WarmStart
from vae_zoo.priors import GaussianMixture
from vae_zoo.validation import (
    MAX_COMPONENTS,
    check_bool,
    check_choice,
    check_number,
    check_parameter_budget,
    is_int,
)

KLEstimator = Literal["monte_carlo", "responsibility"]
#: the clustering figures of validation and test: Hungarian accuracy, NMI (arithmetic
#: normaliser) and adjusted Rand index, each of the predicted clusters against the labels
CLUSTERING_METRICS: dict[str, Callable[[], Metric]] = {
    "acc": ClusteringAccuracy,
    "nmi": partial(NormalizedMutualInfoScore, average_method="arithmetic"),
    "ari": AdjustedRandScore,
}


def score_clusters(
    model: LatentVariableModel, clusters: torch.Tensor, labels: torch.Tensor, stage: str
) -> None:
    """Add ``clusters`` [B] (int64) against ``labels`` [B] to ``model``'s metrics of
    :data:`CLUSTERING_METRICS` under ``stage``. Labels stored as floats are used when they are
    whole numbers (class indices); other values are refused."""
    if labels.is_floating_point():
        if not torch.equal(labels, labels.round()):
            raise ValueError(
                f"the clustering metrics need class labels (whole numbers); the batch's labels are "
                f"{labels.dtype} values such as {labels[labels != labels.round()][0].item():g}"
            )
        labels = labels.long()
    for name, factory in CLUSTERING_METRICS.items():
        model.evaluation_metric(stage, name, factory).update(clusters, labels)


PriorInit = ClusteringMethod
PRIOR_INITS = CLUSTERING_METHODS


class GMMVAE(WarmStart, VAE):
    """VAE whose prior is a trainable mixture of ``K`` clusters, each a mixture of
    ``components_per_cluster`` diagonal Gaussians.

    ``loss = E_q[-log p(x|z)] + kl_weight * KL`` where the KL is estimated either

    * ``"monte_carlo"``: ``log q(z|x) - logsumexp_k(log pi_k + log N(z; mu_k, sigma_k^2))`` at the
      reparameterized draw ``z``; or
    * ``"responsibility"``: VaDE's bound ``sum_k g_k KL(q || N_k) + KL(g || pi)``,
      ``g = p(k | z)``.

    To avoid collapsing into one cluster, the prior is initialised from the data
    (:class:`~vae_zoo.models.warm_start.WarmStart`): the first ``warmup_epochs`` train a
    deterministic autoencoder (``z`` = posterior mean, no KL); then the codes of the training set
    (:meth:`map_training_set`) are encoded and a diagonal GMM fitted to them becomes the prior.
    The codes are first split into ``K`` clusters by ``prior_init``

    * ``"em"``: the most likely component of each code under a ``K``-component EM fit
      (:func:`~vae_zoo.mixtures.fit_diagonal_gmm`, on the training device);
    * ``"spectral"``: spectral clustering of the codes
      (:func:`~vae_zoo.spectral.spectral_clustering`: ``2 K`` segments of their
      ``spectral_neighbours``-nearest-neighbour graph, merged along the graph into ``K``);
    * ``"consensus"``: of the spectral clustering and ``umap_runs`` N2D clusterings (a UMAP
      embedding of the codes and a Gaussian mixture in it,
      :func:`~vae_zoo.consensus.umap_gmm_clustering`, seeds ``0 .. umap_runs - 1``), the one
      that agrees most with the others (:func:`~vae_zoo.consensus.consensus_index`), so that
      one clustering that merges two clusters and splits another is outvoted;

    then every cluster is split into ``components_per_cluster`` parts by k-means
    (:func:`~vae_zoo.mixtures.split_clusters`), and each part's mean, variance and share make
    one Gaussian of the prior (:func:`~vae_zoo.mixtures.gmm_from_assignment`). The codes'
    clusters are curved and elongated: EM's most likely mixture cuts through them, the
    neighbourhood graph keeps them apart, and one diagonal Gaussian per cluster would misplace
    the codes at a cluster's ends (``benchmarks/RESULTS.md``). With ``components_per_cluster =
    1`` and ``"em"`` the prior is the EM fit itself.

    The initialisation is part of ``fit``, stored in the checkpoint and not repeated on resume.

    The cluster of an input is ``argmax_c p(c | z = mu(x))``, ``p(c | z)`` summed over the
    cluster's Gaussians (:meth:`predict_cluster`, and what
    ``predict`` returns). Validation and test log ``acc`` (Hungarian matching, also shown in the
    progress bar), ``nmi`` (arithmetic normaliser) and ``ari`` when batches carry labels, once the
    prior is fitted: during the warm-up there are no clusters to score.

    The defaults are the recipe of ``configs/gmm_mnist.yaml`` (measured in
    ``benchmarks/RESULTS.md``): 30 warm-up epochs, the consensus start, twenty Gaussians per
    cluster, the prior kept fixed, VaDE's responsibility KL; that config adds only the data
    module's augmentation of the training images.

    Arguments of :class:`~vae_zoo.models.VAE` not listed here pass on by keyword; ``latent_dim``
    and ``hidden_dims`` are repeated only for their defaults, VaDE's network 784-500-500-2000-10.

    Args:
        num_components: ``K``, the number of clusters.
        components_per_cluster: Gaussians per cluster; the prior has ``K * components_per_cluster``.
        kl_estimator: ``"monte_carlo"`` or ``"responsibility"``.
        warmup_epochs: autoencoder epochs before the mixture is fitted (0: fit to the codes of
            the untrained encoder at the start).
        learn_mixture_weights: learn ``pi`` (else fixed at the fitted estimate).
        learn_prior: learn the mixture (means, variances and, with ``learn_mixture_weights``, the
            weights) after it is fitted; ``False`` keeps the fitted mixture and trains only the
            encoder and decoder towards it. A learned prior moves towards the most likely
            mixture of the codes, which is where EM's start is (see ``prior_init``).
        em_restarts, em_iterations: of the EM fit.
        prior_init: ``"em"``, ``"spectral"`` or ``"consensus"``, how the codes are clustered.
        spectral_neighbours: neighbours of each code in the graphs of ``"spectral"`` and UMAP.
        umap_runs: N2D clusterings (UMAP seeds) in the ``"consensus"`` start.
        prior_lr: Adam's learning rate for the prior's parameters when ``learn_prior``
            (default: ``lr``). A learned prior moves towards the most likely mixture of the codes
            and takes accuracy with it; a tenth of ``lr`` slows that drift
            (``benchmarks/RESULTS.md``).
    """

    #: the ELBO and, once the prior is fitted, the clustering accuracy
    progress_bar_metrics = ("elbo", "acc")

    def __init__(
        self,
        num_components: int = 10,
        components_per_cluster: int = 20,
        kl_estimator: KLEstimator = "responsibility",
        warmup_epochs: int = 30,
        learn_mixture_weights: bool = True,
        learn_prior: bool = False,
        prior_lr: float | None = None,
        prior_init: PriorInit = "consensus",
        em_restarts: int = 3,
        em_iterations: int = 100,
        spectral_neighbours: int = 20,
        umap_runs: int = 2,
        latent_dim: int = 10,
        hidden_dims: Sequence[int] = (500, 500, 2000),
        **kwargs: Any,
    ) -> None:
        check_int("num_components", num_components, minimum=2, maximum=MAX_COMPONENTS)
        check_number("prior_lr", prior_lr, minimum=0, strict=True, optional=True)
        check_int("components_per_cluster", components_per_cluster, minimum=1, maximum=MAX_COMPONENTS)
        check_int("umap_runs", umap_runs, minimum=1)
        check_int("em_restarts", em_restarts, minimum=1)
        check_int("em_iterations", em_iterations, minimum=1)
        check_choice("kl_estimator", kl_estimator, ("monte_carlo", "responsibility"))
        check_choice("prior_init", prior_init, PRIOR_INITS)
        check_int("spectral_neighbours", spectral_neighbours, minimum=1)
        check_bool("learn_mixture_weights", learn_mixture_weights)
        check_bool("learn_prior", learn_prior)
        if is_int(latent_dim):  # means and log-variances [K * M, D]
            check_parameter_budget(
                2 * num_components * components_per_cluster * latent_dim,
                {
                    "num_components": num_components,
                    "components_per_cluster": components_per_cluster,
                    "latent_dim": latent_dim,
                },
            )
        # read by build_prior, which the base __init__ calls
        self.num_components = num_components
        self.components_per_cluster = components_per_cluster
        self.learn_mixture_weights = learn_mixture_weights
        super().__init__(latent_dim=latent_dim, hidden_dims=hidden_dims, **kwargs)
        self.kl_estimator = kl_estimator
        self.prior_init = prior_init
        self.em_restarts = em_restarts
        self.em_iterations = em_iterations
        self.spectral_neighbours = spectral_neighbours
        self.umap_runs = umap_runs
        self.prior_lr = prior_lr
        self.prior.requires_grad_(learn_prior)
        self.init_warm_start(warmup_epochs)

    def build_prior(self) -> GaussianMixture:
        return GaussianMixture(
            self.latent_dim,
            self.num_components * self.components_per_cluster,
            self.learn_mixture_weights,
            self.components_per_cluster,
        )

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not (self.training and self.warming_up):
            return super().loss_terms(x)
        # autoencoder warm-up of training: z is the posterior mean; evaluation always reports the
        # model's true negative ELBO, so checkpoints compare across the switch
        posterior = self.posterior(x)
        recon = -self.likelihood.log_prob(x, self.decoder(posterior.mean))
        return {"recon": recon, **self.latent_terms(posterior, posterior.mean)}

    def latent_terms(self, posterior: Normal, z: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.kl_estimator == "responsibility" and self.free_bits <= 0:
            return {"kl": self.prior.kl_responsibility(posterior, z)}
        # the Monte Carlo KL of the parent (which also refuses free bits, undefined here)
        return super().latent_terms(posterior, z)

    @torch.no_grad()
    def predict_cluster(self, x: torch.Tensor) -> torch.Tensor:
        """The most responsible cluster at the posterior mean: [B, *shape] -> [B] int64."""
        return self.prior.cluster_responsibilities(self.encode(x)).argmax(-1)

    # ----------------------------------------------------------------- prior initialisation
    def start_from_warmup(self) -> None:
        """Fit the prior to the codes of the training examples as they are (not augmented), of
        every process."""
        self.initialize_prior(self.map_training_set(self.encode))

    @torch.no_grad()
    def initialize_prior(self, codes: torch.Tensor) -> None:
        """Fit the mixture to ``codes`` [N, D] (clusters by ``prior_init``, each split into
        ``components_per_cluster`` Gaussians) and make it the prior; set the posterior's variance
        to :data:`~vae_zoo.models.warm_start.START_VARIANCE_SHARE` of the mixture's mean variance
        ``sum_k pi_k sigma_k^2`` (the warm-up left the log-variance head untrained, at a variance
        of about 1, which scatters the clusters of codes on a smaller scale).

        Under DDP ``codes`` are those of all processes (:meth:`map_training_set`), and the fit of
        rank zero is broadcast, so every process starts from the same prior.
        """
        trainer = self._trainer  # None when called outside a Trainer
        distributed = trainer is not None and trainer.world_size > 1
        k, per_cluster = self.num_components, self.components_per_cluster
        if self.prior_init == "em" and per_cluster == 1:
            gmm = fit_diagonal_gmm(codes, k, self.em_iterations, self.em_restarts, seed=0)
        else:
            parts = split_clusters(codes, self.cluster_codes(codes), k, per_cluster)
            gmm = gmm_from_assignment(codes, parts, k * per_cluster)
        self.prior.set_parameters(gmm.weights, gmm.means, gmm.variances)
        within = (gmm.weights.unsqueeze(-1) * gmm.variances).sum(0)  # [D], mean within-component
        self.set_start_variance(slice(self.latent_dim, None), within.log())  # q(z|x)'s log-variances
        if distributed:
            head_bias = self.split_encoder()[1].bias
            for tensor in (self.prior.means, self.prior.raw_log_variances, self.prior.logits, head_bias):
                tensor.copy_(trainer.strategy.broadcast(tensor, src=0))
        self.started.fill_(True)
        self.on_prior_initialized(codes)

    def cluster_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """The ``K`` clusters of ``codes`` [N, D] by ``prior_init``
        (:func:`~vae_zoo.consensus.cluster_codes`): [N] int64 in ``[0, K)``."""
        return cluster_codes(
            codes,
            self.num_components,
            self.prior_init,
            self.spectral_neighbours,
            self.umap_runs,
            self.em_iterations,
            self.em_restarts,
            announce_as=f"{type(self).__name__} prior",
        )

    def on_prior_initialized(self, codes: torch.Tensor) -> None:
        """Called after the mixture was fitted to ``codes``; subclasses build on it."""

    # ----------------------------------------------------------------- clustering metrics
    def update_evaluation_metrics(self, batch: EvaluatedBatch, stage: str) -> None:
        """Adds ``acc``, ``nmi`` and ``ari`` of :meth:`predict_cluster` against ``labels``, once
        the prior is fitted (during the warm-up there are no clusters to score)."""
        super().update_evaluation_metrics(batch, stage)
        if not self.warming_up and batch.labels is not None:
            self.update_clustering_metrics(self.predict_cluster(batch.x), batch.labels, stage)

    def update_clustering_metrics(self, clusters: torch.Tensor, labels: torch.Tensor, stage: str) -> None:
        """Add the predicted ``clusters`` [B] and true ``labels`` [B] of a batch to the
        clustering metrics of ``stage`` (:func:`score_clusters`); subclasses add theirs."""
        score_clusters(self, clusters, labels, stage)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam as the base class's; with ``prior_lr``, in two groups: the prior's parameters at
        ``prior_lr``, the others at ``lr``."""
        prior_lr = self.prior_lr
        if prior_lr is None:  # one group, as the base class (and checkpoints made before prior_lr)
            return super().configure_optimizers()
        prior = list(self.prior.parameters())
        prior_ids = {id(p) for p in prior}
        networks = [p for p in self.parameters() if id(p) not in prior_ids]
        groups = [{"params": networks}, {"params": prior, "lr": prior_lr}]
        return torch.optim.Adam(groups, lr=self.lr, fused=fused_adam_supported(networks + prior))

    @torch.no_grad()
    def predictions(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The posterior's ``mean`` and ``variance`` [B, D], the ``cluster`` of each input [B]
        (:meth:`predict_cluster`) and the ``responsibilities`` ``p(c | z = mu(x))`` [B, K] of the
        clusters."""
        outputs = super().predictions(x)
        responsibilities = self.prior.cluster_responsibilities(outputs["mean"])  # [B, K]
        return {**outputs, "cluster": responsibilities.argmax(-1), "responsibilities": responsibilities}
