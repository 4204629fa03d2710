"""How a clustering model of the zoo uses its clusters on the MNIST test split.

    python benchmarks/cluster_usage.py --checkpoint runs/q_gmvae/seed0/version_0/checkpoints/last.ckpt

For a checkpoint of any model with ``predict_cluster`` (GMM-VAE, hierarchical GMM-VAE, GMVAE),
prints the test images assigned to each cluster, how many clusters are empty, and each
cluster's count of every digit (rows: clusters; columns: digits 0-9), then the Hungarian
accuracy, and the command.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from common import hardware, load_model

from vae_zoo.data import MNISTDataModule
from vae_zoo.metrics import hungarian_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    options = parser.parse_args()
    model = load_model(options.checkpoint)
    if not callable(getattr(model, "predict_cluster", None)):
        name = type(model).__name__
        raise SystemExit(f"{options.checkpoint}: {name} does not cluster (it has no predict_cluster)")
    data = MNISTDataModule(binarization="none", download=False)
    data.setup("test")
    x, y = data.splits["test"]
    with torch.no_grad():
        clusters = torch.cat([model.predict_cluster(chunk) for chunk in x.split(2000)])  # [N]
    k = int(model.num_components)
    table = torch.zeros(k, 10, dtype=torch.int64)
    table.index_put_((clusters, y), torch.ones_like(y), accumulate=True)  # [K, 10]
    sizes = table.sum(1)
    print(f"command: python benchmarks/cluster_usage.py {shlex.join(sys.argv[1:])}\nhardware: {hardware()}")
    print(f"{type(model).__name__}, {k} clusters, {x.shape[0]} test images")
    print(f"empty clusters: {int((sizes == 0).sum())} of {k}")
    print("cluster  size  digits 0-9")
    for cluster in range(k):
        print(f"{cluster:7d} {int(sizes[cluster]):5d}  {table[cluster].tolist()}")
    print(f"accuracy (Hungarian): {hungarian_accuracy(clusters, y):.4f}")


if __name__ == "__main__":
    main()
