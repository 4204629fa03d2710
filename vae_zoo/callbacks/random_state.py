"""Random number generator states in checkpoints, so that a resumed run draws the same noise."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class RandomStateCheckpoint(Callback):
    """Stores the global random states in every checkpoint and restores them when training resumes.

    Lightning checkpoints weights, optimizer, loops and callbacks, but not the random number
    generators. A run resumed with ``--ckpt_path`` therefore drew its reparameterization noise
    (``torch.randn`` in ``rsample``), and anything else using the global generators, from the
    state that ``seed_everything`` left at the start of the *new* process, not from where the
    interrupted run was: it trained on other noise than an uninterrupted run. With this callback
    (on by default in the ``vae-zoo`` command) a resumed run on the same hardware ends with the
    same weights and metrics as an uninterrupted one. Data order and dynamic binarization need
    no help: :class:`~vae_zoo.data.EpochSampler` draws them from ``(seed, epoch)``.

    Saved: the CPU generator of torch, the CUDA generator of the module's device (when the module
    is on a GPU), numpy's and Python's global generators, as plain tensors and numbers (so
    checkpoints still load with ``weights_only=True``). They are restored in ``on_train_start``,
    after Lightning's sanity check and everything else that runs between loading the checkpoint
    and the first training batch.

    Under DDP the file holds the states of rank zero, and every rank resumes from them: a resumed
    multi-process run is reproducible, but ranks other than zero draw other noise than they would
    have without the interruption.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, Any] | None = None
        self._device: torch.device | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._device = trainer.strategy.root_device

    def state_dict(self) -> dict[str, Any]:
        return collect_random_states(self._device)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._loaded:
            restore_random_states(self._loaded, pl_module.device)
        self._loaded = None


def collect_random_states(device: torch.device | None = None) -> dict[str, Any]:
    """The global generators' states as tensors and numbers (``torch.load(weights_only=True)``-safe)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
    }
    if device is not None and device.type == "cuda" and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_random_states(states: dict[str, Any], device: torch.device | None = None) -> None:
    """Set the global generators to ``states`` from :func:`collect_random_states`."""
    torch.set_rng_state(states["torch"].cpu())
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss_next"]))
    if "cuda" in states and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"].cpu(), device)
