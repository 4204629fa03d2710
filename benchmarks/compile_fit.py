"""Whether compiling the training step pays over a whole run: ``vae-zoo fit`` end to end, eager
and with ``CompiledStep``, compilation included.

    python benchmarks/compile_fit.py --config configs/vae_mnist.yaml --epochs 10

Runs ``vae-zoo fit --config <config> --trainer.max_epochs <epochs>`` in a fresh process, first
eager and then with ``--trainer.callbacks+=vae_zoo.callbacks.CompiledStep`` (or in the reverse
order with ``--compiled-first``), with a CSV logger in a temporary folder and no progress bar, and
prints each run's wall-clock seconds (process start to exit: imports, data, compilation,
training, validation and checkpoints; each run with an empty ``torch.compile`` cache, so that
the compiled run pays its whole compilation), its final ``val/loss``, and the ratio eager /
compiled.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import hardware


def fit(config: str, epochs: int, compiled: bool, out: Path, extra: list[str]) -> tuple[float, str]:
    """Seconds of one ``vae-zoo fit`` and its last logged ``val/loss``."""
    command = [
        sys.executable, "-m", "vae_zoo.cli", "fit", "--config", config,
        "--trainer.max_epochs", str(epochs),
        "--trainer.default_root_dir", str(out),
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir", str(out),
        "--trainer.enable_progress_bar", "false",
        *extra,
    ]  # fmt: skip
    if compiled:
        command.append("--trainer.callbacks+=vae_zoo.callbacks.CompiledStep")
    # a fresh compilation cache: the compiled run pays its compilation as a user's first run does
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(out / "inductor-cache")}
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    seconds = time.perf_counter() - start
    rows = list(csv.DictReader(next(out.rglob("metrics.csv")).open()))
    losses = [row["val/loss"] for row in rows if row.get("val/loss")]
    return seconds, losses[-1] if losses else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/vae_mnist.yaml")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--compiled-first", action="store_true")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: passed to vae-zoo fit")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    order = [True, False] if args.compiled_first else [False, True]
    seconds = {}
    for compiled in order:
        with tempfile.TemporaryDirectory() as out:
            elapsed, loss = fit(args.config, args.epochs, compiled, Path(out), extra)
        name = "compiled" if compiled else "eager"
        seconds[name] = elapsed
        print(f"{name}: {elapsed:.1f} s for {args.epochs} epochs, last val/loss {loss}", flush=True)
    print(f"eager / compiled: {seconds['eager'] / seconds['compiled']:.3f}")
    print(f"\ncommand: python benchmarks/compile_fit.py {shlex.join(sys.argv[1:])}")
    print(f"hardware: {hardware()}; seed of the config")


if __name__ == "__main__":
    main()
