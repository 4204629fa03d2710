"""Dendrogram and leaf purity against brute force over pairs on hand-made and random trees."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster import hierarchy

from vae_zoo.metrics.hierarchy import DendrogramPurity, LeafPurity, dendrogram_purity, leaf_purity


def brute_force_purity(leaves: list[int], labels: list[int], linkage: np.ndarray, k: int) -> float:
    """Walk every same-class pair up to its lowest common ancestor."""
    _, nodes = hierarchy.to_tree(linkage, rd=True)
    below = {node.id: set(node.pre_order()) for node in nodes}
    points_below = {v: [i for i, leaf in enumerate(leaves) if leaf in below[v]] for v in below}
    scores = []
    for i, j in itertools.combinations(range(len(leaves)), 2):
        if labels[i] != labels[j]:
            continue
        lca = min((v for v in below if {leaves[i], leaves[j]} <= below[v]), key=lambda v: len(below[v]))
        members = points_below[lca]
        scores.append(sum(labels[m] == labels[i] for m in members) / len(members))
    return float(np.mean(scores))


def test_hand_made_tree() -> None:
    # leaves 0, 1 joined into node 3; node 3 and leaf 2 into the root 4
    linkage = np.array([[0, 1, 1.0, 2], [3, 2, 2.0, 3]], dtype=float)
    leaves = torch.tensor([0, 0, 1, 2, 2])
    labels = torch.tensor([0, 0, 0, 1, 0])
    # class-0 pairs: (0,1) in leaf 0 -> 1; (0,2),(1,2) at node 3 -> 3/3; (0,4),(1,4),(2,4) at the root -> 4/5
    # (4 is in leaf 2 with the class-1 point); so DP = (1 + 2 + 3 * 0.8) / 6
    expected = (1 + 2 + 3 * 0.8) / 6
    assert dendrogram_purity(leaves, labels, torch.from_numpy(linkage[:, :2]), 3) == pytest.approx(expected)
    assert brute_force_purity(leaves.tolist(), labels.tolist(), linkage, 3) == pytest.approx(expected)
    assert leaf_purity(leaves, labels, 3) == pytest.approx(4 / 5)


@pytest.mark.parametrize("seed", range(5))
def test_random_trees_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    linkage = hierarchy.linkage(rng.normal(size=(k, 2)), method="average")
    leaves = rng.integers(0, k, 40)
    labels = rng.integers(0, 3, 40)
    got = dendrogram_purity(
        torch.from_numpy(leaves), torch.from_numpy(labels), torch.from_numpy(linkage[:, :2]), k
    )
    assert got == pytest.approx(brute_force_purity(leaves.tolist(), labels.tolist(), linkage, k))


def test_metric_merges_two_processes_and_perfect_trees_score_one() -> None:
    linkage = torch.tensor([[0, 1], [2, 3]])
    for metric_class in (DendrogramPurity, LeafPurity):
        first, second = metric_class(3), metric_class(3)
        first.update(torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]))
        second.update(torch.tensor([2, 2]), torch.tensor([2, 2]))
        first.merge_state(second)
        if metric_class is DendrogramPurity:
            first.set_tree(linkage)
        assert float(first.compute()) == 1.0
    tree_read = DendrogramPurity(3, tree=lambda: linkage)
    tree_read.update(torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1]))  # leaves 0 and 1 merge first
    assert float(tree_read.compute()) == pytest.approx(
        dendrogram_purity(torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1]), linkage, 3)
    )
    with pytest.raises(RuntimeError, match="needs a tree"):
        DendrogramPurity(3).compute()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(2, 6),
    classes=st.integers(1, 4),
    n=st.integers(2, 30),
    method=st.sampled_from(["average", "single", "complete", "ward"]),
)
def test_purities_match_brute_force_on_any_tree(seed: int, k: int, classes: int, n: int, method: str) -> None:
    """Any tree shape, leaves that hold no point, more or fewer classes than leaves."""
    rng = np.random.default_rng(seed)
    linkage = hierarchy.linkage(rng.normal(size=(k, 2)), method=method)
    leaves = rng.integers(0, k, n)
    labels = rng.integers(0, classes, n)
    labels[:2] = 0  # at least one pair of the same class, so that the purity is defined
    got = dendrogram_purity(
        torch.from_numpy(leaves), torch.from_numpy(labels), torch.from_numpy(linkage[:, :2]), k
    )
    assert got == pytest.approx(brute_force_purity(leaves.tolist(), labels.tolist(), linkage, k))
    majority = sum(np.bincount(labels[leaves == leaf]).max() for leaf in set(leaves.tolist()))
    assert leaf_purity(torch.from_numpy(leaves), torch.from_numpy(labels), k) == pytest.approx(majority / n)
