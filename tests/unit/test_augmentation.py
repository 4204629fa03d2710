"""RandomAffine and the data module's training-batch augmentation: geometry, draws, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vae_zoo.data import DataError, MNISTDataModule, RandomAffine
from vae_zoo.data.augmentation import affine_transform


def dot_image(row: int, column: int, size: int = 28) -> torch.Tensor:
    """One image [1, 1, size, size], 1 at (row, column), 0 elsewhere."""
    image = torch.zeros(1, 1, size, size)
    image[0, 0, row, column] = 1.0
    return image


def test_quarter_turn_moves_pixels_as_rot90() -> None:
    image = torch.rand(1, 1, 28, 28)
    turned = affine_transform(image, torch.tensor([math.pi / 2]), torch.zeros(1, 2))
    # a quarter turn maps pixel centres onto pixel centres, so bilinear resampling is exact; which
    # way round is fixed by affine_grid's convention: output (i, j) takes input (j, 27 - i)
    expected = torch.rot90(image, k=1, dims=(2, 3))
    torch.testing.assert_close(turned, expected, atol=1e-5, rtol=0)


def test_whole_pixel_shift_moves_the_image_and_fills_zeros() -> None:
    image = torch.rand(1, 1, 28, 28)
    shifted = affine_transform(image, torch.zeros(1), torch.tensor([[3 / 28, -2 / 28]]))
    expected = torch.zeros_like(image)
    expected[..., : 28 - 2, 3:] = image[..., 2:, : 28 - 3]  # 3 columns right, 2 rows up
    torch.testing.assert_close(shifted, expected, atol=1e-5, rtol=0)


def test_zero_ranges_are_the_identity() -> None:
    augmentation = RandomAffine()
    images = torch.rand(5, 1, 28, 28)
    assert augmentation.identity
    torch.testing.assert_close(augmentation(images), images, atol=1e-5, rtol=0)


def test_each_image_gets_its_own_draw_within_the_ranges() -> None:
    augmentation = RandomAffine(max_rotation=0, max_shift=0.25)
    images = dot_image(14, 14).expand(200, 1, 28, 28)
    out = augmentation(images, torch.Generator().manual_seed(0))  # [200, 1, 28, 28]
    rows = (out.sum(-1).squeeze(1) * torch.arange(28.0)).sum(-1) / out.sum((1, 2, 3))  # centre of mass
    columns = (out.sum(-2).squeeze(1) * torch.arange(28.0)).sum(-1) / out.sum((1, 2, 3))
    assert len({round(float(c), 3) for c in columns}) > 150  # not one draw for the whole batch
    assert (rows - 14).abs().max() <= 0.25 * 28 + 1e-4 and (columns - 14).abs().max() <= 0.25 * 28 + 1e-4
    assert (columns - 14).abs().max() > 0.2 * 28  # the range is used
    torch.testing.assert_close(out.sum((1, 2, 3)), torch.ones(200))  # mass kept away from the border


def test_the_same_generator_state_gives_the_same_batch() -> None:
    augmentation = RandomAffine(max_rotation=10, max_shift=0.1)
    images = torch.rand(8, 1, 28, 28)
    first = augmentation(images, torch.Generator().manual_seed(3))
    again = augmentation(images, torch.Generator().manual_seed(3))
    other = augmentation(images, torch.Generator().manual_seed(4))
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_rotation": -1}, r"max_rotation must be a number in \[0, 180\] \(degrees\); got -1"),
        ({"max_rotation": float("nan")}, "max_rotation must be a number"),
        ({"max_shift": 0.6}, r"max_shift must be a number in \[0, 0.5\] \(a fraction of the image size\)"),
        ({"max_shift": True}, "max_shift must be a number"),
    ],
)
def test_bad_ranges_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandomAffine(**kwargs)


def test_non_image_batches_are_refused() -> None:
    with pytest.raises(ValueError, match=r"image batches \[B, C, H, W\]; got shape \[4, 784\]"):
        RandomAffine(max_shift=0.1)(torch.rand(4, 784))


def data_module(root: Path, **kwargs) -> MNISTDataModule:
    data = MNISTDataModule(data_dir=str(root), download=False, val_size=40, batch_size=32, **kwargs)
    data.setup("fit")
    return data


def test_data_module_augments_training_batches_only(synthetic_mnist: Path) -> None:
    data = data_module(synthetic_mnist, binarization="none", augment_rotation=10, augment_shift=0.1)
    train = data.train_dataloader()
    train.sampler.set_epoch(0)
    x, _ = next(iter(train))
    stored = train.inputs.index_select(0, train.sampler.indices()[:32])
    assert x.shape == stored.shape and not torch.allclose(x, stored)
    again, _ = next(iter(train))
    torch.testing.assert_close(x, again)  # reproducible within an epoch's seed
    train.sampler.set_epoch(1)
    assert not torch.allclose(next(iter(train))[0], x)
    for loader in (data.val_dataloader(), data.test_dataloader()):
        assert loader.augmentation is None
        torch.testing.assert_close(next(iter(loader))[0], loader.inputs[: loader.batch_size])


def test_data_module_without_augmentation_passes_images_through(synthetic_mnist: Path) -> None:
    train = data_module(synthetic_mnist, binarization="none").train_dataloader()
    assert train.augmentation is None


def test_augmentation_comes_before_the_binarization(synthetic_mnist: Path) -> None:
    data = data_module(synthetic_mnist, binarization="dynamic", augment_shift=0.1)
    x, _ = next(iter(data.train_dataloader()))
    assert set(x.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"augment_rotation": 200}, r"augment_rotation must be a number in \[0, 180\] \(degrees\); got 200"),
        ({"augment_shift": -0.1}, r"augment_shift must be a number in \[0, 0.5\]"),
        ({"augment_shift": "0.1"}, "augment_shift must be a number"),
    ],
)
def test_data_module_refuses_bad_augmentation(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        MNISTDataModule(**kwargs)
