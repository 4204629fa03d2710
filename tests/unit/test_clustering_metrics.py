"""Clustering accuracy (Hungarian matching), NMI and ARI against references computed another way:
brute force over every matching, and the formulas written out in numpy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.clustering import AdjustedRandScore, NormalizedMutualInfoScore

from vae_zoo.metrics import ClusteringAccuracy, hungarian_accuracy


@st.composite
def labelings(draw: st.DrawFn, max_clusters: int = 6, max_classes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ids in [0, K) and labels in [0, C) for n examples, K and C independent (K != C
    and ids or labels that never occur included)."""
    k = draw(st.integers(1, max_clusters))
    c = draw(st.integers(1, max_classes))
    n = draw(st.integers(2, 40))
    preds = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    target = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    return np.array(preds), np.array(target)


def brute_force_accuracy(preds: np.ndarray, target: np.ndarray) -> float:
    """The best one-to-one map from the clusters that occur to labels, by trying every one; with
    more clusters than labels the extra clusters map to no label (their examples count as wrong)."""
    clusters, labels = sorted(set(preds.tolist())), sorted(set(target.tolist()))
    slots = labels + [None] * max(0, len(clusters) - len(labels))
    best = 0
    for image in set(itertools.permutations(slots, len(clusters))):
        mapping = dict(zip(clusters, image, strict=True))
        best = max(best, sum(mapping[p] == t for p, t in zip(preds.tolist(), target.tolist(), strict=True)))
    return best / len(preds)


def contingency(preds: np.ndarray, target: np.ndarray) -> np.ndarray:
    _, p = np.unique(preds, return_inverse=True)
    _, t = np.unique(target, return_inverse=True)
    table = np.zeros((p.max() + 1, t.max() + 1))
    np.add.at(table, (p, t), 1)
    return table


def nmi_reference(preds: np.ndarray, target: np.ndarray) -> float:
    """``I(U; V) / ((H(U) + H(V)) / 2)`` from the contingency table (the arithmetic normaliser).

    Where ``I = 0`` the score is 0, torchmetrics' convention (sklearn gives 1 when both labelings
    are a single cluster)."""
    table = contingency(preds, target)
    n = table.sum()
    a, b = table.sum(1), table.sum(0)
    nonzero = table > 0
    mutual_info = (table[nonzero] / n * np.log(n * table[nonzero] / np.outer(a, b)[nonzero])).sum()
    if abs(mutual_info) < 1e-7:
        return 0.0

    def entropy(counts: np.ndarray) -> float:
        return float(-(counts / n * np.log(counts / n)).sum())

    return float(mutual_info / ((entropy(a) + entropy(b)) / 2))


def ari_reference(preds: np.ndarray, target: np.ndarray) -> float:
    """Hubert and Arabie's adjusted Rand index by pair counting:
    ``(index - expected) / (max - expected)``, ``index = sum_ij C(n_ij, 2)``,
    ``expected = sum_i C(a_i, 2) sum_j C(b_j, 2) / C(n, 2)``,
    ``max = (sum_i C(a_i, 2) + sum_j C(b_j, 2)) / 2``;
    1 when both labelings are the same trivial one (``max == expected``)."""
    table = contingency(preds, target)

    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1) / 2).sum())

    index, a, b = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = a * b / pairs(np.array([table.sum()]))
    maximum = (a + b) / 2
    if maximum == expected:
        return 1.0
    return (index - expected) / (maximum - expected)


def scores(preds: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Accuracy, NMI and ARI from the Metric classes the models log, fed in two uneven batches."""
    p, t = torch.from_numpy(preds), torch.from_numpy(target)
    cut = len(preds) // 3
    result = {}
    for name, metric in (
        ("acc", ClusteringAccuracy()),
        ("nmi", NormalizedMutualInfoScore(average_method="arithmetic")),
        ("ari", AdjustedRandScore()),
    ):
        metric.update(p[:cut], t[:cut])
        metric.update(p[cut:], t[cut:])
        result[name] = float(metric.compute())
    return result


@settings(max_examples=80, deadline=None)
@given(labelings())
def test_accuracy_is_the_best_matching_found_by_brute_force(labeling: tuple[np.ndarray, np.ndarray]) -> None:
    preds, target = labeling
    assert scores(preds, target)["acc"] == pytest.approx(brute_force_accuracy(preds, target))


@settings(max_examples=80, deadline=None)
@given(labelings())
def test_nmi_and_ari_follow_their_formulas(labeling: tuple[np.ndarray, np.ndarray]) -> None:
    preds, target = labeling
    got = scores(preds, target)
    assert got["nmi"] == pytest.approx(nmi_reference(preds, target), abs=1e-5)
    assert got["ari"] == pytest.approx(ari_reference(preds, target), abs=1e-5)


@settings(max_examples=50, deadline=None)
@given(labelings(), st.permutations(range(50)))
def test_scores_do_not_depend_on_the_names_of_the_clusters(
    labeling: tuple[np.ndarray, np.ndarray], relabel: list[int]
) -> None:
    """Cluster ids mapped one-to-one onto other ids in [0, 50), most of which never occur."""
    preds, target = labeling
    renamed = np.array(relabel)[preds]
    before, after = scores(preds, target), scores(renamed, target)
    for name in before:
        assert after[name] == pytest.approx(before[name], abs=1e-5)


@settings(max_examples=50, deadline=None)
@given(labelings(max_clusters=1), st.permutations(range(8)))
def test_a_permutation_of_the_labels_scores_one(
    labeling: tuple[np.ndarray, np.ndarray], perm: list[int]
) -> None:
    _, target = labeling
    got = scores(np.array(perm)[target], target)
    assert got["acc"] == 1.0 and got["ari"] == pytest.approx(1.0)
    if len(set(target.tolist())) > 1:  # a single class has no information to share: NMI is 0 by convention
        assert got["nmi"] == pytest.approx(1.0, abs=1e-5)  # float32 in torchmetrics


def test_more_clusters_than_classes_and_fewer() -> None:
    target = np.repeat([0, 1, 2], 10)  # three classes of 10
    split = np.repeat([0, 1, 2, 3, 4, 5], 5)  # each class split into two clusters of 5: K=6 > C=3
    assert hungarian_accuracy(torch.from_numpy(split), torch.from_numpy(target)) == pytest.approx(15 / 30)
    merged = np.repeat([0, 0, 1], 10)  # classes 0 and 1 in one cluster: K=2 < C=3
    assert hungarian_accuracy(torch.from_numpy(merged), torch.from_numpy(target)) == pytest.approx(20 / 30)
    gaps = np.repeat([7, 3, 42], 10)  # perfect clusters under ids that skip most numbers
    assert hungarian_accuracy(torch.from_numpy(gaps), torch.from_numpy(target)) == 1.0
    assert scores(split, target)["nmi"] == pytest.approx(nmi_reference(split, target), abs=1e-6)
    assert scores(merged, target)["ari"] == pytest.approx(ari_reference(merged, target), abs=1e-6)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
def test_accuracy_needs_examples() -> None:
    with pytest.raises(ValueError, match="ClusteringAccuracy has no examples"):
        ClusteringAccuracy().compute()
    with pytest.raises(ValueError, match="needs at least one example"):
        hungarian_accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))
