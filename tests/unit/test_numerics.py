"""Numerical faults: bounded log-variances, degenerate mixtures, bf16 autocast, the non-finite loss guard."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.distributions import Normal

from vae_zoo.callbacks import NonFiniteLossError, NonFiniteLossGuard
from vae_zoo.cli import TRAINING_FAULT_EXIT_CODE, main
from vae_zoo.mixtures import fit_diagonal_gmm
from vae_zoo.models import ALL_MODELS, GMMVAE, VAE, LinearAutoencoder
from vae_zoo.nn import soft_clamp
from vae_zoo.priors import PRIOR_LOG_VARIANCE_BOUNDS, GaussianMixture

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 3, "hidden_dims": [16]}


def loader(n: int = 96, batch_size: int = 32) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=generator)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.arange(n) % 3), batch_size)


def trainer(tmp_path: Path, epochs: int, callbacks: list[Callback], **kwargs) -> L.Trainer:
    kwargs = {"logger": False, "enable_checkpointing": False, **kwargs}
    return L.Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
        **kwargs,
    )


# ----------------------------------------------------------------------------- bounded, log-space
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_soft_clamp_saturates_at_its_bounds_for_huge_and_infinite_inputs(dtype: torch.dtype) -> None:
    # before the fix: 1e4 (bf16) and 1e12 (float32) gave 0 by cancellation, +-inf gave NaN
    x = torch.tensor([1e4, 1e12, math.inf, -1e4, -1e12, -math.inf, 100.0, -100.0, 1.0]).to(dtype)
    y = soft_clamp(x, -14.0, 8.0)
    expected = torch.tensor([8.0, 8.0, 8.0, -14.0, -14.0, -14.0, 8.0, -14.0, 1.0])
    torch.testing.assert_close(y.float(), expected, atol=0.07, rtol=0)
    z = torch.linspace(-1e6, 1e6, 1001, dtype=dtype)
    assert bool((soft_clamp(z, -14.0, 8.0).float().diff() >= 0).all())  # monotone


def test_soft_clamp_equals_the_symmetric_smooth_clamp_up_to_exponentially_small_terms() -> None:
    x = torch.linspace(-60.0, 60.0, 24001, dtype=torch.float64)
    softplus = torch.nn.functional.softplus
    for low, high in ((-14.0, 8.0), (-10.0, 5.0)):
        symmetric = x - softplus(x - high) + softplus(low - x)
        difference = (soft_clamp(x, low, high) - symmetric).abs().max().item()
        # the terms dropped, exp(-(high - low)), and softplus's linearization beyond 20, exp(-20)
        assert difference < 2 * max(math.exp(-(high - low)), math.exp(-20)), (low, high, difference)
    assert soft_clamp(torch.tensor(-math.inf), -14.0, 8.0).item() == -14.0  # exact: width > 20


def test_mixture_log_variances_stay_bounded_for_extreme_raw_parameters() -> None:
    prior = GaussianMixture(2, 3)
    with torch.no_grad():
        prior.raw_log_variances.copy_(torch.tensor([[1e30, -1e30], [math.inf, -math.inf], [0.0, 1.0]]))
    low, high = PRIOR_LOG_VARIANCE_BOUNDS
    assert bool(((prior.log_variances >= low) & (prior.log_variances <= high)).all())
    assert bool(torch.isfinite(prior.log_prob(torch.randn(5, 2) * 100)).all())


def test_em_with_fewer_distinct_points_than_components_does_not_crash_or_spike() -> None:
    # k-means++ divided 0 by 0 once every point was a centre (RuntimeError from multinomial), and
    # an empty component sat at the origin with variance 1e-4, far from all data
    for x in (torch.full((40, 2), 3.0), torch.tensor([[10.0, 10.0], [12.0, 10.0]]).repeat(20, 1)):
        gmm = fit_diagonal_gmm(x, 3, restarts=2)
        for value in (gmm.weights, gmm.means, gmm.variances):
            assert bool(torch.isfinite(value).all())
        low, high = x.min(0).values, x.max(0).values
        assert bool(((gmm.means >= low) & (gmm.means <= high)).all()), gmm.means
        assert float(gmm.weights.sum()) == pytest.approx(1.0)


def test_em_refuses_non_finite_codes_and_returns_float32_for_bf16_codes() -> None:
    x = torch.randn(30, 2)
    x[4, 1] = math.nan
    with pytest.raises(ValueError, match="needs finite data; 1 of the 30 points hold NaN or infinite"):
        fit_diagonal_gmm(x, 2)
    gmm = fit_diagonal_gmm(torch.randn(30, 2).bfloat16(), 2)
    assert gmm.means.dtype == gmm.variances.dtype == gmm.weights.dtype == torch.float32


def test_responsibility_kl_of_a_component_with_zero_weight_is_finite_with_finite_gradients() -> None:
    prior = GaussianMixture(2, 3)
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([0.0, 0.0, -math.inf]))  # an empty component
    loc = torch.randn(6, 2, requires_grad=True)
    posterior = Normal(loc, torch.full((6, 2), 0.5))
    kl = prior.kl_responsibility(posterior, posterior.rsample())
    assert bool(torch.isfinite(kl).all()) and bool((kl >= -1e-5).all())
    kl.sum().backward()
    for gradient in (loc.grad, prior.means.grad, prior.logits.grad, prior.raw_log_variances.grad):
        assert bool(torch.isfinite(gradient).all())
    # the same mixture without the empty component gives the same KL
    reference = GaussianMixture(2, 2)
    with torch.no_grad():
        reference.means.copy_(prior.means[:2])
        reference.raw_log_variances.copy_(prior.raw_log_variances[:2])
    z = posterior.rsample()
    expected = reference.kl_responsibility(posterior, z)
    torch.testing.assert_close(prior.kl_responsibility(posterior, z), expected)


# ----------------------------------------------------------------------------- bf16 autocast
def tiny(model_class: type) -> L.LightningModule:
    if model_class is LinearAutoencoder:
        return model_class(input_shape=[1, 8, 8], latent_dim=3)
    if issubclass(model_class, GMMVAE):  # warmup_epochs=0: the EM fit and the mixture KL run under bf16
        return model_class(**SMALL, num_components=3, warmup_epochs=0, em_restarts=1, em_iterations=20)
    return model_class(**SMALL)


class LossRecorder(Callback):
    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []
        self.terms: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if outputs is not None:
            self.losses.append(outputs["loss"].detach())
            self.terms.append(outputs["terms"])


@pytest.mark.parametrize("model_class", ALL_MODELS, ids=lambda cls: cls.__name__)
def test_every_model_trains_under_bf16_autocast_with_finite_losses(model_class: type, tmp_path: Path) -> None:
    model, recorder = tiny(model_class), LossRecorder()
    run = trainer(tmp_path, 2, [recorder], precision="bf16-mixed", limit_train_batches=2, limit_val_batches=1)
    run.fit(model, loader(), loader())
    assert len(recorder.losses) == 4
    assert bool(torch.isfinite(torch.stack(recorder.losses)).all())
    for terms in recorder.terms:
        assert all(bool(torch.isfinite(term).all()) for term in terms.values())
    assert all(math.isfinite(float(value)) for value in run.callback_metrics.values())
    if isinstance(model, GMMVAE):
        assert bool(model.started)
        assert model.prior.means.dtype == torch.float32
        assert bool(torch.isfinite(model.prior.means).all())


# ----------------------------------------------------------------------------- the guard
class ExplodingVAE(VAE):
    """A VAE whose KL is infinite in three examples of every training batch from ``explode_at`` on."""

    explode_at = 10**9

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = super().loss_terms(x)
        if self.training and self.global_step >= self.explode_at:
            kl = terms["kl"].clone()
            kl[:3] = math.inf
            terms["kl"] = kl
        return terms


class ExplodingCLIVAE(ExplodingVAE):
    explode_at = 6  # the second epoch of 190 training images at batch 50


class SnapshotLast(Callback):
    """The bytes of ``last.ckpt`` as they were when ``epoch`` started."""

    def __init__(self, path: Path, epoch: int) -> None:
        self.path, self.epoch, self.data = path, epoch, b""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            self.data = self.path.read_bytes()


@pytest.mark.parametrize("save_on_exception", [False, True])
def test_guard_names_the_step_and_term_and_keeps_the_last_good_checkpoint(
    save_on_exception: bool, tmp_path: Path
) -> None:
    folder = tmp_path / "checkpoints"
    checkpoint = ModelCheckpoint(
        dirpath=folder, monitor="val/loss", save_last=True, save_on_exception=save_on_exception
    )
    snapshot = SnapshotLast(folder / "last.ckpt", epoch=1)
    model = ExplodingVAE(**SMALL)
    model.explode_at = 4  # 3 batches per epoch: epoch 1, batch 1
    run = trainer(tmp_path, 3, [NonFiniteLossGuard(), snapshot, checkpoint], enable_checkpointing=True)
    with pytest.raises(NonFiniteLossError) as error:
        run.fit(model, loader(), loader())
    message = str(error.value)
    assert message.startswith(
        "the training loss became inf at global step 4 (epoch 1, batch 1): "
        "non-finite loss terms: kl (inf in 3 of 32 examples); "
        "training stopped before any checkpoint of this state was written; the last checkpoint is "
    )
    assert "recon" not in message and "\n" not in message
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=3.ckpt", "last.ckpt"]
    assert (folder / "last.ckpt").read_bytes() == snapshot.data
    restored = ExplodingVAE.load_from_checkpoint(folder / "last.ckpt")
    assert all(bool(torch.isfinite(p).all()) for p in restored.parameters())


class CheckCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = NonFiniteLossGuard._pending_finite

        def counting(guard: NonFiniteLossGuard) -> bool:
            self.calls += 1
            return original(guard)

        monkeypatch.setattr(NonFiniteLossGuard, "_pending_finite", counting)


def test_a_sparse_guard_synchronises_once_per_check_and_still_names_the_first_bad_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = CheckCounter(monkeypatch)
    model = ExplodingVAE(**SMALL)
    model.explode_at = 5  # 4 batches per epoch: epoch 1, batch 1; detected when validation starts
    run = trainer(tmp_path, 3, [NonFiniteLossGuard(check_every_n_steps=100)])
    with pytest.raises(NonFiniteLossError, match=r"became inf at global step 5 \(epoch 1, batch 1\)"):
        run.fit(model, loader(128), loader())
    assert counter.calls == 2  # one test for the 4 steps of epoch 0, one for the 4 of epoch 1
    assert run.global_step == 8  # trained on to the end of the epoch, but saved nothing


def test_guard_checks_fall_on_the_steps_where_step_metrics_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = CheckCounter(monkeypatch)
    trainer(tmp_path, 2, [NonFiniteLossGuard(check_every_n_steps=2)]).fit(VAE(**SMALL), loader(128), loader())
    assert counter.calls == 4  # after global steps 2, 4, 6 and 8; nothing left to test at epoch ends


def test_guard_checks_every_step_of_a_single_cpu_process_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = CheckCounter(monkeypatch)
    model = ExplodingVAE(**SMALL)
    model.explode_at = 2
    with pytest.raises(NonFiniteLossError, match="at global step 2 "):
        trainer(tmp_path, 2, [NonFiniteLossGuard()]).fit(model, loader(128), loader())
    assert counter.calls == 3  # steps 0, 1, 2
    guard = NonFiniteLossGuard()
    guard.setup(trainer(tmp_path, 1, [], devices=2, strategy="ddp_spawn"), model, "fit")
    assert guard._every == 50  # trainer.log_every_n_steps under DDP


def test_guard_says_when_every_term_was_finite_but_their_weighted_sum_was_not(tmp_path: Path) -> None:
    model = VAE(**SMALL)
    model.kl_weight = math.inf
    with pytest.raises(NonFiniteLossError, match=r"every loss term \(recon, kl\) was finite, their weighted"):
        trainer(tmp_path, 1, [NonFiniteLossGuard()]).fit(model, loader(), loader())


def test_guard_argument_is_checked() -> None:
    with pytest.raises(ValueError, match="check_every_n_steps must be None or an integer >= 1; got 0"):
        NonFiniteLossGuard(check_every_n_steps=0)


def cli_args(data_dir: Path, out: Path, model: str) -> list[str]:
    args = ["fit", "--model", model, "--model.latent_dim", "2", "--model.hidden_dims", "[16]"]
    args += ["--data", "MNISTDataModule", "--data.data_dir", str(data_dir), "--data.download", "false"]
    args += ["--data.val_size", "50", "--data.batch_size", "50", "--trainer.max_epochs", "3"]
    args += ["--trainer.logger", "false", "--trainer.default_root_dir", str(out)]
    return [*args, "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def test_the_command_ends_a_non_finite_loss_with_one_line_and_exit_code_3(
    synthetic_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VAE_ZOO_TRACEBACK", raising=False)
    out = tmp_path / "run"
    args = cli_args(synthetic_mnist, out, f"{__name__}.ExplodingCLIVAE")
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == TRAINING_FAULT_EXIT_CODE == 3
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if line.startswith("vae-zoo fit: error:")]
    assert len(lines) == 1 and "Traceback" not in error
    assert lines[0].startswith(
        "vae-zoo fit: error: NonFiniteLossError: the training loss became inf at global step 6 "
        "(epoch 1, batch 2): non-finite loss terms: kl (inf in 3 of 50 examples)"
    )
    last = out / "checkpoints" / "last.ckpt"
    assert f"the last checkpoint is {last}" in lines[0]
    model = ExplodingCLIVAE.load_from_checkpoint(last)  # epoch 0's weights, intact
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    monkeypatch.setenv("VAE_ZOO_TRACEBACK", "1")
    with pytest.raises(NonFiniteLossError):
        main(cli_args(synthetic_mnist, tmp_path / "again", f"{__name__}.ExplodingCLIVAE"))
