"""Expectation-maximisation for diagonal Gaussian mixtures, and k-means, in torch (runs on the
training device).

Used to initialise the mixture priors from the codes of a warmed-up encoder, and to fit the
latent density of deterministic autoencoders; :func:`diagonal_normal_log_prob` also evaluates
the VampPrior's components.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MIN_VARIANCE = 1e-4
EMPTY_COUNT = 1e-10  # total responsibility below which a component counts as empty


@dataclass
class DiagonalGMM:
    """A fitted mixture: ``weights`` [K], ``means`` [K, D], ``variances`` [K, D], and the
    average log-likelihood per point of the data it was fitted to."""

    weights: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor
    log_likelihood: float

    def log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """``log pi_k + log N(x; mu_k, diag(var_k))``: [N, D] -> [N, K]."""
        return self.weights.log() + diagonal_normal_log_prob(x, self.means, self.variances)


def diagonal_normal_log_prob(x: torch.Tensor, means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """``log N(x; mu_k, diag(var_k))`` for every point and component: x [..., D], means and
    variances [K, D] -> [..., K].

    The square is expanded, ``sum_d (x_d - mu_kd)^2 / var_kd = x^2 @ (1/var)^T - 2 x @ (mu/var)^T
    + sum_d mu_kd^2 / var_kd``, two matrix products instead of a [..., K, D] tensor: what makes a
    mixture of hundreds of components cheap to evaluate at millions of points (IWAE). The price
    is rounding: the three terms cancel, so the error is about the float epsilon times
    ``x^2 / var`` (1e-4 nats for codes of size 3 and variances of 0.01 in float32).
    """
    precision = variances.reciprocal()  # [K, D]
    quadratic = (
        (x**2) @ precision.T - 2 * x @ (means * precision).T + (means**2 * precision).sum(-1)
    )  # [..., K]
    log_det = variances.log().sum(-1)  # [K]
    return -0.5 * (quadratic + log_det + x.shape[-1] * math.log(2 * math.pi))


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: [N, D] -> [k, D] centres drawn with probability ~ squared distance."""
    first = torch.randint(x.shape[0], (1,), generator=generator, device=x.device)
    centres = [x[first[0]]]
    distance = ((x - centres[0]) ** 2).sum(-1)
    for _ in range(1, k):
        total = distance.sum()
        if not total > 0:  # fewer distinct points than centres: the rest are drawn uniformly
            distance = torch.ones_like(distance)
            total = distance.sum()
        index = torch.multinomial(distance / total, 1, generator=generator)
        centres.append(x[index[0]])
        distance = torch.minimum(distance, ((x - centres[-1]) ** 2).sum(-1))
    return torch.stack(centres)


def _kmeans(x: torch.Tensor, centres: torch.Tensor, iterations: int) -> torch.Tensor:
    """Lloyd's iterations from ``centres``; returns the hard assignment [N]."""
    for _ in range(iterations):
        assignment = torch.cdist(x, centres).argmin(-1)
        counts = torch.bincount(assignment, minlength=centres.shape[0]).unsqueeze(-1)
        sums = torch.zeros_like(centres).index_add_(0, assignment, x)
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
    return torch.cdist(x, centres).argmin(-1)


