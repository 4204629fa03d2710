"""Checkpoints to resume from: files that are either the old one or the new one, never a torn mix,
and a ``last.ckpt`` that really holds the last epoch."""

from __future__ import annotations

import contextlib
import os
import pickle
import secrets
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vae_zoo.compat import (
    checkpoint_schedule,
    is_local_path,
    save_last_unless_saved,
    saves_at_train_epoch_end,
)
from vae_zoo.errors import CheckpointError


class AtomicCheckpointIO(TorchCheckpointIO):
    """A ``CheckpointIO`` whose files are replaced atomically: a process killed while saving
    leaves the previous checkpoint byte for byte as it was.

    ``save_checkpoint`` serialises into a temporary file in the target's folder
    (``.<name>.<random>.tmp``), flushes and ``fsync``s it, then ``os.replace``s it over the
    target (an atomic rename on POSIX and Windows, since both lie on one file system) and
    ``fsync``s the folder so that the rename itself survives a power cut. A failure before the
    rename removes the temporary file and re-raises; a kill leaves at most a ``.tmp`` file, which
    the next successful save of that name does not touch and nothing reads.

    Lightning's own ``TorchCheckpointIO`` serialises to memory first, so an exception in
    ``torch.save`` is harmless there too, but it writes the bytes through a temporary file of the
    system's temp folder and moves it over the target, which is a copy when that folder is on
    another file system, and nothing is fsynced: a kill or a crash during that copy leaves a torn
    ``last.ckpt``. Paths that are not local (``s3://...``) are left to Lightning's implementation.

    The ``vae-zoo`` command uses it unless ``--trainer.plugins`` names another ``CheckpointIO``.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not is_local_path(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, Path(path))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save(obj, path)`` through a fsynced temporary file in ``path``'s folder and ``os.replace``."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # os.open with mode 0o666 lets the umask decide, as for any new file (mkstemp would make it 0o600)
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_folder(folder)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class BestAndLastCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``save_last=True`` writes ``last.ckpt`` at the end of
    every epoch (after validation), whether or not the monitored value improved.

    Since Lightning 2.6, ``save_last`` writes ``last.ckpt`` only when a top-k checkpoint is
    written at the same step: with ``monitor="val/loss"`` and ``save_top_k=1``, the command's
    defaults, ``last.ckpt`` was a copy of the best epoch, and a run resumed from it after an
    interruption silently went back to that epoch and trained the epochs after it again. Here
    ``last.ckpt`` is the state to resume from, as it was before 2.6 (where this class changes
    nothing). The checkpoint's callback state keeps ``ModelCheckpoint``'s key, so runs resume
    across the change in either direction.
    """

    @property
    def state_key(self) -> str:
        # Lightning formats this key for every hook it calls on the callback (its profiler's
        # label), several times a training step: made once per setting of the fields it names
        settings = checkpoint_schedule(self)
        cached = getattr(self, "_state_key_cache", None)
        if cached is None or cached[0] != settings:
            key = super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)
            cached = self._state_key_cache = (settings, key)
        return cached[1]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if saves_at_train_epoch_end(self, trainer):
            save_last_unless_saved(self, trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not saves_at_train_epoch_end(self, trainer):
            save_last_unless_saved(self, trainer)


# ckpt_path values that Lightning resolves itself ("last", "best", ...), and remote paths, are not read
SPECIAL_CHECKPOINT_PATHS = ("last", "best", "hpc", "registry")
# arguments of a data module that decide which examples a model sees and how they look; the
# others (batch sizes, folders, the validation split, augmentation) leave a test comparable
DATA_IDENTITY_ARGUMENTS = ("dataset", "binarization", "path", "reshape", "inputs_key", "label_column")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checkpoint at ``path``, loaded on the CPU with ``weights_only=True``; ``None`` for
    names that Lightning resolves itself (``last``, ``best``, remote URLs) and for a valid file
    whose objects ``weights_only`` refuses (Lightning decides about those).

    Raises :class:`~vae_zoo.errors.CheckpointError` naming the file and what is wrong with it:
    missing, a folder, empty, not a PyTorch file (with its first bytes), truncated or damaged,
    or a PyTorch file that is no Lightning checkpoint (no ``state_dict``).
    """
    text = os.fspath(path)
    if text in SPECIAL_CHECKPOINT_PATHS or "://" in text:
        return None
    file = Path(text)
    if not file.exists():
        raise CheckpointError(f"ckpt_path={text!r} does not exist")
    if not file.is_file():
        raise CheckpointError(f"ckpt_path={text!r} is a folder, not a checkpoint file (*.ckpt)")
    with open(file, "rb") as handle:
        head = handle.read(16)
    if not head:
        raise CheckpointError(f"ckpt_path={text!r} is empty, not a checkpoint")
    is_zip = head.startswith(b"PK\x03\x04")
    if not is_zip and not head.startswith(b"\x80"):  # neither torch's zip format nor a pickle
        raise CheckpointError(
            f"ckpt_path={text!r} is not a PyTorch checkpoint: it starts with {head!r}, "
            "not a zip archive (what torch.save and Lightning write)"
        )
    if is_zip and not zipfile.is_zipfile(file):
        raise CheckpointError(
            f"ckpt_path={text!r} is truncated or damaged: a zip archive without its table of contents "
            f"({file.stat().st_size} bytes; an interrupted copy or download?)"
        )
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            return None  # objects beyond tensors and plain data: Lightning's own load decides
        raise CheckpointError(f"ckpt_path={text!r} cannot be read: {first_line(error)}") from error
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise CheckpointError(f"ckpt_path={text!r} is truncated or damaged: {first_line(error)}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"ckpt_path={text!r} is a PyTorch file but no Lightning checkpoint (it has no 'state_dict')"
        )
    return checkpoint


def first_line(error: BaseException) -> str:
    """The first line of an error's message, at most 200 characters."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:200]


def checkpoint_data_differences(
    checkpoint: dict[str, Any], data_class: str, data_arguments: dict[str, Any]
) -> list[str]:
    """How the data module of a config (``data_class`` and its arguments) differs from the one
    ``checkpoint`` was trained on, in :data:`DATA_IDENTITY_ARGUMENTS`: ``"binarization: 'none'
    here, 'dynamic' in the checkpoint"``, ...; empty when the checkpoint does not say."""
    saved = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    saved_class = saved.pop("_class_path", None)
    here, there = data_class.rsplit(".", 1)[-1], (saved_class or "").rsplit(".", 1)[-1]
    if saved_class is not None and here != there:
        return [f"data: {here} here, {there} in the checkpoint"]
    differences = []
    for name in DATA_IDENTITY_ARGUMENTS:
        if name not in saved or name not in data_arguments:
            continue
        if normalise(saved[name]) != normalise(data_arguments[name]):
            differences.append(f"{name}: {data_arguments[name]!r} here, {saved[name]!r} in the checkpoint")
    return differences


def normalise(value: Any) -> Any:
    """A value as compared across a config and a checkpoint: tuples as lists, paths as strings."""
    if isinstance(value, (tuple, list)):
        return [normalise(item) for item in value]
    return os.fspath(value) if isinstance(value, os.PathLike) else value
