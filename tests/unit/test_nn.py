"""Encoder/decoder builders: shapes, and clear errors for impossible configurations."""

from __future__ import annotations

import pytest
import torch

from vae_zoo.nn import build_decoder, build_encoder, soft_clamp, split_last_linear


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_encoder_and_decoder_shapes(architecture: str) -> None:
    encoder = build_encoder(architecture, (1, 28, 28), [32, 64], 10)
    decoder = build_decoder(architecture, 5, [32, 64], (1, 28, 28))
    assert encoder(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert decoder(torch.randn(3, 5)).shape == (3, 1, 28, 28)


def test_mlp_on_flat_inputs() -> None:
    assert build_encoder("mlp", (7,), [4], 2)(torch.rand(5, 7)).shape == (5, 2)
    assert build_decoder("mlp", 2, [4], (7,))(torch.rand(5, 2)).shape == (5, 7)


def test_unknown_architecture_and_bad_conv_shape() -> None:
    with pytest.raises(ValueError, match=r"architecture must be one of \['mlp', 'conv'\]; got 'resnet'"):
        build_encoder("resnet", (1, 28, 28), [8], 2)
    with pytest.raises(ValueError, match="divisible by 8"):
        build_encoder("conv", (1, 28, 28), [8, 8, 8], 2)
    with pytest.raises(ValueError, match=r"needs input_shape \(channels, height, width\)"):
        build_decoder("conv", 2, [8], (784,))


def test_soft_clamp_is_identity_inside_and_bounded_outside() -> None:
    x = torch.tensor([-1000.0, -3.0, 0.0, 1.0, 1000.0], requires_grad=True)
    y = soft_clamp(x, -10.0, 5.0)
    torch.testing.assert_close(y[1:4], x[1:4].detach(), atol=0.02, rtol=0)
    assert y[0] > -10.0 - 1e-6 and y[0] < -9.0 and y[-1] < 5.0 + 1e-6 and y[-1] > 4.0
    y.sum().backward()
    assert torch.all(x.grad[1:4] > 0.9)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_split_last_linear_gives_the_hidden_features_and_the_linear_head(architecture: str) -> None:
    encoder = build_encoder(architecture, [1, 8, 8], [4, 6], 5)
    body, head = split_last_linear(encoder)
    x = torch.rand(3, 1, 8, 8)
    assert isinstance(head, torch.nn.Linear) and head.out_features == 5
    torch.testing.assert_close(head(body(x)), encoder(x))
    with pytest.raises(TypeError, match=r"ending in nn\.Linear"):
        split_last_linear(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))