def kmeans(
    x: torch.Tensor, num_clusters: int, restarts: int = 10, iterations: int = 50, seed: int = 0
) -> torch.Tensor:
    """k-means: the assignment [N] (int64) of the lowest within-cluster sum of squares
    ``sum_n ||x_n - c_{a_n}||^2`` over ``restarts`` k-means++ starts of ``iterations`` Lloyd steps.

    Args:
        x: data [N, D] with ``N >= num_clusters``.
        num_clusters: ``K``.
        restarts, iterations: starts, and Lloyd iterations per start.
        seed: seed of the k-means++ draws.
    """
    generator = torch.Generator(device=x.device).manual_seed(seed)
    best, best_inertia = None, math.inf
    for _ in range(restarts):
        assignment = _kmeans(x, _kmeans_plus_plus(x, num_clusters, generator), iterations)
        counts = torch.bincount(assignment, minlength=num_clusters).unsqueeze(-1)  # [K, 1]
        centres = torch.zeros(num_clusters, x.shape[1], dtype=x.dtype, device=x.device)
        centres = centres.index_add_(0, assignment, x) / counts.clamp_min(1)  # [K, D]
        inertia = float(((x - centres[assignment]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = assignment, inertia
    return best


def gmm_from_assignment(x: torch.Tensor, assignment: torch.Tensor, num_components: int) -> DiagonalGMM:
    """The diagonal mixture of a hard clustering: ``pi_k = N_k / N`` and the mean and variance
    (``+ 1e-4``) of the points of each cluster; one M-step of EM with 0/1 responsibilities.

    ``x`` [N, D], ``assignment`` [N] in ``[0, num_components)``; computed in float64, returned
    in ``x``'s dtype (float32 at least), with the average log-likelihood of ``x``.
    """
    data = x.detach().double()
    model = _maximisation(data, torch.nn.functional.one_hot(assignment, num_components).double())
    log_likelihood = torch.logsumexp(model.log_joint(data), -1).mean().item()
    return _cast(model, x.dtype, log_likelihood)


def split_clusters(
    x: torch.Tensor, assignment: torch.Tensor, num_clusters: int, parts: int, seed: int = 0
) -> torch.Tensor:
    """Split every cluster of ``assignment`` into ``parts`` by :func:`kmeans` of its points.

    ``x`` [N, D], ``assignment`` [N] in ``[0, num_clusters)``; returns the assignment [N] to
    ``num_clusters * parts`` parts, part ``m`` of cluster ``c`` numbered ``c * parts + m``, so that
    ``part // parts`` is the cluster again. A cluster of fewer points than ``parts`` is split into
    as many parts as it has points (the other parts stay empty; :func:`gmm_from_assignment`
    gives an empty part no weight).
    """
    parts_of = torch.zeros_like(assignment)
    for cluster in range(num_clusters):
        members = (assignment == cluster).nonzero().squeeze(1)  # [N_c]
        count = min(parts, members.shape[0])
        if count > 1:
            parts_of[members] = kmeans(x[members].double(), count, restarts=3, seed=seed)
    return assignment * parts + parts_of


def _cast(model: DiagonalGMM, dtype: torch.dtype, log_likelihood: float) -> DiagonalGMM:
    # float32 at least: codes made under bf16/fp16 autocast must not round the fitted mixture
    dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    return DiagonalGMM(
        model.weights.to(dtype), model.means.to(dtype), model.variances.to(dtype), log_likelihood
    )


def fit_diagonal_gmm(
    x: torch.Tensor,
    num_components: int,
    iterations: int = 100,
    restarts: int = 3,
    seed: int = 0,
    tolerance: float = 1e-5,
) -> DiagonalGMM:
    """Maximum-likelihood diagonal Gaussian mixture by EM, best of ``restarts`` k-means++ starts.

    E-step: ``r_nk = softmax_k(log pi_k + log N(x_n; mu_k, var_k))``; M-step:
    ``pi_k = mean_n r_nk``, ``mu_k = sum_n r_nk x_n / sum_n r_nk``,
    ``var_k = sum_n r_nk (x_n - mu_k)^2 / sum_n r_nk + 1e-4``. Each restart is seeded by k-means++
    followed by 10 Lloyd iterations. Computed in float64.

    Args:
        x: data [N, D].
        num_components: ``K``; at most ``N``.
        iterations: EM iterations per restart (stops earlier when the average log-likelihood
            improves by less than ``tolerance``).
        restarts: independent starts; the one with the highest likelihood is returned.
        seed: seed of the k-means++ draws.
    """
    if x.ndim != 2 or x.shape[0] < num_components:
        raise ValueError(
            f"fit_diagonal_gmm needs data [N, D] with N >= num_components={num_components}; "
            f"got shape {list(x.shape)}"
        )
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite.all(-1)).sum())
        raise ValueError(
            f"fit_diagonal_gmm needs finite data; {bad} of the {x.shape[0]} points hold NaN or "
            "infinite values"
        )
    data = x.detach().double()
    generator = torch.Generator(device=data.device).manual_seed(seed)
    best: DiagonalGMM | None = None
    for _ in range(restarts):
        assignment = _kmeans(data, _kmeans_plus_plus(data, num_components, generator), 10)
        responsibilities = torch.nn.functional.one_hot(assignment, num_components).double()
        previous = -math.inf
        for _ in range(iterations):
            model = _maximisation(data, responsibilities)
            log_joint = model.log_joint(data)  # [N, K]
            log_likelihood = torch.logsumexp(log_joint, -1).mean().item()
            responsibilities = torch.softmax(log_joint, -1)
            if log_likelihood - previous < tolerance:
                break
            previous = log_likelihood
        model.log_likelihood = log_likelihood
        if best is None or model.log_likelihood > best.log_likelihood:
            best = model
    return _cast(best, x.dtype, best.log_likelihood)


def _maximisation(x: torch.Tensor, responsibilities: torch.Tensor) -> DiagonalGMM:
    """M-step. A component that no point is responsible for (k-means can leave one empty, and
    data with fewer distinct points than components always do) gets the mean and variance of the
    whole data and a weight of ``EMPTY_COUNT / N``: before, it sat at the origin with the minimum
    variance ``1e-4``, a density spike in a place with no data, which a prior's KL can exploit."""
    counts = responsibilities.sum(0)  # [K]
    empty = (counts < EMPTY_COUNT).unsqueeze(-1)  # [K, 1]
    counts = counts.clamp_min(EMPTY_COUNT)
    means = responsibilities.T @ x / counts.unsqueeze(-1)  # [K, D]
    second = responsibilities.T @ (x**2) / counts.unsqueeze(-1)
    variances = (second - means**2).clamp_min(0)
    means = torch.where(empty, x.mean(0), means)
    variances = torch.where(empty, x.var(0, correction=0), variances) + MIN_VARIANCE
    return DiagonalGMM(counts / counts.sum(), means, variances, -math.inf)
