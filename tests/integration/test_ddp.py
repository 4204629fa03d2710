"""Two-process DDP on CPU (gloo) through the installed command, on synthetic MNIST-format data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_mnist_folder

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("config", ["vae_mnist.yaml", "gmm_mnist.yaml"])
def test_two_process_ddp_fit_with_every_callback_of_the_config(config: str, tmp_path: Path) -> None:
    data = make_mnist_folder(tmp_path / "data", n_train=400, n_test=100)
    command = Path(sys.executable).with_name("vae-zoo")
    args = [
        str(command),
        "fit",
        "--config",
        str(REPO / "configs" / config),
        "--data.data_dir",
        str(data),
        "--data.val_size",
        "100",
        "--data.batch_size",
        "50",
        "--data.eval_batch_size",
        "50",
        "--data.download",
        "false",
        "--trainer.max_epochs",
        "2",
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir",
        "logs",
    ]
    if config == "gmm_mnist.yaml":
        args += ["--model.hidden_dims", "[64]", "--model.warmup_epochs", "1", "--model.em_restarts", "1"]
    result = subprocess.run(
        args,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stdout + result.stderr
    run = next((tmp_path / "logs").rglob("version_0"))
    assert (run / "checkpoints" / "last.ckpt").is_file()
    images = {p.name for p in (run / "images").iterdir()}
    assert "images_reconstructions_epoch001.png" in images and "traversal_dims_epoch001.png" in images
    metrics = (run / "metrics.csv").read_text()
    assert "val/active_units" in metrics and "val/mutual_info" in metrics
