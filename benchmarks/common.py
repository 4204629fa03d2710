"""Helpers shared by the benchmark scripts (run them as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import platform

import torch


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
