"""How much of a warmed-up autoencoder's clustering the GMM-VAE's start keeps: the accuracy of the
N2D clustering of the codes itself, and of the mixture prior fitted to it with M Gaussians per
cluster.

    python benchmarks/gmm_phases.py --seed 0 --warmup-epochs 30 --mixture-epochs 0 \
        --augment-rotation 10 --augment-shift 0.1 --save runs/warm/warm0.pt
    python benchmarks/gmm_ceiling.py --load runs/warm/warm0.pt --components-per-cluster 5 10 20 40

From the warmed-up weights of ``--load`` (the config's network, 784-500-500-2000-10), encodes the
55k training images as they are and clusters the codes as the ``consensus`` start's UMAP runs do
(:func:`~vae_zoo.consensus.umap_gmm_clustering`, UMAP seed 0, 20 neighbours). Prints:

* the Hungarian accuracy of that clustering on the training images (the start's information);
* for each ``M`` of ``--components-per-cluster``: the prior that ``GMMVAE.initialize_prior`` makes
  from that clustering (each cluster split into ``M`` Gaussians by k-means), its accuracy on the
  training and on the test images (``argmax_c p(c | z)``), and the share of training codes on
  which it agrees with the clustering;
* the test accuracy of a 15-nearest-neighbour vote of the clustering's labels in code space (what
  the clustering says about the test images without any prior).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch
from common import hardware

from vae_zoo.consensus import umap_gmm_clustering
from vae_zoo.data import MNISTDataModule
from vae_zoo.metrics import ClusteringAccuracy
from vae_zoo.mixtures import gmm_from_assignment, split_clusters
from vae_zoo.models import GMMVAE


def accuracy(clusters: torch.Tensor, labels: torch.Tensor) -> float:
    """Hungarian accuracy of ``clusters`` [N] against ``labels`` [N]."""
    metric = ClusteringAccuracy()
    metric.update(clusters, labels)
    return float(metric.compute())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--load", type=Path, required=True, help="warmed-up weights (gmm_phases.py --save)")
    parser.add_argument("--components-per-cluster", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--neighbours", type=int, default=20)
    args = parser.parse_args()
    start = time.perf_counter()
    data = MNISTDataModule(binarization="none", download=False, val_size=5000, test_split="test")
    data.setup()
    train_images, train_labels = data.splits["train"]
    test_images, test_labels = data.splits["test"]
    model = GMMVAE(latent_dim=10)
    state = torch.load(args.load, weights_only=True)
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("prior.")}, strict=False)
    model.eval()
    with torch.no_grad():
        train_codes = torch.cat([model.encode(batch) for batch in train_images.split(1000)])  # [N, 10]
        test_codes = torch.cat([model.encode(batch) for batch in test_images.split(1000)])
    clusters = umap_gmm_clustering(train_codes, 10, args.neighbours, seed=0)
    print(
        f"N2D clustering of the training codes: accuracy {accuracy(clusters, train_labels):.4f}", flush=True
    )
    for per_cluster in args.components_per_cluster:
        gmm = gmm_from_assignment(
            train_codes, split_clusters(train_codes, clusters, 10, per_cluster), 10 * per_cluster
        )
        start_model = GMMVAE(latent_dim=10, components_per_cluster=per_cluster)
        start_model.prior.set_parameters(gmm.weights, gmm.means, gmm.variances)
        with torch.no_grad():
            on_train = start_model.prior.cluster_responsibilities(train_codes).argmax(-1)
            on_test = start_model.prior.cluster_responsibilities(test_codes).argmax(-1)
        agreement = (on_train == clusters).float().mean()
        print(
            f"prior with {per_cluster} Gaussians per cluster: train accuracy "
            f"{accuracy(on_train, train_labels):.4f}, test accuracy {accuracy(on_test, test_labels):.4f}, "
            f"agrees with the clustering on {agreement:.4f} of the training codes",
            flush=True,
        )
    nearest = torch.cdist(test_codes, train_codes).topk(15, largest=False).indices  # [10000, 15]
    vote = torch.mode(clusters[nearest], 1).values
    print(f"15-nearest-neighbour vote of the clustering: test accuracy {accuracy(vote, test_labels):.4f}")
    print(f"\ncommand: python benchmarks/gmm_ceiling.py {shlex.join(sys.argv[1:])}")
    print(f"hardware: {hardware()}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
