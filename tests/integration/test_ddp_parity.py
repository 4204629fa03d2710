"""DDP parity on CPU (gloo, 2 processes): every model trains under DDP, deterministic training
matches one process, evaluation of one checkpoint matches one process on an uneven split, and
the mixture priors are initialised once and shared.

The test process trains the references on one process, then starts this file twice as a worker
(``LOCAL_RANK`` 0 and 1 with ``MASTER_ADDR``/``MASTER_PORT``, as ``torchrun`` would), so that one
pair of processes runs every DDP job of every model in a row; the workers write what they saw
to files that the tests compare.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from tests.conftest import write_idx
from vae_zoo.callbacks import NonFiniteLossError, NonFiniteLossGuard
from vae_zoo.data import MNISTDataModule
from vae_zoo.models import (
    ALL_MODELS,
    GMMVAE,
    GMVAE,
    VAE,
    WAE,
    Autoencoder,
    BetaVAE,
    HierarchicalGMMVAE,
    LatentVariableModel,
    LinearAutoencoder,
    VampVAE,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INPUT = {"latent_dim": 3, "hidden_dims": [32]}
# the EM start with one learned Gaussian per cluster and the Monte Carlo KL: every prior parameter
# trains, so that its gradients are compared across processes too
MIXTURE = {
    "num_components": 4,
    "components_per_cluster": 1,
    "prior_init": "em",
    "learn_prior": True,
    "kl_estimator": "monte_carlo",
    "em_restarts": 1,
    "em_iterations": 30,
}
MODELS: dict[str, Callable[[], LatentVariableModel]] = {
    "LinearAutoencoder": lambda: LinearAutoencoder(latent_dim=3),
    "Autoencoder": lambda: Autoencoder(**INPUT),
    "VAE": lambda: VAE(**INPUT),
    "BetaVAE": lambda: BetaVAE(**INPUT, beta=2.0),
    # one warm-up epoch: the EM fit (and the tree) happen inside the DDP run, at epoch 1
    "GMMVAE": lambda: GMMVAE(**INPUT, **MIXTURE, warmup_epochs=1),
    "HierarchicalGMMVAE": lambda: HierarchicalGMMVAE(**INPUT, **MIXTURE, warmup_epochs=1),
    "VampVAE": lambda: VampVAE(**INPUT, num_pseudo_inputs=5),
    "WAE": lambda: WAE(**INPUT),
    "GMVAE": lambda: GMVAE(**INPUT, num_components=4, warmup_epochs=0),
}
DETERMINISTIC_TRAINING = ("LinearAutoencoder", "Autoencoder")
TRAIN_BATCH = 50  # one process; each of the two DDP processes takes half
EPOCHS = 2
VAL_SIZE = 101  # evaluation split: 51 + 50 examples over two processes
EVAL_BATCH = 20
STOCHASTIC = ("loss", "elbo", "recon", "kl", "tree")  # drawn with the noise of rsample
# estimated once per batch (the MMD of a batch's codes to as many prior draws; the GMVAE's
# information term, against the batch's mean of q(c|x)), and the losses that include them
BATCH_LEVEL = ("mmd", "prior_mmd", "info")


def make_clustered_mnist_folder(root: Path, n_train: int = 300, n_test: int = 10) -> Path:
    """MNIST-format files whose label k lights a 7x7 block at the k-th place of a 4 x 3 grid,
    on noise: data with clusters, so that clustering metrics are not all trivial."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 80, (n, 28, 28))
        for i, label in enumerate(labels):
            row, column = 7 * (label // 4), 7 * (label % 4)
            images[i, row : row + 7, column : column + 7] = rng.integers(200, 256, (7, 7))
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def training_data(data_dir: Path, processes: int) -> MNISTDataModule:
    # 300 images - 100 for validation: 4 steps of 50 (one process) or of 2 x 25 (two processes),
    # which by the interleaved shards of EpochSampler are the same 50 examples in each step
    return MNISTDataModule(
        data_dir=str(data_dir),
        download=False,
        val_size=100,
        batch_size=TRAIN_BATCH // processes,
        binarization="none",
        on_device=False,
    )


def evaluation_data(data_dir: Path) -> MNISTDataModule:
    return MNISTDataModule(
        data_dir=str(data_dir),
        download=False,
        val_size=VAL_SIZE,
        batch_size=TRAIN_BATCH,
        eval_batch_size=EVAL_BATCH,
        binarization="none",
        on_device=False,
    )


def trainer(processes: int, **kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=processes,
        strategy="ddp" if processes > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


def floats(metrics: dict) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()}


# ----------------------------------------------------------------------------- the two workers
PRIOR_RECORDS: list[dict[str, list]] = []


def record_prior_initialisation(model_class: type) -> None:
    """Make ``model_class.on_prior_initialized`` also record the prior it has just set."""
    original = model_class.on_prior_initialized

    def recording(self, codes: torch.Tensor) -> None:
        original(self, codes)
        prior = self.prior
        record = {name: getattr(prior, name).tolist() for name in ("means", "raw_log_variances", "logits")}
        record["codes"] = list(codes.shape)
        if isinstance(self, HierarchicalGMMVAE):
            record["merges"] = prior.merges.tolist()
        PRIOR_RECORDS.append(record)

    model_class.on_prior_initialized = recording


class ExplodesOnRankOne(VAE):
    """A VAE whose KL is infinite in three examples of the last step of epoch 0, on rank 1 only."""

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = super().loss_terms(x)
        if self.training and self.global_rank == 1 and self.global_step == 3:
            terms["kl"] = terms["kl"].clone()
            terms["kl"][:3] = math.inf
        return terms


def worker(out: Path, data_dir: Path) -> None:
    rank = int(os.environ["LOCAL_RANK"])
    record_prior_initialisation(GMMVAE)
    record_prior_initialisation(HierarchicalGMMVAE)
    report: dict[str, dict] = {}
    for name, make_model in MODELS.items():
        model_class = type(make_model())
        # the single-process checkpoint, validated by two processes on the uneven split
        model = model_class.load_from_checkpoint(out / f"{name}.ckpt")
        validated = trainer(2).validate(model, datamodule=evaluation_data(data_dir), verbose=False)[0]
        # training under DDP, from the same seed as the single-process reference
        PRIOR_RECORDS.clear()
        L.seed_everything(0, verbose=False)
        model = make_model()
        run = trainer(2, max_epochs=EPOCHS)
        run.fit(model, datamodule=training_data(data_dir, processes=2))
        torch.save(model.state_dict(), out / f"{name}.ddp.rank{rank}.pt")
        report[name] = {
            "validate": floats(validated),
            "steps": run.global_step,
            "fit_metrics": floats(run.callback_metrics),
            "prior_initialisations": list(PRIOR_RECORDS),
        }
    # last, as it ends a run with an exception: the guard stops both processes together
    L.seed_everything(0, verbose=False)
    guarded = trainer(2, max_epochs=2, callbacks=[NonFiniteLossGuard()])
    try:
        guarded.fit(ExplodesOnRankOne(**INPUT), datamodule=training_data(data_dir, processes=2))
        report["guard"] = {"error": None}
    except NonFiniteLossError as error:
        report["guard"] = {"error": str(error), "step": guarded.global_step}
    (out / f"report.rank{rank}.json").write_text(json.dumps(report))


# ----------------------------------------------------------------------------- the tests
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Single-process references and checkpoints, then the two-process jobs of every model."""
    root = tmp_path_factory.mktemp("ddp_parity")
    data_dir = make_clustered_mnist_folder(root / "data")
    out = root / "out"
    out.mkdir()
    single: dict[str, dict] = {}
    for name, make_model in MODELS.items():
        # a briefly trained checkpoint for the evaluation comparison (mixtures: past the EM fit)
        L.seed_everything(1, verbose=False)
        model = make_model()
        if isinstance(model, GMMVAE):
            model.warmup_epochs = 2  # 8 autoencoder steps give codes that EM can cluster
        fit = trainer(1, max_epochs=3, limit_val_batches=0)
        fit.fit(model, datamodule=evaluation_data(data_dir))
        fit.save_checkpoint(out / f"{name}.ckpt")
        # the single-process reference of the DDP training
        L.seed_everything(0, verbose=False)
        reference = make_model()
        run = trainer(1, max_epochs=EPOCHS)
        run.fit(reference, datamodule=training_data(data_dir, processes=1))
        single[name] = {"model": reference, "steps": run.global_step}
    port = free_port()
    workers = []
    for rank in range(2):
        env = {
            **os.environ,
            "LOCAL_RANK": str(rank),
            "NODE_RANK": "0",
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1",
        }
        command = [sys.executable, __file__, "worker", str(out), str(data_dir)]
        log = open(out / f"worker{rank}.log", "w")  # noqa: SIM115  (closed below)
        workers.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    for process, log in workers:
        try:
            process.wait(timeout=240)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
    logs = "\n".join((out / f"worker{rank}.log").read_text()[-3000:] for rank in range(2))
    assert all(process.returncode == 0 for process, _ in workers), logs
    reports = [json.loads((out / f"report.rank{rank}.json").read_text()) for rank in range(2)]
    return {"root": root, "data_dir": data_dir, "out": out, "single": single, "reports": reports}


def test_the_parity_tests_cover_every_model() -> None:
    assert {type(make_model()) for make_model in MODELS.values()} == set(ALL_MODELS)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_trains_under_ddp_with_identical_weights_on_both_processes(name: str, runs: dict) -> None:
    out, reports = runs["out"], runs["reports"]
    assert reports[0][name]["steps"] == reports[1][name]["steps"] == runs["single"][name]["steps"]
    assert runs["single"][name]["steps"] == EPOCHS * 4
    assert all(math.isfinite(value) for value in reports[0][name]["fit_metrics"].values())
    states = [torch.load(out / f"{name}.ddp.rank{rank}.pt", weights_only=True) for rank in range(2)]
    for key, tensor in states[0].items():  # DDP keeps the processes in step exactly
        assert torch.equal(tensor, states[1][key]), key


@pytest.mark.parametrize("name", DETERMINISTIC_TRAINING)
def test_deterministic_training_under_ddp_matches_one_process(name: str, runs: dict) -> None:
    ddp = torch.load(runs["out"] / f"{name}.ddp.rank0.pt", weights_only=True)
    single = runs["single"][name]["model"].state_dict()
    assert ddp.keys() == single.keys()
    for key, tensor in single.items():
        # the same examples in every step, gradients averaged by DDP: equal up to the order of
        # float32 sums over 8 Adam steps
        torch.testing.assert_close(ddp[key], tensor, rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize("name", ["GMMVAE", "HierarchicalGMMVAE"])
def test_the_mixture_prior_is_initialised_once_and_shared_by_both_processes(name: str, runs: dict) -> None:
    records = [report[name]["prior_initialisations"] for report in runs["reports"]]
    assert len(records[0]) == len(records[1]) == 1  # once per process, at the end of the warm-up
    assert records[0][0] == records[1][0]  # the same means, variances, weights (and tree) on both
    assert records[0][0]["codes"] == [200, 3]  # fitted to the codes of both shards, gathered
    if name == "HierarchicalGMMVAE":
        assert len(records[0][0]["merges"]) == MIXTURE["num_components"] - 1


def test_a_non_finite_loss_on_one_process_stops_both_with_a_message_each(runs: dict) -> None:
    rank0, rank1 = (report["guard"] for report in runs["reports"])
    # checked when validation starts (every log_every_n_steps steps under DDP), before any save
    assert rank0["step"] == rank1["step"] == 4
    assert rank1["error"].startswith(
        "the training loss became inf at global step 3 (epoch 0, batch 3): "
        "non-finite loss terms: kl (inf in 3 of 25 examples)"
    )
    assert rank0["error"].startswith(
        "the training loss became non-finite in another process, between global steps 0 and 3 (epoch 0)"
    )


def per_example(model: LatentVariableModel, x: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """The stochastic values of one validation pass, per example, with the noise of ``seed``."""
    torch.manual_seed(seed)
    with torch.no_grad():
        terms = model.loss_terms(x)
    weights = model.loss_weights()
    values = dict(terms)
    values["loss"] = sum(weights[key] * term for key, term in terms.items() if key in weights)
    if "kl" in terms:
        values["elbo"] = -(terms["recon"] + terms["kl"])
    return values


@pytest.mark.parametrize("name", list(MODELS))
def test_one_checkpoint_validated_by_one_and_by_two_processes_gives_the_same_metrics(
    name: str, runs: dict
) -> None:
    model_class = type(MODELS[name]())
    model = model_class.load_from_checkpoint(runs["out"] / f"{name}.ckpt")
    data = evaluation_data(runs["data_dir"])
    single = floats(trainer(1).validate(model, datamodule=data, verbose=False)[0])
    double = runs["reports"][0][name]["validate"]
    assert single.keys() == double.keys() == runs["reports"][1][name]["validate"].keys()
    assert {"val/loss", "val/sq_error"} <= single.keys()
    if isinstance(model, GMMVAE):
        assert {"val/acc", "val/nmi", "val/ari"} <= single.keys()
        assert single["val/nmi"] > 0.1  # clusters found: the comparison below is not of zeros
    # the noise of rsample differs between the runs (each process draws its own): the two ELBO
    # estimates may differ by the Monte Carlo error of a mean over 101 examples; its standard
    # deviation is std(d) / sqrt(101) for d the per-example difference between two noise draws,
    # measured here; we allow 5 of them (and exact equality for values without noise)
    data.setup("validate")
    x = torch.cat([batch[0] for batch in data.val_dataloader()])
    assert x.shape[0] == VAL_SIZE
    model.eval()
    first, second = per_example(model, x, seed=1), per_example(model, x, seed=2)
    for key, value in single.items():
        short = key.removeprefix("val/")
        if short in BATCH_LEVEL or (short == "loss" and any(term in first for term in BATCH_LEVEL)):
            # one estimate per batch: one and two processes see other batches, so other estimates
            assert math.isfinite(value) and math.isfinite(double[key]), key
            continue
        noisy = short in STOCHASTIC and name not in DETERMINISTIC_TRAINING
        if noisy and not (short == "kl" and type(model) in (VAE, BetaVAE)):  # their KL is analytic
            spread = float((first[short] - second[short]).std()) / math.sqrt(VAL_SIZE)
            assert abs(double[key] - value) <= 5 * spread + 1e-4, (key, value, double[key], spread)
        else:
            assert double[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    try:
        worker(Path(sys.argv[2]), Path(sys.argv[3]))
    finally:
        # Lightning leaves the gloo process group open; torn down by the interpreter's exit
        # instead, its threads once aborted a worker ("terminate called without an active exception")
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
