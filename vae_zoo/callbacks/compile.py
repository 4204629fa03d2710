"""A training step compiled by ``torch.compile``."""

from __future__ import annotations

import time
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from vae_zoo.errors import ConfigurationError

CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompiledStep(Callback):
    """Train with the tensor work of each step compiled: ``torch.compile`` of the model's
    ``loss_and_terms`` (encoder, reparameterization, decoder, loss terms and their weighted sum),
    with logging, callbacks and Lightning's bookkeeping outside it; validation, test and predict
    stay eager. The model's weights, checkpoints and resume are those of the eager model (the
    compiled function shares its parameters).

    The first training step compiles (its time is printed once); a batch of another size (the
    last, smaller batch of an epoch) compiles once more, then every shape seen is reused. A
    setting that the step branches on (the mixture models' warm-up) compiles once per branch.

    Args:
        mode: ``torch.compile``'s mode: ``"default"``, ``"reduce-overhead"`` (CUDA graphs on a
            GPU), ``"max-autotune"`` or ``"max-autotune-no-cudagraphs"``.
        backend: ``torch.compile``'s backend (``"inductor"``: generated kernels; ``"aot_eager"``:
            the traced graph run eagerly, to check tracing without a compiler).
        dynamic: ``torch.compile``'s ``dynamic`` (``None``: specialise on the first shape, then
            compile dynamic shapes when another one comes).
    """

    def __init__(
        self, mode: CompileMode = "default", backend: str = "inductor", dynamic: bool | None = None
    ) -> None:
        if mode not in COMPILE_MODES:
            raise ValueError(f"mode must be one of {list(COMPILE_MODES)}; got {mode!r}")
        backends = torch.compiler.list_backends(exclude_tags=())
        if backend not in backends:
            raise ValueError(f"backend must be one of {sorted(backends)}; got {backend!r}")
        self.mode = mode
        self.backend = backend
        self.dynamic = dynamic
        self.compile_seconds: float | None = None
        self._first_step_started: float | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if not callable(getattr(pl_module, "loss_and_terms", None)):
            name = type(pl_module).__name__
            raise ConfigurationError(
                f"CompiledStep needs a vae-zoo model (with loss_and_terms); {name} has none"
            )
        options: dict[str, Any] = {"backend": self.backend, "dynamic": self.dynamic}
        if self.backend == "inductor":
            options["mode"] = self.mode
        pl_module.compiled_loss_and_terms = torch.compile(pl_module.loss_and_terms, **options)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.compile_seconds is None and self._first_step_started is None:
            self._first_step_started = time.perf_counter()
        # with CUDA graphs (reduce-overhead, max-autotune on a GPU), the outputs of the last step's
        # graph may be overwritten from here on: a new step, not a second call within the same one
        torch.compiler.cudagraph_mark_step_begin()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.compile_seconds is None and self._first_step_started is not None:
            self.compile_seconds = time.perf_counter() - self._first_step_started
            rank_zero_info(
                f"CompiledStep: first training step, compilation included, in {self.compile_seconds:.1f} s "
                f"(torch.compile backend={self.backend}, mode={self.mode})"
            )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and hasattr(pl_module, "compiled_loss_and_terms"):
            pl_module.compiled_loss_and_terms = None
