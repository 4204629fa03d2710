"""IWAE evaluation against the arithmetic it needs: seconds per test image, the decoder's
multiply-adds times k, and the rate reached against a plain matrix product on the same device.

    python benchmarks/iwae_cost.py                       # the VAE config's network, k = 100
    python benchmarks/iwae_cost.py --num-samples 5000 --images 100 --device cuda

The model is ``configs/vae_mnist.yaml``'s network (784-512-256-16, Bernoulli), untrained: the
cost does not depend on the weights. ``-log p(x)`` of ``--images`` test images is estimated by
``vae_zoo.metrics.IWAENegativeLogLikelihood`` (k = ``--num-samples``, ``--chunk-size`` draws
decoded at a time) and timed. The arithmetic per image is ``2 * k * M_dec`` floating-point
operations for the decoder's ``M_dec`` multiply-adds (the encoder runs once per image and
the likelihood and ``logsumexp`` are elementwise, left out); the reference rate is that of the
decoder's largest layer as one matrix product of the size of one decoded chunk
([chunk * batch, 512] x [512, 784], batches of 100 images).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch
from common import hardware, synchronize

from vae_zoo.data import MNISTDataModule
from vae_zoo.metrics import IWAENegativeLogLikelihood
from vae_zoo.models import VAE


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    data = MNISTDataModule(binarization="none", download=False, test_split="test")
    data.setup()
    images = data.splits["test"][0][: args.images].bernoulli().to(device)
    model = VAE(latent_dim=16, hidden_dims=[512, 256]).to(device).eval()
    decoder_macs = sum(
        m.in_features * m.out_features for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)
    )
    metric = IWAENegativeLogLikelihood(args.num_samples, args.chunk_size).to(device)
    metric.update(model, images[:10])  # warm-up
    metric.reset()
    synchronize(device)
    start = time.perf_counter()
    for batch in images.split(100):
        metric.update(model, batch)
    synchronize(device)
    seconds = time.perf_counter() - start
    per_image = seconds / images.shape[0]
    flops = 2 * args.num_samples * decoder_macs  # per image
    rows = min(args.chunk_size, args.num_samples) * min(100, images.shape[0])  # one decoded chunk
    a = torch.randn(rows, 512, device=device)
    b = torch.randn(512, 784, device=device)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    synchronize(device)
    gemm_rate = 10 * 2 * a.shape[0] * 512 * 784 / (time.perf_counter() - start)
    rate = flops / per_image
    print(
        f"IWAE k={args.num_samples}: {per_image * 1000:.2f} ms per test image ({images.shape[0]} images, "
        f"-log p(x) {float(metric.compute()):.2f} for the untrained model)"
    )
    print(
        f"decoder multiply-adds {decoder_macs:,}; arithmetic per image {flops / 1e9:.3f} GFLOP; "
        f"rate {rate / 1e9:.1f} GFLOP/s"
    )
    print(
        f"reference matrix product [{a.shape[0]}, 512] x [512, 784]: {gemm_rate / 1e9:.1f} GFLOP/s; "
        f"IWAE reaches {rate / gemm_rate:.2f} of it"
    )
    print(f"\ncommand: python benchmarks/iwae_cost.py {shlex.join(sys.argv[1:])}")
    print(f"hardware: {hardware()}")


if __name__ == "__main__":
    main()
