"""The LightningModule every model of the zoo derives from.

Every model is the same latent-variable model with different choices of encoder, posterior,
prior, likelihood and regularizer weight::

    loss = mean_over_batch( sum_k loss_weights()[k] * loss_terms(x)[k] )

Subclasses override only the named pieces they change: :meth:`build_encoder`,
:meth:`build_decoder`, :meth:`build_prior`, :meth:`encode`, :meth:`decode`,
:meth:`loss_terms`, :meth:`loss_weights` (and :meth:`objective` where the terms are combined
in another way than a weighted sum), and :meth:`update_evaluation_metrics` to score more.

A subclass declares only its own arguments and passes the others on by keyword::

    class MyVAE(VAE):
        def __init__(self, my_setting: float = 1.0, **kwargs: Any) -> None:
            check_number("my_setting", my_setting, minimum=0)
            self.my_setting = my_setting  # read by build_prior, which the base __init__ calls
            super().__init__(**kwargs)

``save_hyperparameters`` (in the base ``__init__``) records the arguments of every class of
the chain, and ``vae-zoo fit --help`` lists them all (jsonargparse follows ``**kwargs`` into
the parent). The ``build_*`` methods run inside the base ``__init__``: they read attributes
that the subclass set before calling ``super().__init__``, never ``hparams`` (under
LightningCLI ``hparams`` holds only the arguments of the class instantiated).
"""

from __future__ import annotations

import inspect
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric

from vae_zoo.compat import HOOK_NAME_ATTRIBUTE
from vae_zoo.likelihoods import LIKELIHOODS, BernoulliLikelihood, Likelihood, LikelihoodName, build_likelihood
from vae_zoo.metrics import ELBO, BinaryCrossEntropy, ExampleMean, PriorMMD, SquaredError
from vae_zoo.nn import Architecture, build_decoder, build_encoder, check_architecture
from vae_zoo.priors import Prior
from vae_zoo.validation import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_parameter_budget,
    check_sizes,
    network_parameters,
)

Batch = torch.Tensor | Sequence[torch.Tensor]
LossAndTerms = tuple[torch.Tensor, dict[str, torch.Tensor]]  # the loss [] and the terms, each [B]


def batch_inputs(batch: Batch) -> torch.Tensor:
    """The inputs ``x`` of a batch that is either ``x`` or ``(x, labels, ...)``."""
    return batch if isinstance(batch, torch.Tensor) else batch[0]


@dataclass(frozen=True)
class EvaluatedBatch:
    """A validation or test batch as the model evaluated it."""

    x: torch.Tensor  # [B, *shape], the inputs
    labels: torch.Tensor | None  # [B], or None when the data have none
    loss: torch.Tensor  # [], the batch's loss
    terms: dict[str, torch.Tensor]  # each [B], the unweighted terms of loss_terms


def model_arguments(model_class: type) -> dict[str, inspect.Parameter]:
    """Every argument of ``model_class``'s ``__init__``, those it passes on to its parents by
    ``**kwargs`` included (a subclass's own declaration, with its default, wins)."""
    arguments: dict[str, inspect.Parameter] = {}
    for cls in model_class.__mro__:
        if "__init__" not in vars(cls):
            continue
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # less self
        for parameter in parameters:
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                arguments.setdefault(parameter.name, parameter)
        if not any(p.kind == p.VAR_KEYWORD for p in parameters) or cls is LatentVariableModel:
            break
    return arguments


def batch_labels(batch: Batch) -> torch.Tensor | None:
    """The labels of a batch ``(x, labels, ...)``; ``None`` for a batch ``x`` or ``(x,)``."""
    return None if isinstance(batch, torch.Tensor) or len(batch) < 2 else batch[1]


