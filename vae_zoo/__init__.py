"""vae-zoo: a PyTorch Lightning model zoo of autoencoders.

Models live in :mod:`vae_zoo.models`, data modules in :mod:`vae_zoo.data`, and the ``vae-zoo``
command in :mod:`vae_zoo.cli`.
"""

from vae_zoo.data import MNISTDataModule
from vae_zoo.models import ALL_MODELS, VAE, BetaVAE, LatentVariableModel

__version__ = "0.1.0"

__all__ = ["ALL_MODELS", "VAE", "BetaVAE", "LatentVariableModel", "MNISTDataModule", "__version__"]
