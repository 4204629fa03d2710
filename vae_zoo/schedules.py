"""The KL weight (and Burgess's capacity) as a pure function of training progress.

A VAE-family model holds at most one :class:`KLSchedule` (its ``kl_schedule`` attribute) and
sets its ``kl_weight`` and ``kl_capacity`` from it before every training step
(:meth:`~vae_zoo.models.VAE.on_train_batch_start`): the schedule comes either from the model's
own arguments (``BetaVAE(capacity_max=...)``) or from the
:class:`~vae_zoo.callbacks.KLAnnealing` callback, never from both. Being a function of the
step (or epoch), it continues exactly in a resumed run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import lightning as L

ScheduleName = Literal["constant", "linear", "sigmoid", "cyclical", "capacity"]
SCHEDULES: tuple[str, ...] = ("constant", "linear", "sigmoid", "cyclical", "capacity")
Unit = Literal["step", "epoch"]


def linear_ramp(t: float, start: float, end: float, duration: float) -> float:
    """Bowman et al.'s linear warm-up: ``start + (end - start) * min(1, t / duration)``."""
    return start + (end - start) * min(1.0, t / duration)


def sigmoid_ramp(t: float, start: float, end: float, duration: float, steepness: float = 10.0) -> float:
    """A logistic warm-up centred at ``duration / 2``:
    ``start + (end - start) / (1 + exp(-steepness * (t / duration - 1/2)))``."""
    return start + (end - start) / (1.0 + math.exp(-steepness * (t / duration - 0.5)))


def cyclical_ramp(t: float, start: float, end: float, period: float, ratio: float) -> float:
    """Fu et al. 2019: within each period the weight rises linearly from ``start`` to ``end``
    over the first ``ratio`` of the period, then stays at ``end``:
    ``tau = (t mod period) / period``, ``w = start + (end - start) * min(1, tau / ratio)``."""
    tau = math.fmod(t, period) / period
    return start + (end - start) * min(1.0, tau / ratio)


def _check_non_negative(name: str, value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0; got {value}")


@dataclass(frozen=True)
class KLSchedule:
    """The KL weight ``w(t)`` and target KL ``C(t)`` at progress ``t`` (the global step, or the
    epoch with ``unit="epoch"``):

    * ``"constant"``: ``w = end``.
    * ``"linear"`` (Bowman et al. 2016): ``w`` from ``start`` to ``end`` over ``duration``.
    * ``"sigmoid"``: a logistic ramp from ``start`` to ``end`` centred at ``duration / 2``.
    * ``"cyclical"`` (Fu et al. 2019): ``cycles`` periods over ``total`` (default: the whole
      run), each rising over the fraction ``ratio`` and then flat at ``end``.
    * ``"capacity"`` (Burgess et al. 2018): the loss is ``gamma * |KL - C(t)|`` with
      ``C(t) = capacity_max * min(1, t / duration)``; ``w = gamma``.

    For the other schedules ``C(t)`` is ``None`` (the loss is ``w * KL``).
    """

    schedule: ScheduleName = "linear"
    start: float = 0.0
    end: float = 1.0
    duration: float = 10_000
    unit: Unit = "step"
    cycles: int = 4
    ratio: float = 0.5
    total: float | None = None
    capacity_max: float = 25.0
    gamma: float = 1000.0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}; got {self.schedule!r}")
        if self.unit not in ("step", "epoch"):
            raise ValueError(f"unit must be 'step' or 'epoch'; got {self.unit!r}")
        for name in ("duration", "ratio"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)}")
        if self.ratio > 1:
            raise ValueError(f"ratio must be in (0, 1]; got {self.ratio}")
        for name in ("start", "end", "capacity_max", "gamma"):
            _check_non_negative(name, getattr(self, name))
        if not (isinstance(self.cycles, int) and self.cycles >= 1):
            raise ValueError(f"cycles must be an integer >= 1; got {self.cycles!r}")
        if self.total is not None and not self.total > 0:
            raise ValueError(f"total must be None or > 0; got {self.total}")

    def weight_at(self, t: float, total: float | None = None) -> float:
        """``w(t)``; ``total`` is the run's length, used by the cyclical schedule without ``total``."""
        if self.schedule == "constant":
            return self.end
        if self.schedule == "linear":
            return linear_ramp(t, self.start, self.end, self.duration)
        if self.schedule == "sigmoid":
            return sigmoid_ramp(t, self.start, self.end, self.duration)
        if self.schedule == "cyclical":
            length = self.total or total
            if length is None:
                raise ValueError("the cyclical schedule needs total (or a trainer that knows its length)")
            return cyclical_ramp(t, self.start, self.end, length / self.cycles, self.ratio)
        return self.gamma

    def capacity_at(self, t: float) -> float | None:
        """``C(t)`` of the capacity schedule; ``None`` for the others."""
        if self.schedule != "capacity":
            return None
        return linear_ramp(t, 0.0, self.capacity_max, self.duration)

    def progress(self, trainer: L.Trainer) -> tuple[float, float | None]:
        """``t`` of ``trainer`` in this schedule's unit and, where the cyclical schedule needs it,
        the run's length in that unit (else ``None``)."""
        if self.unit == "epoch":
            return float(trainer.current_epoch), float(trainer.max_epochs) if trainer.max_epochs else None
        if self.schedule != "cyclical" or self.total is not None:
            return float(trainer.global_step), None
        total = trainer.estimated_stepping_batches
        return float(trainer.global_step), float(total) if math.isfinite(total) else None

    def values(self, trainer: L.Trainer) -> tuple[float, float | None]:
        """``(w(t), C(t))`` at ``trainer``'s current progress."""
        t, total = self.progress(trainer)
        return self.weight_at(t, total), self.capacity_at(t)
