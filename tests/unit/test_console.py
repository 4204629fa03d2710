"""What a user of the command sees: warnings, the progress bar, the summary of fit, one-line
errors for bad input, and the files predict writes."""

from __future__ import annotations

import logging
import shlex
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from tests.conftest import tiny_model_args
from tests.unit.test_cli import fit_args
from vae_zoo.callbacks import ProgressBar
from vae_zoo.cli import VaeZooCLI, cli_classes, main
from vae_zoo.console import ALL_WARNINGS_VARIABLE, quiet_third_party_notices
from vae_zoo.metrics.clustering import hungarian_accuracy

LEAF_SPEC = "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`"
SPARSE = "Sparse invariant checks are implicitly disabled. Memory errors (e.g. SEGFAULT) will occur"
TIP = "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]"


def small_args(data_dir: Path, model: str = "VAE", *extra: str) -> list[str]:
    """Arguments of a tiny model on the synthetic MNIST folder, without the model summary."""
    return [*tiny_model_args(data_dir, model), "--trainer.enable_model_summary", "false", *extra]


def fit(data_dir: Path, out: Path, model: str = "VAE", *extra: str) -> Path:
    """Fit one epoch under a CSV logger in ``out``; the best checkpoint."""
    main([*fit_args(data_dir, out, model), *extra])
    return next(out.rglob("best-*.ckpt"))


