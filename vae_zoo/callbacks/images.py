"""One helper through which every callback logs images, whatever logger is attached."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torchvision.utils import make_grid, save_image


def image_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """Tile images [N, C, H, W] in [0, 1] into one [C', H', W'] grid of ``nrow`` per row."""
    return make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=2, pad_value=1.0)


def is_image_shape(shape: tuple[int, ...]) -> bool:
    """Whether examples of ``shape`` can be shown as images: (C, H, W) with C in {1, 3}."""
    return len(shape) == 3 and shape[0] in (1, 3)


def log_image(trainer: L.Trainer, key: str, grid: torch.Tensor) -> list[Path]:
    """Log one image [C, H, W] under ``key`` to every attached logger; rank zero only.

    W&B: ``WandbLogger.log_image``; TensorBoard: ``add_image``; any other logger, or none: a PNG
    file ``<log_dir>/images/<key>_epoch<NNN>.png`` (under ``default_root_dir`` without a logger).
    Returns the PNG files written.
    """
    if not trainer.is_global_zero:
        return []
    written: list[Path] = []
    file_name = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)}_epoch{trainer.current_epoch:03d}.png"
    folders = []
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[grid], step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, grid, global_step=trainer.global_step)
        else:
            folders.append(Path(logger.log_dir or logger.save_dir or trainer.default_root_dir) / "images")
    if not trainer.loggers:
        folders.append(Path(trainer.default_root_dir) / "images")
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        save_image(grid, folder / file_name)
        written.append(folder / file_name)
    return written
