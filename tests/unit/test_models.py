"""VAE and beta-VAE: loss terms, gradients, public API, hyperparameters and checkpoints."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from vae_zoo.models import ALL_MODELS, GMMVAE, GMVAE, VAE, BetaVAE, model_arguments
from vae_zoo.models.base import LatentVariableModel, fused_adam_supported, weighted_sum
from vae_zoo.models.vae import free_bits_kl

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 3, "hidden_dims": [16]}
VAE_FAMILY = [model for model in ALL_MODELS if issubclass(model, VAE)]


def small(model_class: type, **overrides) -> dict:
    """SMALL and ``overrides``, less the arguments ``model_class`` does not take."""
    accepted = model_arguments(model_class)
    return {name: value for name, value in {**SMALL, **overrides}.items() if name in accepted}


def binary_batch(n: int = 6) -> torch.Tensor:
    return torch.bernoulli(torch.rand(n, 1, 8, 8))


@pytest.mark.parametrize("model_class", VAE_FAMILY)
@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_public_api_shapes(model_class: type, architecture: str) -> None:
    model = model_class(**small(model_class, hidden_dims=[4, 4], architecture=architecture))
    x = binary_batch()
    assert model.encode(x).shape == (6, 3)
    assert model.reconstruct(x).shape == x.shape
    samples = model.sample(5)
    assert samples.shape == (5, 1, 8, 8)
    assert torch.all((samples >= 0) & (samples <= 1))  # Bernoulli means
    model.eval()
    terms = model.loss_terms(x)
    assert {"recon", "kl"} <= set(terms) and all(t.shape == (6,) for t in terms.values())
    assert set(terms) == set(model.loss_weights())


def test_vae_loss_is_negative_elbo_with_analytic_kl() -> None:
    model = VAE(**SMALL)
    x = binary_batch()
    torch.manual_seed(1)
    terms = model.loss_terms(x)
    torch.manual_seed(1)
    posterior = model.posterior(x)
    z = posterior.rsample()
    logits = model.decoder(z)
    recon = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    mu, var = posterior.mean, posterior.variance
    kl = 0.5 * (mu**2 + var - 1 - var.log()).sum(1)
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["kl"], kl)
    torch.testing.assert_close(model.objective(terms), (recon + kl).mean())


def test_reparameterized_gradients_reach_the_encoder_through_the_reconstruction() -> None:
    model = VAE(**SMALL)
    model.loss_terms(binary_batch())["recon"].mean().backward()
    first_encoder_layer = model.encoder[1][0].weight
    assert first_encoder_layer.grad is not None and first_encoder_layer.grad.abs().sum() > 0


def test_beta_one_equals_vae() -> None:
    torch.manual_seed(3)
    vae = VAE(**SMALL)
    torch.manual_seed(3)
    beta_vae = BetaVAE(**SMALL, beta=1.0)
    x = binary_batch()
    torch.manual_seed(4)
    vae_loss = vae.objective(vae.loss_terms(x))
    torch.manual_seed(4)
    beta_loss = beta_vae.objective(beta_vae.loss_terms(x))
    torch.testing.assert_close(vae_loss, beta_loss)


def test_beta_weights_the_kl() -> None:
    model = BetaVAE(**SMALL, beta=4.0)
    terms = {"recon": torch.tensor([10.0, 20.0]), "kl": torch.tensor([1.0, 3.0])}
    torch.testing.assert_close(model.objective(terms), torch.tensor(15.0 + 4.0 * 2.0))


def test_capacity_objective_follows_burgess() -> None:
    model = BetaVAE(**SMALL, capacity_max=25.0, gamma=100.0, capacity_steps=1000)
    terms = {"recon": torch.tensor([10.0, 20.0]), "kl": torch.tensor([1.0, 3.0])}
    assert model.capacity() == 0.0  # no trainer yet: step 0
    torch.testing.assert_close(model.objective(terms), torch.tensor(15.0 + 100.0 * 2.0))
    with pytest.MonkeyPatch.context() as patch:
        step = {"now": 400}
        patch.setattr(BetaVAE, "trainer", property(lambda self: SimpleNamespace(global_step=step["now"])))
        model.on_train_batch_start(None, 0)
        assert model.kl_capacity == pytest.approx(10.0) and model.kl_weight == 100.0
        torch.testing.assert_close(model.objective(terms), torch.tensor(15.0 + 100.0 * 8.0))
        step["now"] = 5000
        model.on_train_batch_start(None, 0)
        assert model.kl_capacity == pytest.approx(25.0)


def test_free_bits_leave_dimensions_below_the_floor_unpenalized() -> None:
    per_dim = torch.tensor([[0.1, 2.0, 0.3], [0.3, 4.0, 0.1]], requires_grad=True)  # means 0.2, 3, 0.2
    penalty = free_bits_kl(per_dim, floor=0.5)
    torch.testing.assert_close(penalty, torch.tensor(0.5 + 3.0 + 0.5))
    penalty.backward()
    torch.testing.assert_close(per_dim.grad, torch.tensor([[0.0, 0.5, 0.0], [0.0, 0.5, 0.0]]))
    grouped = free_bits_kl(torch.tensor([[0.1, 0.2, 3.0, 0.0]]), floor=0.5, groups=2)
    torch.testing.assert_close(grouped, torch.tensor(0.5 + 3.0))
    with pytest.raises(ValueError, match="free_bits_groups=3 must divide the latent size 4"):
        free_bits_kl(torch.zeros(1, 4), 0.5, groups=3)


def test_free_bits_in_the_vae_objective() -> None:
    model = VAE(**SMALL)
    model.free_bits = 100.0  # every dimension below the floor: the KL gets no gradient
    terms = model.loss_terms(binary_batch())
    assert set(terms) == {"recon", "kl", "kl_penalized"}
    torch.testing.assert_close(terms["kl_penalized"], torch.full((6,), 300.0))
    model.objective(terms).backward()
    assert all(p.grad is None or p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    gmm = GMMVAE(**SMALL)
    gmm.free_bits = 0.5
    gmm.eval()
    with pytest.raises(ValueError, match="free_bits needs a per-dimension KL"):
        gmm.loss_terms(binary_batch())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latent_dim": 0}, "latent_dim must be an integer >= 1; got 0"),
        ({"latent_dim": 2.5}, "latent_dim must be an integer >= 1; got 2.5"),
        ({"hidden_dims": [8, -1]}, "hidden_dims must be a list of positive ints"),
        ({"likelihood": "laplace"}, "likelihood must be one of"),
        ({"architecture": "transformer"}, "architecture must be one of"),
        ({"lr": -1.0}, "lr must be a positive finite number; got -1.0"),
        ({"beta": -0.5}, "beta must be a finite number >= 0; got -0.5"),
        ({"capacity_max": -1.0}, "capacity_max must be None or a finite number >= 0"),
        ({"capacity_steps": 0}, "capacity_steps must be an integer >= 1; got 0"),
    ],
)
def test_bad_arguments_are_refused_with_the_parameter_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BetaVAE(**{**SMALL, **kwargs})


def test_attributes_are_set_as_on_any_module_and_lightnings_hook_name_directly() -> None:
    model = VAE(latent_dim=2)
    model._current_fx_name = "training_step"
    assert model._current_fx_name == "training_step" and vars(model)["_current_fx_name"] == "training_step"
    model.extra_head = torch.nn.Linear(2, 2)  # still registered as a submodule
    model.scale = torch.nn.Parameter(torch.ones(1))  # and as a parameter
    assert "extra_head" in model._modules and "scale" in model._parameters
    assert {"extra_head", "scale"} <= {name.split(".")[0] for name, _ in model.named_parameters()}


def test_the_weighted_sum_of_the_terms_is_per_example_and_skips_unit_weights() -> None:
    recon, kl = torch.tensor([1.0, 2.0]), torch.tensor([10.0, 30.0])
    total = weighted_sum({"recon": recon, "kl": kl}, {"recon": 1.0, "kl": 0.5})
    torch.testing.assert_close(total, torch.tensor([6.0, 17.0]))
    assert weighted_sum({"recon": recon}, {"recon": 1}) is recon  # nothing computed for a weight of 1
    with pytest.raises(ValueError, match="at least one loss term"):
        weighted_sum({}, {"recon": 1.0})


def test_the_default_optimizer_is_fused_adam_and_steps_as_the_default_implementation() -> None:
    torch.manual_seed(0)
    model = VAE(**SMALL, lr=0.01)
    fused = model.configure_optimizers()
    assert isinstance(fused, torch.optim.Adam) and fused.defaults["fused"] is True
    assert fused.defaults["lr"] == 0.01
    reference = VAE(**SMALL, lr=0.01)
    reference.load_state_dict(model.state_dict())
    plain = torch.optim.Adam(reference.parameters(), lr=0.01)
    initial = [p.detach().clone() for p in model.parameters()]
    x = binary_batch(16)
    for _ in range(3):  # same draws of z for both: the updates must agree to rounding
        for module, optimizer in ((model, fused), (reference, plain)):
            torch.manual_seed(1)
            optimizer.zero_grad()
            module.objective(module.loss_terms(x)).backward()
            optimizer.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(not torch.equal(p, p0) for p, p0 in zip(model.parameters(), initial, strict=True))


@pytest.mark.parametrize(
    ("parameter", "supported"),
    [
        (torch.zeros(2), True),
        (torch.zeros(2, dtype=torch.float64), True),
        (torch.zeros(2, dtype=torch.bfloat16), True),
        (torch.zeros(2, device="meta"), False),
        (torch.zeros(2, dtype=torch.complex64), False),
    ],
)
def test_fused_adam_is_chosen_only_where_torch_has_the_kernel(
    parameter: torch.Tensor, supported: bool
) -> None:
    assert fused_adam_supported([torch.zeros(3), parameter]) is supported
    assert fused_adam_supported([]) is False


@pytest.mark.parametrize("model_class", ALL_MODELS, ids=lambda cls: cls.__name__)
def test_every_trainable_parameter_gets_a_gradient_in_a_training_step(model_class: type) -> None:
    model = model_class(**small(model_class, likelihood="gaussian", learn_likelihood_variance=True))
    x = binary_batch(32)
    if isinstance(model, GMMVAE):  # past the warm-up: the prior's parameters are in the loss
        model.initialize_prior(model.encode(x).detach())
    if isinstance(model, GMVAE):  # past the warm-up, as after its start
        model.started.fill_(True)
    model.train()
    model.objective(model.loss_terms(x)).backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


def test_hyperparameters_include_subclass_arguments() -> None:
    model = BetaVAE(**SMALL, beta=2.0, capacity_max=5.0)
    assert model.hparams.beta == 2.0 and model.hparams.capacity_max == 5.0
    assert model.hparams.latent_dim == 3 and list(model.hparams.input_shape) == [1, 8, 8]


@pytest.mark.parametrize("model_class", ALL_MODELS)
def test_fit_checkpoint_and_reload_without_arguments(model_class: type, tmp_path: Path) -> None:
    x = binary_batch(32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(32)), batch_size=8)
    model = model_class(**small(model_class))
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
    )
    trainer.fit(model, loader, loader)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    reloaded = model_class.load_from_checkpoint(path)
    assert type(reloaded) is model_class
    torch.testing.assert_close(reloaded.encode(x), model.encode(x))
    metrics = trainer.callback_metrics
    assert metrics["val/loss"].isfinite() and metrics["val/sq_error"] >= 0
    if "val/elbo" in metrics:
        torch.testing.assert_close(metrics["val/elbo"], -(metrics["val/recon"] + metrics["val/kl"]))


@pytest.mark.parametrize("model_class", ALL_MODELS, ids=lambda cls: cls.__name__)
def test_every_argument_of_the_chain_is_on_the_command_line_once(model_class: type) -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(model_class, "model")
    on_the_command_line = set(parser.get_defaults()["model"].keys())
    assert on_the_command_line == set(model_arguments(model_class))
    declared = [  # each argument declared by one class of the chain, but for a changed default
        name
        for cls in model_class.__mro__
        if "__init__" in vars(cls) and issubclass(cls, LatentVariableModel)
        for name in list(inspect.signature(cls.__init__).parameters)[1:]
        if name != "kwargs"
    ]
    repeated = {name for name in declared if declared.count(name) > 1}
    # GMMVAE changes the defaults of latent_dim and hidden_dims; LinearAutoencoder keeps only
    # input_shape, latent_dim and lr of the base's and fixes the others
    assert repeated <= {"latent_dim", "hidden_dims", "input_shape", "lr"}


def test_the_readme_subclassing_example_runs_and_its_argument_reaches_help_and_hparams() -> None:
    from jsonargparse import ArgumentParser

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Subclassing in your own project", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    model_class = namespace["L1PenaltyVAE"]
    model = model_class(l1_weight=0.5, **SMALL)
    assert model.hparams["l1_weight"] == 0.5 and model.hparams["latent_dim"] == 3
    assert model.loss_weights() == {"recon": 1.0, "kl": 1.0, "l1": 0.5}
    terms = model.loss_terms(binary_batch())
    assert set(terms) == {"recon", "kl", "l1"} and terms["l1"].shape == (6,)
    parser = ArgumentParser()
    parser.add_class_arguments(model_class, "model")
    assert {"l1_weight", "latent_dim", "lr"} <= set(parser.get_defaults()["model"].keys())
