"""Stop training when the loss becomes NaN or infinite, before any checkpoint of that state is written."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, OnExceptionCheckpoint
from lightning.pytorch.trainer.states import TrainerFn


class NonFiniteLossError(FloatingPointError):
    """Raised by :class:`NonFiniteLossGuard`; its message names the step, the epoch and the terms."""


class _Step(NamedTuple):
    global_step: int
    epoch: int
    batch_idx: int
    loss: torch.Tensor
    terms: Mapping[str, torch.Tensor] | None


class NonFiniteLossGuard(Callback):
    """Stops training with :class:`NonFiniteLossError` when the training loss is NaN or infinite.

    The error names the first bad step: its global step (the value of ``trainer.global_step``
    while that batch was trained on), epoch and batch, the loss, and which terms of the model's
    ``loss_terms`` were non-finite and in how many examples, e.g.::

        the training loss became inf at global step 17 (epoch 2, batch 5): non-finite loss terms:
        kl (inf in 3 of 64 examples); training stopped before any checkpoint of this state was
        written; the last checkpoint is .../last.ckpt

    (one line). The zoo's models return their terms to callbacks as ``outputs["terms"]``; for any
    other LightningModule only the loss is checked.

    **No checkpoint of a non-finite state.** Pending losses are checked before everything that can
    write a checkpoint: the start of validation (``ModelCheckpoint`` saves at its end), the end
    of the training epoch and of training, a step at which a ``ModelCheckpoint`` saves by
    ``every_n_train_steps`` or by time, and any full checkpoint being written
    (``on_save_checkpoint``). When the guard stops training, ``save_on_exception`` of every
    ``ModelCheckpoint`` is switched off, so neither ``last.ckpt`` nor a new best file is written
    from the broken weights; the last good ones are left as they were. (Lightning's
    ``OnExceptionCheckpoint``, if configured, still writes its own file of the state at the
    exception, which is what it is for; it does not touch ``last.ckpt``.)

    **Cost.** Testing ``torch.isfinite(loss)`` makes the CPU wait for the GPU (``bool()`` of a
    CUDA tensor synchronises), which would stall the pipeline of asynchronous kernel launches in
    every step. The guard therefore only keeps a reference to each step's loss (already
    computed and detached by Lightning) and terms, and tests the pending ones together every
    ``check_every_n_steps`` steps (when ``trainer.global_step`` is a multiple of it), one
    synchronisation for all of them. By default that is ``trainer.log_every_n_steps`` on
    accelerators and under DDP, so the checks fall on the steps where writing the step metrics
    synchronises anyway, and every step for a single CPU process, where there is nothing to wait
    for. The trade-off: the run notices a bad step up to ``check_every_n_steps - 1``
    steps late, steps that update already broken weights; the report still names the first bad
    step and its terms, and no checkpoint is written in between. Under DDP the decision is
    reduced over processes (any process with a bad loss stops all of them), only at those checks.

    A non-finite gradient with a finite loss shows up one step later, as a non-finite loss of
    the broken weights; the terms named are then those of that step.

    Args:
        check_every_n_steps: steps between checks; ``None`` for the default above.
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        if check_every_n_steps is not None and (
            isinstance(check_every_n_steps, bool)
            or not isinstance(check_every_n_steps, int)
            or check_every_n_steps < 1
        ):
            raise ValueError(
                f"check_every_n_steps must be None or an integer >= 1; got {check_every_n_steps!r}"
            )
        self.check_every_n_steps = check_every_n_steps
        self._pending: list[_Step] = []
        self._current: tuple[int, int, int] = (0, 0, 0)
        self._every = 1
        self.tripped = False

    # ----------------------------------------------------------------- when to check
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._pending.clear()
        self.tripped = False
        if self.check_every_n_steps is not None:
            self._every = self.check_every_n_steps
        elif trainer.strategy.root_device.type == "cpu" and trainer.world_size == 1:
            self._every = 1
        else:
            self._every = max(1, trainer.log_every_n_steps)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._current = (trainer.global_step, trainer.current_epoch, batch_idx)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(outputs, Mapping):
            loss, terms = outputs.get("loss"), outputs.get("terms")
        else:
            loss, terms = outputs, None
        if not isinstance(loss, torch.Tensor):
            return  # a skipped step (training_step returned None)
        self._pending.append(_Step(*self._current, loss, terms if isinstance(terms, Mapping) else None))
        # trainer.global_step % every == 0: the steps where the model's step metrics are written
        # (their transfer to the CPU synchronises there anyway)
        if (
            len(self._pending) >= self._every
            or trainer.global_step % self._every == 0
            or checkpoint_due(trainer)
        ):
            self.check(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self.check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # the last line of defence, for saves the hooks above do not foresee; local only: a
        # checkpoint may be written from one process, where a collective would hang
        if not self.tripped:
            self.check(trainer, collective=False)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        broken = self.tripped or isinstance(exception, NonFiniteLossError)
        if not broken and self._pending:
            broken = not self._pending_finite()
        if broken:
            for callback in trainer.checkpoint_callbacks:
                if getattr(callback, "save_on_exception", False):
                    callback.save_on_exception = False

    # ----------------------------------------------------------------- the check
    def _pending_finite(self) -> bool:
        if len(self._pending) == 1:  # every step on a CPU: one scalar read, ~40x cheaper than stacking
            return math.isfinite(self._pending[0].loss.item())
        losses = torch.stack([step.loss.detach().float().reshape(()) for step in self._pending])
        return bool(torch.isfinite(losses).all())  # the one synchronisation

    def check(self, trainer: L.Trainer, collective: bool = True) -> None:
        """Test the losses of the steps since the last check; raise :class:`NonFiniteLossError`
        (on every process, under DDP) if one was not finite."""
        if not self._pending and not (collective and trainer.world_size > 1):
            return
        finite = self._pending_finite() if self._pending else True
        if collective and trainer.world_size > 1:
            finite = not trainer.strategy.reduce_boolean_decision(not finite, all=False)
        if finite:
            self._pending.clear()
            return
        message = self.diagnose(trainer)
        self._pending.clear()
        self.tripped = True
        raise NonFiniteLossError(message)

    def diagnose(self, trainer: L.Trainer) -> str:
        """The one-line report of the first pending step with a non-finite loss."""
        bad = next((step for step in self._pending if not math.isfinite(float(step.loss))), None)
        if bad is None:
            steps = [step.global_step for step in self._pending] or [trainer.global_step]
            report = (
                f"the training loss became non-finite in another process, between global steps "
                f"{min(steps)} and {max(steps)} (epoch {trainer.current_epoch})"
            )
        else:
            report = (
                f"the training loss became {float(bad.loss)} at global step {bad.global_step} "
                f"(epoch {bad.epoch}, batch {bad.batch_idx}): {describe_terms(bad.terms)}"
            )
        report += "; training stopped before any checkpoint of this state was written"
        last = last_checkpoint(trainer)
        return report + (f"; the last checkpoint is {last}" if last else "")


def describe_terms(terms: Mapping[str, torch.Tensor] | None) -> str:
    """``"non-finite loss terms: kl (inf in 3 of 64 examples)"``, or why none can be named."""
    if terms is None:
        return "the model returned no loss terms to name"
    described = []
    for name, term in terms.items():
        values = term.detach().float().reshape(-1)
        nan, inf = int(torch.isnan(values).sum()), int(torch.isinf(values).sum())
        if nan or inf:
            kinds = " and ".join(
                f"{kind} in {count}" for kind, count in (("nan", nan), ("inf", inf)) if count
            )
            described.append(f"{name} ({kinds} of {values.numel()} examples)")
    if described:
        return "non-finite loss terms: " + ", ".join(described)
    return (
        f"every loss term ({', '.join(terms)}) was finite, their weighted sum was not "
        "(check the weights of loss_weights())"
    )


def checkpoint_due(trainer: L.Trainer) -> bool:
    """Whether a ``ModelCheckpoint`` may save after this training step (``every_n_train_steps``
    or ``train_time_interval``); ``True`` when its settings cannot be read, to stay safe."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, OnExceptionCheckpoint):
            continue  # saves only on an exception
        if not isinstance(callback, ModelCheckpoint):
            return True
        every = getattr(callback, "_every_n_train_steps", None)
        interval = getattr(callback, "_train_time_interval", None)
        if every is None or interval is not None or (every > 0 and trainer.global_step % every == 0):
            return True
    return False


def last_checkpoint(trainer: L.Trainer) -> str | None:
    """The newest checkpoint file a ``ModelCheckpoint`` of ``trainer`` wrote, if any."""
    for callback in trainer.checkpoint_callbacks:
        for path in (getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", "")):
            if path and Path(path).is_file():
                return str(path)
    return None
