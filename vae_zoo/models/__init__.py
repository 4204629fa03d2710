"""The models of the zoo, all :class:`LatentVariableModel` subclasses."""

import inspect

from vae_zoo.models.autoencoder import Autoencoder, LinearAutoencoder, principal_angles
from vae_zoo.models.base import LatentVariableModel, model_arguments
from vae_zoo.models.gmm import GMMVAE
from vae_zoo.models.gmvae import GMVAE
from vae_zoo.models.hierarchical import HierarchicalGMMVAE
from vae_zoo.models.vae import VAE, BetaVAE
from vae_zoo.models.vamp import VampPrior, VampVAE
from vae_zoo.models.wae import WAE


def zoo_models() -> tuple[type[LatentVariableModel], ...]:
    """Every concrete :class:`LatentVariableModel` subclass defined in ``vae_zoo.models``, parents
    before their children (a new model file imported here is listed without more ado)."""
    found: list[type[LatentVariableModel]] = []
    pending = [LatentVariableModel]
    while pending:
        cls = pending.pop(0)
        for subclass in cls.__subclasses__():
            if subclass.__module__.startswith(__name__ + ".") and subclass not in found:
                found.append(subclass)
                pending.append(subclass)
    return tuple(cls for cls in found if not inspect.isabstract(cls))


ALL_MODELS: tuple[type[LatentVariableModel], ...] = zoo_models()

__all__ = [
    "ALL_MODELS",
    "GMMVAE",
    "GMVAE",
    "VAE",
    "WAE",
    "Autoencoder",
    "BetaVAE",
    "HierarchicalGMMVAE",
    "LatentVariableModel",
    "LinearAutoencoder",
    "VampPrior",
    "VampVAE",
    "model_arguments",
    "principal_angles",
]
