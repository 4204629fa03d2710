"""LightningDataModules of the zoo: the MNIST family and a user's own arrays, held in memory."""

from vae_zoo.data.arrays import ArrayDataModule
from vae_zoo.data.augmentation import RandomAffine
from vae_zoo.data.base import DataError, InMemoryDataModule
from vae_zoo.data.batches import EpochSampler, InMemoryBatches
from vae_zoo.data.mnist import MNISTDataModule

__all__ = [
    "ArrayDataModule",
    "DataError",
    "EpochSampler",
    "InMemoryBatches",
    "InMemoryDataModule",
    "MNISTDataModule",
    "RandomAffine",
]
