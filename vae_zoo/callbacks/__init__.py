"""Callbacks of the zoo: KL annealing, collapse detection, latent traversals and image grids."""

from vae_zoo.callbacks.annealing import KLAnnealing
from vae_zoo.callbacks.collapse import CollapseDetection, PosteriorCollapseError
from vae_zoo.callbacks.evaluation import IWAEEvaluation
from vae_zoo.callbacks.images import image_grid, log_image
from vae_zoo.callbacks.traversal import ImageGrids, LatentTraversal, ValidationImageCallback, lerp, slerp

__all__ = [
    "CollapseDetection",
    "IWAEEvaluation",
    "ImageGrids",
    "KLAnnealing",
    "LatentTraversal",
    "PosteriorCollapseError",
    "ValidationImageCallback",
    "image_grid",
    "lerp",
    "log_image",
    "slerp",
]
