"""The command's progress bar: training redrawn every few steps, evaluation after every batch."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, redrawn every ``refresh_rate`` training steps (a redraw costs about a
    millisecond on a CPU, as much as the rest of the framework's step) and after every batch of
    validation, test and predict: their batches are large and few, so the bar and its estimate of
    the time left move while a long evaluation runs (with ``refresh_rate=20`` and 10 test batches,
    Lightning's bar would stand still until the end).

    Shows what the model logs with ``prog_bar=True``: the training loss and the model's main
    validation figures (see ``LatentVariableModel.progress_bar_metrics``).
    """

    def __init__(self, refresh_rate: int = 20, process_position: int = 0, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        self._evaluating = False

    @property
    def refresh_rate(self) -> int:
        """Steps between redraws: the configured rate in training, 1 in evaluation (0: disabled)."""
        rate = super().refresh_rate
        return 1 if rate > 0 and self._evaluating else rate

    def _start_evaluation(self) -> None:
        self._evaluating = True

    def _end_evaluation(self) -> None:
        self._evaluating = False

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_evaluation()
        super().on_validation_start(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._end_evaluation()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_evaluation()
        super().on_test_start(trainer, pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_test_end(trainer, pl_module)
        self._end_evaluation()

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_evaluation()
        super().on_predict_start(trainer, pl_module)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_predict_end(trainer, pl_module)
        self._end_evaluation()

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_evaluation()
        super().on_sanity_check_start(trainer, pl_module)

    def on_sanity_check_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_sanity_check_end(trainer, pl_module)
        self._end_evaluation()

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """Lightning's items, without the logger's version number (``v_num``): the summary at
        the end of ``fit`` names the run's folder."""
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
