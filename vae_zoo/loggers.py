"""Weights & Biases as the default logger, offline by itself when it cannot reach a server."""

from __future__ import annotations

import netrc
import os
import socket
from urllib.parse import urlparse

import wandb
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_info

from vae_zoo.compat import drop_wandb_anonymous_setting

DEFAULT_PROJECT = "vae-zoo"


def wandb_offline_reason(timeout: float = 3.0) -> str | None:
    """Why W&B should run offline here, or ``None`` when it can log online.

    Offline when ``WANDB_MODE`` says so, when there is no API key (``WANDB_API_KEY`` or a
    ``~/.netrc`` entry for the server), or when the server does not accept a TCP connection
    within ``timeout`` seconds.
    """
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        return f"WANDB_MODE={mode}"
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    if not os.environ.get("WANDB_API_KEY") and not _netrc_has(host):
        return "no W&B credentials (WANDB_API_KEY or `wandb login`)"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as error:
        return f"cannot reach {host}: {error}"
    return None


def _netrc_has(host: str) -> bool:
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` with the zoo's defaults.

    ``offline=None`` (the default) decides by :func:`wandb_offline_reason`: with no
    credentials or no network the run is written to ``<save_dir>/wandb/offline-run-*`` and
    the log says how to upload it with ``wandb sync``. The ``vae-zoo`` command fills ``group``
    and ``tags`` with the model's class name so that runs of one model compare side by side.

    Args:
        project: the W&B project.
        name: the run's display name.
        save_dir: where the ``wandb/`` folder and checkpoints go.
        group: the W&B group (default: the model's class name, set by the command).
        tags: W&B tags.
        offline: force offline (True) or online (False); None decides as above.
        log_model: upload checkpoints as W&B artifacts (see Lightning's ``WandbLogger``).
        quiet: keep wandb's own console lines (its banner, the run history when the run ends) out
            of the console; warnings and errors still show. The command's summary at the end of
            ``fit`` says where the run is.
    """

    def __init__(
        self,
        project: str = DEFAULT_PROJECT,
        name: str | None = None,
        save_dir: str = ".",
        group: str | None = None,
        tags: list[str] | None = None,
        offline: bool | None = None,
        log_model: bool = False,
        quiet: bool = True,
    ) -> None:
        if offline is None:
            reason = wandb_offline_reason()
            offline = reason is not None
            if offline:
                rank_zero_info(
                    f"W&B runs offline ({reason}); upload later with: "
                    f"wandb sync {os.path.join(save_dir, 'wandb', 'offline-run-*')}"
                )
        super().__init__(
            project=project,
            name=name,
            save_dir=save_dir,
            group=group,
            tags=tags,
            offline=offline,
            log_model=log_model,
            settings=wandb.Settings(quiet=quiet),
        )
        drop_wandb_anonymous_setting(self)
