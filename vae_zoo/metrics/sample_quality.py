"""Sample quality without downloads: the Fréchet distance between a model's samples and real
images in the feature space of a small MNIST classifier (a LeNet trained by
``benchmarks/sample_quality.py``), through torchmetrics' ``FrechetInceptionDistance`` with a custom
feature extractor."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance


class LeNetFeatures(nn.Module):
    """LeNet-5 for ``[B, 1, 28, 28]`` images in ``[0, 1]``: two 5x5 convolutions (6 and 16
    channels, ReLU, 2x2 max-pooling), then 120 and ``num_features = 84`` units; :meth:`forward`
    gives the 84 penultimate features [B, 84], :meth:`logits` the 10 class scores [B, 10]."""

    num_features = 84

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # [B, 6, 14, 14]
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # [B, 16, 5, 5]
            nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, self.num_features), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(self.num_features, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images.reshape(-1, 1, 28, 28).float())

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward(images))


def frechet_distance(
    features: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor | Callable[[int], torch.Tensor],
    num_fake: int | None = None,
    batch_size: int = 1000,
) -> float:
    """``||m_r - m_f||^2 + Tr(C_r + C_f - 2 (C_r C_f)^(1/2))`` between the ``features`` of ``real``
    images [N, ...] and of ``fake`` ones (a tensor, or a function ``n -> [n, ...]`` such as a
    model's ``sample``, called for ``num_fake`` images in batches of ``batch_size``), by
    torchmetrics' ``FrechetInceptionDistance`` with ``features`` as its extractor (which needs a
    ``num_features`` attribute)."""
    metric = FrechetInceptionDistance(feature=features, normalize=True).to(real.device)
    with torch.no_grad():
        for batch in real.split(batch_size):
            metric.update(batch, real=True)
        if callable(fake):
            total = real.shape[0] if num_fake is None else num_fake
            for start in range(0, total, batch_size):
                metric.update(fake(min(batch_size, total - start)), real=False)
        else:
            for batch in fake.split(batch_size):
                metric.update(batch, real=False)
    return float(metric.compute())
