"""The rest of the zoo: PCA as a linear autoencoder, the autoencoder, GMM-VAE, hierarchical."""

from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from matplotlib.figure import Figure
from scipy.cluster import hierarchy

from tests.unit.test_spectral import two_moons
from vae_zoo.data import MNISTDataModule
from vae_zoo.metrics import ClusteringAccuracy
from vae_zoo.mixtures import gmm_from_assignment
from vae_zoo.models import GMMVAE, GMVAE, Autoencoder, HierarchicalGMMVAE, LinearAutoencoder, principal_angles
from vae_zoo.models.gmvae import fit_softmax_regression
from vae_zoo.spectral import spectral_clustering


def low_rank_data(n: int = 400, d: int = 12, rank: int = 3, noise: float = 0.05) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(d, rank, generator=generator))[0]  # [d, r]
    scales = torch.tensor([3.0, 2.0, 1.0])
    codes = torch.randn(n, rank, generator=generator) * scales
    return codes @ basis.T + 1.5 + noise * torch.randn(n, d, generator=generator)


def quiet_trainer(epochs: int, **overrides) -> L.Trainer:
    options = {
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "accelerator": "cpu",
    }
    return L.Trainer(max_epochs=epochs, **{**options, **overrides})


def loader(
    x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 50
) -> torch.utils.data.DataLoader:
    y = torch.zeros(len(x), dtype=torch.long) if y is None else y
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


def test_closed_form_pca_matches_svd() -> None:
    x = low_rank_data()
    model = LinearAutoencoder(input_shape=[12], latent_dim=3).double()
    ratio = model.fit_pca(x)
    centred = (x - x.mean(0)).double()
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    eigenvalues = s**2 / len(x)
    torch.testing.assert_close(ratio, eigenvalues[:3].sum() / eigenvalues.sum())
    reconstruction = model.reconstruct(x.double())
    squared_error = ((reconstruction - x) ** 2).sum(1).mean()
    torch.testing.assert_close(squared_error, eigenvalues[3:].sum())  # PCA's optimal error
    assert principal_angles(model.decoder_weight, vh[:3].T).max() < 1e-6
    torch.testing.assert_close(model.noise_variance, eigenvalues[3:].mean())


def test_ppca_samples_have_the_data_covariance() -> None:
    x = low_rank_data(noise=0.3).double()
    model = LinearAutoencoder(input_shape=[12], latent_dim=3).double()
    model.fit_pca(x)
    samples = model.sample(200_000, noise=True)
    data_covariance = torch.cov(x.T, correction=0)
    eigenvalues, eigenvectors = torch.linalg.eigh(data_covariance)
    top = eigenvectors[:, -3:]
    noise = eigenvalues[:-3].mean()
    ppca = top @ torch.diag(eigenvalues[-3:] - noise) @ top.T + noise * torch.eye(12, dtype=torch.float64)
    torch.testing.assert_close(torch.cov(samples.T), ppca, atol=0.03, rtol=0.02)
    torch.testing.assert_close(samples.mean(0), x.mean(0), atol=0.02, rtol=0)


