"""LightningDataModules of the zoo."""

from vae_zoo.data.batches import EpochSampler, InMemoryBatches
from vae_zoo.data.mnist import MNISTDataModule

__all__ = ["EpochSampler", "InMemoryBatches", "MNISTDataModule"]
