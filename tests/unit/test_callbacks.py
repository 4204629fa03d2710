"""Callbacks: schedules, exact resume, free bits, collapse detection, diagnostics, images."""

from __future__ import annotations

import io
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from vae_zoo.callbacks import (
    CollapseDetection,
    ImageGrids,
    IWAEEvaluation,
    KLAnnealing,
    LatentTraversal,
    PosteriorCollapseError,
    image_grid,
    slerp,
)
from vae_zoo.errors import ConfigurationError
from vae_zoo.metrics import ActiveUnits, MutualInformation
from vae_zoo.models import GMMVAE, VAE, Autoencoder, BetaVAE
from vae_zoo.schedules import KLSchedule, cyclical_ramp, linear_ramp, sigmoid_ramp

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 4, "hidden_dims": [32]}


def blobs(n: int = 192) -> torch.utils.data.DataLoader:
    """Images of four kinds (a quadrant lit), with labels; deterministic."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 4
    x = torch.zeros(n, 1, 8, 8)
    for k, (r, c) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        x[y == k, :, r : r + 4, c : c + 4] = 1.0
    x = (0.8 * x + 0.2 * torch.rand(n, 1, 8, 8, generator=generator)).clamp(0, 1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


def trainer(tmp_path: Path, epochs: int, callbacks: list[Callback], logger=False, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
        **kwargs,
    )


@pytest.mark.parametrize("t", [0, 10, 25, 50, 99, 150])
def test_schedules_follow_their_formulas(t: int) -> None:
    assert linear_ramp(t, 0.0, 2.0, 100) == pytest.approx(2.0 * min(1, t / 100))
    assert sigmoid_ramp(t, 0.0, 1.0, 100) == pytest.approx(1 / (1 + math.exp(-10 * (t / 100 - 0.5))))
    period = 200 / 4
    tau = (t % period) / period
    assert cyclical_ramp(t, 0.0, 1.0, period, 0.5) == pytest.approx(min(1.0, tau / 0.5))
    annealing = KLSchedule(schedule="cyclical", cycles=4, ratio=0.5, total=200)
    assert annealing.weight_at(t) == pytest.approx(min(1.0, tau / 0.5))
    capacity = KLAnnealing(schedule="capacity", capacity_max=20.0, duration=100, gamma=50.0).kl_schedule
    assert capacity.capacity_at(t) == pytest.approx(20.0 * min(1, t / 100))
    assert capacity.weight_at(t) == 50.0 and annealing.capacity_at(t) is None


class WeightRecorder(Callback):
    """Records the KL weight the model trained with at each global step."""

    def __init__(self) -> None:
        self.weights: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.weights[trainer.global_step - 1] = pl_module.kl_weight


def test_resume_continues_the_annealing_where_it_stopped(tmp_path: Path) -> None:
    data = blobs()
    uninterrupted = WeightRecorder()
    torch.manual_seed(0)
    trainer(tmp_path / "a", 4, [KLAnnealing(duration=20), uninterrupted]).fit(
        BetaVAE(**SMALL, beta=2.0), data
    )
    first, resumed = WeightRecorder(), WeightRecorder()
    torch.manual_seed(0)
    part = trainer(tmp_path / "b", 2, [KLAnnealing(duration=20), first])
    part.fit(BetaVAE(**SMALL, beta=2.0), data)
    part.save_checkpoint(tmp_path / "mid.ckpt")
    rest = trainer(tmp_path / "b", 4, [KLAnnealing(duration=20), resumed])
    rest.fit(BetaVAE(**SMALL, beta=2.0), data, ckpt_path=tmp_path / "mid.ckpt")
    assert sorted(first.weights) == list(range(12)) and sorted(resumed.weights) == list(range(12, 24))
    assert {**first.weights, **resumed.weights} == pytest.approx(uninterrupted.weights)
    assert uninterrupted.weights[0] == 0.0 and uninterrupted.weights[23] == 2.0  # ends at beta


def test_annealing_refuses_a_model_without_kl(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"KLAnnealing needs a model with a KL term.*Autoencoder has none"):
        trainer(tmp_path, 1, [KLAnnealing()]).fit(Autoencoder(**SMALL), blobs())


def test_annealing_refuses_a_model_that_schedules_its_own_kl(tmp_path: Path) -> None:
    model = BetaVAE(**SMALL, capacity_max=5.0)  # the capacity schedule of its own arguments
    with pytest.raises(ConfigurationError, match=r"KLAnnealing and BetaVAE's own KL schedule \(capacity"):
        trainer(tmp_path, 1, [KLAnnealing(schedule="capacity")]).fit(model, blobs())


def test_annealing_bad_arguments() -> None:
    with pytest.raises(ValueError, match="schedule must be one of"):
        KLAnnealing(schedule="exponential")
    with pytest.raises(ValueError, match="ratio must be in"):
        KLAnnealing(ratio=1.5)


def test_free_bits_from_the_callback_reach_the_model(tmp_path: Path) -> None:
    model = VAE(**SMALL)
    trainer(tmp_path, 1, [KLAnnealing(schedule="constant", free_bits=0.25)], limit_train_batches=1).fit(
        model, blobs()
    )
    assert model.free_bits == 0.25 and "kl_penalized" in model.loss_terms(torch.rand(2, 1, 8, 8))


def test_collapse_is_reported_for_a_huge_beta_and_not_for_a_healthy_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    with pytest.raises(PosteriorCollapseError, match=r"posterior collapse at epoch .*active units") as error:
        trainer(tmp_path, 6, [CollapseDetection(action="raise", patience=2)]).fit(
            BetaVAE(**SMALL, beta=500.0, lr=0.01), blobs(), blobs()
        )
    assert "mutual information" in str(error.value)
    torch.manual_seed(0)
    healthy = CollapseDetection(action="raise")
    run = trainer(tmp_path, 3, [healthy])
    run.fit(BetaVAE(**SMALL, beta=0.5, lr=0.01), blobs(), blobs())
    assert not healthy.collapsed
    assert run.callback_metrics["val/active_units"] >= 2
    assert run.callback_metrics["val/mutual_info"] > 0.5
    assert "val/kl_dim/0" in run.callback_metrics


def test_collapse_detection_reports_an_empty_mixture_component(tmp_path: Path) -> None:
    model = GMMVAE(**SMALL, num_components=3, components_per_cluster=1, warmup_epochs=0)
    with torch.no_grad():
        model.prior.logits.copy_(torch.tensor([0.0, 0.0, -50.0]))  # a component nobody can use
        model.prior.means.copy_(torch.tensor([[0.0] * 4, [0.1] * 4, [1e3] * 4]))
    detection = CollapseDetection(action="warn", min_occupancy=0.01)
    model.initialize_prior = lambda codes: model.started.fill_(True)  # keep the crafted prior
    with pytest.warns(UserWarning, match="a cluster holds 0.00% < 1% of the data"):
        trainer(tmp_path, 1, [detection], limit_train_batches=1).fit(model, blobs(), blobs())
    assert detection.collapsed


def test_active_units_on_a_hand_made_case() -> None:
    metric = ActiveUnits(latent_dim=3, threshold=0.01)
    generator = torch.Generator().manual_seed(0)
    means = torch.stack(
        [
            torch.randn(1000, generator=generator),
            0.05 * torch.randn(1000, generator=generator),
            torch.full((1000,), 2.0),
        ],
        -1,
    )  # variances ~1, ~0.0025, 0
    for chunk in means.split(300):
        metric.update(chunk)
    assert int(metric.compute()) == 1
    torch.testing.assert_close(metric.variances(), means.double().var(0, correction=0))


def test_mutual_information_is_zero_without_information_and_log_b_with_all() -> None:
    no_information = MutualInformation()
    no_information.update(torch.zeros(100, 2), torch.ones(100, 2))
    assert abs(float(no_information.compute())) < 1e-6
    full = MutualInformation()
    full.update(torch.arange(100.0).unsqueeze(-1) * 100, torch.ones(100, 1))  # far apart posteriors
    assert float(full.compute()) == pytest.approx(math.log(100), abs=1e-3)


def test_slerp_keeps_the_norm_between_codes_of_equal_norm() -> None:
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    path = slerp(a, b, torch.linspace(0, 1, 5))
    torch.testing.assert_close(path.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)


@pytest.mark.parametrize("model_class", [GMMVAE, Autoencoder])
def test_images_are_written_as_png_files_under_the_csv_logger(model_class: type, tmp_path: Path) -> None:
    model = model_class(**SMALL) if model_class is Autoencoder else model_class(**SMALL, warmup_epochs=0)
    logger = CSVLogger(tmp_path, name="run")
    trainer(tmp_path, 2, [LatentTraversal(steps=5, num_dims=2), ImageGrids(num_images=8)], logger=logger).fit(
        model, blobs(), blobs()
    )
    names = sorted(p.name for p in Path(logger.log_dir, "images").iterdir())
    expected = ["images_reconstructions", "images_samples", "traversal_dims", "traversal_interpolation"]
    if model_class is GMMVAE:
        expected += ["traversal_component_samples", "traversal_components"]
    for key in expected:
        assert f"{key}_epoch000.png" in names and f"{key}_epoch001.png" in names


def test_wandb_tensorboard_and_png_images_hold_the_pixels_of_the_grid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image a user sees in W&B and in TensorBoard, read back from their files, and the PNG
    of the CSV run, equal round(255 * grid) of the grid the callback made (all black before)."""
    import numpy as np
    import wandb
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import vae_zoo.callbacks.traversal as traversal
    from vae_zoo.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    grids: dict[int, torch.Tensor] = {}  # the grids of the reconstructions, by call

    def recording_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
        grid = image_grid(images, nrow)
        if nrow == 16:  # ImageGrids' reconstructions
            grids[len(grids)] = grid
        return grid

    monkeypatch.setattr(traversal, "image_grid", recording_grid)
    loggers = [
        WandbLogger(save_dir=str(tmp_path), offline=True),
        TensorBoardLogger(tmp_path, name="tb"),
        CSVLogger(tmp_path, name="csv"),
    ]
    try:
        run_dir = Path(loggers[0].experiment.dir)
        trainer(tmp_path, 1, [ImageGrids(num_images=4)], logger=loggers, num_sanity_val_steps=0).fit(
            VAE(**SMALL), blobs(), blobs()
        )
    finally:
        wandb.finish()
    assert len(grids) == 1
    expected = np.round(grids[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)[..., 0]
    assert expected.max() == 255 and expected.std() > 20  # a grid with something in it

    (wandb_file,) = (run_dir / "media" / "images" / "images").glob("reconstructions_*.png")
    wandb_pixels = np.asarray(Image.open(wandb_file).convert("L"))
    events = EventAccumulator(loggers[1].log_dir, size_guidance={"images": 0})
    events.Reload()
    (event,) = events.Images("images/reconstructions")
    tensorboard_pixels = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("L"))
    (png_file,) = Path(loggers[2].log_dir, "images").glob("images_reconstructions_*.png")
    png_pixels = np.asarray(Image.open(png_file).convert("L"))
    for pixels in (wandb_pixels, tensorboard_pixels, png_pixels):
        np.testing.assert_array_equal(pixels, expected)


