"""Random affine augmentation of image batches, drawn per image on the batch's device."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from vae_zoo.validation import is_number

MAX_ROTATION_DEGREES = 180.0
MAX_SHIFT_FRACTION = 0.5
SHIFT_UNIT = "a fraction of the image size"


def affine_transform(images: torch.Tensor, angles: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate image ``b`` of ``images`` [B, C, H, W] by ``angles[b]`` radians about its centre and
    shift it by ``shifts[b] = (s_x, s_y)`` of its width and height (positive: towards larger
    column and row indices), bilinearly, 0 outside. ``angles`` [B], ``shifts`` [B, 2].

    The output pixel at normalised position ``p`` (``[-1, 1]`` across the image, as
    ``affine_grid`` has it) takes the input at ``R(angle) p - 2 s``.
    """
    cos, sin = angles.cos(), angles.sin()
    theta = torch.stack(
        [torch.stack([cos, -sin, -2 * shifts[:, 0]], -1), torch.stack([sin, cos, -2 * shifts[:, 1]], -1)], -2
    )  # [B, 2, 3]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # [B, H, W, 2]
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def check_range(name: str, value: Any, high: float, unit: str, error: type[ValueError] = ValueError) -> float:
    """``value`` as a float if it is a number in ``[0, high]``, else an ``error`` naming ``name``."""
    if not (is_number(value) and 0 <= value <= high):
        raise error(f"{name} must be a number in [0, {high:g}] ({unit}); got {value!r}")
    return float(value)


class RandomAffine:
    """Rotate and shift every image of a batch by its own random amount.

    Each image ``[C, H, W]`` is rotated by an angle drawn uniformly from
    ``[-max_rotation, max_rotation]`` degrees about its centre and shifted by
    ``(u_x * W, u_y * H)`` pixels, ``u ~ U(-max_shift, max_shift)``, by
    :func:`affine_transform`; pixels are resampled bilinearly and those that come from outside
    the image are 0. Applied to training batches only; it makes the
    model's codes invariant to small deformations, which is what clustering needs (Guo et al.
    2018, "Deep Embedded Clustering with Data Augmentation": rotations of 10 degrees and shifts
    of 10% on MNIST).

    Args:
        max_rotation: largest rotation, degrees in [0, 180].
        max_shift: largest shift, a fraction of the image's width and height in [0, 0.5].
    """

    def __init__(self, max_rotation: float = 0.0, max_shift: float = 0.0) -> None:
        self.max_rotation = check_range("max_rotation", max_rotation, MAX_ROTATION_DEGREES, "degrees")
        self.max_shift = check_range("max_shift", max_shift, MAX_SHIFT_FRACTION, SHIFT_UNIT)

    @property
    def identity(self) -> bool:
        """Whether every draw leaves the images as they are."""
        return self.max_rotation == 0 and self.max_shift == 0

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``images`` [B, C, H, W], each rotated and shifted by its own draw: [B, C, H, W]."""
        if images.dim() != 4:
            raise ValueError(f"RandomAffine needs image batches [B, C, H, W]; got shape {list(images.shape)}")
        batch = images.shape[0]
        options: dict[str, Any] = {"generator": generator, "device": images.device, "dtype": images.dtype}
        angles = (2 * torch.rand(batch, **options) - 1) * math.radians(self.max_rotation)  # [B]
        shifts = (2 * torch.rand(batch, 2, **options) - 1) * self.max_shift  # [B, 2], (x, y)
        return affine_transform(images, angles, shifts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_rotation={self.max_rotation}, max_shift={self.max_shift})"
