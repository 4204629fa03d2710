"""What every in-memory data module of the zoo shares: argument checks, splits, batching, sharding.

A subclass fills ``self.splits`` (``name -> (inputs, labels or None)``, CPU tensors) and sets
``input_shape``; :class:`InMemoryDataModule` serves each split as
:class:`~vae_zoo.data.batches.InMemoryBatches` on the training device, shuffled per epoch for
training and sharded over the processes of a DDP run.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch

from vae_zoo.data.batches import Augmentation, EpochSampler, InMemoryBatches, binarize
from vae_zoo.validation import check_bool, check_choice, is_int

BINARIZATIONS: tuple[str, ...] = ("none", "dynamic", "static")
SEED_LIMIT = 2**32  # the range Lightning's seed_everything accepts

Split = tuple[torch.Tensor, torch.Tensor | None]


class DataError(ValueError):
    """Bad data or data arguments: the message names the argument or file, the value found and
    what is valid. A ``ValueError``, so that callers catching those keep working."""


def check_positive_int(name: str, value: Any) -> int:
    """``value`` if it is an integer >= 1, else a :class:`DataError` naming ``name``."""
    if not is_int(value) or value <= 0:
        raise DataError(f"{name} must be a positive integer; got {value!r}")
    return value


def check_optional_positive_int(name: str, value: Any) -> int | None:
    """``None``, or ``value`` if it is an integer >= 1."""
    return None if value is None else check_positive_int(name, value)


def check_seed(value: Any) -> int:
    """``value`` if it is an integer in [0, 2**32), the seeds Lightning accepts."""
    if not is_int(value) or not 0 <= value < SEED_LIMIT:
        raise DataError(f"seed must be an integer in [0, 2**32); got {value!r}")
    return value


def check_optional_path(name: str, value: Any) -> str | None:
    """``None``, or ``value`` as a string if it is a non-empty string or ``os.PathLike``."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise DataError(f"{name} must be a path (a non-empty string); got {value!r}")
    path = os.fspath(value)
    if not isinstance(path, str) or "\x00" in path:
        raise DataError(f"{name} must be a path (a non-empty string); got {value!r}")
    return path


def split_indices(num_examples: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, val)`` indices: ``val_size`` examples drawn at random (from ``seed``), the rest
    in a random order too. The same ``seed`` always gives the same split."""
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed))
    return order[val_size:], order[:val_size]


def binarize_once(x: torch.Tensor, seed: int) -> torch.Tensor:
    """One Bernoulli draw of every value of ``x`` (in [0, 1]) from a generator seeded by ``seed``."""
    return binarize(x, torch.Generator(device=x.device).manual_seed(seed))


def evaluation_copy(
    inputs: torch.Tensor,
    train_index: torch.Tensor,
    val_index: torch.Tensor,
    splits: dict[str, Split],
    binarization: str,
    seed: int,
) -> torch.Tensor:
    """Every example of ``inputs`` (file order) as an evaluation split holds it: as it is without
    binarization; under static binarization, the very draws of the train and val splits; under
    dynamic, the validation examples as drawn for the val split and the others drawn once."""
    if binarization == "none":
        return inputs
    if binarization == "static":
        whole = torch.empty_like(inputs)
        whole[train_index] = splits["train"][0]
    else:
        whole = binarize_once(inputs, seed + 1003)
    whole[val_index] = splits["val"][0]
    return whole


class InMemoryDataModule(L.LightningDataModule):
    """Base of the zoo's data modules whose splits fit in memory.

    Subclasses fill ``self.splits`` and define ``input_shape`` (the shape of one example, which
    the ``vae-zoo`` command links into the model's ``input_shape`` when it instantiates the
    classes, so it must be known once the constructor has returned).

    Args:
        batch_size: training batch size.
        eval_batch_size: validation/test batch size (default: ``batch_size``).
        binarization: ``"none"``, ``"dynamic"`` (a fresh Bernoulli draw of every training input
            each time it is seen; evaluation splits drawn once) or ``"static"`` (every split drawn
            once). The subclass draws the static ones; the dynamic draws happen per batch.
        seed: seed of the validation split, the shuffling and the binarization.
        on_device: keep the tensors on the training device (GPU) instead of the CPU.
    """

    input_shape: tuple[int, ...]

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        binarization: str = "none",
        seed: int = 0,
        on_device: bool = True,
    ) -> None:
        super().__init__()
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.eval_batch_size = check_optional_positive_int("eval_batch_size", eval_batch_size) or batch_size
        self.binarization = check_choice("binarization", binarization, BINARIZATIONS, DataError)
        self.seed = check_seed(seed)
        self.on_device = check_bool("on_device", on_device, DataError)
        self.splits: dict[str, Split] = {}

    # ----------------------------------------------------------------- where batches go
    def _device(self) -> torch.device:
        trainer = self.trainer
        if self.on_device and trainer is not None:
            return trainer.strategy.root_device
        return torch.device("cpu")

    def _rank_and_world(self) -> tuple[int, int]:
        """This process's rank and the number of processes (``(0, 1)`` outside a Trainer)."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _batches(self, split: str, batch_size: int, shuffle: bool) -> InMemoryBatches:
        x, y = self.splits[split]
        device = self._device()
        rank, world_size = self._rank_and_world()
        sampler = EpochSampler(len(x), shuffle, self.seed, rank, world_size, pad=shuffle)
        training = split == "train"
        dynamic = self.binarization == "dynamic" and training
        augmentation = self.train_augmentation() if training else None
        labels = None if y is None else y.to(device)
        return InMemoryBatches(x.to(device), labels, batch_size, sampler, dynamic, augmentation=augmentation)

    def train_augmentation(self) -> Augmentation | None:
        """The random transformation of training batches (``None``: none); subclasses choose it."""
        return None

    def _check_batch_size(self, train_size: int, where: str) -> None:
        """Refuse a training batch larger than the training split (``where`` says what that is)."""
        if self.batch_size > train_size:
            raise DataError(
                f"batch_size={self.batch_size} is larger than the training split: {train_size} "
                f"examples ({where}); choose batch_size <= {train_size}"
            )

    # ----------------------------------------------------------------- Lightning hooks
    def train_dataloader(self) -> InMemoryBatches:
        return self._batches("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> InMemoryBatches | list:
        if self.splits["val"][0].shape[0] == 0:
            return []  # val_size=0: Lightning skips validation
        return self._batches("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> InMemoryBatches:
        return self._batches("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> InMemoryBatches:
        return self._batches("test", self.eval_batch_size, shuffle=False)
