"""Constructor fuzz: any argument values give a working model or a ValueError/TypeError naming one of them."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vae_zoo.models import ALL_MODELS, GMMVAE, LatentVariableModel, model_arguments
from vae_zoo.validation import network_parameters

# tiny valid values every example starts from; an example then overrides up to three arguments
BASE = {
    "input_shape": [1, 4, 4],
    "latent_dim": 2,
    "hidden_dims": [4],
    "num_components": 2,
    "em_restarts": 1,
    "em_iterations": 5,
    "density_components": 2,
}
INTS = {
    "latent_dim",
    "num_components",
    "warmup_epochs",
    "em_restarts",
    "em_iterations",
    "capacity_steps",
    "density_components",
    "components_per_cluster",
    "umap_runs",
}
NUMBERS = {
    "lr",
    "beta",
    "gamma",
    "capacity_max",
    "likelihood_variance",
    "tree_sigma",
    "tree_weight",
    "prior_lr",
}
SIZES = {"input_shape", "hidden_dims"}
CHOICES = {
    "architecture": ["mlp", "conv"],
    "likelihood": ["bernoulli", "gaussian"],
    "kl_estimator": ["monte_carlo", "responsibility"],
    "linkage_method": ["ward", "average", "complete", "single"],
    "latent_density": ["gaussian", "gmm"],
    "prior_init": ["em", "spectral", "consensus"],
}
BOOLS = {"learn_likelihood_variance", "learn_mixture_weights", "closed_form"}
HUGE = [10**12, 2**63, 10**100]

WRONG = [None, "x", "", [], (), [1, "a"], {"a": 1}, math.nan, math.inf, -math.inf, True, False, b"4"]
garbage = st.sampled_from([*WRONG, 0, -1, -7, 0.5, -0.5, 1e308, -1e308, *HUGE, object()])
small_sizes = st.lists(st.integers(-1, 6), min_size=0, max_size=3)


def values(name: str) -> st.SearchStrategy:
    """Plausible, edge and wrong values of the argument ``name``."""
    if name in INTS:
        typed = st.one_of(st.integers(-3, 6), st.sampled_from(HUGE), st.floats(-2, 6))
    elif name in NUMBERS:
        typed = st.one_of(
            st.floats(allow_nan=True, allow_infinity=True), st.floats(1e-4, 10), st.integers(-2, 5)
        )
    elif name in SIZES:
        typed = st.one_of(
            small_sizes,
            small_sizes.map(tuple),
            st.lists(st.sampled_from(HUGE), min_size=1, max_size=3),
            st.lists(st.one_of(st.floats(0, 5), st.text(max_size=2), st.none()), min_size=1, max_size=3),
        )
    elif name in CHOICES:
        typed = st.one_of(st.sampled_from(CHOICES[name]), st.text(max_size=8))
    elif name in BOOLS:
        typed = st.booleans()
    else:  # an argument added later: at least the wrong values
        typed = st.nothing()
    return st.one_of(typed, typed, garbage)


def arguments(model_class: type) -> list[str]:
    return list(model_arguments(model_class))


def base_kwargs(model_class: type) -> dict:
    names = arguments(model_class)
    return {name: value for name, value in BASE.items() if name in names}


@pytest.mark.parametrize("model_class", ALL_MODELS, ids=lambda cls: cls.__name__)
def test_base_values_build_every_model(model_class: type) -> None:
    assert isinstance(model_class(**base_kwargs(model_class)), LatentVariableModel)


@pytest.mark.parametrize("model_class", ALL_MODELS, ids=lambda cls: cls.__name__)
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_constructor_gives_a_working_model_or_an_error_naming_an_argument(
    model_class: type, data: st.DataObject
) -> None:
    names = data.draw(st.lists(st.sampled_from(arguments(model_class)), max_size=3, unique=True), "names")
    overrides = {name: data.draw(values(name), name) for name in names}
    kwargs = {**base_kwargs(model_class), **overrides}
    try:
        model = model_class(**kwargs)
    except (ValueError, TypeError) as error:
        message = str(error)
        assert message, f"{type(error).__name__} without a message for {overrides}"
        assert any(name in message for name in overrides), f"{message!r} names none of {sorted(overrides)}"
        return
    # a valid object: it computes finite loss terms, one per example
    model.eval()
    x = torch.rand(2, *model.input_shape)
    with torch.no_grad():
        terms = model.loss_terms(x)
    assert terms and all(term.shape == (2,) and bool(torch.isfinite(term).all()) for term in terms.values())
    if not isinstance(model, GMMVAE) or model.architecture == "mlp":
        sizes = (model.architecture, model.input_shape, model.hidden_dims, model.latent_dim)
        expected = network_parameters(*sizes, model.encoder_out_features)
        built = sum(p.numel() for module in (model.encoder, model.decoder) for p in module.parameters())
        assert built == expected  # the size budget counts exactly what is built
