"""Latent traversals, interpolations and per-component samples, logged as image grids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from vae_zoo.callbacks.images import image_grid, is_image_shape, log_image
from vae_zoo.errors import ConfigurationError
from vae_zoo.models.base import batch_inputs
from vae_zoo.priors import GaussianMixture


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of codes ``a``, ``b`` [D] at ``t`` [S]:
    ``sin((1-t) w) / sin(w) a + sin(t w) / sin(w) b``, ``w`` the angle between them; linear
    where they are (anti)parallel. Returns [S, D]."""
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=0).clamp(-1, 1)
    omega = torch.arccos(cosine)
    t = t.unsqueeze(-1)
    if torch.sin(omega).abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``(1 - t) a + t b``: [D], [D], [S] -> [S, D]."""
    t = t.unsqueeze(-1)
    return (1 - t) * a + t * b


class ValidationImageCallback(Callback):
    """Base of the image callbacks: keeps the first ``reference_size`` inputs of the first
    validation batch, and draws every ``every_n_epochs`` epochs (not in the sanity check)."""

    def __init__(self, every_n_epochs: int, reference_size: int) -> None:
        if not (isinstance(every_n_epochs, int) and every_n_epochs >= 1):
            raise ValueError(f"every_n_epochs must be an integer >= 1; got {every_n_epochs!r}")
        self.every_n_epochs = every_n_epochs
        self.reference_size = reference_size
        self.reference: torch.Tensor | None = None

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0:
            self.reference = batch_inputs(batch)[: self.reference_size].detach()

    def draws_now(self, trainer: L.Trainer) -> bool:
        """Whether this validation epoch end should draw."""
        return not (
            trainer.sanity_checking
            or (trainer.current_epoch + 1) % self.every_n_epochs
            or self.reference is None
        )


class LatentTraversal(ValidationImageCallback):
    """Every ``every_n_epochs``: decode one latent dimension at a time around a reference code.

    The reference is the code of the first validation example. Each row varies one dimension
    over ``reference_j + linspace(-span, span, steps)``; the dimensions are the ``num_dims``
    with the highest average KL on the first validation batch (models with a posterior), or
    the largest spread of codes (deterministic models), or ``dims`` when given. Also logged:
    linear and spherical interpolations between the first two validation examples, and for
    mixture priors a traversal around each cluster's mean and ``steps`` samples per cluster.
    Images go through :func:`~vae_zoo.callbacks.images.log_image`; rank zero only.

    Args:
        every_n_epochs: how often.
        span: half-width of the traversal, in units of the code.
        steps: images per row.
        num_dims: how many dimensions to traverse (when ``dims`` is not given).
        dims: explicit dimensions to traverse.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        span: float = 3.0,
        steps: int = 9,
        num_dims: int = 8,
        dims: Sequence[int] | None = None,
    ) -> None:
        super().__init__(every_n_epochs, reference_size=64)
        if not span > 0:
            raise ValueError(f"span must be > 0; got {span}")
        if not (isinstance(steps, int) and steps >= 2):
            raise ValueError(f"steps must be an integer >= 2; got {steps!r}")
        if not (isinstance(num_dims, int) and num_dims >= 1):
            raise ValueError(f"num_dims must be an integer >= 1; got {num_dims!r}")
        self.span = span
        self.steps = steps
        self.num_dims = num_dims
        self.dims = list(dims) if dims is not None else None

    @torch.no_grad()
    def ranked_dims(self, pl_module: L.LightningModule, x: torch.Tensor) -> list[int]:
        """Dimensions ordered by their average KL (or the spread of the codes)."""
        if self.dims is not None:
            for dim in self.dims:
                if not 0 <= dim < pl_module.latent_dim:
                    raise ConfigurationError(f"dims must lie in [0, {pl_module.latent_dim}); got {dim}")
            return self.dims
        if hasattr(pl_module, "posterior"):
            posterior = pl_module.posterior(x)
            # KL of each dimension to N(0, 1): 0.5 (mu^2 + s^2 - 1 - log s^2), averaged over x
            score = (0.5 * (posterior.mean**2 + posterior.variance - 1 - posterior.variance.log())).mean(0)
        else:
            score = pl_module.encode(x).var(0)
        return score.argsort(descending=True)[: self.num_dims].tolist()

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.draws_now(trainer):
            return
        if not is_image_shape(pl_module.input_shape):
            rank_zero_warn(
                f"LatentTraversal logs images; inputs of shape {pl_module.input_shape} are not images"
            )
            return
        if not trainer.is_global_zero:
            return
        x = self.reference
        offsets = torch.linspace(-self.span, self.span, self.steps, device=x.device)
        code = pl_module.encode(x[:1])[0]  # [D]
        rows = []
        for dim in self.ranked_dims(pl_module, x):
            codes = code.repeat(self.steps, 1)
            codes[:, dim] += offsets
            rows.append(pl_module.decode(codes))
        log_image(trainer, "traversal/dims", image_grid(torch.cat(rows), self.steps))
        if x.shape[0] >= 2:
            a, b = pl_module.encode(x[:2])
            t = torch.linspace(0, 1, self.steps, device=x.device)
            paths = torch.cat([pl_module.decode(lerp(a, b, t)), pl_module.decode(slerp(a, b, t))])
            log_image(trainer, "traversal/interpolation", image_grid(paths, self.steps))
        prior = getattr(pl_module, "prior", None)
        if isinstance(prior, GaussianMixture):
            self._log_components(trainer, pl_module, prior, offsets)

    def _log_components(
        self, trainer: L.Trainer, pl_module: L.LightningModule, prior: GaussianMixture, offsets: torch.Tensor
    ) -> None:
        samples = prior.sample_clusters(self.steps).reshape(-1, pl_module.latent_dim)  # [C*S, D]
        log_image(trainer, "traversal/component_samples", image_grid(pl_module.decode(samples), self.steps))
        means = prior.cluster_means()  # [C, D]
        top = int(means.var(0).argmax())  # the dimension that separates the clusters most
        rows = []
        for mean in means:
            codes = mean.repeat(self.steps, 1)
            codes[:, top] += offsets
            rows.append(pl_module.decode(codes))
        log_image(trainer, "traversal/components", image_grid(torch.cat(rows), self.steps))

    def state_dict(self) -> dict[str, Any]:
        return {"dims": self.dims}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.dims = state_dict["dims"]