def test_gradient_trained_linear_autoencoder_learns_the_principal_subspace() -> None:
    x = low_rank_data(n=500, noise=0.3)
    model = LinearAutoencoder(input_shape=[12], latent_dim=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 1500)
    model.train()
    for _ in range(1500):  # full-batch gradient descent on the model's own loss
        loss = model.objective(model.loss_terms(x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.fit_latent_density(model.encode(x).detach())
    exact = LinearAutoencoder(input_shape=[12], latent_dim=3)
    exact.fit_pca(x)
    angles = principal_angles(model.decoder_weight, exact.decoder_weight)
    assert angles.max() < 0.05
    error = ((model.reconstruct(x) - x) ** 2).sum(1).mean()
    optimum = ((exact.reconstruct(x) - x) ** 2).sum(1).mean()
    assert error < optimum * 1.02  # the 1% criterion on MNIST is measured by benchmarks/pca.py
    assert bool(model.latent_density.fitted) and model.sample(4).shape == (4, 12)


def test_closed_form_flag_fits_pca_at_the_start_of_fit() -> None:
    x = low_rank_data()
    model = LinearAutoencoder(input_shape=[12], latent_dim=3, closed_form=True)
    trainer = quiet_trainer(epochs=1)
    trainer.fit(model, loader(x), loader(x))
    assert bool(model.closed_form_fitted)
    exact = LinearAutoencoder(input_shape=[12], latent_dim=3)
    exact.fit_pca(x)
    assert principal_angles(model.decoder_weight, exact.decoder_weight).max() < 1e-3
    assert trainer.callback_metrics["val/explained_variance"] > 0.99


def test_autoencoder_fits_a_latent_density_and_samples() -> None:
    x = torch.rand(120, 1, 8, 8)
    model = Autoencoder(
        input_shape=[1, 8, 8], latent_dim=3, hidden_dims=[16], latent_density="gmm", density_components=2
    )
    with pytest.raises(RuntimeError, match="sample\\(\\) needs a latent density"):
        model.sample(2)
    trainer = quiet_trainer(epochs=2)
    trainer.fit(model, loader(x, batch_size=40), loader(x, batch_size=40))
    assert bool(model.latent_density.fitted) and model.latent_density.weights.shape == (2,)
    samples = model.sample(5)
    assert samples.shape == (5, 1, 8, 8) and torch.all((samples >= 0) & (samples <= 1))
    assert set(model.loss_terms(x[:4])) == {"recon"}
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        model.decoder(model.encode(x[:4])), x[:4], reduction="none"
    )
    torch.testing.assert_close(model.loss_terms(x[:4])["recon"], bce.sum((1, 2, 3)))


def two_blobs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = torch.zeros(200, 1, 8, 8)
    x[y == 0, :, :4] = 1.0
    x[y == 1, :, 4:] = 1.0
    x = (x * 0.9 + 0.05 * torch.rand(200, 1, 8, 8, generator=generator)).clamp(0, 1)
    return x, y


#: the network and mixture of the small clustering models for :func:`two_blobs`
BLOB_MODEL = {"input_shape": [1, 8, 8], "latent_dim": 2, "hidden_dims": [32], "num_components": 2, "lr": 0.01}


def blob_gmm_vae(**overrides) -> GMMVAE:
    """A small GMMVAE for :func:`two_blobs`; ``overrides`` replace its arguments."""
    return GMMVAE(**{**BLOB_MODEL, "kl_estimator": "responsibility", **overrides})


@pytest.mark.parametrize(
    ("estimator", "prior_init"),
    [("monte_carlo", "em"), ("responsibility", "em"), ("responsibility", "spectral")],
)
def test_gmm_vae_initialises_its_prior_after_the_warmup_and_clusters(estimator: str, prior_init: str) -> None:
    x, y = two_blobs()
    model = blob_gmm_vae(
        warmup_epochs=2,
        kl_estimator=estimator,
        prior_init=prior_init,
        spectral_neighbours=10,
    )
    trainer = quiet_trainer(epochs=4)
    trainer.fit(model, loader(x, y), loader(x, y))
    assert bool(model.started)
    assert trainer.callback_metrics["val/acc"] == 1.0
    assert trainer.callback_metrics["val/nmi"] > 0.99 and trainer.callback_metrics["val/ari"] > 0.99
    predictions = torch.cat([outputs["cluster"] for outputs in trainer.predict(model, loader(x, y))])
    assert predictions.dtype == torch.int64 and set(predictions.tolist()) == {0, 1}


def test_a_fit_shorter_than_the_warmup_says_it_trains_the_autoencoder_only() -> None:
    x, y = two_blobs()
    model = blob_gmm_vae(warmup_epochs=3, prior_init="em")
    with pytest.warns(
        UserWarning, match=r"warm-up lasts 3 epochs and trainer\.max_epochs is 3: .*autoencoder only"
    ):
        quiet_trainer(epochs=3).fit(model, loader(x, y))
    assert model.warming_up
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*warm-up lasts")
        quiet_trainer(epochs=4).fit(blob_gmm_vae(warmup_epochs=3, prior_init="em"), loader(x, y))


@pytest.mark.parametrize("started", [True, False])
def test_gmm_vae_checkpoints_with_the_former_flag_load_with_their_start(started: bool) -> None:
    state = blob_gmm_vae().state_dict()
    state["prior_initialized"] = torch.tensor(started)  # the flag's name until the warm-up was shared
    del state["started"]
    checkpoint = {"state_dict": state}
    model = blob_gmm_vae()
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    assert model.warming_up is not started


def test_clustering_metrics_appear_once_the_prior_is_fitted_with_accuracy_in_the_progress_bar() -> None:
    x, y = two_blobs()
    model = blob_gmm_vae(warmup_epochs=2, prior_init="spectral", spectral_neighbours=10)
    trainer = quiet_trainer(epochs=2)
    trainer.fit(model, loader(x, y), loader(x, y))
    assert not bool(model.started)
    assert not {"val/acc", "val/nmi", "val/ari"} & trainer.callback_metrics.keys()
    trainer = quiet_trainer(epochs=3)
    trainer.fit(model, loader(x, y), loader(x, y))
    assert {"val/acc", "val/nmi", "val/ari"} <= trainer.callback_metrics.keys()
    assert "val/acc" in trainer.progress_bar_metrics and "val/nmi" not in trainer.progress_bar_metrics


def test_gmm_vae_warmup_trains_an_autoencoder_but_evaluates_the_elbo() -> None:
    x, _ = two_blobs()
    # a learned prior, so that its parameters must stay in the warm-up's graph (as DDP requires)
    model = GMMVAE(input_shape=[1, 8, 8], latent_dim=2, hidden_dims=[8], num_components=2, learn_prior=True)
    model.train()
    terms = model.loss_terms(x[:5])
    torch.testing.assert_close(model.objective(terms), terms["recon"].mean())
    model.objective(terms).backward()
    assert model.prior.means.grad is not None and torch.all(model.prior.means.grad == 0)
    model.eval()
    terms = model.loss_terms(x[:5])
    torch.testing.assert_close(model.objective(terms), (terms["recon"] + terms["kl"]).mean())


def test_hierarchical_model_exposes_its_tree() -> None:
    x, y = two_blobs()
    model = HierarchicalGMMVAE(
        input_shape=[1, 8, 8],
        latent_dim=2,
        hidden_dims=[32],
        num_components=4,
        warmup_epochs=1,
    )
    trainer = quiet_trainer(epochs=2)
    trainer.fit(model, loader(x, y), loader(x, y))
    assert bool(model.prior.has_tree)
    linkage = model.linkage_matrix()
    assert linkage.shape == (3, 4) and hierarchy.is_valid_linkage(linkage)
    table = model.hierarchy_levels()  # [leaf, level]
    for level in range(4):
        assert table[:, level].unique().numel() == level + 1  # j + 1 clusters at column j
    for level in range(3):  # nested: leaves together at a finer level stay together above it
        for cluster in table[:, level + 1].unique():
            assert table[table[:, level + 1] == cluster, level].unique().numel() == 1
    first_merge = [int(i) for i in model.prior.merges[0]]  # the first merge is the last undone
    assert table[first_merge[0], 2] == table[first_merge[1], 2]
    leaves = model.predict_cluster(x[:20])
    levels = model.predict_hierarchy(x[:20])
    assert levels.shape == (20, 4)
    torch.testing.assert_close(levels, table[leaves])
    assert "val/tree" in trainer.callback_metrics
    assert 0 < trainer.callback_metrics["val/dendrogram_purity"] <= 1
    assert 0 < trainer.callback_metrics["val/leaf_purity"] <= 1
    assert isinstance(model.plot_dendrogram([f"leaf {i}" for i in range(4)]), Figure)


@pytest.mark.parametrize(
    ("model_class", "kwargs", "message"),
    [
        (GMMVAE, {"num_components": 1}, "num_components must be an integer >= 2; got 1"),
        (GMMVAE, {"kl_estimator": "exact"}, "kl_estimator must be one of"),
        (GMMVAE, {"warmup_epochs": -1}, "warmup_epochs must be an integer >= 0"),
        (GMMVAE, {"prior_init": "kmeans"}, r"prior_init must be one of \['em', 'spectral', 'consensus'\]"),
        (GMMVAE, {"spectral_neighbours": 0}, "spectral_neighbours must be an integer >= 1; got 0"),
        (GMMVAE, {"learn_prior": "no"}, "learn_prior must be true or false; got 'no'"),
        (HierarchicalGMMVAE, {"prior_init": "random"}, "prior_init must be one of"),
        (HierarchicalGMMVAE, {"tree_sigma": 0.0}, "tree_sigma must be > 0"),
        (HierarchicalGMMVAE, {"linkage_method": "median"}, "linkage_method must be one of"),
        (Autoencoder, {"latent_density": "flow"}, "latent_density must be one of"),
        (LinearAutoencoder, {"latent_dim": 0}, "latent_dim must be an integer >= 1; got 0"),
    ],
)
def test_bad_arguments(model_class: type, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model_class(**kwargs)


def test_linear_autoencoder_is_linear() -> None:
    model = LinearAutoencoder(input_shape=[1, 4, 4], latent_dim=2)
    a, b = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    code = model.encode
    torch.testing.assert_close(
        code(a + b) - code(torch.zeros_like(a)), code(a) + code(b) - 2 * code(torch.zeros_like(a))
    )
    assert math.prod(model.decoder_weight.shape) == 16 * 2


def test_spectral_initialisation_is_the_mixture_of_the_spectral_clusters() -> None:
    model = GMMVAE(
        latent_dim=2,
        hidden_dims=[8],
        num_components=2,
        components_per_cluster=1,
        prior_init="spectral",
        spectral_neighbours=10,
    )
    codes, _ = two_moons()
    model.initialize_prior(codes)
    expected = gmm_from_assignment(codes, spectral_clustering(codes, 2, neighbours=10), 2)
    assert bool(model.started)
    torch.testing.assert_close(model.prior.means, expected.means)
    torch.testing.assert_close(model.prior.weights, expected.weights)
    torch.testing.assert_close(model.prior.log_variances.exp(), expected.variances, rtol=1e-4, atol=1e-6)
    # q(z|x) starts at a hundredth of the mixture's mean variance sum_k pi_k sigma_k^2, every input
    within = (expected.weights.unsqueeze(-1) * expected.variances).sum(0)  # [2]
    x = torch.rand(5, 1, 28, 28)
    # (the log-variance's soft bounds are the identity to 1e-3 at this distance from them)
    torch.testing.assert_close(model.posterior(x).variance, (within / 100).expand(5, -1), rtol=2e-3, atol=0)


def test_a_gmm_vae_refuses_an_encoder_its_start_cannot_set_when_built() -> None:
    class ReluOutGMMVAE(GMMVAE):
        def build_encoder(self) -> torch.nn.Module:
            return torch.nn.Sequential(super().build_encoder(), torch.nn.ReLU())

    with pytest.raises(TypeError, match=r"ReluOutGMMVAE's start needs an encoder .*ending in ReLU"):
        ReluOutGMMVAE(latent_dim=2, hidden_dims=[8], num_components=2)


def test_the_prior_can_be_initialised_outside_a_trainer() -> None:
    model = HierarchicalGMMVAE(input_shape=[1, 8, 8], latent_dim=2, hidden_dims=[8], num_components=3)
    centres = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    codes = torch.cat([centre + 0.3 * torch.randn(50, 2) for centre in centres])
    model.initialize_prior(codes)
    assert bool(model.started) and bool(model.prior.has_tree)
    order = torch.cdist(centres, model.prior.means.detach()).argmin(-1)
    torch.testing.assert_close(model.prior.means.detach()[order], centres, atol=0.2, rtol=0)


def test_gmm_vae_fits_its_prior_to_the_codes_of_unaugmented_images(synthetic_mnist) -> None:
    data = MNISTDataModule(
        data_dir=str(synthetic_mnist),
        download=False,
        val_size=40,
        batch_size=50,
        binarization="none",
        augment_shift=0.3,
    )
    model = GMMVAE(latent_dim=2, hidden_dims=[16], num_components=2, warmup_epochs=0)
    seen: dict[str, torch.Tensor] = {}
    fit_prior = model.initialize_prior

    def initialize_prior(codes: torch.Tensor) -> None:
        seen["codes"] = codes
        seen["clean"] = model.encode(data.splits["train"][0])  # [200, 2], the codes wanted
        seen["augmented"] = model.encode(next(iter(model.trainer.train_dataloader))[0])  # [50, 2]
        fit_prior(codes)

    model.initialize_prior = initialize_prior
    quiet_trainer(epochs=1).fit(model, datamodule=data)
    codes, clean, augmented = seen["codes"], seen["clean"], seen["augmented"]
    assert codes.shape == clean.shape == (200, 2)
    torch.testing.assert_close(codes.sort(0).values, clean.sort(0).values)
    assert not torch.isin(augmented[:, 0], codes[:, 0]).any()


@pytest.mark.parametrize(("limit", "expected"), [(3, 90), (1.0, 200)])
def test_gmm_vae_fits_its_prior_to_the_batches_an_epoch_trains_on(
    synthetic_mnist, limit: int | float, expected: int
) -> None:
    data = MNISTDataModule(data_dir=str(synthetic_mnist), download=False, val_size=40, batch_size=30)
    model = GMMVAE(latent_dim=2, hidden_dims=[16], num_components=2, warmup_epochs=0)
    sizes: list[int] = []
    fit_prior = model.initialize_prior

    def initialize_prior(codes: torch.Tensor) -> None:
        sizes.append(codes.shape[0])
        fit_prior(codes)

    model.initialize_prior = initialize_prior
    quiet_trainer(epochs=1, limit_train_batches=limit, limit_val_batches=0).fit(model, datamodule=data)
    assert sizes == [expected]  # 3 batches of 30, or all 200 training images


@pytest.mark.parametrize("learn_prior", [True, False])
def test_gmm_vae_keeps_its_fitted_prior_unless_told_to_learn_it(learn_prior: bool) -> None:
    x, y = two_blobs()
    model = blob_gmm_vae(warmup_epochs=1, learn_prior=learn_prior)
    fitted: dict[str, torch.Tensor] = {}
    fit_prior = model.initialize_prior

    def initialize_prior(codes: torch.Tensor) -> None:
        fit_prior(codes)
        fitted.update({name: value.clone() for name, value in model.prior.state_dict().items()})
        fitted["encoder"] = next(model.encoder.parameters()).clone()

    model.initialize_prior = initialize_prior
    quiet_trainer(epochs=3).fit(model, loader(x, y))
    for name, value in model.prior.state_dict().items():
        assert torch.equal(value, fitted[name]) != learn_prior, name
    assert not torch.equal(next(model.encoder.parameters()), fitted["encoder"])


GMM_RECIPE = {"warmup_epochs", "prior_init", "components_per_cluster", "learn_prior", "kl_estimator"}


@pytest.mark.parametrize(
    ("config", "model_class", "recipe_arguments"),
    [
        ("gmm_mnist.yaml", GMMVAE, GMM_RECIPE),
        ("hgmm_mnist.yaml", HierarchicalGMMVAE, GMM_RECIPE),
        ("gmvae_mnist.yaml", GMVAE, {"warmup_epochs", "start", "information_weight"}),
    ],
)
def test_the_mnist_clustering_configs_only_restate_the_models_defaults(
    config: str, model_class: type, recipe_arguments: set[str]
) -> None:
    """The clustering recipe is the model's: every mixture argument that the MNIST config sets
    is the model's default, so that the model pointed at other data gets the same recipe."""
    path = Path(__file__).parents[2] / "configs" / config
    arguments = yaml.safe_load(path.read_text())["model"]["init_args"]
    defaults = {}
    for cls in reversed(model_class.__mro__):  # a subclass's default wins
        if cls is not object and "__init__" in vars(cls):
            for name, parameter in inspect.signature(cls.__init__).parameters.items():
                if parameter.default is not inspect.Parameter.empty:
                    defaults[name] = parameter.default
    recipe = {name: value for name, value in arguments.items() if name in recipe_arguments | set(GMM_RECIPE)}
    assert recipe_arguments <= recipe.keys()
    assert recipe == {name: defaults[name] for name in recipe}
    assert list(arguments["hidden_dims"]) == list(defaults["hidden_dims"])


def blob_gmvae(**overrides) -> GMVAE:
    """A small GMVAE for :func:`two_blobs` with an autoencoder warm-up of two epochs."""
    start = {"warmup_epochs": 2, "start": "spectral", "spectral_neighbours": 10}
    return GMVAE(**{**BLOB_MODEL, **start, **overrides})


def test_softmax_regression_is_scikit_learns_penalised_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 3
    features = torch.randn(300, 4, generator=generator, dtype=torch.float64) + labels[:, None] * 0.8
    weight, bias = fit_softmax_regression(features, labels, 3, weight_decay=0.01, iterations=500)
    # scikit-learn minimises C sum_n loss_n + ||W||^2 / 2: the same minimiser for C = 1 / (N wd)
    reference = LogisticRegression(C=1 / (300 * 0.01), tol=1e-10, max_iter=10_000).fit(features, labels)
    ours = torch.softmax(features @ weight.T + bias, -1)
    torch.testing.assert_close(ours, torch.from_numpy(reference.predict_proba(features)), atol=1e-4, rtol=0)


def test_gmvae_warmup_trains_an_autoencoder_on_the_mean_of_its_component_means() -> None:
    x, _ = two_blobs()
    model = blob_gmvae()
    model.train()
    gaussians = model.mixture_posterior(x[:5])[1]
    code = gaussians.mean.mean(1)  # [5, D]
    torch.testing.assert_close(model.encode(x[:5]), code)
    terms = model.loss_terms(x[:5])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(model.decoder(code), x[:5], reduction="none")
    torch.testing.assert_close(terms["recon"], bce.sum((1, 2, 3)))
    torch.testing.assert_close(model.objective(terms), terms["recon"].mean())
    model.objective(terms).backward()
    assert model.prior.means.grad is not None and torch.all(model.prior.means.grad == 0)
    model.eval()  # evaluation reports the bound, K decoder passes
    terms = model.loss_terms(x[:5])
    torch.testing.assert_close(model.objective(terms), (terms["recon"] + terms["kl"] - terms["info"]).mean())


def test_gmvae_starts_from_the_clusters_of_its_warmup_codes_and_clusters() -> None:
    x, y = two_blobs()
    model = blob_gmvae()
    trainer = quiet_trainer(epochs=2)
    trainer.fit(model, loader(x, y), loader(x, y))
    assert model.warming_up and not {"val/acc", "val/nmi", "val/ari"} & trainer.callback_metrics.keys()
    codes = model.encode(x)  # the warm-up's code
    model.start_from_warmup()
    assert not model.warming_up
    with torch.no_grad():
        components, gaussians = model.mixture_posterior(x)
    for c in range(2):  # every component's mean is the warm-up's code
        torch.testing.assert_close(gaussians.mean[:, c], codes, atol=1e-5, rtol=1e-5)
    clusters = components.probs.argmax(-1)
    assert float(ClusteringAccuracy()(clusters, y)) == 1.0
    expected = gmm_from_assignment(codes, clusters, 2)  # p(z|c): the mean and variance of each cluster
    torch.testing.assert_close(model.prior.means, expected.means, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model.prior.log_variances.exp(), expected.variances, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(model.prior.weights, torch.full((2,), 0.5))
    # q(z|x,c) starts with a hundredth of p(z|c)'s variance, for every input
    expected_variance = (expected.variances / 100).expand(len(x), -1, -1)
    torch.testing.assert_close(gaussians.variance, expected_variance, atol=1e-6, rtol=1e-3)
    trainer = quiet_trainer(epochs=3)
    trainer.fit(model, loader(x, y), loader(x, y))  # no second start: it is stored in the model
    assert trainer.callback_metrics["val/acc"] == 1.0 and trainer.callback_metrics["val/ari"] > 0.99


def test_gmvae_checkpoints_from_before_the_warmup_load_as_started() -> None:
    model = GMVAE(input_shape=[1, 8, 8], latent_dim=2, hidden_dims=[8], num_components=2)
    state = model.state_dict()
    del state["started"]
    checkpoint = {"state_dict": state}
    model.on_load_checkpoint(checkpoint)
    fresh = GMVAE(input_shape=[1, 8, 8], latent_dim=2, hidden_dims=[8], num_components=2, warmup_epochs=3)
    fresh.load_state_dict(checkpoint["state_dict"])
    assert not fresh.warming_up


class GMVAEWithReluOut(GMVAE):
    def build_encoder(self) -> torch.nn.Module:
        return torch.nn.Sequential(super().build_encoder(), torch.nn.ReLU())


def test_gmvae_start_needs_a_linear_last_encoder_layer_and_says_so_when_built() -> None:
    options = {"input_shape": [1, 8, 8], "latent_dim": 2, "hidden_dims": [8], "num_components": 2}
    with pytest.raises(
        TypeError, match=r"nn\.Sequential ending in nn\.Linear .*got Sequential ending in ReLU"
    ):
        GMVAEWithReluOut(**options)
    GMVAEWithReluOut(**options, warmup_epochs=0)  # no start, no need
