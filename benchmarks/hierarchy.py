"""Evaluate a trained HierarchicalGMMVAE checkpoint on the MNIST test split and draw its tree.

    python benchmarks/hierarchy.py --ckpt runs/hgmm1/seed0/version_0/checkpoints/last.ckpt \
        --figure dendrogram.png

Prints leaf accuracy (Hungarian), NMI, ARI, dendrogram purity and leaf purity from ``vae-zoo
test``'s own metrics, the accuracy at every level of the tree (cutting it into 2..K clusters),
the linkage matrix, and saves the dendrogram with each leaf labelled by its majority digit and
its share of the test set.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import lightning as L
import torch
from common import hardware

from vae_zoo.data import MNISTDataModule
from vae_zoo.metrics import hungarian_accuracy
from vae_zoo.models import HierarchicalGMMVAE


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--figure", type=Path, default=Path("dendrogram.png"))
    options = parser.parse_args()
    model = HierarchicalGMMVAE.load_from_checkpoint(options.ckpt, map_location="cpu").eval()
    data = MNISTDataModule(binarization="none", download=False)
    trainer = L.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu"
    )
    results = trainer.test(model, datamodule=data, verbose=False)[0]
    print(f"command: python benchmarks/hierarchy.py {shlex.join(sys.argv[1:])}\nhardware: {hardware()}")
    for name in (
        "test/acc",
        "test/nmi",
        "test/ari",
        "test/dendrogram_purity",
        "test/leaf_purity",
        "test/elbo",
    ):
        print(f"{name}: {results[name]:.4f}")
    x, y = data.splits["test"]
    with torch.no_grad():
        leaves = torch.cat([model.predict_cluster(chunk) for chunk in x.split(2000)])
        levels = torch.cat([model.predict_hierarchy(chunk) for chunk in x.split(2000)])
    k = model.prior.num_clusters
    print(
        "accuracy when the tree is cut into n clusters:",
        {n + 1: round(hungarian_accuracy(levels[:, n], y), 4) for n in range(1, k)},
    )
    labels = []
    for leaf in range(k):
        members = y[leaves == leaf]
        majority = int(members.mode().values) if members.numel() else -1
        labels.append(f"{majority} ({members.numel() / y.numel():.0%})")
    print("leaves (majority digit, share):", labels)
    print("linkage matrix:\n", model.linkage_matrix().round(3))
    model.plot_dendrogram(labels).savefig(options.figure, dpi=120)
    print(f"dendrogram saved to {options.figure}")


if __name__ == "__main__":
    main()
