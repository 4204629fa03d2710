"""The compiled training step (vae_zoo.callbacks.CompiledStep) against the eager one."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import pytest
import torch

from vae_zoo.callbacks import CompiledStep
from vae_zoo.errors import ConfigurationError
from vae_zoo.models import VAE, Autoencoder

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 3, "hidden_dims": [16]}
needs_compiler = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None,
    reason="torch.compile's inductor backend needs a C++ compiler on the CPU, and this platform has none",
)


def data(n: int = 50, batch_size: int = 16) -> torch.utils.data.DataLoader:
    """Binary 8x8 images in batches of 16 and a last batch of 2."""
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(n, 1, 8, 8, generator=generator) > 0.5).float()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=batch_size)


@needs_compiler
def test_compiled_step_gives_the_eager_loss_terms_and_gradients() -> None:
    torch.manual_seed(0)
    model = Autoencoder(**SMALL)  # deterministic: both sides see the same numbers
    x = next(iter(data()))[0]

    def run(function):  # the loss, the terms and every parameter's gradient
        model.zero_grad()
        loss, terms = function(x)
        loss.backward()
        return loss.detach(), terms["recon"].detach(), [p.grad.clone() for p in model.parameters()]

    eager = run(model.loss_and_terms)
    compiled = run(torch.compile(model.loss_and_terms))
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled[1], eager[1], rtol=1e-5, atol=1e-5)
    for grad, eager_grad in zip(compiled[2], eager[2], strict=True):
        torch.testing.assert_close(grad, eager_grad, rtol=1e-4, atol=1e-5)


@needs_compiler
def test_fit_with_the_compiled_step_trains_the_models_own_parameters(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = VAE(**SMALL)
    before = [p.detach().clone() for p in model.parameters()]
    callback = CompiledStep()
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, data(), data())
    assert callback.compile_seconds is not None and callback.compile_seconds > 0
    assert model.compiled_loss_and_terms is None  # eager again after fit
    assert all(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True))
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
    checkpoint = next((tmp_path / "checkpoints").glob("*.ckpt"), None) or next(tmp_path.rglob("*.ckpt"))
    reloaded = VAE.load_from_checkpoint(checkpoint)
    for a, b in zip(reloaded.state_dict().values(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_compiled_step_refuses_a_bad_mode_or_backend_and_a_foreign_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        CompiledStep(mode="fastest")
    with pytest.raises(ValueError, match="backend must be one of"):
        CompiledStep(backend="nope")
    from lightning.pytorch.demos.boring_classes import BoringModel

    trainer = L.Trainer(default_root_dir=tmp_path, max_epochs=1, callbacks=[CompiledStep()], logger=False)
    with pytest.raises(ConfigurationError, match="CompiledStep needs a vae-zoo model"):
        trainer.fit(BoringModel())
