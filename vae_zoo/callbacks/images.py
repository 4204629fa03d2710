"""One helper through which every callback logs images, whatever logger is attached."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image
from torchvision.utils import make_grid


def image_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """Tile images [N, C, H, W] in [0, 1] into one [C', H', W'] grid of ``nrow`` per row."""
    return make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=2, pad_value=1.0)


def grid_pixels(grid: torch.Tensor) -> np.ndarray:
    """The 8-bit pixels of a grid [C, H, W] in [0, 1]: ``round(255 * value)`` as uint8 [H, W, C].

    Every logger receives these same bytes: W&B turns a float tensor in [0, 1] into uint8 without
    scaling it (all-black images under wandb 0.31), and TensorBoard scales by 255 and truncates
    where a PNG of torchvision rounds, so no float image is handed to any of them.
    """
    values = grid.detach().float().clamp(0, 1).cpu().mul(255).add(0.5).floor()
    return values.to(torch.uint8).permute(1, 2, 0).numpy()


def is_image_shape(shape: tuple[int, ...]) -> bool:
    """Whether examples of ``shape`` can be shown as images: (C, H, W) with C in {1, 3}."""
    return len(shape) == 3 and shape[0] in (1, 3)


def log_image(trainer: L.Trainer, key: str, grid: torch.Tensor) -> list[Path]:
    """Log one image [C, H, W] in [0, 1] under ``key`` to every attached logger; rank zero only.

    The pixels are :func:`grid_pixels` for every logger. W&B: ``WandbLogger.log_image``;
    TensorBoard: ``add_image``; any other logger, or none: a PNG file
    ``<log_dir>/images/<key>_epoch<NNN>.png`` (under ``default_root_dir`` without a logger).
    Returns the PNG files written.
    """
    if not trainer.is_global_zero:
        return []
    pixels = grid_pixels(grid)
    written: list[Path] = []
    file_name = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)}_epoch{trainer.current_epoch:03d}.png"
    folders = []
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[pixels], step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, pixels, global_step=trainer.global_step, dataformats="HWC")
        else:
            folders.append(Path(logger.log_dir or logger.save_dir or trainer.default_root_dir) / "images")
    if not trainer.loggers:
        folders.append(Path(trainer.default_root_dir) / "images")
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(folder / file_name)
        written.append(folder / file_name)
    return written
