"""Encoder and decoder builders shared by every model.

Two families are available, chosen by name from the config:

* ``"mlp"``: ``Flatten -> Linear -> ReLU -> ... -> Linear``; ``hidden_dims`` are the layer widths.
* ``"conv"``: stride-2 4x4 convolutions; ``hidden_dims`` are the channel counts, and the
  spatial size of the input must be divisible by ``2 ** len(hidden_dims)``.

Encoders map ``[B, *input_shape] -> [B, out_features]``; decoders map
``[B, latent_dim] -> [B, *input_shape]`` (the likelihood's parameters, e.g. Bernoulli logits).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

Architecture = Literal["mlp", "conv"]
ARCHITECTURES: tuple[str, ...] = ("mlp", "conv")


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """A ReLU perceptron ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with a linear last layer."""
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def split_last_linear(network: nn.Module) -> tuple[nn.Sequential, nn.Linear]:
    """``(body, head)`` with ``network(x) == head(body(x))``, for a network that is an
    ``nn.Sequential`` ending in ``nn.Linear`` (possibly nested, as :func:`build_encoder`'s): the
    body shares the network's modules. Raises ``TypeError`` for any other network."""
    if isinstance(network, nn.Sequential) and len(network) > 0:
        last = network[-1]
        if isinstance(last, nn.Linear):
            return nn.Sequential(*network[:-1]), last
        if isinstance(last, nn.Sequential):
            body, head = split_last_linear(last)
            return nn.Sequential(*network[:-1], *body), head
    raise TypeError(f"expected an nn.Sequential ending in nn.Linear; got {network}")


def _check_conv_shape(input_shape: Sequence[int], hidden_dims: Sequence[int]) -> tuple[int, int]:
    if len(input_shape) != 3:
        raise ValueError(
            f"architecture='conv' needs input_shape (channels, height, width); got {list(input_shape)}"
        )
    factor = 2 ** len(hidden_dims)
    height, width = input_shape[1], input_shape[2]
    if height % factor or width % factor:
        raise ValueError(
            f"architecture='conv' with {len(hidden_dims)} hidden layers needs height and width "
            f"divisible by {factor}; got input_shape={list(input_shape)}"
        )
    return height // factor, width // factor


def build_encoder(
    architecture: str, input_shape: Sequence[int], hidden_dims: Sequence[int], out_features: int
) -> nn.Module:
    """Build an encoder ``[B, *input_shape] -> [B, out_features]``."""
    check_architecture(architecture)
    if architecture == "mlp":
        return nn.Sequential(nn.Flatten(), mlp([math.prod(input_shape), *hidden_dims, out_features]))
    height, width = _check_conv_shape(input_shape, hidden_dims)
    layers: list[nn.Module] = []
    channels = input_shape[0]
    for width_out in hidden_dims:
        layers += [nn.Conv2d(channels, width_out, 4, stride=2, padding=1), nn.ReLU()]
        channels = width_out
    layers += [nn.Flatten(), nn.Linear(channels * height * width, out_features)]
    return nn.Sequential(*layers)


def build_decoder(
    architecture: str, latent_dim: int, hidden_dims: Sequence[int], output_shape: Sequence[int]
) -> nn.Module:
    """Build a decoder ``[B, latent_dim] -> [B, *output_shape]``, mirroring :func:`build_encoder`."""
    check_architecture(architecture)
    if architecture == "mlp":
        return nn.Sequential(
            mlp([latent_dim, *reversed(hidden_dims), math.prod(output_shape)]),
            nn.Unflatten(1, tuple(output_shape)),
        )
    height, width = _check_conv_shape(output_shape, hidden_dims)
    channels = list(reversed(hidden_dims))
    layers: list[nn.Module] = [
        nn.Linear(latent_dim, channels[0] * height * width),
        nn.Unflatten(1, (channels[0], height, width)),
    ]
    for width_in, width_out in zip(channels, [*channels[1:], output_shape[0]], strict=True):
        layers += [nn.ReLU(), nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1)]
    return nn.Sequential(*layers)


def check_architecture(architecture: str) -> None:
    """Raise a ``ValueError`` naming the valid choices when ``architecture`` is unknown."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {list(ARCHITECTURES)}; got {architecture!r}")


def soft_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Smoothly bound ``x`` to ``[low, high]``: ``high - softplus(high - low - softplus(x - low))``.

    A smooth lower bound ``y = low + softplus(x - low)`` followed by a smooth upper bound
    ``high - softplus(high - y)``: the identity well inside the bounds, saturating at them, with a
    non-zero gradient inside. Used for log-variances, so that ``exp`` never overflows or underflows.

    It equals the symmetric ``x - softplus(x - high) + softplus(low - x)`` up to terms of order
    ``exp(-(high - low))`` and ``exp(-20)`` (``softplus`` is the identity beyond 20): 2e-9 for the
    posterior's ``[-14, 8]``. It takes five operations on ``x`` instead of seven and needs no guard
    against huge inputs: each step only saturates, so ``+-inf`` and ``|x|`` of any size give the
    bound itself, where the symmetric form cancels catastrophically (``x - (x - high)`` rounds to 0
    from ``|x|`` of about 500 in bfloat16). The lower asymptote is exactly ``low`` when
    ``high - low > 20``, else ``low - softplus(low - high)``.
    """
    softplus = nn.functional.softplus
    return high - softplus(high - low - softplus(x - low))


def bounded(raw: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``low + (high - low) * sigmoid(raw)``: an unconstrained parameter mapped into ``(low, high)``."""
    return low + (high - low) * torch.sigmoid(raw)


def unbounded(value: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """The inverse of :func:`bounded`; ``value`` must lie strictly inside ``(low, high)``."""
    return torch.logit((value - low) / (high - low))
