"""Atomic checkpoint files, the command's reliability defaults, and exact resume on CPU."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tests.conftest import make_mnist_folder
from vae_zoo.callbacks import KLAnnealing, NonFiniteLossGuard, RandomStateCheckpoint
from vae_zoo.checkpointing import AtomicCheckpointIO, BestAndLastCheckpoint
from vae_zoo.cli import VaeZooCLI, cli_classes
from vae_zoo.data import MNISTDataModule
from vae_zoo.models import GMMVAE, VAE

SMALL = {"latent_dim": 3, "hidden_dims": [32]}
REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- atomic checkpoints
def test_a_failure_mid_write_leaves_the_previous_checkpoint_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.arange(1000.0)}, "epoch": 1}, path)
    before = path.read_bytes()
    original = torch.save

    def torn_save(obj, file, *args, **kwargs) -> None:
        file.write(b"half a checkpoint")  # some bytes reach the file, then the process fails
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(1000)}, "epoch": 2}, path)
    monkeypatch.setattr(torch, "save", original)
    assert path.read_bytes() == before
    assert io.load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left
    io.save_checkpoint({"state_dict": {}, "epoch": 3}, path)  # and the next save replaces it
    assert io.load_checkpoint(path)["epoch"] == 3
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_process_killed_mid_write_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 1, "w": torch.ones(10)}, path)
    before = path.read_bytes()
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        from vae_zoo.checkpointing import AtomicCheckpointIO, BestAndLastCheckpoint

        def killed_save(obj, file, *args, **kwargs):
            file.write(b"x" * 100_000)
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        torch.save = killed_save
        AtomicCheckpointIO().save_checkpoint({{"epoch": 2}}, {str(path)!r})
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    assert AtomicCheckpointIO().load_checkpoint(path)["epoch"] == 1


def test_a_trainer_whose_save_fails_keeps_its_last_checkpoint(tmp_path: Path, monkeypatch) -> None:
    data = datamodule(make_mnist_folder(tmp_path / "data", n_train=140, n_test=10))

    class FailSecondEpochSave(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch == 1:
                self.before = (tmp_path / "ckpt" / "last.ckpt").read_bytes()

                def torn_save(obj, file, *args, **kwargs) -> None:
                    file.write(b"torn")
                    raise RuntimeError("killed while saving")

                monkeypatch.setattr(torch, "save", torn_save)

    watcher = FailSecondEpochSave()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    run = trainer(
        tmp_path, 2, [watcher, checkpoint], plugins=[AtomicCheckpointIO()], enable_checkpointing=True
    )
    with pytest.raises(RuntimeError, match="killed while saving"):
        run.fit(VAE(**SMALL), datamodule=data)
    monkeypatch.undo()
    assert (tmp_path / "ckpt" / "last.ckpt").read_bytes() == watcher.before
    VAE.load_from_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.suffix == ".tmp"]


def test_best_and_last_checkpoint_keeps_model_checkpoints_state_key_as_its_settings_change() -> None:
    ours, theirs = BestAndLastCheckpoint(monitor="val/loss"), ModelCheckpoint(monitor="val/loss")
    assert ours.state_key == theirs.state_key
    ours.monitor, theirs.monitor = "val/elbo", "val/elbo"  # the cached key follows the settings
    assert ours.state_key == theirs.state_key
    assert "val/elbo" in ours.state_key


@pytest.mark.parametrize("checkpoint_class", [ModelCheckpoint, BestAndLastCheckpoint])
def test_last_ckpt_holds_the_last_epoch_when_the_monitored_value_does_not_improve(
    checkpoint_class: type, tmp_path: Path
) -> None:
    data = datamodule(make_mnist_folder(tmp_path / "data", n_train=140, n_test=10))
    # "epoch" in mode "min" is best at epoch 0 and never improves
    checkpoint = checkpoint_class(dirpath=tmp_path / "ckpt", monitor="epoch", mode="min", save_last=True)
    trainer(tmp_path, 3, [checkpoint], enable_checkpointing=True).fit(VAE(**SMALL), datamodule=data)
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    best = torch.load(tmp_path / "ckpt" / "epoch=0-step=2.ckpt", weights_only=True)
    assert best["epoch"] == 0
    # Lightning >= 2.6 writes last.ckpt only together with a new best: a stale copy of epoch 0
    assert last["epoch"] == (2 if checkpoint_class is BestAndLastCheckpoint else 0)
    key = next(key for key in last["callbacks"] if "monitor" in key)
    assert key.startswith("ModelCheckpoint{")  # resumable with either class


# ----------------------------------------------------------------------------- the command's defaults
def cli_trainer(synthetic_mnist: Path, tmp_path: Path, *extra: str) -> L.Trainer:
    args = ["--model", "VAE", "--data", "MNISTDataModule", "--data.data_dir", str(synthetic_mnist)]
    args += ["--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path), *extra]
    return VaeZooCLI(*cli_classes(), args=args, run=False).trainer


def test_the_command_adds_the_guard_random_states_and_atomic_checkpoints_by_default(
    synthetic_mnist: Path, tmp_path: Path
) -> None:
    trainer_ = cli_trainer(synthetic_mnist, tmp_path)
    assert type(trainer_.strategy.checkpoint_io) is AtomicCheckpointIO
    assert type(trainer_.checkpoint_callback) is BestAndLastCheckpoint
    kinds = [type(callback) for callback in trainer_.callbacks]
    assert kinds.count(NonFiniteLossGuard) == 1 and kinds.count(RandomStateCheckpoint) == 1


def test_configured_checkpoint_io_and_guard_replace_the_defaults(
    synthetic_mnist: Path, tmp_path: Path
) -> None:
    trainer_ = cli_trainer(
        synthetic_mnist,
        tmp_path,
        "--trainer.plugins",
        "lightning.pytorch.plugins.io.TorchCheckpointIO",
        "--trainer.callbacks",
        "vae_zoo.callbacks.NonFiniteLossGuard",
        "--trainer.callbacks.check_every_n_steps",
        "7",
        "--trainer.enable_progress_bar",
        "false",
    )
    assert type(trainer_.strategy.checkpoint_io) is TorchCheckpointIO
    guards = [callback for callback in trainer_.callbacks if isinstance(callback, NonFiniteLossGuard)]
    assert len(guards) == 1 and guards[0].check_every_n_steps == 7
    assert any(isinstance(callback, RandomStateCheckpoint) for callback in trainer_.callbacks)
    assert trainer_.progress_bar_callback is None


# ----------------------------------------------------------------------------- exact resume
def datamodule(data_dir: Path) -> MNISTDataModule:
    # dynamic binarization: a fresh Bernoulli draw of every training image in every epoch
    return MNISTDataModule(data_dir=str(data_dir), download=False, val_size=40, batch_size=50)


def trainer(tmp_path: Path, epochs: int, callbacks: list[Callback], **kwargs) -> L.Trainer:
    kwargs = {"logger": False, "enable_checkpointing": False, **kwargs}
    return L.Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        log_every_n_steps=1,
        **kwargs,
    )


def fit(
    make_model, data_dir: Path, out: Path, epochs: int, random_states: bool, ckpt_path: Path | None = None
) -> tuple[L.LightningModule, list[dict[str, str]]]:
    """Train from seed 0 as the command does; return the model and the rows of its metrics.csv."""
    L.seed_everything(0, verbose=False)
    model = make_model()
    callbacks: list[Callback] = [KLAnnealing(duration=10)] if not isinstance(model, GMMVAE) else []
    if random_states:
        callbacks.append(RandomStateCheckpoint())
    callbacks.append(BestAndLastCheckpoint(dirpath=out / "checkpoints", save_last=True, monitor="val/loss"))
    logger = CSVLogger(out, name="logs")
    run = trainer(out, epochs, callbacks, logger=logger, enable_checkpointing=True)
    run.fit(model, datamodule=datamodule(data_dir), ckpt_path=ckpt_path)
    with open(Path(logger.log_dir) / "metrics.csv") as file:
        return model, list(csv.DictReader(file))


def same_rows(a: list[dict[str, str]], b: list[dict[str, str]]) -> bool:
    """Equal rows, comparing the columns both have (each run logs the names it saw)."""
    return len(a) == len(b) and all(
        all(row_a[name] == row_b[name] for name in row_a.keys() & row_b.keys())
        for row_a, row_b in zip(a, b, strict=True)
    )


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name, tensor in state_a.items():
        assert torch.equal(tensor, state_b[name]), name


def differs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return any(not torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(
    ("name", "make_model", "interrupt_after"),
    [
        ("VAE", lambda: VAE(**SMALL), 2),
        # warm-up epoch 0, EM fit at the start of epoch 1: resume after the switch
        (
            "GMMVAE",
            lambda: GMMVAE(**SMALL, num_components=3, warmup_epochs=1, em_restarts=1, em_iterations=20),
            2,
        ),
    ],
)
def test_an_interrupted_run_resumed_from_last_ckpt_ends_exactly_as_an_uninterrupted_one(
    name: str, make_model, interrupt_after: int, tmp_path: Path
) -> None:
    data_dir = make_mnist_folder(tmp_path / "data", n_train=240, n_test=10)
    epochs = interrupt_after + 2
    whole, whole_rows = fit(make_model, data_dir, tmp_path / "whole", epochs, random_states=True)
    _, part_rows = fit(make_model, data_dir, tmp_path / "part", interrupt_after, random_states=True)
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == interrupt_after - 1  # loads with weights_only
    resumed, resumed_rows = fit(make_model, data_dir, tmp_path / "resumed", epochs, True, ckpt_path=last)
    assert resumed.current_epoch == epochs and resumed.global_step == whole.global_step == 4 * epochs
    assert_same_state(resumed, whole)
    if isinstance(whole, GMMVAE):
        assert bool(resumed.started)
    assert same_rows(part_rows + resumed_rows, whole_rows)
    assert {"train/loss", "train/kl", "val/loss", "val/elbo"} <= whole_rows[0].keys() | whole_rows[-1].keys()
    # the same resume without the random states draws other reparameterization noise
    control, control_rows = fit(make_model, data_dir, tmp_path / "control", epochs, False, ckpt_path=last)
    assert differs(control, whole) and not same_rows(part_rows + control_rows, whole_rows)
