"""KL annealing: attach a :class:`~vae_zoo.schedules.KLSchedule` to a VAE-family model."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback

from vae_zoo.errors import ConfigurationError
from vae_zoo.schedules import KLSchedule, ScheduleName


class KLAnnealing(Callback):
    """Gives a VAE-family model a :class:`~vae_zoo.schedules.KLSchedule` (its ``kl_schedule``),
    from which the model sets its KL weight before every training step.

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
    The model logs the weight as ``train/kl_weight``. A model without a KL term is refused, and
    so is a model that schedules its KL from its own arguments (``BetaVAE(capacity_max=...)``):
    one owner for the weight.

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
        schedule: ScheduleName = "linear",
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
        if end is not None and not (end >= 0 and math.isfinite(end)):
            raise ValueError(f"end must be None or a finite number >= 0; got {end}")
        if not free_bits >= 0:
            raise ValueError(f"free_bits must be >= 0; got {free_bits}")
        if free_bits_groups is not None and not (isinstance(free_bits_groups, int) and free_bits_groups >= 1):
            raise ValueError(f"free_bits_groups must be None or an integer >= 1; got {free_bits_groups!r}")
        # validates the schedule's arguments; ``end`` is the model's weight until setup says otherwise
        self.kl_schedule = KLSchedule(
            schedule,
            start,
            1.0 if end is None else end,
            duration,
            unit,
            cycles,
            ratio,
            total,
            capacity_max,
            gamma,
        )
        self.end = end
        self.free_bits = free_bits
        self.free_bits_groups = free_bits_groups
        self._attached: KLSchedule | None = None  # the schedule given to the model at setup

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not hasattr(pl_module, "kl_schedule"):
            raise ConfigurationError(
                f"KLAnnealing needs a model with a KL term (VAE, BetaVAE, GMMVAE, HierarchicalGMMVAE); "
                f"{type(pl_module).__name__} has none"
            )
        own = pl_module.kl_schedule
        if own is not None and own is not self._attached:
            raise ConfigurationError(
                f"KLAnnealing and {type(pl_module).__name__}'s own KL schedule ({own.schedule}, from its "
                "arguments, e.g. BetaVAE's capacity_max) would both set the KL weight; keep one of them"
            )
        if self.end is None:
            self.end = float(pl_module.kl_weight)
        self._attached = dataclasses.replace(self.kl_schedule, end=self.end)
        pl_module.kl_schedule = self._attached
        pl_module.free_bits = self.free_bits
        pl_module.free_bits_groups = self.free_bits_groups

    def state_dict(self) -> dict[str, Any]:
        return {"end": self.end}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores ``end`` (the final weight fixed when the run started) on resume."""
        self.end = state_dict["end"]
        if self._attached is not None:
            self._attached = dataclasses.replace(self._attached, end=self.end)
