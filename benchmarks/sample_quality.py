"""Sample quality of trained models: the Fréchet distance between 10,000 samples and the MNIST
test split in the feature space of a LeNet trained here on the training split (no downloads).

    python benchmarks/sample_quality.py --checkpoint runs/vae/checkpoints/best.ckpt [--checkpoint ...]
    python benchmarks/sample_quality.py                  # the classifier and the reference figures only

The LeNet (:class:`~vae_zoo.metrics.LeNetFeatures`) trains for ``--epochs`` on the 55k training
images (Adam 1e-3, batch 128, seed 0) and is cached at ``--classifier``; its test accuracy is
printed, as a check that its features mean something. Then, as references: the distance from
10,000 training images to the test split (what a perfect sampler scores, up to the sample's
noise) and from 10,000 uniform-noise images. Then, for each checkpoint (of any model of the zoo;
its class is read from the checkpoint), ``--num-samples`` draws of ``model.sample`` against the
test split. Lower is better; compare only figures made with the same classifier file.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch
from common import hardware, load_model

from vae_zoo.data import MNISTDataModule
from vae_zoo.metrics import LeNetFeatures, frechet_distance


def train_classifier(images: torch.Tensor, labels: torch.Tensor, epochs: int) -> LeNetFeatures:
    """LeNet on ``images`` [N, 1, 28, 28] with ``labels`` [N]: cross-entropy, Adam 1e-3, batch 128."""
    torch.manual_seed(0)
    network = LeNetFeatures()
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(images.shape[0])
        for start in range(0, images.shape[0], 128):
            index = order[start : start + 128]
            loss = torch.nn.functional.cross_entropy(network.logits(images[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return network.eval()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, action="append", default=[])
    parser.add_argument("--classifier", type=Path, default=Path("runs/sample_quality/lenet.pt"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = MNISTDataModule(binarization="none", download=False, val_size=5000, test_split="test")
    data.setup()
    train_images, train_labels = data.splits["train"]
    test_images, test_labels = data.splits["test"]
    start = time.perf_counter()
    network = LeNetFeatures()
    if args.classifier.exists():
        network.load_state_dict(torch.load(args.classifier, weights_only=True))
        network.eval()
        print(f"classifier: {args.classifier} (cached)")
    else:
        network = train_classifier(train_images, train_labels, args.epochs)
        args.classifier.parent.mkdir(parents=True, exist_ok=True)
        torch.save(network.state_dict(), args.classifier)
        print(f"classifier: trained for {args.epochs} epochs, saved to {args.classifier}")
    with torch.no_grad():
        predicted = torch.cat([network.logits(batch).argmax(-1) for batch in test_images.split(1000)])
    print(f"classifier test accuracy: {(predicted == test_labels).float().mean():.4f}", flush=True)
    n = args.num_samples
    torch.manual_seed(args.seed)
    references = {
        f"{n} training images": train_images[torch.randperm(train_images.shape[0])[:n]],
        f"{n} uniform-noise images": torch.rand(n, 1, 28, 28),
    }
    for name, images in references.items():
        print(f"FID, {name} vs test split: {frechet_distance(network, test_images, images):.3f}", flush=True)
    for path in args.checkpoint:
        model = load_model(path)
        torch.manual_seed(args.seed)
        distance = frechet_distance(network, test_images, model.sample, num_fake=n)
        print(
            f"FID, {n} samples of {type(model).__name__} ({path}) vs test split: {distance:.3f}", flush=True
        )
    print(f"\ncommand: python benchmarks/sample_quality.py {shlex.join(sys.argv[1:])}")
    print(f"hardware: {hardware()}; seed {args.seed}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
