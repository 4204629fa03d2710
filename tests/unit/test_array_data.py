"""ArrayDataModule on tiny files written here: every format, splits, shuffling, sharding, labels."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from vae_zoo.data import ArrayDataModule, InMemoryBatches, InMemoryDataModule, MNISTDataModule
from vae_zoo.data.base import split_indices
from vae_zoo.models import GMMVAE

N, D = 40, 5


def table(n: int = N, d: int = D, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs [n, d] in [0, 1] whose first column is the example's index / n (an id), labels 0..2."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    x[:, 0] = np.arange(n) / n
    return x, np.arange(n) % 3


def write_csv(path: Path, x: np.ndarray, y: np.ndarray | None, header: bool, label_at: int = -1) -> Path:
    columns = [f"x{j}" for j in range(x.shape[1])]
    rows = [[repr(float(v)) for v in row] for row in x]
    if y is not None:
        position = label_at if label_at >= 0 else len(columns) + 1 + label_at
        columns.insert(position, "label")
        for row, label in zip(rows, y, strict=True):
            row.insert(position, str(int(label)))
    lines = ([",".join(columns)] if header else []) + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def ids(x: torch.Tensor) -> list[int]:
    """The example indices encoded in the first column of ``x`` [B, D]."""
    return torch.round(x[:, 0].double() * N).long().tolist()


def everything(loader: InMemoryBatches) -> tuple[torch.Tensor, torch.Tensor | None]:
    batches = list(loader)
    x = torch.cat([batch[0] for batch in batches])
    y = torch.cat([batch[1] for batch in batches]) if len(batches[0]) == 2 else None
    return x, y


def write_format(tmp_path: Path, kind: str, x: np.ndarray, y: np.ndarray) -> tuple[Path, dict, bool]:
    """Write ``x`` (and ``y`` where the format carries labels) as ``kind``; return the path, the
    arguments that read it back and whether it has labels."""
    if kind == "npy":
        path = tmp_path / "data.npy"
        np.save(path, x)
        return path, {}, False
    if kind == "npz":
        path = tmp_path / "data.npz"
        np.savez(path, inputs=x, classes=y)
        return path, {"inputs_key": "inputs", "labels_key": "classes"}, True
    if kind == "npz_single":
        path = tmp_path / "data.npz"
        np.savez(path, x)
        return path, {}, False
    if kind == "pt_tensor":
        path = tmp_path / "data.pt"
        torch.save(torch.from_numpy(x), path)
        return path, {}, False
    if kind == "pt_tuple":
        path = tmp_path / "data.pt"
        torch.save((torch.from_numpy(x), torch.from_numpy(y).double()), path)  # integral floats are fine
        return path, {}, True
    if kind == "pt_dict":
        path = tmp_path / "data.pt"
        torch.save({"x": torch.from_numpy(x).half().float(), "y": torch.from_numpy(y)}, path)
        return path, {"inputs_key": "x", "labels_key": "y"}, True
    if kind == "csv_header_label":
        return write_csv(tmp_path / "d.csv", x, y, header=True, label_at=2), {"label_column": "label"}, True
    if kind == "csv_label_index":
        return write_csv(tmp_path / "d.csv", x, y, header=False), {"label_column": -1}, True
    if kind == "csv_plain":
        return write_csv(tmp_path / "d.csv", x, None, header=False), {}, False
    if kind == "csv_header":
        return write_csv(tmp_path / "d.csv", x, None, header=True), {}, False
    raise AssertionError(kind)


FORMATS = [
    "npy",
    "npz",
    "npz_single",
    "pt_tensor",
    "pt_tuple",
    "pt_dict",
    "csv_header_label",
    "csv_label_index",
    "csv_plain",
    "csv_header",
]


@pytest.mark.parametrize("kind", FORMATS)
def test_every_format_round_trips_into_batches(tmp_path: Path, kind: str) -> None:
    x, y = table()
    if kind == "pt_dict":
        x = torch.from_numpy(x).half().float().numpy()
    path, kwargs, labelled = write_format(tmp_path, kind, x, y)
    data = ArrayDataModule(str(path), val_size=10, batch_size=8, **kwargs)
    data.setup("fit")
    assert data.input_shape == (D,)
    expected_x = torch.from_numpy(x).float()
    expected_y = torch.from_numpy(y) if labelled else None
    # predict without test_path: every example of the file, in file order
    got_x, got_y = everything(data.predict_dataloader())
    assert got_x.dtype == torch.float32 and got_x.shape == (N, D)
    torch.testing.assert_close(got_x, expected_x)
    if labelled:
        assert got_y is not None and got_y.dtype == torch.int64
        torch.testing.assert_close(got_y, expected_y)
    else:
        assert got_y is None
    train_batches = list(data.train_dataloader())
    assert [tuple(b[0].shape) for b in train_batches] == [(8, D)] * 3 + [(6, D)]
    assert all(len(batch) == (2 if labelled else 1) for batch in train_batches)
    # the labels travel with their inputs through the shuffle
    for batch in train_batches:
        if labelled:
            torch.testing.assert_close(batch[1], torch.tensor(ids(batch[0])) % 3)


def test_reshape_gives_the_model_its_input_shape(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((12, 2 * 3 * 4)).astype(np.float32)
    np.save(tmp_path / "flat.npy", x)
    data = ArrayDataModule(str(tmp_path / "flat.npy"), reshape=[2, 3, 4], val_size=2, batch_size=4)
    assert data.input_shape == (2, 3, 4)
    torch.testing.assert_close(data.splits["file"][0], torch.from_numpy(x).reshape(12, 2, 3, 4))
    assert next(iter(data.train_dataloader()))[0].shape == (4, 2, 3, 4)


def test_images_keep_their_shape(tmp_path: Path) -> None:
    np.save(tmp_path / "images.npy", np.random.default_rng(0).random((10, 1, 4, 4)))
    assert ArrayDataModule(str(tmp_path / "images.npy"), val_size=2, batch_size=2).input_shape == (1, 4, 4)


@pytest.mark.parametrize(("val_size", "num_val"), [(0, 0), (7, 7), (0.25, 10), (0.1, 4), (0.01, 0)])
def test_splits_are_disjoint_and_cover_the_file(tmp_path: Path, val_size: float, num_val: int) -> None:
    np.save(tmp_path / "x.npy", table()[0])
    data = ArrayDataModule(str(tmp_path / "x.npy"), val_size=val_size, batch_size=4)
    train, val = ids(data.splits["train"][0]), ids(data.splits["val"][0])
    assert len(val) == num_val and len(train) == N - num_val
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(N))
    if num_val == 0:
        assert data.val_dataloader() == []  # Lightning skips validation


def test_validation_split_depends_only_on_the_seed(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", table()[0])

    def val_ids(seed: int) -> list[int]:
        return ids(
            ArrayDataModule(str(tmp_path / "x.npy"), val_size=10, seed=seed, batch_size=4).splits["val"][0]
        )

    assert val_ids(3) == val_ids(3)
    assert val_ids(3) != val_ids(4)


def test_shuffling_differs_across_epochs_and_repeats_for_a_seed(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", table()[0])

    def order(seed: int, epoch: int) -> list[int]:
        loader = ArrayDataModule(
            str(tmp_path / "x.npy"), val_size=0, batch_size=8, seed=seed
        ).train_dataloader()
        loader.sampler.set_epoch(epoch)
        return ids(everything(loader)[0])

    first = order(0, 0)
    assert sorted(first) == list(range(N))  # every example once per epoch
    assert first != list(range(N))
    assert order(0, 1) != first
    assert order(0, 0) == first  # same seed and epoch: same order, also in a new module
    assert order(1, 0) != first
    # evaluation keeps the file order of its split
    data = ArrayDataModule(str(tmp_path / "x.npy"), val_size=10, batch_size=8)
    torch.testing.assert_close(everything(data.val_dataloader())[0], data.splits["val"][0])


@pytest.mark.parametrize("num_train", [40, 39])
def test_ddp_ranks_get_disjoint_shards_that_cover_the_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, num_train: int
) -> None:
    np.save(tmp_path / "x.npy", table()[0])
    data = ArrayDataModule(str(tmp_path / "x.npy"), val_size=N - num_train + 9, batch_size=4)
    data.splits["train"] = (data.splits["file"][0][:num_train], None)  # a train split of known size
    shards = {"train": [], "val": []}
    for rank in range(2):
        monkeypatch.setattr(data, "_rank_and_world", lambda rank=rank: (rank, 2))
        train = data.train_dataloader()
        train.sampler.set_epoch(3)
        shards["train"].append(ids(everything(train)[0]))
        shards["val"].append(ids(everything(data.val_dataloader())[0]))
    first, second = shards["train"]
    assert len(first) == len(second) == -(-num_train // 2)  # equal steps on every process
    assert sorted(set(first) | set(second)) == list(range(num_train))
    if num_train % 2 == 0:
        assert not set(first) & set(second)
    else:  # one example repeated to even out the shards, as DistributedSampler does
        assert len(set(first) & set(second)) == 1
    val_first, val_second = shards["val"]
    assert not set(val_first) & set(val_second)  # evaluation: every example exactly once
    assert sorted(val_first + val_second) == sorted(ids(data.splits["val"][0]))


def test_mnist_and_arrays_share_the_batching_code() -> None:
    assert issubclass(ArrayDataModule, InMemoryDataModule) and issubclass(MNISTDataModule, InMemoryDataModule)
    for name in ("_batches", "_device", "_rank_and_world", "train_dataloader", "val_dataloader"):
        assert name not in vars(ArrayDataModule) and name not in vars(MNISTDataModule), name


def test_dynamic_and_static_binarization(tmp_path: Path) -> None:
    x, _ = table()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "test.npy", x[:8])
    dynamic = ArrayDataModule(
        str(tmp_path / "x.npy"),
        test_path=str(tmp_path / "test.npy"),
        binarization="dynamic",
        val_size=10,
        batch_size=8,
    )
    loader = dynamic.train_dataloader()
    loader.sampler.shuffle = False
    loader.sampler.set_epoch(0)
    first = everything(loader)[0]
    loader.sampler.set_epoch(1)
    second = everything(loader)[0]
    assert set(first.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(first, second)  # a new draw every epoch
    assert loader.inputs.unique().numel() > 2  # the stored values stay continuous
    for split in ("val", "test"):
        assert set(dynamic.splits[split][0].unique().tolist()) <= {0.0, 1.0}  # evaluation drawn once
    static = ArrayDataModule(str(tmp_path / "x.npy"), binarization="static", val_size=10, batch_size=8)
    assert set(static.splits["train"][0].unique().tolist()) == {0.0, 1.0}
    assert static.train_dataloader().dynamic_binarization is False
    # predict on the whole file (file order) shows the very draws the splits hold
    whole = static.splits["file"][0]
    train_index, val_index = split_indices(N, 10, seed=0)
    torch.testing.assert_close(whole[train_index], static.splits["train"][0])
    torch.testing.assert_close(whole[val_index], static.splits["val"][0])
    none = ArrayDataModule(str(tmp_path / "x.npy"), val_size=10, batch_size=8)
    torch.testing.assert_close(none.splits["file"][0], torch.from_numpy(x).float())


def test_test_file_and_the_fallback_to_the_validation_split(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = table()
    write_csv(tmp_path / "train.csv", x, y, header=True)
    write_csv(tmp_path / "test.csv", x[:6] * 0.5, y[:6], header=True)
    data = ArrayDataModule(
        str(tmp_path / "train.csv"),
        test_path=str(tmp_path / "test.csv"),
        label_column="label",
        val_size=5,
        batch_size=8,
    )
    test_x, test_y = everything(data.test_dataloader())
    torch.testing.assert_close(test_x, torch.from_numpy(x[:6] * 0.5).float())
    torch.testing.assert_close(test_y, torch.from_numpy(y[:6]))
    torch.testing.assert_close(everything(data.predict_dataloader())[0], test_x)
    without = ArrayDataModule(str(tmp_path / "train.csv"), label_column="label", val_size=5, batch_size=8)
    with caplog.at_level(logging.INFO):
        fallback_x, _ = everything(without.test_dataloader())
    torch.testing.assert_close(fallback_x, without.splits["val"][0])
    assert "no test_path given: testing on the validation split (5 examples" in caplog.text


def test_hyperparameters_are_saved(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", table()[0])
    data = ArrayDataModule(str(tmp_path / "x.npy"), val_size=0.2, batch_size=4, seed=3)
    assert data.hparams.path == str(tmp_path / "x.npy")
    assert (data.hparams.val_size, data.hparams.batch_size, data.hparams.seed) == (0.2, 4, 3)
    assert data.hparams.reshape is None and "input_shape" not in data.hparams


def quiet_trainer() -> L.Trainer:
    return L.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
    )


@pytest.mark.parametrize("labelled", [False, True])
def test_a_clustering_model_trains_and_tests_with_and_without_labels(tmp_path: Path, labelled: bool) -> None:
    x, y = table(n=60)
    if labelled:
        np.savez(tmp_path / "data.npz", x=x, y=y)
        data = ArrayDataModule(str(tmp_path / "data.npz"), labels_key="y", val_size=20, batch_size=20)
    else:
        np.save(tmp_path / "data.npy", x)
        data = ArrayDataModule(str(tmp_path / "data.npy"), val_size=20, batch_size=20)
    model = GMMVAE(
        input_shape=data.input_shape,
        latent_dim=2,
        hidden_dims=[8],
        likelihood="gaussian",
        num_components=3,
        warmup_epochs=0,
        em_restarts=1,
        em_iterations=5,
    )
    trainer = quiet_trainer()
    trainer.fit(model, datamodule=data)
    (metrics,) = trainer.test(model, datamodule=data, verbose=False)
    assert np.isfinite(metrics["test/elbo"])
    assert ("test/acc" in metrics) == labelled
