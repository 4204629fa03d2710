"""``vae-zoo predict`` writes what it predicts: one row per example, in files other tools read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

PREDICTIONS_FOLDER = "predictions"


class PredictionWriter(BasePredictionWriter):
    """Writes the outputs of ``predict_step`` (a dict of per-example tensors, or one tensor, named
    ``prediction``) at the end of ``predict``, one row per example in the order of the data:

    * ``<output_dir>/<name>.npz``: one array per output (first axis: the example), plus ``index``;
    * ``<output_dir>/<name>.csv``: the same, one column per value (``mean_0``, ``mean_1``, ...).

    ``name`` is the checkpoint's file name without ``.ckpt`` (``predictions`` without one);
    ``output_dir`` defaults to the run folder of the checkpoint (``<run>/predictions`` for
    ``<run>/checkpoints/best.ckpt``), else ``<default_root_dir>/predictions``. Under DDP each
    process writes its examples to ``<name>_rank<r>.*``; ``index`` then orders them.
    The models of the zoo predict the code (autoencoders), the posterior ``mean`` and
    ``variance`` (VAEs), and the cluster of each example (mixture models).

    Args:
        output_dir: the folder to write to (made when missing).
    """

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output_dir = output_dir
        self.written: list[Path] = []

    def folder(self, trainer: L.Trainer) -> Path:
        """Where the files go (see the class)."""
        if self.output_dir is not None:
            return Path(self.output_dir)
        if trainer.ckpt_path:
            checkpoint_folder = Path(trainer.ckpt_path).parent
            run = checkpoint_folder.parent if checkpoint_folder.name == "checkpoints" else checkpoint_folder
            return run / PREDICTIONS_FOLDER
        return Path(trainer.default_root_dir) / PREDICTIONS_FOLDER

    def write_on_epoch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        stem = Path(trainer.ckpt_path).stem if trainer.ckpt_path else "predictions"
        if trainer.world_size > 1:
            stem += f"_rank{trainer.global_rank}"
        per_loader = predictions if predictions and isinstance(predictions[0], list) else [predictions]
        folder = self.folder(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        self.written = []
        for loader_index, outputs in enumerate(per_loader):
            arrays = collate(outputs)
            suffix = f"_dataloader{loader_index}" if len(per_loader) > 1 else ""
            offset = trainer.global_rank * len(next(iter(arrays.values()))) if trainer.world_size > 1 else 0
            arrays = {"index": np.arange(offset, offset + len(next(iter(arrays.values())))), **arrays}
            npz, csv = folder / f"{stem}{suffix}.npz", folder / f"{stem}{suffix}.csv"
            np.savez(npz, **arrays)
            write_csv(csv, arrays)
            self.written += [npz, csv]
            rank_zero_info(
                f"vae-zoo predict: {len(arrays['index'])} examples ({', '.join(list(arrays)[1:])}) "
                f"written to {npz} and {csv}"
            )


def collate(outputs: Sequence[torch.Tensor | dict[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    """The batch outputs of ``predict_step`` joined along the examples: name -> array [N, ...]."""
    if not outputs:
        raise ValueError("predict returned no batches")
    batches = [output if isinstance(output, dict) else {"prediction": output} for output in outputs]
    return {name: torch.cat([batch[name].detach().cpu() for batch in batches]).numpy() for name in batches[0]}


def write_csv(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """One row per example, one column per value: a name for a [N] array, ``name_j`` for the
    columns of a [N, ...] one; integers written as integers, floats with 7 significant digits."""
    columns, names, formats = [], [], []
    for name, array in arrays.items():
        flat = array.reshape(len(array), -1)
        integer = np.issubdtype(flat.dtype, np.integer) or flat.dtype == bool
        for j in range(flat.shape[1]):
            columns.append(flat[:, j].astype(np.int64 if integer else np.float64))
            names.append(name if array.ndim == 1 else f"{name}_{j}")
            formats.append("%d" if integer else "%.7g")
    table = np.empty((len(columns[0]), len(columns)), dtype=object)
    for j, column in enumerate(columns):
        table[:, j] = column
    np.savetxt(path, table, fmt=formats, delimiter=",", header=",".join(names), comments="")
