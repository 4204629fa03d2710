"""The installed ``vae-zoo`` command on the real MNIST, a few batches at a time."""

from __future__ import annotations

import math
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from vae_zoo.console import ALL_WARNINGS_VARIABLE as ALL_WARNINGS
from vae_zoo.data.mnist import default_data_dir, missing_files

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = default_data_dir()

if missing_files("mnist", DATA_DIR):
    pytest.skip(f"real MNIST not found below {DATA_DIR} (set VAE_ZOO_DATA)", allow_module_level=True)


def vae_zoo(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    beside_python = Path(sys.executable).with_name("vae-zoo")
    command = str(beside_python) if beside_python.exists() else shutil.which("vae-zoo")
    assert command, "the vae-zoo command is not installed (pip install -e .)"
    result = subprocess.run(
        [command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VAE_ZOO_DATA": DATA_DIR, **(env or {})},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


QUICK = [
    "--trainer.max_epochs",
    "1",
    "--trainer.limit_train_batches",
    "5",
    "--trainer.limit_val_batches",
    "2",
    "--trainer.enable_progress_bar",
    "false",
]


FAST_MIXTURE_INIT = ["--model.warmup_epochs", "0", "--model.em_restarts", "1", "--model.em_iterations", "20"]
CONFIGS = {
    "vae_mnist.yaml": ([], "test/elbo"),
    "beta_vae_mnist.yaml": ([], "test/elbo"),
    "pca_mnist.yaml": ([], "test/explained_variance"),
    "ae_mnist.yaml": ([], "test/sq_error"),
    "gmm_mnist.yaml": (FAST_MIXTURE_INIT, "test/acc"),
    "hgmm_mnist.yaml": (FAST_MIXTURE_INIT, "test/tree"),
    "vamp_mnist.yaml": ([], "test/elbo"),
    # one warm-up epoch, the start (by EM, for time), one epoch of the bound
    "gmvae_mnist.yaml": (
        ["--model.warmup_epochs", "1", "--model.start", "em", "--trainer.max_epochs", "2"],
        "test/acc",
    ),
    "wae_mnist.yaml": ([], "test/prior_mmd"),
}


# configs whose IWAEEvaluation reports test/nll_iwae; k = 2 here, for time (it is last in their callbacks)
IWAE_CONFIGS = {
    "vae_mnist.yaml",
    "beta_vae_mnist.yaml",
    "gmm_mnist.yaml",
    "hgmm_mnist.yaml",
    "vamp_mnist.yaml",
}
FEW_IWAE_SAMPLES = ["--trainer.callbacks.num_samples", "2"]


def test_every_config_has_a_test() -> None:
    assert sorted(CONFIGS) == sorted(p.name for p in (REPO / "configs").glob("*_mnist.yaml"))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_fit_then_test_on_the_checkpoint(config: str, tmp_path: Path) -> None:
    extra, metric = CONFIGS[config]
    csv = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", "logs"]
    vae_zoo("fit", "--config", str(REPO / "configs" / config), *QUICK, *extra, *csv, cwd=tmp_path)
    checkpoints = next((tmp_path / "logs").rglob("version_0")) / "checkpoints"
    best = next(checkpoints.glob("best-*.ckpt"))
    assert (checkpoints / "last.ckpt").is_file()
    result = vae_zoo(
        "test",
        "--config",
        str(REPO / "configs" / config),
        "--ckpt_path",
        str(best),
        "--trainer.limit_test_batches",
        "2",
        "--trainer.enable_progress_bar",
        "false",
        *extra,
        *(FEW_IWAE_SAMPLES if config in IWAE_CONFIGS else []),
        *csv,
        cwd=tmp_path,
    )
    assert metric in result.stdout and "test/loss" in result.stdout
    assert ("test/nll_iwae" in result.stdout) == (config in IWAE_CONFIGS)
    loss = float(result.stdout.split("test/loss")[1].split()[0])
    assert math.isfinite(loss) and loss > 0  # a few batches: the value itself is not yet meaningful


def test_default_logger_is_wandb_offline_without_credentials(tmp_path: Path) -> None:
    env = {"WANDB_API_KEY": "", "HOME": str(tmp_path), "WANDB_DIR": "", "NETRC": str(tmp_path / "none")}
    result = vae_zoo(
        "fit", "--config", str(REPO / "configs" / "vae_mnist.yaml"), *QUICK, cwd=tmp_path, env=env
    )
    assert "W&B runs offline" in result.stdout + result.stderr
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = runs[0] / "files"
    config = yaml.safe_load((files / "cli-config.yaml").read_text())
    assert config["model"]["class_path"] in ("vae_zoo.VAE", "vae_zoo.models.VAE")
    assert (runs[0] / f"run-{runs[0].name.rsplit('-', 1)[1]}.wandb").stat().st_size > 0
    assert list((tmp_path / "vae-zoo").glob("*/checkpoints/last.ckpt"))
    images = {p.name.split("_")[0] for p in (files / "media" / "images").rglob("*.png")}
    assert {"reconstructions", "samples", "dims", "interpolation"} <= images


THIRD_PARTY_NOTICES = (
    "isinstance(treespec, LeafSpec)",
    "Sparse invariant checks",
    "litlogger",
    "anonymous setting",
)


def test_the_flagship_console_speaks_about_the_run(tmp_path: Path) -> None:
    """What the README's first command shows, for a few batches: the loss in the progress bar, no
    third-party notices, a summary whose test command runs; and W&B images that are not black."""
    from PIL import Image

    short = [
        "--trainer.limit_train_batches",
        "5",
        "--trainer.limit_val_batches",
        "2",
        "--trainer.max_epochs",
        "1",
    ]
    env = {"WANDB_MODE": "offline", ALL_WARNINGS: ""}
    result = vae_zoo(
        "fit", "--config", str(REPO / "configs" / "gmm_mnist.yaml"), *short, cwd=tmp_path, env=env
    )
    console = result.stdout + result.stderr
    assert not [notice for notice in THIRD_PARTY_NOTICES if notice in console], console[-3000:]
    assert "train/loss=" in console and "val/elbo=" in console  # the progress bar
    summary = result.stdout[result.stdout.index("vae-zoo fit: done") :].splitlines()
    assert summary[0] == "vae-zoo fit: done, 1 epoch, 5 training steps"
    command = shlex.split(summary[-1].removeprefix("  test it:  "))
    assert command[:2] == ["vae-zoo", "test"]
    tested = vae_zoo(
        *command[1:], "--trainer.limit_test_batches", "1", *FEW_IWAE_SAMPLES, cwd=tmp_path, env=env
    )
    assert "test/elbo" in tested.stdout
    pixels = [np.asarray(Image.open(p)) for p in (tmp_path / "wandb").rglob("media/images/**/*.png")]
    assert pixels and all(image.max() == 255 for image in pixels)  # white padding at least: not black
