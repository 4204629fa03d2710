"""MNISTDataModule on tiny synthetic IDX files: splits, shuffling, sharding, binarization, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vae_zoo.data import EpochSampler, InMemoryBatches, MNISTDataModule


def module(root: Path, **kwargs) -> MNISTDataModule:
    data = MNISTDataModule(data_dir=str(root), download=False, **{"val_size": 40, "batch_size": 32, **kwargs})
    data.setup("fit")
    return data


def all_batches(loader: InMemoryBatches) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_splits_have_the_right_sizes_and_are_disjoint(synthetic_mnist: Path) -> None:
    data = module(synthetic_mnist, binarization="none")
    train_x, _ = data.splits["train"]
    val_x, _ = data.splits["val"]
    test_x, test_y = data.splits["test"]
    assert (train_x.shape, val_x.shape, test_x.shape) == ((200, 1, 28, 28), (40, 1, 28, 28), (60, 1, 28, 28))
    assert train_x.dtype == torch.float32 and train_x.min() >= 0 and train_x.max() <= 1
    train_rows = {tuple(row.tolist()) for row in train_x.flatten(1)[:, :20]}
    assert not any(tuple(row.tolist()) in train_rows for row in val_x.flatten(1)[:, :20])
    torch.testing.assert_close(test_y, torch.arange(60) % 10)


def test_validation_split_depends_only_on_the_seed(synthetic_mnist: Path) -> None:
    first = module(synthetic_mnist, binarization="none", seed=5).splits["val"][0]
    again = module(synthetic_mnist, binarization="none", seed=5).splits["val"][0]
    other = module(synthetic_mnist, binarization="none", seed=6).splits["val"][0]
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)


def test_training_order_changes_each_epoch_and_repeats_for_the_same_epoch(synthetic_mnist: Path) -> None:
    loader = module(synthetic_mnist, binarization="none").train_dataloader()
    assert len(loader) == 7  # ceil(200 / 32)
    loader.sampler.set_epoch(0)
    x0, y0 = all_batches(loader)
    loader.sampler.set_epoch(1)
    x1, _ = all_batches(loader)
    loader.sampler.set_epoch(0)
    x0_again, _ = all_batches(loader)
    assert x0.shape == (200, 1, 28, 28) and y0.dtype == torch.int64
    assert not torch.equal(x0, x1)
    torch.testing.assert_close(x0, x0_again)
    # every training image exactly once per epoch
    train_x = loader.inputs
    assert torch.equal(x0.sum(0), train_x.sum(0)) or torch.allclose(x0.sum(0), train_x.sum(0))
    torch.testing.assert_close(
        torch.sort(x0.flatten(1).sum(1)).values, torch.sort(train_x.flatten(1).sum(1)).values
    )


def test_evaluation_loaders_are_ordered(synthetic_mnist: Path) -> None:
    data = module(synthetic_mnist, binarization="none")
    x, _ = all_batches(data.val_dataloader())
    torch.testing.assert_close(x, data.splits["val"][0])


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_partition_the_training_set(world_size: int) -> None:
    shards = [
        EpochSampler(10, shuffle=True, seed=1, rank=r, world_size=world_size) for r in range(world_size)
    ]
    for shard in shards:
        shard.set_epoch(4)
    indices = [shard.indices() for shard in shards]
    assert len({len(i) for i in indices}) == 1  # equal length: every process takes the same steps
    assert set(torch.cat(indices).tolist()) == set(range(10))


def test_evaluation_shards_see_every_example_once() -> None:
    shards = [EpochSampler(10, shuffle=False, rank=r, world_size=3, pad=False) for r in range(3)]
    assert sorted(torch.cat([s.indices() for s in shards]).tolist()) == list(range(10))
    assert [len(s) for s in shards] == [4, 3, 3]


def test_dynamic_binarization_redraws_training_images_each_epoch(synthetic_mnist: Path) -> None:
    data = module(synthetic_mnist, binarization="dynamic")
    loader = data.train_dataloader()
    loader.sampler.set_epoch(0)
    first, _ = next(iter(loader))
    again, _ = next(iter(loader))
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(first, again)  # same epoch, same draw: resumable
    assert loader.inputs.unique().numel() > 2  # the stored images keep their grey levels
    loader.sampler.shuffle = False
    loader.sampler.set_epoch(0)
    a, _ = next(iter(loader))
    loader.sampler.set_epoch(1)
    b, _ = next(iter(loader))
    assert not torch.equal(a, b)  # same images, new Bernoulli draw
    val = data.splits["val"][0]
    assert set(val.unique().tolist()) <= {0.0, 1.0}  # evaluation drawn once


def test_dynamic_binarization_is_unbiased(synthetic_mnist: Path) -> None:
    loader = module(synthetic_mnist, binarization="dynamic", batch_size=200).train_dataloader()
    loader.sampler.shuffle = False
    draws = []
    for epoch in range(200):
        loader.sampler.set_epoch(epoch)
        draws.append(next(iter(loader))[0])
    mean = torch.stack(draws).mean(0)
    assert (mean - loader.inputs).abs().mean() < 0.03


def test_static_binarization_is_fixed(synthetic_mnist: Path) -> None:
    data = module(synthetic_mnist, binarization="static")
    loader = data.train_dataloader()
    assert set(loader.inputs.unique().tolist()) == {0.0, 1.0}
    assert loader.dynamic_binarization is False
    torch.testing.assert_close(
        module(synthetic_mnist, binarization="static").splits["train"][0], loader.inputs
    )


def test_missing_files_name_the_folder_and_the_files(tmp_path: Path) -> None:
    data = MNISTDataModule(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(FileNotFoundError) as error:
        data.prepare_data()
    message = str(error.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message


def test_data_dir_defaults_to_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch, synthetic_mnist: Path
) -> None:
    monkeypatch.setenv("VAE_ZOO_DATA", str(synthetic_mnist))
    assert MNISTDataModule().data_dir == str(synthetic_mnist)
    monkeypatch.delenv("VAE_ZOO_DATA")
    assert MNISTDataModule().data_dir == "./data"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "cifar10"}, "dataset must be one of"),
        ({"binarization": "otsu"}, "binarization must be one of"),
        ({"batch_size": 0}, "batch_size must be a positive integer; got 0"),
        ({"val_size": -1}, "val_size must be an integer"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MNISTDataModule(**kwargs)


def test_val_size_larger_than_the_training_images(synthetic_mnist: Path) -> None:
    with pytest.raises(ValueError, match="val_size=500 must be smaller than the 240 training images"):
        module(synthetic_mnist, val_size=500)
