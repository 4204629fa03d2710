"""KL annealing: the model's KL weight (or capacity) as a pure function of training progress."""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback

from vae_zoo.errors import ConfigurationError

Schedule = Literal["constant", "linear", "sigmoid", "cyclical", "capacity"]
SCHEDULES: tuple[str, ...] = ("constant", "linear", "sigmoid", "cyclical", "capacity")


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


class KLAnnealing(Callback):
    """Sets the KL weight of a VAE-family model before every training step.

    Schedules of ``t`` (the global step, or the epoch with ``unit="epoch"``):

    * ``"constant"``: ``end``.
    * ``"linear"`` (Bowman et al. 2016): ``start -> end`` over ``duration``.
    * ``"sigmoid"``: a logistic ramp from ``start`` to ``end`` centred at ``duration / 2``.
    * ``"cyclical"`` (Fu et al. 2019): ``cycles`` periods over ``total`` (default: the whole
      training run), each rising over the fraction ``ratio`` and then flat at ``end``.
    * ``"capacity"`` (Burgess et al. 2018): the loss becomes ``gamma * |KL - C(t)|`` with
      ``C(t) = capacity_max * min(1, t / duration)``; the KL weight is ``gamma``.

    ``free_bits`` (Kingma et al. 2016) sets a floor ``lambda`` per latent dimension (or per
    group of ``free_bits_groups`` dimensions) below which the KL is not penalised.

    The weight is a pure function of the step, so a run resumed with ``--ckpt_path`` continues
    the schedule exactly; the callback's own settings travel in the checkpoint as its state.
    The model logs the weight as ``train/kl_weight``. A model without a KL term is refused.

    Args:
        schedule: one of ``constant``, ``linear``, ``sigmoid``, ``cyclical``, ``capacity``.
        start: the weight at ``t = 0``.
        end: the final weight (default: the model's own KL weight, e.g. beta).
        duration: steps (or epochs) of the ramp, and of the capacity's rise.
        unit: ``"step"`` or ``"epoch"``.
        cycles: number of cycles of the cyclical schedule.
        ratio: increasing fraction of each cycle.
        total: length of the cyclical schedule (default: the trainer's estimated total).
        capacity_max: final target KL in nats of the capacity schedule.
        gamma: weight of ``|KL - C|`` in the capacity schedule.
        free_bits: the free-bits floor ``lambda`` in nats (0 disables free bits).
        free_bits_groups: number of groups of latent dimensions (None: one per dimension).
    """

    def __init__(
        self,
        schedule: Schedule = "linear",
        start: float = 0.0,
        end: float | None = None,
        duration: float = 10_000,
        unit: Literal["step", "epoch"] = "step",
        cycles: int = 4,
        ratio: float = 0.5,
        total: float | None = None,
        capacity_max: float = 25.0,
        gamma: float = 1000.0,
        free_bits: float = 0.0,
        free_bits_groups: int | None = None,
    ) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}; got {schedule!r}")
        if unit not in ("step", "epoch"):
            raise ValueError(f"unit must be 'step' or 'epoch'; got {unit!r}")
        for name, value in (("duration", duration), ("ratio", ratio)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0; got {value}")
        for name, value in (("start", start), ("capacity_max", capacity_max), ("gamma", gamma)):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0; got {value}")
        if end is not None and not (end >= 0 and math.isfinite(end)):
            raise ValueError(f"end must be None or a finite number >= 0; got {end}")
        if not (isinstance(cycles, int) and cycles >= 1):
            raise ValueError(f"cycles must be an integer >= 1; got {cycles!r}")
        if ratio > 1:
            raise ValueError(f"ratio must be in (0, 1]; got {ratio}")
        if total is not None and not total > 0:
            raise ValueError(f"total must be None or > 0; got {total}")
        if not free_bits >= 0:
            raise ValueError(f"free_bits must be >= 0; got {free_bits}")
        if free_bits_groups is not None and not (isinstance(free_bits_groups, int) and free_bits_groups >= 1):
            raise ValueError(f"free_bits_groups must be None or an integer >= 1; got {free_bits_groups!r}")
        self.schedule = schedule
        self.start = start
        self.end = end
        self.duration = duration
        self.unit = unit
        self.cycles = cycles
        self.ratio = ratio
        self.total = total
        self.capacity_max = capacity_max
        self.gamma = gamma
        self.free_bits = free_bits
        self.free_bits_groups = free_bits_groups
        self.weight: float | None = None

    def weight_at(self, t: float, end: float, total: float | None = None) -> float:
        """The KL weight at progress ``t`` with final weight ``end``."""
        if self.schedule == "constant":
            return end
        if self.schedule == "linear":
            return linear_ramp(t, self.start, end, self.duration)
        if self.schedule == "sigmoid":
            return sigmoid_ramp(t, self.start, end, self.duration)
        if self.schedule == "cyclical":
            length = self.total or total
            if length is None:
                raise ValueError("the cyclical schedule needs total (or a trainer that knows its length)")
            return cyclical_ramp(t, self.start, end, length / self.cycles, self.ratio)
        return self.gamma

    def capacity_at(self, t: float) -> float | None:
        """The target KL of the capacity schedule at ``t`` (None for the other schedules)."""
        if self.schedule != "capacity":
            return None
        return linear_ramp(t, 0.0, self.capacity_max, self.duration)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not hasattr(pl_module, "kl_weight"):
            raise ConfigurationError(
                f"KLAnnealing needs a model with a KL term (VAE, BetaVAE, GMMVAE, HierarchicalGMMVAE); "
                f"{type(pl_module).__name__} has none"
            )
        if self.end is None:
            self.end = float(pl_module.kl_weight)
        pl_module.free_bits = self.free_bits
        pl_module.free_bits_groups = self.free_bits_groups

    def _progress(self, trainer: L.Trainer) -> tuple[float, float | None]:
        """Progress ``t`` and, for the cyclical schedule without ``total``, the run's length."""
        if self.unit == "epoch":
            return float(trainer.current_epoch), float(trainer.max_epochs) if trainer.max_epochs else None
        if self.schedule != "cyclical" or self.total is not None:
            return float(trainer.global_step), None
        total = trainer.estimated_stepping_batches
        return float(trainer.global_step), float(total) if math.isfinite(total) else None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        t, total = self._progress(trainer)
        self.weight = self.weight_at(t, self.end, total)
        pl_module.kl_weight = self.weight
        pl_module.kl_capacity = self.capacity_at(t)

    def state_dict(self) -> dict[str, Any]:
        return {"end": self.end, "weight": self.weight}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.end = state_dict["end"]
        self.weight = state_dict["weight"]
