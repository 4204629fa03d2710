"""The command's progress bar: training redrawn every few steps, evaluation after every batch."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, redrawn every ``refresh_rate`` training steps (on a CPU a redraw costs
    as much as the rest of the framework's step) and after every batch of
    validation, test and predict: their batches are large and few, so the bar and its estimate of
    the time left move while a long evaluation runs (with ``refresh_rate=20`` and 10 test batches,
    Lightning's bar would stand still until the end).

    Shows what the model logs with ``prog_bar=True``: the training loss and the model's main
    validation figures (see ``LatentVariableModel.progress_bar_metrics``).
    """

    @property
    def refresh_rate(self) -> int:
        """Steps between redraws: the configured rate in training, 1 in evaluation (0: disabled)."""
        rate = super().refresh_rate
        try:
            evaluating = not self.trainer.training
        except TypeError:  # not attached to a trainer yet
            return rate
        return 1 if rate > 0 and evaluating else rate

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """Lightning's items, without the logger's version number (``v_num``): the summary at
        the end of ``fit`` names the run's folder."""
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
