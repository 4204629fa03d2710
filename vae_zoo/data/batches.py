"""The in-memory fast path: a split held as one tensor, batched by indexing.

:class:`InMemoryBatches` replaces a ``DataLoader`` for data that fit in memory (or on the
training device): no workers, no per-sample transform, no collation. Each epoch, the
:class:`EpochSampler` draws a permutation from ``(seed, epoch)`` and gives this process its
shard, as ``torch.utils.data.DistributedSampler`` would; Lightning calls its ``set_epoch``
before every training epoch, so shuffling and dynamic binarization are reproducible and resume
exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

_SEED_MIX = 0x9E3779B1

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def mix_seed(*parts: int) -> int:
    """Combine integers into one 63-bit seed (deterministic, order-sensitive)."""
    seed = 0
    for part in parts:
        seed = (seed * _SEED_MIX + int(part) + 1) % (2**63 - 1)
    return seed


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli draw of every value of ``x`` (probabilities in [0, 1]): ``1{u < x}``, ``u ~ U(0, 1)``.

    The same distribution as ``torch.bernoulli(x)``, about three times faster on a CPU (which
    draws ``torch.bernoulli`` element by element); same shape and dtype as ``x``.
    """
    uniform = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (uniform < x).to(x.dtype)


class EpochSampler:
    """The indices one process visits in an epoch.

    Args:
        num_examples: size of the split.
        shuffle: draw a new permutation of the split every epoch from ``(seed, epoch)``.
        seed: base seed of the permutations.
        rank, world_size: this process's shard of ``world_size``; shards are interleaved.
        pad: repeat indices so that every shard has the same length (needed for training under
            DDP, where every process must take the same number of steps); without padding,
            evaluation sees every example exactly once.
    """

    def __init__(
        self,
        num_examples: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}); got {rank}")
        self.num_examples = num_examples
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch`` (called by Lightning before each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.pad:
            return math.ceil(self.num_examples / self.world_size)
        return len(range(self.rank, self.num_examples, self.world_size))

    def indices(self) -> torch.Tensor:
        """This process's indices for the current epoch: [len(self)], int64."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
            order = torch.randperm(self.num_examples, generator=generator)
        else:
            order = torch.arange(self.num_examples)
        if self.pad and self.world_size > 1:
            total = len(self) * self.world_size
            order = order.repeat(math.ceil(total / self.num_examples))[:total]
        return order[self.rank :: self.world_size]


class InMemoryBatches:
    """Batches ``(x, y)`` taken by indexing tensors that hold a whole split; ``(x,)`` when the
    split has no labels (a one-element tuple: models take ``batch[0]`` either way, and those
    that score clusters against labels skip batches of fewer than two elements).

    Args:
        inputs: [N, *shape] float tensor (on the device batches should be on).
        labels: [N] int64 tensor on the same device, or ``None``.
        batch_size: examples per batch; the last batch may be smaller unless ``drop_last``.
        sampler: which indices this process visits in this epoch.
        dynamic_binarization: replace each input by a fresh Bernoulli draw of its pixel
            intensities in every batch, from a generator seeded by ``(seed, epoch, rank)``.
        drop_last: drop a final incomplete batch.
        augmentation: ``f(x, generator) -> x'``, a random transformation of every batch of
            inputs (before the binarization), from its own generator seeded by
            ``(seed, epoch, rank)``; e.g. :class:`~vae_zoo.data.augmentation.RandomAffine`.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor | None,
        batch_size: int,
        sampler: EpochSampler,
        dynamic_binarization: bool = False,
        drop_last: bool = False,
        augmentation: Augmentation | None = None,
    ) -> None:
        if labels is not None and inputs.shape[0] != labels.shape[0]:
            raise ValueError(f"inputs and labels differ in length: {inputs.shape[0]} != {labels.shape[0]}")
        self.inputs = inputs
        self.labels = labels
        self.batch_size = batch_size
        self.sampler = sampler
        self.batch_sampler = None  # as on a DataLoader: Lightning looks for both attributes
        self.dynamic_binarization = dynamic_binarization
        self.drop_last = drop_last
        self.augmentation = augmentation

    def __len__(self) -> int:
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        device = self.inputs.device
        order = self.sampler.indices().to(device)
        generator = self._generator(1) if self.dynamic_binarization else None
        augmentation_generator = self._generator(2) if self.augmentation is not None else None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            x = self.inputs.index_select(0, index)  # 3-4x faster than self.inputs[index] on a CPU
            if augmentation_generator is not None:
                x = self.augmentation(x, augmentation_generator)
            if generator is not None:
                x = binarize(x, generator)
            yield (x,) if self.labels is None else (x, self.labels.index_select(0, index))

    def without_augmentation(self) -> InMemoryBatches:
        """The same batches (order, binarization draws) with the inputs as they are, not augmented."""
        return InMemoryBatches(
            self.inputs, self.labels, self.batch_size, self.sampler, self.dynamic_binarization, self.drop_last
        )

    def _generator(self, stream: int) -> torch.Generator:
        """A generator on the inputs' device, seeded by ``(seed, epoch, rank, stream)``."""
        seed = mix_seed(self.sampler.seed, self.sampler.epoch, self.sampler.rank, stream)
        return torch.Generator(device=self.inputs.device).manual_seed(seed)
