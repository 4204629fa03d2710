"""Maximum mean discrepancy between codes and prior draws (Gretton et al. 2012), with the inverse
multiquadratic kernel of the Wasserstein autoencoder (Tolstikhin et al. 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

#: the kernel scales ``s`` of the WAE's reference implementation: ``C = 2 D s`` for each
IMQ_SCALES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def imq_kernel(a: torch.Tensor, b: torch.Tensor, scales: Sequence[float] = IMQ_SCALES) -> torch.Tensor:
    """``k(a_i, b_j) = sum_s C_s / (C_s + ||a_i - b_j||^2)`` with ``C_s = 2 D s``: [N, D], [M, D] ->
    [N, M]. Heavy-tailed, so that far-apart codes still pull (unlike an RBF kernel)."""
    squared = torch.cdist(a, b).square()  # [N, M]
    dim = a.shape[-1]
    return sum(2 * dim * s / (2 * dim * s + squared) for s in scales)


def mmd_squared(x: torch.Tensor, y: torch.Tensor, scales: Sequence[float] = IMQ_SCALES) -> torch.Tensor:
    """The unbiased estimate of ``MMD^2(P, Q)`` from draws ``x`` [N, D] of P and ``y`` [M, D] of Q::

        1/(N(N-1)) sum_{i != j} k(x_i, x_j) + 1/(M(M-1)) sum_{i != j} k(y_i, y_j)
            - 2/(N M) sum_{i, j} k(x_i, y_j)

    A scalar, zero in expectation when P = Q (it can be slightly negative); needs N, M >= 2.
    """
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"the MMD estimate needs at least 2 draws of each side; got {n} and {m}")
    kxx, kyy, kxy = imq_kernel(x, x, scales), imq_kernel(y, y, scales), imq_kernel(x, y, scales)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2 * kxy.mean()


class PriorMMD(Metric):
    """The mean over batches of :func:`mmd_squared` between a batch's codes and as many draws of
    the prior: how far the aggregate posterior ``q(z) = E_x q(z|x)`` is from ``p(z)``, the
    quantity a WAE penalises. Batch sizes enter as the estimator's; compare runs at equal batch
    size. Summed across processes."""

    full_state_update = False
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("batches", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, codes: torch.Tensor, prior_draws: torch.Tensor) -> None:
        """Add one batch: ``codes`` [B, D] (draws of the aggregate posterior), ``prior_draws`` [B, D]."""
        self.total += mmd_squared(codes.detach().double(), prior_draws.detach().double())
        self.batches += 1

    def compute(self) -> torch.Tensor:
        return (self.total / self.batches).float()
