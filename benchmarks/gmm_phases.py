"""Where GMMVAE's clustering accuracy comes from: the prior's start, or the mixture-prior phase.

    python benchmarks/gmm_phases.py --seed 0 --save runs/gmm_phases/warm.pt
    python benchmarks/gmm_phases.py --load runs/gmm_phases/warm.pt --fixed-weights
    python benchmarks/gmm_phases.py --load runs/gmm_phases/warm.pt --kl-estimator monte_carlo
    python benchmarks/gmm_phases.py --warmup-epochs 100 --em-every 10 --mixture-epochs 0
    python benchmarks/gmm_phases.py --augment-rotation 10 --augment-shift 0.1 --prior-init spectral
    python benchmarks/gmm_phases.py --load runs/warm/warm0.pt --prior-init spectral \
        --components-per-cluster 5 --fixed-prior --augment-rotation 10 --augment-shift 0.1

Trains the model of ``configs/gmm_mnist.yaml`` (784-500-500-2000-10, K = 10, Bernoulli, Adam,
batch 128, MNIST grey levels, the 55k training split) with a plain loop around the library's
``GMMVAE`` (its own ``loss_terms`` and ``objective``, no Lightning): ``--warmup-epochs`` of the
autoencoder warm-up (or the warmed-up weights of ``--load``), the fit of the prior to the
codes of the training split (``initialize_prior``, by EM or, with ``--prior-init spectral``, from
spectral clustering, or the consensus of spectral and UMAP clusterings, each cluster split into
``--components-per-cluster`` Gaussians), then ``--mixture-epochs`` with the mixture
prior, under a fresh Adam (``vae-zoo fit`` keeps one optimizer, and its moments, across the
switch; a run started from ``--load`` has no warm-up moments to keep). Prints the test-set
accuracy (Hungarian matching) after that fit and after every epoch of the mixture phase, so that the
two sources of the final accuracy can be told apart. ``--em-every N`` also prints, every ``N``
warm-up epochs, the test accuracy that the start would have there (``initialize_prior`` on a
copy of the model, on the codes of the training split, without ending the warm-up).
``--augment-rotation`` and ``--augment-shift`` train on randomly rotated and shifted images, as
``MNISTDataModule``'s options of the same names do (the prior is still fitted to the codes of
the images as they are).
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
import time
from pathlib import Path

import torch
from common import hardware

from vae_zoo.data import MNISTDataModule, RandomAffine
from vae_zoo.metrics import ClusteringAccuracy
from vae_zoo.models import GMMVAE


def train_epoch(
    model: GMMVAE,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    batch_size: int,
    augmentation: RandomAffine | None = None,
) -> None:
    """One epoch over ``images`` [N, 1, 28, 28] in a random order, with the model's own loss, each
    batch transformed by ``augmentation`` when given."""
    model.train()
    order = torch.randperm(images.shape[0])
    for start in range(0, images.shape[0], batch_size):
        batch = images.index_select(0, order[start : start + batch_size])
        if augmentation is not None:
            batch = augmentation(batch)
        loss = model.objective(model.loss_terms(batch))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()


@torch.no_grad()
def test_accuracy(model: GMMVAE, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of ``predict_cluster`` on ``images`` under the best one-to-one cluster-label map."""
    metric = ClusteringAccuracy()
    for start in range(0, images.shape[0], 1000):
        metric.update(model.predict_cluster(images[start : start + 1000]), labels[start : start + 1000])
    return float(metric.compute())


@torch.no_grad()
def start_accuracy(
    model: GMMVAE, train_images: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor
) -> float:
    """Test accuracy of the prior ``initialize_prior`` would fit now (by the model's ``prior_init``),
    on a copy: the model stays in its warm-up."""
    model.eval()
    start = copy.deepcopy(model)
    start.initialize_prior(torch.cat([start.encode(batch) for batch in train_images.split(1000)]))
    return test_accuracy(start, test_images, test_labels)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup-epochs", type=int, default=10)
    parser.add_argument("--mixture-epochs", type=int, default=10)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--kl-estimator", choices=["responsibility", "monte_carlo"], default="responsibility")
    parser.add_argument("--prior-init", choices=["em", "spectral", "consensus"], default="em")
    parser.add_argument("--components-per-cluster", type=int, default=1)
    parser.add_argument("--fixed-prior", action="store_true", help="learn_prior=False: keep the fitted prior")
    parser.add_argument(
        "--prior-lr", type=float, default=None, help="learning rate of the prior's parameters (default: --lr)"
    )
    parser.add_argument("--fixed-weights", action="store_true", help="keep the mixing weights at the EM fit")
    parser.add_argument(
        "--em-every", type=int, default=0, help="print the start's accuracy every N warm-up epochs"
    )
    parser.add_argument(
        "--augment-rotation", type=float, default=0.0, help="degrees, as MNISTDataModule's augment_rotation"
    )
    parser.add_argument(
        "--augment-shift", type=float, default=0.0, help="fraction, as MNISTDataModule's augment_shift"
    )
    parser.add_argument("--save", type=Path, help="write the warmed-up weights here")
    parser.add_argument("--load", type=Path, help="start from these warmed-up weights (skips the warm-up)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    data = MNISTDataModule(
        binarization="none",
        download=False,
        val_size=5000,
        test_split="test",
        augment_rotation=args.augment_rotation,
        augment_shift=args.augment_shift,
    )
    data.setup()
    train_images = data.splits["train"][0]
    test_images, test_labels = data.splits["test"]
    model = GMMVAE(
        latent_dim=args.latent_dim,
        lr=args.lr,
        kl_estimator=args.kl_estimator,
        learn_mixture_weights=not args.fixed_weights,
        prior_init=args.prior_init,
        components_per_cluster=args.components_per_cluster,
        learn_prior=not args.fixed_prior,
    )
    augmentation = data.train_augmentation()
    start = time.perf_counter()
    if args.load is not None:
        # the prior is fitted anew below: its warm-up values (of any size) are not loaded
        state = torch.load(args.load)
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("prior.")}, strict=False)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        for epoch in range(1, args.warmup_epochs + 1):
            train_epoch(model, optimizer, train_images, args.batch_size, augmentation)
            if args.em_every and epoch % args.em_every == 0:
                accuracy = start_accuracy(model, train_images, test_images, test_labels)
                seconds = time.perf_counter() - start
                print(
                    f"warm-up epoch {epoch}: {args.prior_init} start's test accuracy {accuracy:.4f} "
                    f"({seconds:.0f} s)",
                    flush=True,
                )
        if args.save is not None:
            args.save.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), args.save)
    with torch.no_grad():
        model.initialize_prior(torch.cat([model.encode(batch) for batch in train_images.split(1000)]))
    print(
        f"after {args.prior_init}: test accuracy {test_accuracy(model, test_images, test_labels):.4f}",
        flush=True,
    )
    prior = [p for p in model.prior.parameters() if p.requires_grad]
    networks = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("prior.")]
    groups = [{"params": networks}, {"params": prior, "lr": args.prior_lr or args.lr}]
    optimizer = torch.optim.Adam([group for group in groups if group["params"]], lr=args.lr)
    for epoch in range(1, args.mixture_epochs + 1):
        train_epoch(model, optimizer, train_images, args.batch_size, augmentation)
        accuracy = test_accuracy(model, test_images, test_labels)
        print(f"mixture epoch {epoch}: test accuracy {accuracy:.4f}", flush=True)
    print(f"\ncommand: python benchmarks/gmm_phases.py {shlex.join(sys.argv[1:])}")
    print(f"hardware: {hardware()}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
