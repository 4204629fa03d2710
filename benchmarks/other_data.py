"""The GMM-VAE with its defaults on data other than MNIST: scikit-learn's handwritten digits.

    python benchmarks/other_data.py --seeds 0 1 2 3 4
    python benchmarks/other_data.py --seeds 0 --epochs 40 -- --model.warmup_epochs 30

What a user gets who points :class:`~vae_zoo.models.GMMVAE` at their own data with the model's
defaults and the right number of clusters: scikit-learn's 1,797 8x8 images of the digits 0-9
(UCI's optical recognition set, bundled with scikit-learn, no download; grey levels 0-16 scaled
to [0, 1]) are written to ``--out``/digits.npz and trained on through ``vae-zoo``'s
``ArrayDataModule`` with ``--model.num_components 10`` and nothing else set but the epochs
(``--epochs``, 35 as in ``configs/gmm_mnist.yaml``: the default 30 warm-up epochs and 5 more).
Clustering is scored as the clustering papers do, on every image the model was fitted to (the
data module's test file is the training file). Prints each seed's test accuracy (Hungarian), NMI
and ARI, their mean and standard deviation, and the command. Arguments after ``--`` go to
``vae-zoo`` unchanged.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
from quality import print_seed, print_summary, run_seed
from sklearn.datasets import load_digits

SHOWN = ("test/acc", "test/nmi", "test/ari")


def write_digits(path: Path) -> None:
    """scikit-learn's digits as ``inputs`` [1797, 1, 8, 8] float32 in [0, 1] and ``labels`` [1797]."""
    digits = load_digits()
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = (digits.images / 16.0).astype(np.float32)[:, None]
    np.savez(path, inputs=inputs, labels=digits.target.astype(np.int64))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--epochs", type=int, default=35, help="trainer.max_epochs (default: 35, the MNIST config's 30 + 5)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/other_data"))
    parser.add_argument("extra", nargs="*", help="arguments for vae-zoo, after --")
    options = parser.parse_args()
    data = options.out / "digits.npz"
    write_digits(data)
    setup = ["--model", "vae_zoo.models.GMMVAE", "--model.num_components", "10"]
    setup += [
        "--data",
        "vae_zoo.data.ArrayDataModule",
        "--data.path",
        str(data),
        "--data.test_path",
        str(data),
    ]
    setup += ["--data.inputs_key", "inputs", "--data.labels_key", "labels"]
    per_seed = []
    for seed in options.seeds:
        metrics, seconds = run_seed(setup, seed, options.epochs, options.out / "runs", options.extra)
        per_seed.append(metrics)
        print_seed(seed, metrics, seconds, SHOWN)
    print_summary(
        f"python benchmarks/other_data.py {shlex.join(sys.argv[1:])}", per_seed, options.seeds, SHOWN
    )


if __name__ == "__main__":
    main()
