"""The MMD and the pieces built on the model shape: WAE-MMD (a regularizer), the VampPrior (a
prior) and the GMVAE's mixture posterior (a posterior)."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.distributions import Normal

from vae_zoo.metrics import ClusteringAccuracy, LeNetFeatures, frechet_distance, imq_kernel, mmd_squared
from vae_zoo.mixtures import diagonal_normal_log_prob
from vae_zoo.models import GMVAE, VAE, WAE, Autoencoder, VampPrior, VampVAE
from vae_zoo.models.gmm import score_clusters

SMALL = {"input_shape": [1, 4, 4], "latent_dim": 2, "hidden_dims": [8]}
SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def test_imq_kernel_and_mmd_follow_their_formulas() -> None:
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=generator), torch.randn(4, 3, generator=generator) + 1

    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        squared = float(((a - b) ** 2).sum())
        return sum(6 * s / (6 * s + squared) for s in SCALES)  # C = 2 D s, D = 3

    assert math.isclose(imq_kernel(x, y)[2, 3].item(), k(x[2], y[3]), rel_tol=1e-6)
    assert math.isclose(imq_kernel(x, x)[1, 1].item(), len(SCALES), rel_tol=1e-6)
    within_x = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    within_y = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    between = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert math.isclose(mmd_squared(x, y).item(), within_x + within_y - 2 * between, rel_tol=1e-5)


def test_mmd_is_zero_in_expectation_for_one_distribution_and_positive_for_two() -> None:
    torch.manual_seed(0)
    same = torch.stack([mmd_squared(torch.randn(50, 4), torch.randn(50, 4)) for _ in range(200)])
    assert abs(same.mean()) < 3 * same.std() / math.sqrt(200)  # unbiased: mean 0 within 3 s.e.
    shifted = torch.stack([mmd_squared(torch.randn(50, 4) + 1.0, torch.randn(50, 4)) for _ in range(20)])
    assert shifted.min() > same.max()


def test_vamp_prior_is_the_mean_of_the_posteriors_at_its_pseudo_inputs() -> None:
    torch.manual_seed(0)
    model = VampVAE(num_pseudo_inputs=3, **SMALL)
    prior = model.prior
    assert isinstance(prior, VampPrior) and prior.pseudo_inputs.shape == (3, 1, 4, 4)
    z = torch.randn(6, 2)
    components = model.posterior(prior.pseudo_inputs)  # batch [3, 2]
    by_hand = torch.stack(
        [
            torch.logsumexp(torch.stack([components.log_prob(z[b])[k].sum() for k in range(3)]), 0)
            - math.log(3)
            for b in range(6)
        ]
    )
    torch.testing.assert_close(prior.log_prob(z), by_hand)
    assert prior.sample(7).shape == (7, 2)


def test_vamp_prior_log_prob_is_torch_distributions_mixture_at_iwae_shapes() -> None:
    torch.manual_seed(0)
    model = VampVAE(num_pseudo_inputs=50, **SMALL)
    z = 2.5 * torch.randn(7, 5, 2)  # [S, B, D], as IWAE asks for it
    expected = model.prior.distribution().log_prob(z)  # MixtureSameFamily: a [S, B, K, D] tensor
    torch.testing.assert_close(model.prior.log_prob(z), expected, rtol=1e-5, atol=1e-4)
    means, variances = torch.randn(4, 3), torch.rand(4, 3) + 0.01
    x = torch.randn(2, 6, 3)
    by_torch = Normal(means, variances.sqrt()).log_prob(x.unsqueeze(-2)).sum(-1)  # [2, 6, 4]
    torch.testing.assert_close(diagonal_normal_log_prob(x, means, variances), by_torch, rtol=1e-5, atol=1e-4)


def test_vamp_vae_kl_is_the_monte_carlo_estimate_and_trains_the_pseudo_inputs() -> None:
    torch.manual_seed(0)
    model = VampVAE(num_pseudo_inputs=4, **SMALL)
    x = torch.bernoulli(torch.full((5, 1, 4, 4), 0.3))
    torch.manual_seed(1)
    terms = model.loss_terms(x)
    torch.manual_seed(1)
    posterior = model.posterior(x)
    z = posterior.rsample()
    torch.testing.assert_close(terms["kl"], posterior.log_prob(z).sum(-1) - model.prior.log_prob(z))
    model.objective(terms).backward()
    assert model.prior.pseudo_input_weights.grad.abs().sum() > 0


def test_wae_penalises_the_batch_mmd_and_pulls_the_codes_to_the_prior() -> None:
    torch.manual_seed(0)
    x = torch.bernoulli(torch.rand(64, 1, 4, 4))
    model = WAE(mmd_weight=5.0, **SMALL)
    torch.manual_seed(2)
    terms = model.loss_terms(x)
    torch.manual_seed(2)
    z = model.encode(x)
    torch.testing.assert_close(terms["mmd"], mmd_squared(z, model.prior.sample(64)).expand(64))
    assert model.loss_weights() == {"recon": 1.0, "mmd": 5.0}

    def trained_mmd(weight: float) -> float:
        torch.manual_seed(0)
        wae = WAE(mmd_weight=weight, **SMALL)
        optimizer = torch.optim.Adam(wae.parameters(), lr=0.01)
        for _ in range(150):
            loss = wae.objective(wae.loss_terms(x))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        torch.manual_seed(3)
        with torch.no_grad():
            return float(
                torch.stack([mmd_squared(wae.encode(x), torch.randn(64, 2)) for _ in range(20)]).mean()
            )

    assert trained_mmd(100.0) < 0.5 * trained_mmd(0.0)
    single = model.loss_terms(x[:1])  # one example: no MMD estimate, no penalty
    assert single["mmd"].tolist() == [0.0] and single["recon"].shape == (1,)
    assert model.sample(3).shape == (3, 1, 4, 4)


def test_prior_mmd_is_logged_for_every_model_with_a_prior(tmp_path: Path) -> None:
    x = torch.bernoulli(torch.rand(40, 1, 4, 4))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=20)
    logged = {}
    for model in (WAE(**SMALL), VampVAE(num_pseudo_inputs=3, **SMALL), Autoencoder(**SMALL)):
        trainer = L.Trainer(
            default_root_dir=tmp_path,
            max_epochs=1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            accelerator="cpu",
        )
        trainer.fit(model, loader, loader)
        logged[type(model).__name__] = trainer.callback_metrics.get("val/prior_mmd")
    assert torch.isfinite(logged["WAE"]) and torch.isfinite(logged["VampVAE"])
    assert logged["Autoencoder"] is None  # no prior, no MMD to it


def test_gmvae_bound_sums_over_the_components_exactly() -> None:
    torch.manual_seed(0)
    model = GMVAE(num_components=3, warmup_epochs=0, **SMALL)
    x = torch.bernoulli(torch.full((4, 1, 4, 4), 0.3))
    torch.manual_seed(5)
    terms = model.loss_terms(x)
    torch.manual_seed(5)
    components, gaussians = model.mixture_posterior(x)
    z = gaussians.rsample()  # [4, 3, 2]
    q = components.probs
    mu, var = gaussians.loc, gaussians.scale.square()  # [4, 3, 2]
    m, s2 = model.prior.means, model.prior.log_variances.exp()  # [3, 2]
    recon, kl = torch.zeros(4), torch.zeros(4)
    for c in range(3):
        logits = model.decoder(z[:, c])
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
        # KL(N(mu, var) || N(m, s2)) by its formula, per dimension
        gaussian_kl = 0.5 * (s2[c].log() - var[:, c].log() + (var[:, c] + (mu[:, c] - m[c]) ** 2) / s2[c] - 1)
        recon += q[:, c] * bce
        kl += q[:, c] * gaussian_kl.sum(-1) + q[:, c] * (q[:, c].log() + math.log(3))
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["kl"], kl)
    assert torch.equal(model.predict_cluster(x), q.argmax(-1))
    torch.testing.assert_close(model.encode(x), (q.unsqueeze(-1) * gaussians.mean).sum(1))


def test_gmvae_kl_is_the_monte_carlo_mean_of_the_log_ratio_of_the_joint() -> None:
    """``kl`` is ``E_{q(c|x) q(z|x,c)} [log q(c|x) q(z|x,c) - log p(c) p(z|c)]``, estimated here by
    drawing the component and the code."""
    torch.manual_seed(0)
    model = GMVAE(num_components=3, warmup_epochs=0, **SMALL)
    x = torch.bernoulli(torch.full((2, 1, 4, 4), 0.3))
    with torch.no_grad():
        components, gaussians = model.mixture_posterior(x)
        c = components.sample((200_000,))  # [S, 2]
        z = gaussians.sample((200_000,))  # [S, 2, 3, 2]
        z = z.gather(2, c[..., None, None].expand(-1, -1, 1, 2)).squeeze(2)  # [S, 2, 2]
        log_q = components.log_prob(c) + Normal(
            gaussians.loc[torch.arange(2), c], gaussians.scale[torch.arange(2), c]
        ).log_prob(z).sum(-1)
        log_p = -math.log(3) + model.prior.components().log_prob(z.unsqueeze(-2)).gather(
            -1, c[..., None]
        ).squeeze(-1)
        torch.testing.assert_close(model.loss_terms(x)["kl"], (log_q - log_p).mean(0), atol=0.02, rtol=0.0)


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_gmvae_gives_back_the_information_so_that_the_aggregate_is_matched(weight: float) -> None:
    torch.manual_seed(0)
    model = GMVAE(num_components=3, information_weight=weight, warmup_epochs=0, **SMALL)
    x = torch.bernoulli(torch.full((6, 1, 4, 4), 0.3))
    terms = model.loss_terms(x)
    q = model.mixture_posterior(x)[0].probs  # [6, 3]
    aggregate = q.mean(0)
    per_example = (q * (q.log() - aggregate.log())).sum(-1)  # KL(q(c|x) || q(c)), by hand
    torch.testing.assert_close(terms["info"], per_example)
    # ELBO surgery: the batch mean of KL(q(c|x) || p(c)) is the information plus KL(q(c) || p(c))
    categorical = (q * (q.log() + math.log(3))).sum(-1)
    aggregate_kl = (aggregate * (aggregate.log() + math.log(3))).sum()
    torch.testing.assert_close(categorical.mean(), per_example.mean() + aggregate_kl)
    expected = (terms["recon"] + terms["kl"] - weight * per_example).mean()
    torch.testing.assert_close(model.objective(terms), expected)
    elbo = model.stage_metrics(model.objective(terms), terms, "val")["val/elbo"]
    torch.testing.assert_close(elbo, -(terms["recon"] + terms["kl"]).mean())  # the bound, whatever the weight


@pytest.mark.parametrize("weight", [-0.1, 1.5, "1", True])
def test_gmvae_refuses_an_information_weight_outside_zero_one(weight: object) -> None:
    with pytest.raises(ValueError, match="information_weight must be"):
        GMVAE(num_components=3, information_weight=weight, warmup_epochs=0, **SMALL)


def test_clusters_are_scored_against_whole_number_labels_only() -> None:
    model = GMVAE(num_components=2, warmup_epochs=0, **SMALL)
    score_clusters(model, torch.tensor([0, 1, 1]), torch.tensor([1.0, 0.0, 0.0]), "val")
    assert float(model.evaluation_metric("val", "acc", ClusteringAccuracy).compute()) == 1.0
    with pytest.raises(ValueError, match=r"need class labels .*such as 0\.5"):
        score_clusters(model, torch.tensor([0, 1]), torch.tensor([0.5, 1.0]), "val")


def test_frechet_distance_is_the_closed_form_between_the_feature_gaussians() -> None:
    from scipy.linalg import sqrtm

    class Identity(torch.nn.Module):
        num_features = 3

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(x.shape[0], -1).double()

    generator = torch.Generator().manual_seed(0)
    real = torch.randn(3000, 3, generator=generator, dtype=torch.float64)
    fake = torch.randn(3000, 3, generator=generator, dtype=torch.float64) * 2 + 1
    mean_r, mean_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = torch.cov(real.T), torch.cov(fake.T)
    closed = (
        (mean_r - mean_f).square().sum()
        + torch.trace(cov_r + cov_f)
        - 2 * sqrtm((cov_r @ cov_f).numpy()).real.trace()
    )
    assert math.isclose(frechet_distance(Identity(), real, fake), float(closed), rel_tol=1e-6)
    chunks = iter(real.split(1000))  # a "sampler" that returns the real images, batch by batch
    assert frechet_distance(Identity(), real, lambda n: next(chunks)[:n], num_fake=3000) < 1e-6


def test_lenet_gives_84_features_and_10_logits_and_samples_are_scored_through_it() -> None:
    network = LeNetFeatures().eval()
    images = torch.rand(5, 1, 28, 28)
    assert network(images).shape == (5, 84) and network.logits(images).shape == (5, 10)
    model = VAE(latent_dim=2, hidden_dims=[8])
    assert math.isfinite(frechet_distance(network, torch.rand(40, 1, 28, 28), model.sample, num_fake=40))
