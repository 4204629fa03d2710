"""The uses of private internals of Lightning that the zoo cannot avoid, in one place; each is
tested (``tests/unit/test_compat.py``) so that a Lightning release that changes one fails there."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import WandbLogger


def drop_wandb_anonymous_setting(logger: WandbLogger) -> None:
    """Stop ``logger`` from passing ``anonymous=None`` to ``wandb.init``.

    Lightning's ``WandbLogger`` always passes the ``anonymous`` setting, ``None`` unless asked
    for; wandb >= 0.19 ignores it and prints "The anonymous setting has no effect and will be
    removed in a future version" at every run. Without the key wandb behaves the same and says
    nothing. Reads Lightning's private ``_wandb_init`` (the keyword arguments of ``wandb.init``).
    """
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)


def started_wandb_run(logger: WandbLogger) -> Any | None:
    """The W&B run of ``logger`` if it has started one, else ``None``: unlike ``logger.experiment``,
    never starts a run. Reads Lightning's private ``_experiment``."""
    return getattr(logger, "_experiment", None)
