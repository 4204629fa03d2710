"""MNIST, Fashion-MNIST and KMNIST as in-memory LightningDataModules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from torchvision import datasets

from vae_zoo.data.batches import EpochSampler, InMemoryBatches

DATASETS: dict[str, type[datasets.MNIST]] = {
    "mnist": datasets.MNIST,
    "fashion_mnist": datasets.FashionMNIST,
    "kmnist": datasets.KMNIST,
}
BINARIZATIONS: tuple[str, ...] = ("none", "dynamic", "static")
DATA_DIR_VARIABLE = "VAE_ZOO_DATA"


def default_data_dir() -> str:
    """The ``VAE_ZOO_DATA`` environment variable, else ``./data``."""
    return os.environ.get(DATA_DIR_VARIABLE) or "./data"


def expected_files(dataset: str, root: str | os.PathLike[str]) -> tuple[Path, list[str]]:
    """The folder torchvision reads ``dataset`` from below ``root``, and the files it needs there."""
    cls = DATASETS[dataset]
    folder = Path(root) / cls.__name__ / "raw"
    names = [os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
    return folder, names


def missing_files(dataset: str, root: str | os.PathLike[str]) -> list[str]:
    """The files of ``dataset`` not present below ``root``."""
    folder, names = expected_files(dataset, root)
    return [name for name in names if not (folder / name).is_file()]


class MNISTDataModule(L.LightningDataModule):
    """MNIST-family images in [0, 1] as ``[B, 1, 28, 28]`` float batches with int64 labels.

    Each split is held in memory as one tensor (moved to the training device when
    ``on_device``) and batched by indexing (:class:`~vae_zoo.data.batches.InMemoryBatches`).

    Args:
        data_dir: root folder holding ``<Dataset>/raw/`` with torchvision's uncompressed IDX
            files; default: the ``VAE_ZOO_DATA`` environment variable, else ``./data``.
        dataset: ``"mnist"``, ``"fashion_mnist"`` or ``"kmnist"``.
        batch_size: training batch size.
        eval_batch_size: validation/test batch size (default: ``batch_size``).
        val_size: images held out of the 60k training images for validation, chosen by ``seed``.
        binarization: ``"none"`` (grey levels), ``"dynamic"`` (a fresh Bernoulli draw of every
            training image each time it is seen; validation and test drawn once) or ``"static"``
            (every split drawn once).
        seed: seed of the validation split, the shuffling and the binarization.
        download: download missing files (rank zero only); when impossible, or when False,
            a missing file raises ``FileNotFoundError`` naming the folder and the files.
        on_device: keep the tensors on the training device (GPU) instead of the CPU.
    """

    input_shape: tuple[int, int, int] = (1, 28, 28)

    def __init__(
        self,
        data_dir: str | None = None,
        dataset: Literal["mnist", "fashion_mnist", "kmnist"] = "mnist",
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_size: int = 5000,
        binarization: Literal["none", "dynamic", "static"] = "dynamic",
        seed: int = 0,
        download: bool = True,
        on_device: bool = True,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {list(DATASETS)}; got {dataset!r}")
        if binarization not in BINARIZATIONS:
            raise ValueError(f"binarization must be one of {list(BINARIZATIONS)}; got {binarization!r}")
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size or 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < 60_000:
            raise ValueError(f"val_size must be an integer in [0, 60000); got {val_size!r}")
        self.save_hyperparameters()
        self.data_dir = data_dir or default_data_dir()
        self.dataset = dataset
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size = val_size
        self.binarization = binarization
        self.seed = seed
        self.download = download
        self.on_device = on_device
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def prepare_data(self) -> None:
        """Download missing files when allowed; otherwise name the folder and the files."""
        if not missing_files(self.dataset, self.data_dir):
            return
        folder, names = expected_files(self.dataset, self.data_dir)
        reason = "download=False"
        if self.download:
            try:
                for train in (True, False):
                    DATASETS[self.dataset](self.data_dir, train=train, download=True)
                return
            except Exception as error:  # any failure of the download is reported the same way
                reason = f"the download failed: {error}"
        raise FileNotFoundError(
            f"{self.dataset} not found in {folder} ({reason}); expected the uncompressed IDX files "
            f"{names} there (data_dir={self.data_dir!r}; set data_dir or ${DATA_DIR_VARIABLE})"
        )

    def setup(self, stage: str | None = None) -> None:
        """Load the splits into memory: train/val from the 60k images, test from the 10k."""
        if self.splits:
            return
        self.prepare_data()
        cls = DATASETS[self.dataset]
        train = cls(self.data_dir, train=True, download=False)
        test = cls(self.data_dir, train=False, download=False)
        images = train.data.unsqueeze(1).float().div_(255)  # [60000, 1, 28, 28]
        if self.val_size >= images.shape[0]:
            raise ValueError(
                f"val_size={self.val_size} must be smaller than the {images.shape[0]} training images"
            )
        order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(self.seed))
        val_index, train_index = order[: self.val_size], order[self.val_size :]
        splits = {
            "train": (images[train_index], train.targets[train_index]),
            "val": (images[val_index], train.targets[val_index]),
            "test": (test.data.unsqueeze(1).float().div_(255), test.targets),
        }
        for offset, (name, (x, y)) in enumerate(splits.items()):
            if self.binarization == "static" or (self.binarization == "dynamic" and name != "train"):
                generator = torch.Generator().manual_seed(self.seed + 1000 + offset)
                x = torch.bernoulli(x, generator=generator)
            self.splits[name] = (x, y.long())

    def _device(self) -> torch.device:
        trainer = self.trainer
        if self.on_device and trainer is not None:
            return trainer.strategy.root_device
        return torch.device("cpu")

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _batches(self, split: str, batch_size: int, shuffle: bool) -> InMemoryBatches:
        x, y = self.splits[split]
        device = self._device()
        rank, world_size = self._rank_and_world()
        sampler = EpochSampler(len(x), shuffle, self.seed, rank, world_size, pad=shuffle)
        dynamic = self.binarization == "dynamic" and split == "train"
        return InMemoryBatches(x.to(device), y.to(device), batch_size, sampler, dynamic)

    def train_dataloader(self) -> InMemoryBatches:
        return self._batches("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> InMemoryBatches:
        return self._batches("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> InMemoryBatches:
        return self._batches("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> InMemoryBatches:
        return self._batches("test", self.eval_batch_size, shuffle=False)