# ----------------------------------------------------------------------------- warnings
def emit_third_party_notices() -> list[str]:
    """Raise the four kinds of notices; the messages that got through."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", append=True)  # behind the filters in force
        warnings.warn(LEAF_SPEC, DeprecationWarning, stacklevel=1)
        warnings.warn(SPARSE, UserWarning, stacklevel=1)
        warnings.warn("vae_zoo: a warning of our own", UserWarning, stacklevel=1)
    return [str(w.message) for w in caught]


def test_the_command_hides_third_party_notices_and_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(ALL_WARNINGS_VARIABLE, raising=False)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with quiet_third_party_notices():
        seen = emit_third_party_notices()
        with caplog.at_level(logging.INFO, logger=rank_zero.name):
            rank_zero.info(TIP)
            rank_zero.info("W&B runs offline (WANDB_MODE=offline)")
    assert seen == ["vae_zoo: a warning of our own"]
    assert [record.getMessage() for record in caplog.records] == ["W&B runs offline (WANDB_MODE=offline)"]
    # outside the command (a script importing the library) and with the variable, all show
    assert len(emit_third_party_notices()) == 3
    monkeypatch.setenv(ALL_WARNINGS_VARIABLE, "1")
    with quiet_third_party_notices():
        assert len(emit_third_party_notices()) == 3


# ----------------------------------------------------------------------------- progress bar
def test_the_progress_bar_shows_the_training_loss_and_the_elbo(synthetic_mnist: Path, tmp_path: Path) -> None:
    args = small_args(synthetic_mnist, "VAE", "--trainer.max_epochs", "1", "--trainer.logger", "false")
    args += ["--trainer.default_root_dir", str(tmp_path), "--trainer.log_every_n_steps", "50"]
    cli = VaeZooCLI(*cli_classes(), args=["fit", *args])
    shown = cli.trainer.progress_bar_metrics
    assert set(shown) == {"train/loss", "val/elbo"}
    assert shown["val/elbo"] == pytest.approx(float(cli.trainer.callback_metrics["val/elbo"]))


def test_the_progress_bar_redraws_every_20_training_steps_and_every_evaluation_batch() -> None:
    bar = ProgressBar(refresh_rate=20)
    assert bar.refresh_rate == 20  # not attached yet
    trainer = L.Trainer(callbacks=[bar], logger=False, enable_checkpointing=False)
    bar.setup(trainer, L.LightningModule(), "fit")  # what the trainer does when a run starts
    for stage, rate in (("training", 20), ("validating", 1), ("testing", 1), ("predicting", 1)):
        setattr(trainer, stage, True)
        assert bar.refresh_rate == rate, stage
    assert ProgressBar(refresh_rate=0).refresh_rate == 0


# ----------------------------------------------------------------------------- summary of fit
def test_fit_ends_with_a_summary_whose_test_command_runs_as_printed(
    synthetic_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    best = fit(synthetic_mnist, tmp_path / "logs")
    out = capsys.readouterr().out
    summary = out[out.index("vae-zoo fit: done") :].splitlines()
    assert summary[0] == "vae-zoo fit: done, 1 epoch, 4 training steps"  # 200 images, batch 50
    assert summary[1].startswith(f"  best checkpoint:  {best.relative_to(tmp_path)} (val/loss ")
    assert any(
        line.startswith("  validation (last epoch):  val/loss ") and "val/elbo" in line for line in summary
    )
    assert any(line.startswith("  metrics:  logs/version_0/metrics.csv") for line in summary)
    command = shlex.split(summary[-1].removeprefix("  test it:  "))
    assert command[:4] == ["vae-zoo", "test", "--config", "logs/version_0/config.yaml"]
    main(command[1:])
    assert "test/elbo" in capsys.readouterr().out


# ----------------------------------------------------------------------------- bad input
def run_failing(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command; assert exit code 2 and no traceback; its stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error and "usage:" not in error
    return error


def test_a_malformed_config_names_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed_everything: 1\nmodel: [unclosed\n")
    error = run_failing(["fit", "--config", str(bad)], capsys)
    first, second = error.splitlines()
    assert first.startswith(
        f"vae-zoo fit: error: {bad}, line 3, column 1: not valid YAML: expected ',' or ']'"
    )
    assert second == "(see `vae-zoo fit --help` for the accepted arguments)"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--model.lr", "fast"], "model.lr: expected float; got 'fast'"),
        (["--trainer.max_epochs", "many"], "trainer.max_epochs: expected int or null; got 'many'"),
        (["--no_such_key", "1"], "unrecognized arguments: --no_such_key 1"),
        (
            ["--float32_matmul_precision", "low"],
            "float32_matmul_precision: expected one of 'highest', 'high', 'medium' or null; got 'low'",
        ),
        (["--model.kl_estimator", "exact"], "model: VAE has no argument 'kl_estimator'"),
    ],
)
def test_parser_errors_are_one_line_and_point_at_help(
    extra: list[str], expected: str, synthetic_mnist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error = run_failing(["fit", *small_args(synthetic_mnist), *extra], capsys)
    first, second = error.splitlines()
    assert first == f"vae-zoo fit: error: {expected}"
    assert second == "(see `vae-zoo fit --help` for the accepted arguments)"


@pytest.fixture
def vae_checkpoint(synthetic_mnist: Path, tmp_path: Path) -> Path:
    return fit(synthetic_mnist, tmp_path / "vae_logs")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "is truncated or damaged"),  # the first half of a real checkpoint
        (b"model: not a checkpoint\n", "is not a PyTorch checkpoint: it starts with b'model: not a che"),
        (b"", "is empty, not a checkpoint"),
    ],
)
def test_a_file_that_is_no_checkpoint_ends_in_one_line(
    content: bytes | None,
    expected: str,
    vae_checkpoint: Path,
    synthetic_mnist: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VAE_ZOO_TRACEBACK", raising=False)
    bad = tmp_path / "bad.ckpt"
    data = vae_checkpoint.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if content is None else content)
    args = ["test", *small_args(synthetic_mnist), "--trainer.logger", "false", "--ckpt_path", str(bad)]
    capsys.readouterr()
    first = run_failing(args, capsys).splitlines()[0]
    assert first.startswith(f"vae-zoo test: error: CheckpointError: ckpt_path={str(bad)!r} {expected}")


def test_a_check_of_the_library_after_the_run_started_ends_in_one_line(
    synthetic_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAE_ZOO_TRACEBACK", raising=False)
    args = ["fit", *small_args(synthetic_mnist, "Autoencoder"), "--trainer.logger", "false"]
    args += ["--trainer.default_root_dir", str(tmp_path), "--trainer.callbacks+=KLAnnealing"]
    error = run_failing(args, capsys)
    assert error.splitlines()[0] == (
        "vae-zoo fit: error: ConfigurationError: KLAnnealing needs a model with a KL term "
        "(VAE, BetaVAE, GMMVAE, HierarchicalGMMVAE); Autoencoder has none"
    )


def test_a_checkpoint_of_other_data_is_refused_and_another_model_is_named(
    vae_checkpoint: Path,
    synthetic_mnist: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VAE_ZOO_TRACEBACK", raising=False)
    capsys.readouterr()
    args = ["test", *small_args(synthetic_mnist, "GMMVAE"), "--trainer.logger", "false"]
    args += ["--trainer.default_root_dir", str(tmp_path), "--ckpt_path", str(vae_checkpoint)]
    error = run_failing([*args, "--data.binarization", "static"], capsys)
    note = f"note: {vae_checkpoint} holds a VAE; it is used with its own hyperparameters, not the config's"
    assert f"{note} GMMVAE" in error
    assert "CheckpointError" in error and "binarization: 'static' here, 'dynamic' in the checkpoint" in error
    # same data: the checkpoint's model is tested, and the note says so
    main(args)
    captured = capsys.readouterr()
    assert "holds a VAE" in captured.err and "test/elbo" in captured.out and "test/acc" not in captured.out


# ----------------------------------------------------------------------------- predict
def test_predict_writes_one_cluster_per_test_image_that_scores_as_test(
    synthetic_mnist: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    gmm = ["--model.warmup_epochs", "0", "--model.num_components", "10", "--model.em_restarts", "1"]
    best = fit(synthetic_mnist, tmp_path / "logs", "GMMVAE", *gmm)
    run = best.parent.parent
    before = set(tmp_path.iterdir())
    common = [
        *small_args(synthetic_mnist, "GMMVAE", *gmm),
        "--trainer.logger",
        "false",
        "--ckpt_path",
        str(best),
    ]
    tested = VaeZooCLI(*cli_classes(), args=["test", *common, "--trainer.enable_progress_bar", "false"])
    accuracy = float(tested.trainer.callback_metrics["test/acc"])
    with caplog.at_level(logging.INFO):
        main(["predict", *common, "--trainer.enable_progress_bar", "false"])
    files = run / "predictions" / f"{best.stem}.npz", run / "predictions" / f"{best.stem}.csv"
    assert f"written to {files[0]} and {files[1]}" in caplog.text
    assert set(tmp_path.iterdir()) == before
    written = np.load(files[0])
    labels = np.arange(60) % 10  # the synthetic test labels, in order
    cluster, responsibilities = written["cluster"], written["responsibilities"]
    assert written["index"].tolist() == list(range(60)) and cluster.shape == (60,)
    np.testing.assert_allclose(responsibilities.sum(-1), 1.0, rtol=1e-5)
    assert (responsibilities.argmax(-1) == cluster).all()
    assert hungarian_accuracy(torch.from_numpy(cluster), torch.from_numpy(labels)) == pytest.approx(accuracy)
    table = np.genfromtxt(files[1], delimiter=",", names=True)
    assert len(table) == 60 and table.dtype.names[0] == "index"


def test_predict_writes_the_posterior_of_a_vae(
    vae_checkpoint: Path, synthetic_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "predicted"
    args = [
        "predict",
        *small_args(synthetic_mnist),
        "--trainer.logger",
        "false",
        "--ckpt_path",
        str(vae_checkpoint),
    ]
    main([*args, "--trainer.callbacks+=PredictionWriter", "--trainer.callbacks.output_dir", str(out)])
    written = np.load(out / f"{vae_checkpoint.stem}.npz")
    assert sorted(written) == ["index", "mean", "variance"]
    assert written["mean"].shape == (60, 4) and (written["variance"] > 0).all()
    header = (out / f"{vae_checkpoint.stem}.csv").read_text().splitlines()[0].split(",")
    assert header == ["index", *(f"mean_{j}" for j in range(4)), *(f"variance_{j}" for j in range(4))]


def test_commands_without_a_logger_leave_no_config_in_the_working_directory(
    vae_checkpoint: Path, synthetic_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = [*small_args(synthetic_mnist), "--trainer.logger", "false", "--ckpt_path", str(vae_checkpoint)]
    main(["test", *args])
    main(["validate", *args])
    assert list(work.iterdir()) == []
    assert yaml.safe_load((vae_checkpoint.parents[1] / "config.yaml").read_text())["model"]["class_path"]