def test_collapse_detection_counter_survives_resume(tmp_path: Path) -> None:
    torch.manual_seed(0)
    first = CollapseDetection(action="warn", patience=10)
    part = trainer(tmp_path, 2, [first])
    with pytest.warns(UserWarning, match="posterior collapse"):
        part.fit(BetaVAE(**SMALL, beta=500.0, lr=0.01), blobs(), blobs())
    assert first.low_kl_epochs == 2
    part.save_checkpoint(tmp_path / "mid.ckpt")
    resumed = CollapseDetection(action="warn", patience=10)
    with pytest.warns(UserWarning, match="posterior collapse at epoch 2"):
        trainer(tmp_path, 3, [resumed]).fit(
            BetaVAE(**SMALL, beta=500.0, lr=0.01), blobs(), blobs(), ckpt_path=tmp_path / "mid.ckpt"
        )
    assert resumed.low_kl_epochs == 3  # 2 restored + 1, not 1


def test_iwae_evaluation_logs_a_bound_tighter_than_the_elbo(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = VAE(**SMALL)
    run = trainer(tmp_path, 3, [])
    run.fit(model, blobs())
    results = trainer(tmp_path, 1, [IWAEEvaluation(num_samples=200, chunk_size=64)]).test(
        model, blobs(), verbose=False
    )[0]
    assert results["test/nll_iwae"] <= -results["test/elbo"] + 0.5  # a tighter bound, up to noise
    assert results["test/nll_iwae"] > 0
    with pytest.raises(ValueError, match="IWAEEvaluation needs a model with a posterior"):
        trainer(tmp_path, 1, [IWAEEvaluation(num_samples=2)]).test(Autoencoder(**SMALL), blobs())
