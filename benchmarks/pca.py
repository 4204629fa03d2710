"""PCA as a linear autoencoder on MNIST: exact fit at several k, and the gradient-trained model.

    python benchmarks/pca.py                      # exact PCA at k = 2, 8, 16, 32, 64
    python benchmarks/pca.py --train-config configs/pca_mnist.yaml --seed 0

Exact PCA is fitted on the training split (55k images; ANCHORS.md fits on all 60k) and
evaluated on the validation and test splits: squared error per example and explained variance.
With ``--train-config``, the model of that config is trained by gradient descent through the
``vae-zoo`` command and compared with the exact fit at its k: validation squared error (and the
ratio to the optimum) and the principal angles between its decoder's column space and the PCA
subspace. Prints the figures and the command.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch
from common import hardware

from vae_zoo.cli import VaeZooCLI, cli_classes
from vae_zoo.data import MNISTDataModule
from vae_zoo.models import LinearAutoencoder, principal_angles


def squared_error(model: LinearAutoencoder, x: torch.Tensor) -> float:
    """Mean over examples of ``||x - x_hat||^2``."""
    return float(((model.reconstruct(x) - x) ** 2).flatten(1).sum(1).mean())


def exact(k: int, splits: dict) -> tuple[LinearAutoencoder, float]:
    model = LinearAutoencoder(latent_dim=k).double()
    ratio = float(model.fit_pca(splits["train"][0].double()))
    return model, ratio


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 8, 16, 32, 64])
    parser.add_argument("--train-config", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/pca"))
    options = parser.parse_args()
    data = MNISTDataModule(binarization="none", download=False)
    data.setup()
    splits = {name: (x.double(), y) for name, (x, y) in data.splits.items()}
    print(f"command: python benchmarks/pca.py {shlex.join(sys.argv[1:])}\nhardware: {hardware()}")
    for k in options.ks:
        model, ratio = exact(k, splits)
        print(
            f"exact PCA k={k}: val sq_error {squared_error(model, splits['val'][0]):.3f}  "
            f"test sq_error {squared_error(model, splits['test'][0]):.3f}  explained variance {ratio:.4f}"
        )
    if options.train_config is None:
        return
    args = ["--config", options.train_config, "--seed_everything", str(options.seed)]
    args += [
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir",
        str(options.out),
    ]
    args += ["--trainer.enable_progress_bar", "false"]
    cli = VaeZooCLI(*cli_classes(), args=args, run=False)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - start
    trained = cli.model.double().eval()
    reference, _ = exact(trained.latent_dim, splits)
    val_trained = squared_error(trained, splits["val"][0])
    val_exact = squared_error(reference, splits["val"][0])
    angles = principal_angles(trained.decoder_weight, reference.decoder_weight)
    print(
        f"gradient-trained k={trained.latent_dim} ({options.train_config}, seed {options.seed}, "
        f"{cli.trainer.current_epoch} epochs, {seconds:.0f} s): val sq_error {val_trained:.3f} vs exact "
        f"{val_exact:.3f} (ratio {val_trained / val_exact:.4f}); test sq_error "
        f"{squared_error(trained, splits['test'][0]):.3f}; principal angles to the PCA subspace: "
        f"largest {float(angles.max()):.4f} rad ({float(angles.max()) * 57.2958:.2f} deg), "
        f"median {float(angles.median()):.4f} rad"
    )


if __name__ == "__main__":
    main()
