"""A profiler that costs nothing, the command's default."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from lightning.pytorch.profilers import PassThroughProfiler

_NO_OP = nullcontext()


class NoProfiler(PassThroughProfiler):
    """Lightning's ``PassThroughProfiler`` (records nothing) without its cost per call.

    Lightning wraps every hook it calls in ``trainer.profiler.profile(name)``: about 180 calls
    in each training step with the command's callbacks. The base class's ``profile`` builds a
    generator-based context manager at every call; this one returns one shared ``nullcontext``
    (the cost of each is in ``benchmarks/RESULTS.md``). Any other profiler
    (``--trainer.profiler simple``) replaces it.
    """

    def profile(self, action_name: str) -> AbstractContextManager[None]:
        return _NO_OP
