"""Training throughput: vae-zoo through Lightning against a plain PyTorch loop, same model.

    python benchmarks/throughput.py                       # CPU, batch 128, 5 alternations
    python benchmarks/throughput.py --device cuda --repeats 7 --steps 400
    python benchmarks/throughput.py --compile              # also torch.compile'd steps, in lockstep
    python benchmarks/throughput.py --device cuda --compile --compile-mode reduce-overhead   # CUDA graphs

Both sides train the MLP VAE 784-512-256-16 (Bernoulli likelihood, dynamic binarization,
Adam 1e-3) on the MNIST training split held as one tensor on ``--device``:

* **plain**: the fastest honest loop, written by hand (its own ``nn.Sequential`` networks,
  analytic KL, ``binary_cross_entropy_with_logits``): ``index_select`` a batch, binarize by
  ``rand < p``, step. Its Adam is the library's: fused into one kernel per parameter where
  PyTorch has that kernel (CPU and CUDA), so that the ratio measures the framework, not the
  optimizer.
* **vae-zoo**: the ``vae-zoo`` command's path with ``configs/vae_mnist.yaml`` (its logger,
  checkpointing, KL annealing, collapse detection, image callbacks, progress bar), timed from
  the start of the first timed step to the end of the last, within the first epoch (every
  callback's per-step hooks and the logging included; the end-of-epoch checkpoint not).

With ``--breakdown``, four runs between the two say where the gap comes from and what the fused
optimizer is worth:

* **plain loop, default Adam**: the plain loop with ``torch.optim.Adam``'s default
  implementation (``fused=None``), what a plain loop usually is;
* **plain loop, zoo model**: the plain loop around the library's ``VAE`` (its ``loss_terms`` and
  ``objective``): the cost of the model code;
* **Trainer, plain model**: the hand-written model in a bare ``LightningModule``, trained by a
  ``Trainer`` without logger, progress bar, checkpoints or callbacks, on the same data module:
  the cost of Lightning's loop;
* **Trainer, zoo model**: the library's ``VAE`` (its own ``training_step``) under that bare
  ``Trainer``; what is left to the command is its callbacks, logger and checkpointing.

The runs alternate ``--repeats`` times so that machine noise hits all, in counterbalanced order
(plain, [the four,] vae-zoo in even alternations, the reverse in odd ones, so that no run always
follows another); each run times ``--steps`` steps after ``--warmup`` untimed steps
(together less than one epoch: 430 steps at batch 128, the last one partial). Prints samples per
second (min / median / max) of each run, and for each its ratio to the plain loop: the ratio of
the medians, and the median over the alternations of the ratio to the plain run of the same
alternation (robust to the machine's speed drifting over minutes, which moves all runs of an
alternation alike).

With ``--lockstep``, no run is compared with another run: each takes one step of its own plain
loop after each of its steps (the runs without a ``Trainer`` take their two loops' steps in turn)
and times both, a ``Trainer``'s step from the start of one batch to the start of the next, less
the plain step between them. The ratio is then one of steps taken side by side, and varies by a
few points between runs where whole runs vary by tens. Both loops share the machine's caches, so
their samples per second are lower than alone; on a GPU, every step is synchronised.

With ``--compile``, more runs: the plain loop with its loss ``torch.compile``'d and ``vae-zoo``
with :class:`~vae_zoo.callbacks.CompiledStep`, each against the eager plain loop and ``vae-zoo``
compiled against the compiled plain loop. On the CPU ``--compile`` implies ``--lockstep``. On a
GPU the runs are timed alone unless ``--lockstep`` is given: synchronising every step, as
lockstep must, takes from a GPU loop the overlap of the host's work with the device's that a
real loop has. The compilation falls in the untimed ``--warmup`` steps; the first step of each
compiled run, compilation included, is printed apart.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable

import lightning as L
import torch
from common import hardware, synchronize
from lightning.pytorch.callbacks import Callback
from torch import nn

from vae_zoo.callbacks import CompiledStep
from vae_zoo.cli import VaeZooCLI, cli_classes
from vae_zoo.data import MNISTDataModule
from vae_zoo.models import VAE
from vae_zoo.models.base import fused_adam_supported

#: the first step of each compiled run, compilation included (seconds), by side
COMPILE_SECONDS: dict[str, list[float]] = {}


class PlainVAE(nn.Module):
    """The reference model, written without the library."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 2 * latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784)
        )

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        mean, log_variance = self.encoder(x).chunk(2, -1)
        z = mean + torch.exp(0.5 * log_variance) * torch.randn_like(mean)
        recon = nn.functional.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").sum(-1)
        kl = 0.5 * (mean**2 + log_variance.exp() - 1 - log_variance).sum(-1)
        return (recon + kl).mean()