class ImageGrids(ValidationImageCallback):
    """Every ``every_n_epochs``: inputs next to their reconstructions, and samples from the model.

    Logs ``images/reconstructions`` (odd columns inputs, even columns reconstructions, of the
    first ``num_images`` validation examples) and ``images/samples`` (``num_images`` draws of
    ``sample``) through :func:`~vae_zoo.callbacks.images.log_image`; rank zero only.
    """

    def __init__(self, every_n_epochs: int = 1, num_images: int = 32) -> None:
        if not (isinstance(num_images, int) and num_images >= 1):
            raise ValueError(f"num_images must be an integer >= 1; got {num_images!r}")
        super().__init__(every_n_epochs, reference_size=num_images)
        self.num_images = num_images

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.draws_now(trainer):
            return
        if not (trainer.is_global_zero and is_image_shape(pl_module.input_shape)):
            return
        x = self.reference
        pairs = torch.stack([x, pl_module.reconstruct(x)], 1).flatten(0, 1)  # [2N, C, H, W]
        log_image(trainer, "images/reconstructions", image_grid(pairs, 16))
        try:
            samples = pl_module.sample(self.num_images)
        except RuntimeError as error:  # a deterministic autoencoder before its density is fitted
            rank_zero_warn(f"ImageGrids: no samples this epoch: {error}")
            return
        log_image(trainer, "images/samples", image_grid(samples, 8))
