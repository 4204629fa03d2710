"""Callbacks of the zoo: KL annealing, collapse detection, latent traversals and image grids, and
the reliability callbacks the command adds by default (non-finite loss guard, random states)."""

from vae_zoo.callbacks.annealing import KLAnnealing
from vae_zoo.callbacks.collapse import CollapseDetection, PosteriorCollapseError
from vae_zoo.callbacks.compile import CompiledStep
from vae_zoo.callbacks.evaluation import IWAEEvaluation
from vae_zoo.callbacks.images import grid_pixels, image_grid, log_image
from vae_zoo.callbacks.numerics import NonFiniteLossError, NonFiniteLossGuard
from vae_zoo.callbacks.prediction import PredictionWriter
from vae_zoo.callbacks.progress import ProgressBar
from vae_zoo.callbacks.random_state import RandomStateCheckpoint
from vae_zoo.callbacks.traversal import ImageGrids, LatentTraversal, ValidationImageCallback, lerp, slerp

__all__ = [
    "CollapseDetection",
    "CompiledStep",
    "IWAEEvaluation",
    "ImageGrids",
    "KLAnnealing",
    "LatentTraversal",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "PosteriorCollapseError",
    "PredictionWriter",
    "ProgressBar",
    "RandomStateCheckpoint",
    "ValidationImageCallback",
    "grid_pixels",
    "image_grid",
    "lerp",
    "log_image",
    "slerp",
]
