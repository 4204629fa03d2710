"""The installed ``vae-zoo`` command on a user's own small table (.csv, .npz) written here."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "array_example.yaml")
ROWS, FEATURES = 300, 20


def vae_zoo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    beside_python = Path(sys.executable).with_name("vae-zoo")
    command = str(beside_python) if beside_python.exists() else shutil.which("vae-zoo")
    assert command, "the vae-zoo command is not installed (pip install -e .)"
    return subprocess.run(
        [command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "offline"},
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


QUICK = [
    "--trainer.max_epochs",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.logger",
    "lightning.pytorch.loggers.CSVLogger",
    "--trainer.logger.save_dir",
    "logs",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.accelerator",
    "cpu",
]


def features(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Values in [0, 1] with some structure: three clusters of rows, labels 0..2."""
    rng = np.random.default_rng(seed)
    labels = np.arange(ROWS) % 3
    centres = rng.random((3, FEATURES))
    return np.clip(centres[labels] + 0.1 * rng.standard_normal((ROWS, FEATURES)), 0, 1), labels


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    header = ",".join([*(f"f{j}" for j in range(FEATURES)), "label"])
    rows = [",".join([*(f"{v:.5f}" for v in row), str(label)]) for row, label in zip(x, y, strict=True)]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def fit_then_test(tmp_path: Path, data_args: list[str]) -> str:
    ok(vae_zoo("fit", "--config", CONFIG, *data_args, *QUICK, cwd=tmp_path))
    checkpoints = next((tmp_path / "logs").rglob("checkpoints"))
    best = next(checkpoints.glob("best-*.ckpt"))
    assert (checkpoints / "last.ckpt").is_file()
    result = ok(
        vae_zoo("test", "--config", CONFIG, *data_args, *QUICK, "--ckpt_path", str(best), cwd=tmp_path)
    )
    assert "test/elbo" in result.stdout and "test/loss" in result.stdout
    loss = float(result.stdout.split("test/loss")[1].split()[0])
    assert math.isfinite(loss)
    return result.stdout + result.stderr


def test_fit_and_test_on_a_csv_table(tmp_path: Path) -> None:
    x, y = features()
    path = write_csv(tmp_path / "table.csv", x, y)
    output = fit_then_test(tmp_path, ["--data.path", str(path), "--data.label_column", "label"])
    assert "testing on the validation split (30 examples" in output


def test_fit_and_test_on_an_npz_archive_with_a_test_file(tmp_path: Path) -> None:
    x, y = features()
    np.savez(tmp_path / "train.npz", inputs=x.astype(np.float32), labels=y)
    np.savez(tmp_path / "test.npz", inputs=x[:50].astype(np.float32), labels=y[:50])
    data = ["--data.path", str(tmp_path / "train.npz"), "--data.test_path", str(tmp_path / "test.npz")]
    data += ["--data.inputs_key", "inputs", "--data.labels_key", "labels"]
    output = fit_then_test(tmp_path, data)
    assert "testing on the validation split" not in output


def test_a_nan_cell_ends_fit_with_one_line_naming_the_file_and_the_line(tmp_path: Path) -> None:
    x, y = features()
    x[41, 7] = np.nan
    path = write_csv(tmp_path / "holes.csv", x, y)
    result = vae_zoo(
        "fit",
        "--config",
        CONFIG,
        "--data.path",
        str(path),
        "--data.label_column",
        "label",
        *QUICK,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert "holes.csv" in errors[0]
    assert "1 input value is not finite (1 NaN, 0 infinite)" in errors[0]
    assert "line 43 (example 41, counting from 0), column 7 ('f7')" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").rglob("*.ckpt"))