def reconstruction_only(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss of an autoencoder warm-up: ``mean_B recon``, the other terms (each [B]) added with
    weight 0 so that every parameter they reach stays in the graph, as DDP requires."""
    return terms["recon"].mean() + sum(0.0 * term.mean() for name, term in terms.items() if name != "recon")


def weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """``sum_k weights[k] * terms[k]`` over the terms given, per example: each [B] -> [B].

    A weight of 1 multiplies nothing: in a training step every operation on these small tensors
    costs as much in the backward pass as in the forward one.
    """
    total: torch.Tensor | None = None
    for name, term in terms.items():
        weighted = term if weights[name] == 1 else weights[name] * term
        total = weighted if total is None else total + weighted
    if total is None:
        raise ValueError("the objective needs at least one loss term; loss_terms returned none")
    return total


FUSED_ADAM_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
FUSED_ADAM_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def fused_adam_supported(parameters: Iterable[torch.Tensor]) -> bool:
    """Whether ``torch.optim.Adam(parameters, fused=True)`` can step them: every parameter of a
    dtype in :data:`FUSED_ADAM_DTYPES` on a device type in :data:`FUSED_ADAM_DEVICE_TYPES`.

    The fused kernel updates each parameter in one pass over its elements, where the default
    implementation makes one pass per operation of the Adam update; the updates are the same up to
    rounding; what that is worth on a CPU is in ``benchmarks/RESULTS.md`` (throughput breakdown).
    """
    parameters = list(parameters)
    return bool(parameters) and all(
        p.dtype in FUSED_ADAM_DTYPES and p.device.type in FUSED_ADAM_DEVICE_TYPES for p in parameters
    )


class LatentVariableModel(L.LightningModule, ABC):
    """Shared training, validation, test and prediction logic of every autoencoder in the zoo.

    Args:
        input_shape: shape of one example, e.g. ``[1, 28, 28]``; linked from the data module
            by the ``vae-zoo`` command.
        latent_dim: size ``D`` of the code ``z``.
        architecture: ``"mlp"`` or ``"conv"`` (see :mod:`vae_zoo.nn`).
        hidden_dims: widths (mlp) or channel counts (conv) of the encoder; the decoder mirrors them.
        likelihood: ``"bernoulli"`` (logits) or ``"gaussian"`` (means, variance ``c``).
        likelihood_variance: the variance ``c`` of the Gaussian likelihood (its initial value
            when learned).
        learn_likelihood_variance: learn ``c`` as a parameter instead of fixing it.
        lr: Adam's learning rate, used unless ``--optimizer`` is given on the command line.
    """

    #: the validation figures shown in the progress bar (names under ``val/``), next to the
    #: training loss; the ELBO for models that have one (see Lightning's ``prog_bar``)
    progress_bar_metrics: tuple[str, ...] = ("loss",)

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        architecture: Architecture = "mlp",
        hidden_dims: Sequence[int] = (512, 256),
        likelihood: LikelihoodName = "bernoulli",
        likelihood_variance: float = 1.0,
        learn_likelihood_variance: bool = False,
        lr: float = 1e-3,
    ) -> None:
        super().__init__()
        check_sizes("input_shape", input_shape, allow_empty=False, note=" (non-empty)")
        check_int("latent_dim", latent_dim, minimum=1)
        check_architecture(architecture)
        check_sizes("hidden_dims", hidden_dims, architecture != "conv", note=" (non-empty for conv)")
        check_choice("likelihood", likelihood, LIKELIHOODS)
        check_number("likelihood_variance", likelihood_variance, minimum=0, strict=True)
        check_bool("learn_likelihood_variance", learn_likelihood_variance)
        check_number("lr", lr, minimum=0, strict=True)
        self.save_hyperparameters()
        # shared code reads these attributes, not ``hparams``: under LightningCLI ``hparams`` holds
        # only the arguments of the class instantiated, and a subclass may fix some of these
        self.input_shape = tuple(int(s) for s in input_shape)
        self.latent_dim = latent_dim
        self.architecture = architecture
        self.hidden_dims = tuple(int(h) for h in hidden_dims)
        self.lr = lr
        sizes = (self.architecture, self.input_shape, self.hidden_dims, latent_dim, self.encoder_out_features)
        check_parameter_budget(
            network_parameters(*sizes),
            {"latent_dim": latent_dim, "hidden_dims": list(hidden_dims), "input_shape": list(input_shape)},
        )
        self.likelihood: Likelihood = build_likelihood(
            likelihood, likelihood_variance, learn_likelihood_variance
        )
        self.encoder = self.build_encoder()
        self.decoder = self.build_decoder()
        self.prior: Prior | None = self.build_prior()

    # ----------------------------------------------------------------- extension points
    @property
    def encoder_out_features(self) -> int:
        """Width of the encoder's output: ``D`` for point codes, ``2 D`` for Gaussian posteriors."""
        return self.latent_dim

    def build_encoder(self) -> nn.Module:
        """The network ``[B, *input_shape] -> [B, encoder_out_features]``."""
        return build_encoder(self.architecture, self.input_shape, self.hidden_dims, self.encoder_out_features)

    def build_decoder(self) -> nn.Module:
        """The network ``[B, D] -> [B, *input_shape]`` giving the likelihood's parameters."""
        return build_decoder(self.architecture, self.latent_dim, self.hidden_dims, self.input_shape)

    def build_prior(self) -> Prior | None:
        """The prior ``p(z)``; ``None`` for models without one."""
        return None

    @abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic code of each input (the posterior mean): [B, *shape] -> [B, D]."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``E[x | z]`` under the likelihood: [B, D] -> [B, *input_shape]."""
        return self.likelihood.mean(self.decoder(z))

    @abstractmethod
    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted per-example loss terms, each [B]; ``"recon"`` is ``-log p(x|z)``."""

    def loss_weights(self) -> dict[str, float]:
        """The weight of each term of :meth:`loss_terms` in the loss."""
        return {"recon": 1.0}

    def objective(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The scalar loss: ``mean_B sum_k w_k * term_k`` over the terms given."""
        return weighted_sum(terms, self.loss_weights()).mean()

    # ----------------------------------------------------------------- public API
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``E[x | z = encode(x)]``: [B, *shape] -> [B, *shape]."""
        return self.decode(self.encode(x))

    @abstractmethod
    def sample(self, n: int) -> torch.Tensor:
        """``n`` new examples ``E[x | z]``, ``z ~ p(z)``: [n, *input_shape]."""

    def __setattr__(self, name: str, value: object) -> None:
        """``nn.Module.__setattr__``, except for ``_current_fx_name``, which is stored directly.

        Lightning sets ``_current_fx_name`` (a hook's name, or None) on the module before and
        after every hook it calls, dozens of times per training step; ``nn.Module.__setattr__``
        first checks the value against parameters, buffers and submodules, several times the cost
        of a plain attribute (``benchmarks/RESULTS.md``), for a value that is never one of them.
        """
        if name == HOOK_NAME_ATTRIBUTE:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ----------------------------------------------------------------- Lightning hooks
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The code of each input, as :meth:`encode`."""
        return self.encode(x)

    def stage_metrics(
        self, loss: torch.Tensor, terms: dict[str, torch.Tensor], stage: str
    ) -> dict[str, torch.Tensor]:
        """The values to log under ``stage/`` in training: the loss, the batch mean of every term
        and, for a model whose terms are a bound's (``recon`` and ``kl``), ``elbo = -(recon + kl)``.

        Validation and test log the same names from Metrics (see
        :meth:`update_evaluation_metrics`); a value that a subclass adds here and no Metric
        provides is logged there as a batch mean, reduced across processes by Lightning.
        """
        metrics = {f"{stage}/loss": loss, **{f"{stage}/{name}": term.mean() for name, term in terms.items()}}
        if "kl" in terms:
            metrics[f"{stage}/elbo"] = -(metrics[f"{stage}/recon"] + metrics[f"{stage}/kl"])
        return metrics

    #: a compiled :meth:`loss_and_terms` that training steps call instead (set by
    #: :class:`~vae_zoo.callbacks.CompiledStep` for the duration of ``fit``); None: eager
    compiled_loss_and_terms: Callable[[torch.Tensor], LossAndTerms] | None = None

    def loss_and_terms(self, x: torch.Tensor) -> LossAndTerms:
        """The pure tensor work of a training step: ``(objective(terms), terms)`` with
        ``terms = loss_terms(x)``; [B, *shape] -> ([], {name: [B]})."""
        terms = self.loss_terms(x)
        return self.objective(terms), terms

    def training_step(
        self, batch: Batch, batch_idx: int
    ) -> dict[str, torch.Tensor | dict[str, torch.Tensor]]:
        """``{"loss": loss, "terms": terms}``: Lightning optimizes ``loss``, and callbacks receive the
        unweighted per-example terms of :meth:`loss_terms` (detached, each [B]) as
        ``outputs["terms"]`` in ``on_train_batch_end``, so that
        :class:`~vae_zoo.callbacks.NonFiniteLossGuard` can name the term that went non-finite
        without computing anything in steps where all is well."""
        x = batch_inputs(batch)
        loss, terms = (self.compiled_loss_and_terms or self.loss_and_terms)(x)
        if self._writes_step_logs():
            metrics = {
                name: value.detach() for name, value in self.stage_metrics(loss, terms, "train").items()
            }
            metrics.pop("train/loss", None)
            self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=x.shape[0])
            self._log_bar_loss(loss)
        elif self._redraws_progress_bar(batch_idx):
            self._log_bar_loss(loss)  # the value the bar shows; the loggers write only on the steps above
        return {"loss": loss, "terms": {name: term.detach() for name, term in terms.items()}}

    def _log_bar_loss(self, loss: torch.Tensor) -> None:
        """Log ``train/loss`` for the progress bar (and the loggers), as a value on the host.

        Lightning converts each progress-bar value it holds to a Python number at the end of
        every training step until the epoch ends, not only on the step that logged it: a value
        left on a GPU would make every later step wait for the device (``benchmarks/host_syncs.py``
        found it on 68 of 116 steps that did not log). Copied here, it waits on this step alone.
        """
        self.log("train/loss", loss.detach().cpu(), on_step=True, on_epoch=False, prog_bar=True)

    def _writes_step_logs(self) -> bool:
        """Whether the trainer writes step metrics after this step (every ``log_every_n_steps``).

        Step values logged on other steps are replaced before any logger sees them, and each
        ``self.log`` call costs a sizeable share of a small model's step on a CPU (Lightning moves
        the metric's state to the value's device; ``benchmarks/RESULTS.md``).
        """
        every = self.trainer.log_every_n_steps
        return every > 0 and (self.trainer.global_step + 1) % every == 0

    def _redraws_progress_bar(self, batch_idx: int) -> bool:
        """Whether the trainer's progress bar redraws after this training step: every
        ``refresh_rate`` steps and at the last step of the epoch (Lightning's TQDM and Rich bars)."""
        bar = self.trainer.progress_bar_callback
        rate = getattr(bar, "refresh_rate", 0) if bar is not None else 0
        if rate <= 0:
            return False
        steps = batch_idx + 1
        return steps % rate == 0 or steps == self.trainer.num_training_batches

    def _evaluation_step(self, batch: Batch, stage: str) -> torch.Tensor:
        x = batch_inputs(batch)
        terms = self.loss_terms(x)
        loss = self.objective(terms)
        self.update_evaluation_metrics(EvaluatedBatch(x, batch_labels(batch), loss, terms), stage)
        names = getattr(self, "_evaluation_metric_names", {}).get(stage, {})  # module key -> name
        for key, name in names.items():
            metric = self._evaluation_metrics[stage][key]
            if metric.update_count:  # updated in this epoch (Lightning resets them after each one)
                attribute = f"_evaluation_metrics.{stage}.{key}"
                shown = stage == "val" and name in self.progress_bar_metrics
                self.log(
                    f"{stage}/{name}",
                    metric,
                    on_step=False,
                    on_epoch=True,
                    metric_attribute=attribute,
                    prog_bar=shown,
                )
        # values a subclass's stage_metrics adds that no Metric provides: batch means, as in training
        logged = {f"{stage}/{name}" for name in names.values()}
        extra = {
            key: value for key, value in self.stage_metrics(loss, terms, stage).items() if key not in logged
        }
        if extra:
            self.log_dict(extra, on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=True)
        return loss

    def update_evaluation_metrics(self, batch: EvaluatedBatch, stage: str) -> None:
        """Add a validation or test ``batch`` (its inputs, labels, loss and terms,
        :class:`EvaluatedBatch`) to the Metrics logged under ``stage/`` at the end of the epoch
        (means over all examples of all processes, in nats per example): ``loss`` (the
        batch's loss, for each of its examples), every term of :meth:`loss_terms`, ``elbo``
        (``-(recon + kl)``) when the terms are a bound's, ``sq_error``
        (``||x - reconstruct(x)||^2``), with a Bernoulli likelihood ``bce`` (the binary
        cross-entropy of the reconstruction from the code :meth:`encode`), and for a model with a
        prior ``prior_mmd``, the MMD between the aggregate posterior and the prior
        (:class:`~vae_zoo.metrics.PriorMMD`, the direct measure of how far ``q(z)`` is from
        ``p(z)``). Subclasses add their own with
        ``self.evaluation_metric(stage, name, factory).update(...)``: the one path by
        which every model's evaluation figures are logged (a Metric is logged in the epochs in
        which it was updated; those named in :attr:`progress_bar_metrics` also in the bar).
        """
        x = batch.x
        self.evaluation_metric(stage, "loss", ExampleMean).update(batch.loss.detach().expand(x.shape[0]))
        for name, term in batch.terms.items():
            self.evaluation_metric(stage, name, ExampleMean).update(term)
        if "kl" in batch.terms:
            self.evaluation_metric(stage, "elbo", ELBO).update(batch.terms["recon"], batch.terms["kl"])
        with torch.no_grad():
            params = self.decoder(self.encode(x))  # the likelihood's parameters at the code
        self.evaluation_metric(stage, "sq_error", SquaredError).update(self.likelihood.mean(params), x)
        if isinstance(self.likelihood, BernoulliLikelihood):
            self.evaluation_metric(stage, "bce", BinaryCrossEntropy).update(params, x)
        if self.prior is not None and x.shape[0] >= 2:
            with torch.no_grad():
                codes = self.aggregate_posterior_draws(x)  # [B, D]
                self.evaluation_metric(stage, "prior_mmd", PriorMMD).update(
                    codes, self.prior.sample(x.shape[0])
                )

    def aggregate_posterior_draws(self, x: torch.Tensor) -> torch.Tensor:
        """One draw of the code of each input, so that the batch is a sample of the aggregate
        posterior ``q(z) = E_x q(z|x)``: [B, *shape] -> [B, D]; the code itself for a
        deterministic encoder, a draw of ``q(z|x)`` for a stochastic one."""
        return self.encode(x)

    def evaluation_metric(self, stage: str, name: str, factory: Callable[[], Metric]) -> Metric:
        """The Metric logged as ``stage/name``, made by ``factory()`` on first use (on this model's
        device) and kept as a submodule, so every process holds the same ones."""
        if "_evaluation_metrics" not in self._modules:
            self._evaluation_metrics = nn.ModuleDict()
            self._evaluation_metric_names: dict[str, dict[str, str]] = {}
        if stage not in self._evaluation_metrics:
            self._evaluation_metrics[stage] = nn.ModuleDict()
            self._evaluation_metric_names[stage] = {}
        key = name.replace(".", "_")  # a module name cannot hold a dot
        metrics = self._evaluation_metrics[stage]
        if key not in metrics:
            metrics[key] = factory().to(self.device)
            self._evaluation_metric_names[stage][key] = name
        return metrics[key]

    # ----------------------------------------------------------------- the training set
    def training_batches(self) -> Iterator[torch.Tensor]:
        """The inputs of this process's training batches of one epoch (all of them, or the first
        ``limit_train_batches``), on this model's device, as the examples are: a loader that
        augments its batches is asked for its plain copy through its ``without_augmentation()``
        method (as :class:`~vae_zoo.data.InMemoryBatches` has), so that the data module, not the
        model, knows how the training examples look."""
        trainer = self.trainer
        loader = trainer.train_dataloader
        plain = getattr(loader, "without_augmentation", None)
        if callable(plain):
            loader = plain()
        limit = trainer.num_training_batches
        for batch in itertools.islice(loader, None if math.isinf(limit) else int(limit)):
            yield batch_inputs(batch).to(self.device)

    @torch.no_grad()
    def map_training_set(self, function: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``function`` [B, *shape] -> [B, ...] applied to every batch of :meth:`training_batches`
        and concatenated: [N, ...]; under DDP the results of all processes, [world_size * N, ...]
        (every process holds the same number of training examples).

        The one way in which a model fits something to its training set: the prior of
        :class:`~vae_zoo.models.GMMVAE` to the codes, the sampling density of
        :class:`~vae_zoo.models.Autoencoder`, closed-form PCA to the inputs.
        """
        outputs = torch.cat(list(map(function, self.training_batches())))
        if self.trainer.world_size > 1:
            outputs = self.all_gather(outputs).flatten(0, 1)
        return outputs

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._evaluation_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._evaluation_step(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """What ``vae-zoo predict`` writes for each input of the batch: :meth:`predictions`."""
        return self.predictions(batch_inputs(batch))

    @torch.no_grad()
    def predictions(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named per-example outputs for ``x`` [B, *shape], each [B, ...]: here ``code``, the
        code of :meth:`encode` [B, D]; models with more to say add to it."""
        return {"code": self.encode(x)}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam with ``lr``, fused into one kernel per parameter where PyTorch has that kernel
        (see :func:`fused_adam_supported`); the command line's ``--optimizer`` replaces it when
        given."""
        parameters = list(self.parameters())
        return torch.optim.Adam(parameters, lr=self.lr, fused=fused_adam_supported(parameters))
