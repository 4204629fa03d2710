"""Train a config over several seeds and print its test metrics (mean ± std), with the command.

    python benchmarks/quality.py --config configs/gmm_mnist.yaml --seeds 0 1 2
    python benchmarks/quality.py --config configs/vae_mnist.yaml --seeds 0 --epochs 2 -- --data.batch_size 256

Each seed runs ``vae-zoo fit`` (with ``seed_everything`` set to the seed) and then ``vae-zoo
test`` on the best checkpoint, in-process, with a CSV logger under ``--out``. Arguments after
``--`` are passed to the command unchanged. Prints one line per seed and a summary line per
metric; nothing is written to RESULTS.md by hand.

``test/nll_iwae`` follows the paper protocol: k = 5000 importance samples (Burda et al.'s Table
1), where the configs use k = 100 to keep ``vae-zoo test`` short; ``--iwae-samples`` changes k
for configs with ``IWAEEvaluation`` (an argument after ``--`` still has the last word).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import yaml
from common import hardware

from vae_zoo.cli import VaeZooCLI, cli_classes
from vae_zoo.console import quiet_third_party_notices

SHOWN = (
    "test/elbo",
    "test/nll_iwae",
    "test/recon",
    "test/kl",
    "test/sq_error",
    "test/bce",
    "test/prior_mmd",
    "test/acc",
    "test/nmi",
    "test/ari",
)


PAPER_IWAE_SAMPLES = 5000  # Burda et al. 2015, Table 1 (ANCHORS.md)


def iwae_arguments(config: str, samples: int) -> list[str]:
    """``--trainer.callbacks.num_samples <samples>`` when ``config`` ends its callbacks with
    ``IWAEEvaluation`` (the option sets the last callback's argument), else nothing."""
    callbacks = (yaml.safe_load(Path(config).read_text()).get("trainer") or {}).get("callbacks") or []
    last = callbacks[-1].get("class_path", "") if callbacks and isinstance(callbacks[-1], dict) else ""
    return ["--trainer.callbacks.num_samples", str(samples)] if last.endswith("IWAEEvaluation") else []


def run_seed(
    setup: list[str], seed: int, epochs: int | None, out: Path, extra: list[str]
) -> tuple[dict, float]:
    """Fit and test one seed of the ``vae-zoo`` arguments ``setup`` (a config, or the model and
    data classes); return the test metrics and the seconds the fit took."""
    args = [*setup, "--seed_everything", str(seed)]
    args += ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger"]
    args += ["--trainer.logger.save_dir", str(out / f"seed{seed}"), "--trainer.enable_progress_bar", "false"]
    if epochs is not None:
        args += ["--trainer.max_epochs", str(epochs)]
    # as the vae-zoo command; sys.argv is this script's, not the command's (Lightning warns)
    with quiet_third_party_notices(), mock.patch.object(sys, "argv", sys.argv[:1]):
        cli = VaeZooCLI(*cli_classes(), args=args + extra, run=False)
        start = time.perf_counter()
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        seconds = time.perf_counter() - start
        best = cli.trainer.checkpoint_callback.best_model_path or "last"
        results = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)[0]
    return {name: float(value) for name, value in results.items()}, seconds


def print_seed(seed: int, metrics: dict[str, float], seconds: float, shown: Sequence[str]) -> None:
    """One line: the seed's ``shown`` metrics and the seconds its fit took."""
    values = "  ".join(f"{k}={metrics[k]:.4f}" for k in shown if k in metrics)
    print(f"seed {seed}: {values}  fit_seconds={seconds:.0f}", flush=True)


def print_summary(
    command: str, per_seed: list[dict[str, float]], seeds: list[int], shown: Sequence[str]
) -> None:
    """The command, the hardware, and each ``shown`` metric's mean, sample standard deviation and
    smallest value over the seeds."""
    print(f"\ncommand: {command}\nhardware: {hardware()}")
    for name in shown:
        values = [m[name] for m in per_seed if name in m]
        if values:
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            summary = f"{statistics.mean(values):.4f} ± {spread:.4f} (min {min(values):.4f})"
            print(f"{name}: {summary} over seeds {seeds}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override trainer.max_epochs")
    parser.add_argument("--out", type=Path, default=Path("runs/quality"))
    parser.add_argument(
        "--iwae-samples",
        type=int,
        default=PAPER_IWAE_SAMPLES,
        help="k of test/nll_iwae (default: 5000, the paper protocol; the configs use 100)",
    )
    parser.add_argument("extra", nargs="*", help="arguments for vae-zoo, after --")
    options = parser.parse_args()
    command = "python benchmarks/quality.py " + shlex.join(sys.argv[1:])
    per_seed = []
    for seed in options.seeds:
        extra = iwae_arguments(options.config, options.iwae_samples) + options.extra
        metrics, seconds = run_seed(["--config", options.config], seed, options.epochs, options.out, extra)
        per_seed.append(metrics)
        print_seed(seed, metrics, seconds, SHOWN)
    print_summary(command, per_seed, options.seeds, SHOWN)


if __name__ == "__main__":
    main()
