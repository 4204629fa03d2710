"""MNIST, Fashion-MNIST and KMNIST as in-memory LightningDataModules."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torchvision import datasets

from vae_zoo.data.augmentation import (
    MAX_ROTATION_DEGREES,
    MAX_SHIFT_FRACTION,
    SHIFT_UNIT,
    RandomAffine,
    check_range,
)
from vae_zoo.data.base import (
    BINARIZATIONS,
    DataError,
    InMemoryDataModule,
    binarize_once,
    check_optional_path,
    evaluation_copy,
    split_indices,
)
from vae_zoo.validation import check_bool, check_choice

DATASETS: dict[str, type[datasets.MNIST]] = {
    "mnist": datasets.MNIST,
    "fashion_mnist": datasets.FashionMNIST,
    "kmnist": datasets.KMNIST,
}
TEST_SPLITS: tuple[str, ...] = ("test", "all")
IMAGE_SIZE = (28, 28)
NUM_CLASSES = 10
TRAIN_SIZE = 60_000  # training images of every data set of the family
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


IDX_UNSIGNED_BYTE = 0x08


def read_idx(path: Path, shape: tuple[int | None, ...], what: str) -> torch.Tensor:
    """Read an uncompressed IDX file of unsigned bytes after checking it: its magic number, that its
    header's sizes match ``shape`` (``None``: any size) and that the file is exactly as long as
    the header says. A truncated or corrupt file raises a :class:`DataError` naming it, what was
    expected and what was found, instead of whatever a reader would trip over later."""
    ndim = len(shape)
    expected_shape = "[" + ", ".join("N" if size is None else str(size) for size in shape) + "]"
    header_size = 4 + 4 * ndim
    file_size = path.stat().st_size
    with open(path, "rb") as file:
        header = file.read(header_size)
    expected_magic = IDX_UNSIGNED_BYTE << 8 | ndim
    if len(header) < 4:
        raise DataError(
            f"{path}: {file_size} bytes, too short for an IDX file (expected a 4-byte magic number "
            f"0x{expected_magic:08x} and a header); the file is truncated or empty"
        )
    magic = struct.unpack(">I", header[:4])[0]
    if magic != expected_magic:
        raise DataError(
            f"{path}: magic number 0x{magic:08x}, expected 0x{expected_magic:08x} (uncompressed IDX "
            f"file of unsigned bytes with {ndim} dimensions, {what}); the file is corrupt, still "
            f"compressed (.gz starts with 0x1f8b) or not this data set's file"
        )
    if len(header) < header_size:
        raise DataError(
            f"{path}: {file_size} bytes, shorter than the {header_size}-byte header of an IDX file "
            f"with {ndim} dimensions; the file is truncated"
        )
    dims = struct.unpack(f">{ndim}I", header[4:])
    if any(size is not None and size != found for size, found in zip(shape, dims, strict=True)):
        raise DataError(f"{path}: header gives shape {list(dims)}, expected {expected_shape} ({what})")
    expected_size = header_size + int(np.prod(dims))
    if file_size != expected_size:
        raise DataError(
            f"{path}: {file_size} bytes, but its header (shape {list(dims)}) needs {header_size} + "
            f"{expected_size - header_size} = {expected_size} bytes; the file is "
            f"{'truncated' if file_size < expected_size else 'corrupt (longer than its header says)'}"
        )
    array = np.fromfile(path, dtype=np.uint8, offset=header_size).reshape(dims)
    return torch.from_numpy(array)


class MNISTDataModule(InMemoryDataModule):
    """MNIST-family images in [0, 1] as ``[B, 1, 28, 28]`` float batches with int64 labels.

    Each split is held in memory as one tensor (moved to the training device when
    ``on_device``) and batched by indexing (:class:`~vae_zoo.data.batches.InMemoryBatches`).
    The IDX files are checked before they are read: a truncated or corrupt file raises a
    ``ValueError`` naming it, what its header should hold and what it holds.

    Args:
        data_dir: root folder holding ``<Dataset>/raw/`` with torchvision's uncompressed IDX
            files; default: the ``VAE_ZOO_DATA`` environment variable, else ``./data``.
        dataset: ``"mnist"``, ``"fashion_mnist"`` or ``"kmnist"``.
        batch_size: training batch size; at most the size of the training split.
        eval_batch_size: validation/test batch size (default: ``batch_size``).
        val_size: images held out of the 60k training images for validation, chosen by ``seed``.
        binarization: ``"none"`` (grey levels), ``"dynamic"`` (a fresh Bernoulli draw of every
            training image each time it is seen; validation and test drawn once) or ``"static"``
            (every split drawn once).
        seed: seed of the validation split, the shuffling and the binarization; in [0, 2**32).
        download: download missing files (rank zero only); when impossible, or when False,
            a missing file raises ``FileNotFoundError`` naming the folder and the files, and a
            ``data_dir`` that does not exist says so.
        on_device: keep the tensors on the training device (GPU) instead of the CPU.
        test_split: what ``test`` (and ``predict``) evaluate: ``"test"``, the 10k test images,
            or ``"all"``, the 60k training images (validation images included, in file order)
            followed by the 10k test images: 70k in all, binarized as evaluation splits are
            (drawn once; under static binarization the very draws the model was trained on).
            Clustering papers (DEC, VaDE) report accuracy over these 70k images; a model has
            seen most of them in training, so ``"all"`` measures clustering, not generalization.
            Setup logs a line saying so.
        augment_rotation: rotate every training image by its own random angle of up to this
            many degrees, in [0, 180], each time it is seen (validation, test and the other
            splits are never augmented); see :class:`~vae_zoo.data.augmentation.RandomAffine`.
        augment_shift: shift every training image by up to this fraction of its size, in
            [0, 0.5], likewise. Both 0 (the default): no augmentation.
    """

    input_shape: tuple[int, int, int] = (1, *IMAGE_SIZE)

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
        test_split: Literal["test", "all"] = "test",
        augment_rotation: float = 0.0,
        augment_shift: float = 0.0,
    ) -> None:
        check_choice("dataset", dataset, list(DATASETS), DataError)
        check_choice("binarization", binarization, BINARIZATIONS, DataError)
        super().__init__(batch_size, eval_batch_size, binarization, seed, on_device)
        data_dir = check_optional_path("data_dir", data_dir)
        if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < TRAIN_SIZE:
            raise DataError(f"val_size must be an integer in [0, {TRAIN_SIZE}); got {val_size!r}")
        self.download = check_bool("download", download, DataError)
        self.test_split = check_choice("test_split", test_split, TEST_SPLITS, DataError)
        self.augmentation = RandomAffine(
            check_range("augment_rotation", augment_rotation, MAX_ROTATION_DEGREES, "degrees", DataError),
            check_range("augment_shift", augment_shift, MAX_SHIFT_FRACTION, SHIFT_UNIT, DataError),
        )
        self.save_hyperparameters()
        self.data_dir = data_dir or default_data_dir()
        self.dataset = dataset
        self.val_size = val_size

    def train_augmentation(self) -> RandomAffine | None:
        """The random rotation and shift of training images, or ``None`` when both are 0."""
        return None if self.augmentation.identity else self.augmentation

    def prepare_data(self) -> None:
        """Download missing files when allowed; otherwise name the folder and the files."""
        root = Path(self.data_dir)
        if root.exists() and not root.is_dir():
            raise FileNotFoundError(
                f"data_dir={self.data_dir!r} is a file, not a folder; set data_dir (or "
                f"${DATA_DIR_VARIABLE}) to the folder holding {DATASETS[self.dataset].__name__}/raw/"
            )
        if not missing_files(self.dataset, self.data_dir):
            return
        folder, names = expected_files(self.dataset, self.data_dir)
        existed = root.is_dir()
        if not existed and not self.download:
            raise FileNotFoundError(
                f"data_dir={self.data_dir!r} does not exist (download=False); expected the "
                f"uncompressed IDX files {names} in {folder}; set data_dir (or "
                f"${DATA_DIR_VARIABLE}) to an existing folder, or allow the download"
            )
        reason = "download=False"
        if self.download:
            try:
                for train in (True, False):
                    DATASETS[self.dataset](self.data_dir, train=train, download=True)
                return
            except Exception as error:  # any failure of the download is reported the same way
                reason = f"the download failed: {error}"
            if not existed:
                reason = f"data_dir did not exist; {reason}"
        raise FileNotFoundError(
            f"{self.dataset} not found in {folder} ({reason}); expected the uncompressed IDX files "
            f"{names} there (data_dir={self.data_dir!r}; set data_dir or ${DATA_DIR_VARIABLE})"
        )

    def _read_split(self, folder: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [N, 28, 28] uint8 and labels [N] int64 of one file pair, checked."""
        images_path = folder / f"{prefix}-images-idx3-ubyte"
        labels_path = folder / f"{prefix}-labels-idx1-ubyte"
        images = read_idx(images_path, (None, *IMAGE_SIZE), "N images of 28x28 pixels")
        labels = read_idx(labels_path, (None,), "N labels")
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
                f"{labels.shape[0]} labels; the two must match (one of the files is corrupt)"
            )
        if images.shape[0] == 0:
            raise DataError(f"{images_path} holds no images")
        if int(labels.max()) >= NUM_CLASSES:
            index = int(torch.nonzero(labels >= NUM_CLASSES)[0])
            raise DataError(
                f"{labels_path}: label {int(labels[index])} at index {index}; expected labels 0 to "
                f"{NUM_CLASSES - 1} (the file is corrupt or not this data set's)"
            )
        return images, labels.long()

    def setup(self, stage: str | None = None) -> None:
        """Load the splits into memory: train/val from the 60k images, test from the 10k (or all)."""
        if self.splits:
            return
        self.prepare_data()
        folder, _ = expected_files(self.dataset, self.data_dir)
        train_images, train_labels = self._read_split(folder, "train")
        test_images, test_labels = self._read_split(folder, "t10k")
        num_train = train_images.shape[0]
        if self.val_size >= num_train:
            raise DataError(f"val_size={self.val_size} must be smaller than the {num_train} training images")
        self._check_batch_size(
            num_train - self.val_size, f"{num_train} training images minus val_size={self.val_size}"
        )
        images = train_images.unsqueeze(1).float().div_(255)  # [60000, 1, 28, 28]
        train_index, val_index = split_indices(num_train, self.val_size, self.seed)
        splits = {
            "train": (images[train_index], train_labels[train_index]),
            "val": (images[val_index], train_labels[val_index]),
            "test": (test_images.unsqueeze(1).float().div_(255), test_labels),
        }
        for offset, (name, (x, y)) in enumerate(splits.items()):
            if self.binarization == "static" or (self.binarization == "dynamic" and name != "train"):
                x = binarize_once(x, self.seed + 1000 + offset)
            self.splits[name] = (x, y)
        if self.test_split == "all":
            self.splits["test"] = self._all_images(images, train_labels, train_index, val_index)

    def _all_images(
        self, images: torch.Tensor, labels: torch.Tensor, train_index: torch.Tensor, val_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training images in file order, as evaluation splits hold them, then the test split."""
        test_x, test_y = self.splits["test"]
        images = evaluation_copy(images, train_index, val_index, self.splits, self.binarization, self.seed)
        num_train, num_test = images.shape[0], test_x.shape[0]
        rank_zero_info(
            f"{type(self).__name__}: test_split='all': the test split is all "
            f"{num_train + num_test:,} images ({num_train:,} training + {num_test:,} test), not only "
            f"the {num_test:,} test images; the model was trained on most of them"
        )
        return torch.cat([images, test_x]), torch.cat([labels, test_y])
