"""Shared fixtures: tiny synthetic MNIST-format data written by the tests themselves."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format of LeCun's MNIST files (big-endian header)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def make_mnist_folder(root: Path, n_train: int = 240, n_test: int = 60, seed: int = 0) -> Path:
    """Write random 28x28 images with labels 0..9 as ``root/MNIST/raw/*-ubyte``; return root."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return root


def tiny_model_args(data_dir: Path, model: str = "VAE") -> list[str]:
    """Command-line arguments of a tiny ``model`` (4 latent dimensions, one hidden layer of 32) on
    the synthetic MNIST folder ``data_dir``: 200 training, 40 validation images, batches of 50."""
    return [
        "--model",
        model,
        "--model.latent_dim",
        "4",
        "--model.hidden_dims",
        "[32]",
        "--data",
        "vae_zoo.data.MNISTDataModule",
        "--data.data_dir",
        str(data_dir),
        "--data.val_size",
        "40",
        "--data.batch_size",
        "50",
        "--data.download",
        "false",
    ]


@pytest.fixture
def synthetic_mnist(tmp_path: Path) -> Path:
    """A data_dir holding 240 training and 60 test images of random noise."""
    return make_mnist_folder(tmp_path / "data")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
