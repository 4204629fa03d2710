"""The models of the zoo, all :class:`LatentVariableModel` subclasses."""

from vae_zoo.models.base import LatentVariableModel
from vae_zoo.models.vae import VAE, BetaVAE

ALL_MODELS: tuple[type[LatentVariableModel], ...] = (VAE, BetaVAE)

__all__ = ["ALL_MODELS", "VAE", "BetaVAE", "LatentVariableModel"]
