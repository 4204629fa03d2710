"""Deterministic autoencoders: a non-linear one and PCA as a linear one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal
from torchmetrics import ExplainedVariance

from vae_zoo.mixtures import fit_diagonal_gmm
from vae_zoo.models.base import Batch, EvaluatedBatch, LatentVariableModel, check_int
from vae_zoo.validation import (
    MAX_COMPONENTS,
    check_bool,
    check_choice,
    check_parameter_budget,
    is_int,
    is_sizes,
)

LatentDensityName = Literal["gaussian", "gmm"]


class LatentDensity(nn.Module):
    """A mixture of full-covariance Gaussians over codes, fitted after (or during) training.

    ``p(z) = sum_k w_k N(z; m_k, L_k L_k^T)``; stored as buffers so it travels with checkpoints.
    """

    def __init__(self, latent_dim: int, num_components: int) -> None:
        super().__init__()
        self.register_buffer("weights", torch.full((num_components,), 1.0 / num_components))
        self.register_buffer("means", torch.zeros(num_components, latent_dim))
        self.register_buffer("scale_tril", torch.eye(latent_dim).repeat(num_components, 1, 1))
        self.register_buffer("fitted", torch.tensor(False))

    def distribution(self) -> MixtureSameFamily:
        """The fitted density as a ``torch.distributions`` object."""
        components = MultivariateNormal(self.means, scale_tril=self.scale_tril, validate_args=False)
        return MixtureSameFamily(Categorical(probs=self.weights, validate_args=False), components)

    @torch.no_grad()
    def fit(self, codes: torch.Tensor, kind: str, seed: int = 0) -> None:
        """Fit to ``codes`` [N, D]: one full-covariance Gaussian (``"gaussian"``) or a diagonal
        mixture of as many components as this density has, by EM (``"gmm"``)."""
        data = codes.detach().double()
        if kind == "gaussian":
            centred = data - data.mean(0)
            covariance = centred.T @ centred / max(data.shape[0] - 1, 1)
            jitter = 1e-6 * torch.eye(data.shape[1], dtype=data.dtype, device=data.device)
            self.weights.fill_(1.0)
            self.means.copy_(data.mean(0, keepdim=True))
            self.scale_tril.copy_(torch.linalg.cholesky(covariance + jitter).unsqueeze(0))
        else:
            gmm = fit_diagonal_gmm(data, self.weights.shape[0], seed=seed)
            self.weights.copy_(gmm.weights)
            self.means.copy_(gmm.means)
            self.scale_tril.copy_(torch.diag_embed(gmm.variances.sqrt()))
        self.fitted.fill_(True)

    def sample(self, n: int) -> torch.Tensor:
        """``n`` codes: [n, D]."""
        return self.distribution().sample((n,))


class Autoencoder(LatentVariableModel):
    """Deterministic autoencoder: ``z = f(x)``, ``loss = -log p(x | g(z))``.

    With ``likelihood="bernoulli"`` the loss is the binary cross-entropy; with ``"gaussian"`` and
    variance ``c`` it is ``||x - g(z)||^2 / (2c)`` plus a constant (squared error).

    To sample, a density is fitted to the codes of the training examples (as they are, not
    augmented; :meth:`~vae_zoo.models.LatentVariableModel.map_training_set`) before every
    validation in ``fit`` and at the end of every epoch not yet validated, so checkpoints carry
    it: one full-covariance Gaussian or a mixture of ``density_components`` Gaussians
    (``latent_density``); :meth:`sample` decodes draws from it. Under DDP the codes of all
    processes are gathered before the fit.

    Args:
        latent_density: ``"gaussian"`` or ``"gmm"``.
        density_components: components of the ``"gmm"`` density.
    """

    def __init__(
        self,
        latent_density: LatentDensityName = "gaussian",
        density_components: int = 10,
        **kwargs: Any,
    ) -> None:
        check_choice("latent_density", latent_density, ("gaussian", "gmm"))
        check_int("density_components", density_components, minimum=1, maximum=MAX_COMPONENTS)
        latent_dim = kwargs.get("latent_dim", 16)
        if is_int(latent_dim):  # the density holds a [components, D, D] Cholesky factor
            components = 1 if latent_density == "gaussian" else density_components
            check_parameter_budget(
                components * latent_dim**2,
                {"latent_dim": latent_dim, "density_components": density_components},
            )
        super().__init__(**kwargs)
        self.latent_density_kind = latent_density
        components = 1 if latent_density == "gaussian" else density_components
        self.latent_density = LatentDensity(self.latent_dim, components)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"recon": -self.likelihood.log_prob(x, self.decoder(self.encode(x)))}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        if not bool(self.latent_density.fitted):
            raise RuntimeError(
                "sample() needs a latent density: train the model (or call fit_latent_density)"
            )
        return self.decode(self.latent_density.sample(n))

    @torch.no_grad()
    def fit_latent_density(self, codes: torch.Tensor) -> None:
        """Fit the sampling density to ``codes`` [N, D]."""
        self.latent_density.fit(codes, self.latent_density_kind)

    def fit_density_to_training_set(self) -> None:
        """Fit the sampling density to the codes of the training set (:meth:`map_training_set`)."""
        self.fit_latent_density(self.map_training_set(self.encode))

    def on_validation_epoch_start(self) -> None:
        # before each validation in fit, so that the checkpoints written after it carry the density
        if self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking:
            self._refit_density()

    def on_train_epoch_end(self) -> None:
        if getattr(self, "_density_step", None) != self.global_step:  # no validation since the last step
            self._refit_density()

    def _refit_density(self) -> None:
        self.fit_density_to_training_set()
        self._density_step = self.global_step


class LinearAutoencoder(Autoencoder):
    """PCA as a linear autoencoder: ``z = W_e x + b_e``, ``x_hat = W_d z + b_d``, squared error.

    Trained by gradient descent on ``||x - x_hat||^2`` (a Gaussian likelihood with ``c = 1/2``);
    it learns the top-``k`` principal subspace, not the directions themselves (Baldi & Hornik
    1989, Kunin et al. 2019). :meth:`fit_pca` sets the exact optimum in closed form from the SVD
    of the centred data ``X - mu = U S V^T``: ``W_e = V_k^T``, ``b_e = -V_k^T mu``,
    ``W_d = V_k``, ``b_d = mu``; ``closed_form=True`` does this on the training data at the start
    of ``fit`` (``--model.closed_form true``) and then takes no gradient step (an optimizer such as
    Adam would move the weights off the optimum), so one epoch suffices to validate and save it.

    Sampling follows probabilistic PCA (Tipping & Bishop 1999): with eigenvalues ``l_j`` of the
    data covariance, the noise variance is the mean of the discarded ones,
    ``s^2 = sum_{j>k} l_j / (d - k)``, the codes are ``N(0, diag(l_1..l_k) - s^2 I)``, and
    ``sample(n, noise=True)`` adds ``N(0, s^2 I)`` to the decoded mean. Gradient-trained models
    use the codes' fitted Gaussian, shrunk the same way, ``S - s^2 (W_d^T W_d)^{-1}``, with
    ``s^2`` estimated as the training squared error over ``d - k``.

    Validation and test log ``explained_variance`` (torchmetrics, variance-weighted) and
    ``sq_error`` (per example).
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        lr: float = 1e-3,
        closed_form: bool = False,
    ) -> None:
        check_bool("closed_form", closed_form)
        if (
            is_int(latent_dim)
            and latent_dim >= 1
            and is_sizes(input_shape)
            and latent_dim > math.prod(input_shape)
        ):
            raise ValueError(
                f"latent_dim must be at most the input size {math.prod(input_shape)} (PCA keeps at most "
                f"that many components); got latent_dim={latent_dim} for input_shape={list(input_shape)}"
            )
        # the other arguments are what makes it PCA: one linear layer each way, squared error
        super().__init__(
            input_shape=input_shape,
            latent_dim=latent_dim,
            architecture="mlp",
            hidden_dims=(),
            likelihood="gaussian",
            likelihood_variance=0.5,
            lr=lr,
            latent_density="gaussian",
            density_components=1,
        )
        self.closed_form = closed_form
        self.register_buffer("noise_variance", torch.tensor(0.0))
        self.register_buffer("closed_form_fitted", torch.tensor(False))

    @property
    def data_dim(self) -> int:
        """``d``, the number of inputs per example."""
        return math.prod(self.input_shape)

    @property
    def decoder_weight(self) -> torch.Tensor:
        """``W_d`` [d, k]: its columns span the learned subspace."""
        return self.decoder[0][0].weight

    def code_and_squared_error(self, x: torch.Tensor) -> torch.Tensor:
        """The code of each example and its ``||x - x_hat||^2``, from one encoding:
        [B, *shape] -> [B, D + 1]."""
        z = self.encode(x)  # [B, D]
        error = (x - self.decode(z)).flatten(1).square().sum(-1)  # [B]
        return torch.cat([z, error.unsqueeze(-1)], -1)

    @torch.no_grad()
    def fit_pca(self, x: torch.Tensor) -> torch.Tensor:
        """Set the weights to the exact top-``k`` PCA of ``x`` [N, *shape]; return the explained
        variance ratio ``sum_{j<=k} l_j / sum_j l_j``."""
        k = self.latent_dim
        data = x.flatten(1).double()
        mean = data.mean(0)
        _, singular_values, vh = torch.linalg.svd(data - mean, full_matrices=False)
        eigenvalues = singular_values**2 / data.shape[0]  # of the (biased) covariance
        components = vh[:k]  # [k, d]
        encoder, decoder = self.encoder[1][0], self.decoder[0][0]
        encoder.weight.copy_(components)
        encoder.bias.copy_(-components @ mean)
        decoder.weight.copy_(components.T)
        decoder.bias.copy_(mean)
        noise = (
            eigenvalues[k:].sum() / (self.data_dim - k) if self.data_dim > k else eigenvalues.new_zeros(())
        )
        self.noise_variance.fill_(noise)
        code_variances = (eigenvalues[:k] - noise).clamp_min(0)  # PPCA: l_j - s^2 >= 0 at the optimum
        self.latent_density.weights.fill_(1.0)
        self.latent_density.means.zero_()
        self.latent_density.scale_tril.copy_(torch.diag(code_variances.sqrt()).unsqueeze(0))
        self.latent_density.fitted.fill_(True)
        self.closed_form_fitted.fill_(True)
        return eigenvalues[:k].sum() / eigenvalues.sum()

    @torch.no_grad()
    def fit_latent_density(self, codes: torch.Tensor, noise_variance: float | None = None) -> None:
        """Fit the codes' Gaussian to ``codes`` [N, D] and shrink it by the noise variance ``s^2``
        (``noise_variance``, else the one held), as probabilistic PCA's code covariance."""
        super().fit_latent_density(codes)
        if noise_variance is not None:
            self.noise_variance.fill_(noise_variance)
        weight = self.decoder_weight.double()
        covariance = self.latent_density.scale_tril[0].double() @ self.latent_density.scale_tril[0].double().T
        shrunk = covariance - self.noise_variance.double() * torch.linalg.inv(weight.T @ weight)
        eigenvalues, eigenvectors = torch.linalg.eigh(shrunk)
        # a not-yet-converged model can have a shrunk direction below zero: that direction gets no spread
        root = eigenvectors @ torch.diag(eigenvalues.clamp_min(0).sqrt())
        jitter = 1e-9 * torch.eye(root.shape[0], dtype=root.dtype, device=root.device)
        self.latent_density.scale_tril[0].copy_(torch.linalg.cholesky(root @ root.T + jitter))

    def fit_density_to_training_set(self) -> None:
        """The codes' Gaussian of a gradient-trained model, with ``s^2`` the mean training squared
        error over ``d - k``; nothing after the closed-form fit, whose PPCA density is exact."""
        if bool(self.closed_form_fitted) and not self.closed_form:
            self.closed_form_fitted.fill_(False)  # gradient steps have moved it off the optimum
        if bool(self.closed_form_fitted):
            return
        outputs = self.map_training_set(self.code_and_squared_error)  # [N, D + 1], one pass
        codes, errors = outputs[:, :-1], outputs[:, -1]
        noise = None
        if self.data_dim > self.latent_dim:
            noise = float(errors.mean()) / (self.data_dim - self.latent_dim)
        self.fit_latent_density(codes, noise)

    def on_train_start(self) -> None:
        if self.closed_form and not bool(self.closed_form_fitted):
            ratio = self.fit_pca(self.map_training_set(lambda x: x))
            self.print(
                f"closed-form PCA fit: explained variance ratio {float(ratio):.4f} at k={self.latent_dim}"
            )

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Any] | None:
        if self.closed_form:
            return None  # the weights are the exact PCA: Lightning skips the optimizer step
        return super().training_step(batch, batch_idx)

    @torch.no_grad()
    def sample(self, n: int, noise: bool = False) -> torch.Tensor:
        """``n`` draws ``W_d z + b_d`` (plus ``N(0, s^2 I)`` when ``noise``): [n, *input_shape]."""
        mean = super().sample(n)
        return mean + noise * self.noise_variance.sqrt() * torch.randn_like(mean)

    def update_evaluation_metrics(self, batch: EvaluatedBatch, stage: str) -> None:
        """Adds ``explained_variance`` (torchmetrics, variance-weighted) of the reconstructions."""
        super().update_evaluation_metrics(batch, stage)
        metric = self.evaluation_metric(
            stage, "explained_variance", partial(ExplainedVariance, multioutput="variance_weighted")
        )
        metric.update(self.reconstruct(batch.x).flatten(1), batch.x.flatten(1))


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, largest first) between the column spaces of ``a`` [d, k] and
    ``b`` [d, m], by scipy's ``subspace_angles``."""
    from scipy.linalg import subspace_angles

    return torch.from_numpy(
        subspace_angles(a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy())
    )