class PlainModule(L.LightningModule):
    """:class:`PlainVAE` as a bare LightningModule: Lightning's loop around the reference model."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.model = PlainVAE(latent_dim)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self.model.loss(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters())


def adam(parameters: Iterable[torch.Tensor], fused: bool = True) -> torch.optim.Adam:
    """Adam 1e-3, fused where PyTorch has the kernel (as the library's models), or the default."""
    parameters = list(parameters)
    use_fused = fused and fused_adam_supported(parameters)
    return torch.optim.Adam(parameters, lr=1e-3, fused=True if use_fused else None)


class PlainStepper:
    """The plain loop one step at a time: its model (the hand-written one, or the library's ``VAE``
    through its ``loss_terms`` and ``objective`` with ``zoo_model``), its Adam (fused, or the
    default implementation without ``fused``) and its order of the training images."""

    def __init__(
        self,
        images: torch.Tensor,
        batch_size: int,
        latent_dim: int,
        zoo_model: bool = False,
        fused: bool = True,
        compiled: bool = False,
        compile_mode: str = "default",
    ) -> None:
        self.images = images
        self.batch_size = batch_size
        self.device = images.device
        self.zoo_model = zoo_model
        self.model = VAE(latent_dim=latent_dim) if zoo_model else PlainVAE(latent_dim)
        self.model.to(self.device)
        self.optimizer = adam(self.model.parameters(), fused)
        self.order = torch.randperm(images.shape[0], device=self.device)
        self.count = 0
        loss = (lambda x: self.model.loss_and_terms(x)[0]) if zoo_model else self.model.loss
        self.compiled = compiled
        self.loss = torch.compile(loss, mode=compile_mode) if compiled else loss
        self.first_step_seconds: float | None = None

    def step(self) -> None:
        """``index_select`` a batch, binarize it by ``rand < p``, one optimizer step."""
        index = self.order[(self.count * self.batch_size) % (self.images.shape[0] - self.batch_size) :]
        self.count += 1
        probabilities = self.images.index_select(0, index[: self.batch_size])
        x = (torch.rand_like(probabilities) < probabilities).float()  # Bernoulli, 3x torch.bernoulli
        if self.compiled:
            torch.compiler.cudagraph_mark_step_begin()  # a new step for CUDA graphs (reduce-overhead)
        loss = self.loss(x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def timed_step(self) -> float:
        """Seconds of one :meth:`step`, synchronised with the device on both ends."""
        synchronize(self.device)
        start = time.perf_counter()
        self.step()
        synchronize(self.device)
        seconds = time.perf_counter() - start
        if self.first_step_seconds is None:
            self.first_step_seconds = seconds
        return seconds


def plain_run(
    images: torch.Tensor, batch_size: int, latent_dim: int, steps: int, warmup: int, **kwargs
) -> float:
    """Samples per second of the plain loop over ``steps`` steps after ``warmup``; ``kwargs`` as
    :class:`PlainStepper`'s."""
    stepper = PlainStepper(images, batch_size, latent_dim, **kwargs)
    stepper.timed_step()
    for _ in range(warmup - 1):
        stepper.step()
    if kwargs.get("compiled"):
        COMPILE_SECONDS.setdefault("plain loop", []).append(stepper.first_step_seconds)
    synchronize(stepper.device)
    start = time.perf_counter()
    for _ in range(steps):
        stepper.step()
    synchronize(stepper.device)
    return steps * batch_size / (time.perf_counter() - start)


def interleaved_plain_run(
    images: torch.Tensor, batch_size: int, latent_dim: int, steps: int, warmup: int, **kwargs
) -> tuple[float, float]:
    """Samples per second of the plain loop with ``kwargs`` (as :class:`PlainStepper`'s) and of the
    reference plain loop, their steps taken in turn and each timed: ``(that loop, reference)``."""
    other = PlainStepper(images, batch_size, latent_dim, **kwargs)
    reference = PlainStepper(images, batch_size, latent_dim)
    seconds = [0.0, 0.0]
    for step in range(warmup + steps):
        for index, stepper in enumerate((other, reference)):
            elapsed = stepper.timed_step()
            if step >= warmup:
                seconds[index] += elapsed
    if kwargs.get("compiled"):
        COMPILE_SECONDS.setdefault("plain loop", []).append(other.first_step_seconds)
    return steps * batch_size / seconds[0], steps * batch_size / seconds[1]


class StepTimer(Callback):
    """Times the training steps ``warmup .. warmup + steps`` of the first epoch, from the start of
    the first to the end of the last (every callback's per-step hooks included)."""

    def __init__(self, warmup: int, steps: int, batch_size: int, device: torch.device) -> None:
        self.warmup = warmup
        self.steps = steps
        self.batch_size = batch_size
        self.device = device
        self.start = 0.0
        self.samples_per_second = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module) -> None:
        if self.warmup + self.steps >= trainer.num_training_batches:
            raise ValueError(
                f"--warmup + --steps must be less than one epoch, {trainer.num_training_batches} steps "
                f"at this batch size (its last batch can be partial); got {self.warmup} + {self.steps}"
            )

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            synchronize(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup + self.steps - 1:
            synchronize(self.device)
            self.samples_per_second = self.steps * self.batch_size / (time.perf_counter() - self.start)


class Lockstep(StepTimer):
    """Takes one step of a :class:`PlainStepper` after each training step of the run it is added
    to, and times both over the steps ``warmup .. warmup + steps``: a run's step is the time from
    the start of one batch to the start of the next, less the plain step taken in between. The two
    then share the machine's state step by step, so that its drifts cancel in their ratio."""

    def __init__(self, warmup: int, steps: int, batch_size: int, stepper: PlainStepper) -> None:
        super().__init__(warmup, steps, batch_size, stepper.device)
        self.stepper = stepper
        self.run_seconds = 0.0
        self.plain_seconds = 0.0
        self.last_start = 0.0
        self.last_plain = 0.0
        self.plain_samples_per_second = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        if self.warmup < batch_idx <= self.warmup + self.steps:
            self.run_seconds += now - self.last_start - self.last_plain
        if batch_idx == self.warmup + self.steps:
            self.samples_per_second = self.steps * self.batch_size / self.run_seconds
            self.plain_samples_per_second = self.steps * self.batch_size / self.plain_seconds
        self.last_start = now

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.last_plain = self.stepper.timed_step()
        if self.warmup <= batch_idx < self.warmup + self.steps:
            self.plain_seconds += self.last_plain


def bare_trainer_run(
    args: argparse.Namespace, device: torch.device, zoo_model: bool, timer: StepTimer
) -> None:
    """Trains, timed by ``timer``, a ``Trainer`` without logger, progress bar, checkpoints or
    callbacks (but the timer) around :class:`PlainModule`, or the library's ``VAE`` with
    ``zoo_model``, on the command's data module (dynamic binarization, data as one tensor)."""
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=args.warmup + args.steps + 1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    module = VAE(latent_dim=args.latent_dim) if zoo_model else PlainModule(args.latent_dim)
    data = MNISTDataModule(batch_size=args.batch_size, binarization="dynamic", download=False)
    trainer.fit(module, datamodule=data)


def zoo_run(
    args: argparse.Namespace, device: torch.device, out: str, timer: StepTimer, compiled: bool = False
) -> None:
    """``vae-zoo fit --config configs/vae_mnist.yaml`` over the same steps, timed by ``timer``; with
    ``compiled``, with ``--trainer.callbacks+=CompiledStep`` (whose first step, compilation
    included, is recorded in :data:`COMPILE_SECONDS`)."""
    cli_args = [
        "--config",
        args.config,
        "--data.batch_size",
        str(args.batch_size),
        "--model.latent_dim",
        str(args.latent_dim),
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        str(args.warmup + args.steps + 1),  # one more, so that a partial last batch is never timed
        "--trainer.limit_val_batches",
        "0",
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.default_root_dir",
        out,
        "--trainer.accelerator",
        "gpu" if device.type == "cuda" else "cpu",
        "--trainer.devices",
        "1",
        "--trainer.logger",
        args.logger,
        "--trainer.logger.save_dir",
        out,
    ]
    if compiled:
        cli_args += [
            "--trainer.callbacks+=vae_zoo.callbacks.CompiledStep",
            "--trainer.callbacks.mode",
            args.compile_mode,
        ]
    cli = VaeZooCLI(*cli_classes(), args=cli_args, run=False)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    for callback in cli.trainer.callbacks:
        if isinstance(callback, CompiledStep):
            COMPILE_SECONDS.setdefault("vae-zoo", []).append(callback.compile_seconds)


def summary(values: list[float]) -> str:
    return (
        f"min {min(values):,.0f}  median {statistics.median(values):,.0f}  max {max(values):,.0f} samples/s"
    )


def summary_seconds(values: list[float]) -> str:
    return f"min {min(values):.1f}  median {statistics.median(values):.1f}  max {max(values):.1f} s"


def ratios(
    name: str, values: list[float], references: list[float], what: str, reference: str = "plain"
) -> str:
    """The ratio of ``values`` to ``references``: of their medians, and the median (min, max) of
    the ratios pair by pair."""
    pairs = [value / reference for value, reference in zip(values, references, strict=True)]
    of_medians = statistics.median(values) / statistics.median(references)
    return (
        f"ratio {name} / {reference}: {of_medians:.3f} (medians); {what} median "
        f"{statistics.median(pairs):.3f} (min {min(pairs):.3f}, max {max(pairs):.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/vae_mnist.yaml")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the plain loop with Adam's default implementation and with the zoo's model, "
        "and a bare Trainer with either model",
    )
    parser.add_argument(
        "--lockstep",
        action="store_true",
        help="interleave the plain loop's steps with each run's steps instead of alternating runs",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also the plain loop and vae-zoo with torch.compile'd steps (implies --lockstep): vae-zoo "
        "compiled against the eager and against the compiled plain loop",
    )
    parser.add_argument(
        "--compile-mode",
        default="default",
        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
        help="torch.compile's mode on both sides with --compile (reduce-overhead: CUDA graphs on a GPU)",
    )
    parser.add_argument(
        "--logger",
        default="lightning.pytorch.loggers.CSVLogger",
        help="the logger of the vae-zoo side (the command's default is vae_zoo.loggers.WandbLogger)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    args.lockstep = args.lockstep or (args.compile and device.type == "cpu")
    data = MNISTDataModule(binarization="none", download=False)
    data.setup()
    images = data.splits["train"][0].to(device)
    sizes = (args.batch_size, args.latent_dim, args.steps, args.warmup)

    def plain(**kwargs) -> float | tuple[float, float]:
        if args.lockstep:
            return interleaved_plain_run(images, *sizes, **kwargs)
        return plain_run(images, *sizes, **kwargs)

    def trained(
        train: Callable[[StepTimer], None], compiled_plain: bool = False
    ) -> float | tuple[float, float]:
        if not args.lockstep:
            timer = StepTimer(args.warmup, args.steps, args.batch_size, device)
            train(timer)
            return timer.samples_per_second
        stepper = PlainStepper(
            images, args.batch_size, args.latent_dim, compiled=compiled_plain, compile_mode=args.compile_mode
        )
        lockstep = Lockstep(args.warmup, args.steps, args.batch_size, stepper)
        train(lockstep)
        return lockstep.samples_per_second, lockstep.plain_samples_per_second

    runs: dict[str, Callable[[str], float | tuple[float, float]]] = {}
    if not args.lockstep:  # in lockstep, every run brings its own plain loop
        runs["plain PyTorch"] = lambda out: plain()
    if args.breakdown:
        runs["plain loop, default Adam"] = lambda out: plain(fused=False)
        runs["plain loop, zoo model"] = lambda out: plain(zoo_model=True)
        runs["Trainer, plain model"] = lambda out: trained(lambda t: bare_trainer_run(args, device, False, t))
        runs["Trainer, zoo model"] = lambda out: trained(lambda t: bare_trainer_run(args, device, True, t))
    runs["vae-zoo"] = lambda out: trained(lambda t: zoo_run(args, device, out, t))
    if args.compile:
        runs["plain loop, compiled"] = lambda out: plain(compiled=True, compile_mode=args.compile_mode)
        runs["vae-zoo compiled"] = lambda out: trained(lambda t: zoo_run(args, device, out, t, compiled=True))
    if args.compile and args.lockstep:
        runs["vae-zoo compiled vs compiled plain"] = lambda out: trained(
            lambda t: zoo_run(args, device, out, t, compiled=True), compiled_plain=True
        )
    results: dict[str, list] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as out:
        for repeat in range(args.repeats):
            order = list(runs.items())
            for name, run in reversed(order) if repeat % 2 else order:
                torch.manual_seed(repeat)
                results[name].append(run(out))
            shown = "  ".join(
                f"{name} {values[-1][0]:,.0f} vs {values[-1][1]:,.0f}"
                if args.lockstep
                else f"{name} {values[-1]:,.0f}"
                for name, values in results.items()
            )
            print(f"repeat {repeat}: {shown} samples/s", flush=True)
    print(f"\ncommand: python benchmarks/throughput.py {shlex.join(sys.argv[1:])}")
    print(
        f"hardware: {hardware()}; batch {args.batch_size}; "
        f"{args.steps} timed steps after {args.warmup}; logger of vae-zoo: {args.logger}"
        + ("; lockstep: each run against its own interleaved plain loop" if args.lockstep else "")
        + (f"; torch.compile mode {args.compile_mode}" if args.compile else "")
    )
    width = max(len(name) for name in results) + 1
    if args.lockstep:
        for name, values in results.items():
            print(f"{name + ':':{width}} {summary([run for run, _ in values])}")
            print(f"{'  its plain loop:':{width}} {summary([reference for _, reference in values])}")
        for name, values in results.items():
            runs_, references = [run for run, _ in values], [reference for _, reference in values]
            print(ratios(name, runs_, references, "per run"))
        for side, seconds in COMPILE_SECONDS.items():
            print(f"compile time, {side} (first step, compilation included): {summary_seconds(seconds)}")
        return
    for name, values in results.items():
        print(f"{name + ':':{width}} {summary(values)}")
    for name, values in results.items():
        if name != "plain PyTorch":
            print(ratios(name, values, results["plain PyTorch"], "per alternation"))
    if args.compile:
        compiled_plain = results["plain loop, compiled"]
        compiled_zoo = results["vae-zoo compiled"]
        print(ratios("vae-zoo compiled", compiled_zoo, compiled_plain, "per alternation", "plain compiled"))
    for side, seconds in COMPILE_SECONDS.items():
        print(f"compile time, {side} (first step, compilation included): {summary_seconds(seconds)}")


if __name__ == "__main__":
    main()
