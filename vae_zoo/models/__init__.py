"""The models of the zoo, all :class:`LatentVariableModel` subclasses."""

from vae_zoo.models.autoencoder import Autoencoder, LinearAutoencoder, principal_angles
from vae_zoo.models.base import LatentVariableModel
from vae_zoo.models.gmm import GMMVAE
from vae_zoo.models.hierarchical import HierarchicalGMMVAE
from vae_zoo.models.vae import VAE, BetaVAE

ALL_MODELS: tuple[type[LatentVariableModel], ...] = (
    LinearAutoencoder,
    Autoencoder,
    VAE,
    BetaVAE,
    GMMVAE,
    HierarchicalGMMVAE,
)

__all__ = [
    "ALL_MODELS",
    "GMMVAE",
    "VAE",
    "Autoencoder",
    "BetaVAE",
    "HierarchicalGMMVAE",
    "LatentVariableModel",
    "LinearAutoencoder",
    "principal_angles",
]
