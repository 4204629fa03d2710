"""How a user's project changes one piece of a zoo model and inherits the rest."""

from __future__ import annotations

import torch
from torch import nn

from vae_zoo.models import VAE


class TanhEncoderVAE(VAE):
    """The zoo's VAE with a different encoder network: one tanh hidden layer."""

    def build_encoder(self) -> nn.Module:
        width = self.hidden_dims[0]
        return nn.Sequential(
            nn.Flatten(), nn.Linear(784, width), nn.Tanh(), nn.Linear(width, self.encoder_out_features)
        )


class L1PenaltyVAE(VAE):
    """The zoo's VAE with an extra loss term: an L1 penalty on the posterior means."""

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = super().loss_terms(x)
        terms["l1"] = self.encode(x).abs().sum(-1)  # [B]
        return terms

    def loss_weights(self) -> dict[str, float]:
        return {**super().loss_weights(), "l1": 0.1}
