"""The vae-zoo command called in-process on synthetic data: config, subclassing from outside."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.profilers import SimpleProfiler

from tests.conftest import tiny_model_args
from vae_zoo.cli import VaeZooCLI, cli_classes, main
from vae_zoo.models import ALL_MODELS, VAE
from vae_zoo.profilers import NoProfiler

EXTERNAL = Path(__file__).resolve().parents[1] / "external"


def fit_args(data_dir: Path, out: Path, model: str) -> list[str]:
    return [
        "fit",
        *tiny_model_args(data_dir, model),
        "--trainer.max_epochs",
        "1",
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir",
        str(out),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.log_every_n_steps",
        "1",
    ]


def test_fit_with_a_short_model_name_writes_best_and_last_checkpoints(
    synthetic_mnist: Path, tmp_path: Path
) -> None:
    main(fit_args(synthetic_mnist, tmp_path / "logs", "VAE"))
    run = next((tmp_path / "logs").rglob("version_0"))
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best-epoch=000.ckpt", "last.ckpt"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["class_path"] in ("vae_zoo.VAE", "vae_zoo.models.VAE")
    assert config["checkpoint"]["monitor"] == "val/loss"
    metrics = (run / "metrics.csv").read_text()
    for name in ("train/loss", "train/elbo", "train/kl", "train/recon", "train/kl_weight", "val/elbo"):
        assert name in metrics


@pytest.mark.parametrize(
    ("class_path", "check"),
    [
        ("my_project.models.TanhEncoderVAE", lambda model: isinstance(model.encoder[2], torch.nn.Tanh)),
        ("my_project.models.L1PenaltyVAE", lambda model: "l1" in model.loss_weights()),
    ],
)
def test_a_subclass_from_another_package_trains_through_the_command(
    synthetic_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, class_path: str, check
) -> None:
    monkeypatch.syspath_prepend(str(EXTERNAL))
    main(fit_args(synthetic_mnist, tmp_path / "logs", class_path))
    checkpoint = next((tmp_path / "logs").rglob("version_0")) / "checkpoints" / "last.ckpt"
    module_name, class_name = class_path.rsplit(".", 1)
    model_class = getattr(sys.modules[module_name], class_name)
    model = model_class.load_from_checkpoint(checkpoint)
    assert isinstance(model, VAE) and check(model)
    if class_name == "L1PenaltyVAE":
        assert "train/l1" in (checkpoint.parents[1] / "metrics.csv").read_text()


def test_print_config_lists_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model", "BetaVAE", "--data", "MNISTDataModule", "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["init_args"]["beta"] == 4.0
    assert config["trainer"]["logger"]["class_path"] == "vae_zoo.loggers.WandbLogger"
    assert config["checkpoint"]["save_last"] is True


def test_the_command_closes_the_process_group_it_ran_under(tmp_path: Path) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        with pytest.raises(SystemExit):
            main(["fit", "--model", "VAE", "--data", "MNISTDataModule", "--print_config"])
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@pytest.mark.parametrize("model_class", ALL_MODELS, ids=lambda cls: cls.__name__)
def test_every_model_is_built_by_the_command_and_reloads_from_its_checkpoint(
    model_class: type, synthetic_mnist: Path, tmp_path: Path
) -> None:
    args = ["--model", model_class.__name__, "--model.latent_dim", "4"]
    args += ["--data", "MNISTDataModule", "--data.data_dir", str(synthetic_mnist), "--data.download", "false"]
    args += ["--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)]
    cli = VaeZooCLI(*cli_classes(), args=args, run=False)
    assert type(cli.model) is model_class and cli.model.input_shape == (1, 28, 28)
    path = tmp_path / "model.ckpt"
    cli.trainer.strategy.connect(cli.model)
    cli.trainer.save_checkpoint(path)
    reloaded = model_class.load_from_checkpoint(path)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(reloaded.encode(x), cli.model.encode(x))


@pytest.mark.parametrize(
    ("extra", "refresh_rate"),
    [
        ([], 20),
        (
            [
                "--trainer.callbacks",
                "lightning.pytorch.callbacks.TQDMProgressBar",
                "--trainer.callbacks.refresh_rate",
                "3",
            ],
            3,
        ),
        (["--trainer.enable_progress_bar", "false"], None),
    ],
)
def test_progress_bar_defaults_to_a_refresh_every_20_steps(
    extra: list[str], refresh_rate: int | None, synthetic_mnist: Path, tmp_path: Path
) -> None:
    args = ["--model", "VAE", "--data", "MNISTDataModule", "--data.data_dir", str(synthetic_mnist)]
    args += ["--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path), *extra]
    trainer = VaeZooCLI(*cli_classes(), args=args, run=False).trainer
    bar = trainer.progress_bar_callback
    assert (bar.refresh_rate if bar is not None else None) == refresh_rate


@pytest.mark.parametrize(
    ("extra", "profiler_class"),
    [([], NoProfiler), (["--trainer.profiler", "simple"], SimpleProfiler)],
)
def test_the_profiler_defaults_to_one_that_costs_nothing(
    extra: list[str], profiler_class: type, synthetic_mnist: Path, tmp_path: Path
) -> None:
    args = ["--model", "VAE", "--data", "MNISTDataModule", "--data.data_dir", str(synthetic_mnist)]
    args += ["--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path), *extra]
    profiler = VaeZooCLI(*cli_classes(), args=args, run=False).trainer.profiler
    assert type(profiler) is profiler_class
    with profiler.profile("[Callback]a.on_train_batch_end"), profiler.profile("[Strategy]b.training_step"):
        pass
    # the no-op profiler hands out one shared context instead of building a generator per call
    shared = profiler.profile("a") is profiler.profile("b")
    assert shared == (profiler_class is NoProfiler)


@pytest.mark.parametrize("precision", [None, "high", "medium"])
def test_float32_matmul_precision_is_set_for_the_run_when_given(
    precision: str | None, synthetic_mnist: Path, tmp_path: Path
) -> None:
    before = torch.get_float32_matmul_precision()
    args = ["--model", "VAE", "--data", "MNISTDataModule", "--data.data_dir", str(synthetic_mnist)]
    args += ["--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)]
    args += [] if precision is None else ["--float32_matmul_precision", precision]
    try:
        VaeZooCLI(*cli_classes(), args=args, run=False)
        assert torch.get_float32_matmul_precision() == (precision or before)
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1), ("3", 3), ("0", 0), ("0.1", 0.1), ("1.0", 1.0), ("1e-1", 0.1)],
)
def test_limit_batches_reads_a_whole_number_as_batches_and_a_decimal_as_a_fraction(
    value: str, expected: int | float, synthetic_mnist: Path, tmp_path: Path
) -> None:
    args = ["--model", "VAE", "--data", "MNISTDataModule", "--data.data_dir", str(synthetic_mnist)]
    args += ["--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)]
    for stage in ("train", "val", "test", "predict"):
        args += [f"--trainer.limit_{stage}_batches", value]
    trainer = VaeZooCLI(*cli_classes(), args=args, run=False).trainer
    for stage in ("train", "val", "test", "predict"):
        limit = getattr(trainer, f"limit_{stage}_batches")
        assert limit == expected and type(limit) is type(expected)  # 1 is one batch, 1.0 all of them


def test_limit_batches_of_one_in_a_config_file_is_one_batch(synthetic_mnist: Path, tmp_path: Path) -> None:
    config = tmp_path / "limits.yaml"
    config.write_text("trainer:\n  limit_val_batches: 1\n  limit_test_batches: 0.5\n")
    args = ["--config", str(config), "--model", "VAE", "--data", "MNISTDataModule"]
    args += ["--data.data_dir", str(synthetic_mnist), "--trainer.logger", "false"]
    args += ["--trainer.default_root_dir", str(tmp_path)]
    trainer = VaeZooCLI(*cli_classes(), args=args, run=False).trainer
    assert (trainer.limit_val_batches, trainer.limit_test_batches) == (1, 0.5)
    assert type(trainer.limit_val_batches) is int


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--model.latent_dim", "0"],
            "vae-zoo fit: error: ValueError: latent_dim must be an integer >= 1; got 0",
        ),
        (["--data.data_dir", "/nowhere"], "FileNotFoundError: data_dir='/nowhere' does not exist"),
    ],
)
def test_bad_input_ends_with_one_message_and_exit_code_2(
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VAE_ZOO_TRACEBACK", raising=False)
    args = ["fit", "--model", "VAE", "--data", "MNISTDataModule", "--data.download", "false"]
    args += ["--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path), *extra]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    monkeypatch.setenv("VAE_ZOO_TRACEBACK", "1")
    with pytest.raises((ValueError, FileNotFoundError)):
        main(args)


def test_a_truncated_data_file_found_while_loading_ends_with_one_message_and_exit_code_2(
    synthetic_mnist: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAE_ZOO_TRACEBACK", raising=False)
    images = synthetic_mnist / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    args = ["fit", "--model", "VAE", "--data", "MNISTDataModule", "--data.data_dir", str(synthetic_mnist)]
    args += [
        "--data.download",
        "false",
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "DataError" in error and "t10k-images-idx3-ubyte" in error and "truncated" in error
    assert "Traceback" not in error
