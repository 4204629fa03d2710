"""Helpers shared by the benchmark scripts (run them as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import importlib
import platform
from pathlib import Path

import torch

from vae_zoo.models.base import LatentVariableModel


def hardware() -> str:
    """A one-line description of the machine the figures come from."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU), so that a timer around it
    measures the work, not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_model(path: Path) -> LatentVariableModel:
    """The model of a checkpoint written by ``vae-zoo fit`` (its class from the checkpoint)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    class_path = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    if class_path is None:
        raise SystemExit(f"{path}: no model class in the checkpoint (write it with `vae-zoo fit`)")
    module, name = class_path.rsplit(".", 1)
    return (
        getattr(importlib.import_module(module), name).load_from_checkpoint(path, map_location="cpu").eval()
    )
