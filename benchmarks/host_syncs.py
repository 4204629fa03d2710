"""Where a training step waits for the GPU: the host synchronisations of ``vae-zoo fit`` on steps
that do not log.

    python benchmarks/host_syncs.py                                   # configs/vae_mnist.yaml
    python benchmarks/host_syncs.py --config configs/gmm_mnist.yaml -- --model.warmup_epochs 0

Trains the config on CUDA for ``--steps`` steps of one epoch (no validation, no progress bar,
a CSV logger writing every ``--log-every`` steps) with PyTorch's synchronisation debug mode
(``torch.cuda.set_sync_debug_mode("warn")``) switched on from the start of each step that does
not log to the start of the next one: the model's step, the backward pass, the optimizer, every
callback's per-step hooks and the fetching of the next batch. Each operation that waits for the
device (``.item()``, a copy to the host, ``nonzero``, ...) warns; the script prints each place
once with its count, the innermost eight frames of ``vae_zoo``, ``lightning`` and
``torch.optim`` that led to it, and the command. Arguments after ``--`` go to ``vae-zoo fit``.
None found is the library's promise: a step that does not log never synchronises with the host.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import traceback
import warnings
from collections import Counter
from typing import Any

import lightning as L
import torch
from common import hardware
from lightning.pytorch.callbacks import Callback

from vae_zoo.cli import VaeZooCLI, cli_classes


class SyncWatch(Callback):
    """Switches the synchronisation debug mode on from the start of each step that does not log
    to the start of the next step (off for the logging steps and the epoch's last step)."""

    def __init__(self, last_step: int) -> None:
        self.last_step = last_step
        self.watched_steps = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        logs = pl_module._writes_step_logs() or pl_module._redraws_progress_bar(batch_idx)  # the model's say
        watched = batch_idx > 0 and not logs and batch_idx < self.last_step
        self.watched_steps += int(watched)
        torch.cuda.set_sync_debug_mode("warn" if watched else "default")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        torch.cuda.set_sync_debug_mode("default")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/vae_mnist.yaml")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("extra", nargs="*", help="arguments for vae-zoo fit, after --")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("host_syncs.py needs a CUDA device: synchronisation with the host is a GPU matter")
    places: Counter[tuple[str, ...]] = Counter()

    def record(message: Any, category: type[Warning], filename: str, lineno: int, *rest: Any) -> None:
        if "synchronizing" not in str(message):
            return
        frames = [
            f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno} {frame.name}"
            for frame in traceback.extract_stack()[:-1]
            if "vae_zoo" in frame.filename or "lightning" in frame.filename or "torch/optim" in frame.filename
        ]
        places[(str(message).splitlines()[0], f"{filename}:{lineno}", *frames[-8:])] += 1

    watch = SyncWatch(args.steps - 1)
    with tempfile.TemporaryDirectory() as out:
        cli_args = [
            "--config", args.config,
            "--trainer.accelerator", "gpu",
            "--trainer.devices", "1",
            "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", str(args.steps),
            "--trainer.limit_val_batches", "0",
            "--trainer.num_sanity_val_steps", "0",
            "--trainer.enable_progress_bar", "false",
            "--trainer.log_every_n_steps", str(args.log_every),
            "--trainer.default_root_dir", out,
            "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.save_dir", out,
            *args.extra,
        ]  # fmt: skip
        cli = VaeZooCLI(*cli_classes(), args=cli_args, run=False)
        cli.trainer.callbacks.append(watch)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    print(f"{watch.watched_steps} steps watched (of {args.steps}; not those that log, not the first or last)")
    if not places:
        print("no host synchronisation on the watched steps")
    for (message, where, *frames), count in places.most_common():
        print(f"{count:5d} x {message} at {where}")
        for frame in frames:
            print(f"        {frame}")
    print(f"\ncommand: python benchmarks/host_syncs.py {shlex.join(sys.argv[1:])}")
    print(f"hardware: {hardware()}; torch {torch.__version__}")


if __name__ == "__main__":
    main()
