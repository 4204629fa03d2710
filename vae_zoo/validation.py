"""Checks of constructor arguments: a bad value raises a ``ValueError`` that names the argument.

Hyperparameters arrive from YAML, the command line and Python callers alike, so every check
refuses wrong types as well as wrong values (``lr="x"``, ``lr=nan``, ``hidden_dims=[4.5]``)
instead of letting a comparison or ``int()`` fail later with a message that names nothing. Sizes
are also capped (:data:`MAX_PARAMETERS`, :data:`MAX_COMPONENTS`): a typo such as
``latent_dim=10000000000`` is refused before any memory is allocated, where it would otherwise
end in an allocator error or the out-of-memory killer.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

MAX_PARAMETERS = 2**31  # 8 GiB of float32 weights: far beyond any model of the zoo
MAX_COMPONENTS = 4096  # mixture components (the tree prior holds [K, K] tables)


def is_int(value: Any) -> bool:
    """An integer that is not a bool (Python or numpy)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """A real number that is not a bool (Python or numpy)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``value`` is an integer in ``[minimum, maximum]``."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}; got {value!r}")


def check_number(
    name: str,
    value: Any,
    minimum: float = -math.inf,
    strict: bool = False,
    optional: bool = False,
    maximum: float = math.inf,
) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``value`` is a finite number ``>= minimum``
    (``> minimum`` when ``strict``) and ``<= maximum``, or ``None`` when ``optional``."""
    if optional and value is None:
        return
    above = is_number(value) and (value > minimum if strict else value >= minimum)
    if above and math.isfinite(value) and value <= maximum:
        return
    if maximum < math.inf:
        what = f"a number in {'(' if strict else '['}{minimum:g}, {maximum:g}]"
    elif minimum == 0 and strict:
        what = "a positive finite number"
    elif minimum > -math.inf:
        what = f"a finite number {'>' if strict else '>='} {minimum:g}"
    else:
        what = "a finite number"
    raise ValueError(f"{name} must be {'None or ' if optional else ''}{what}; got {value!r}")


def check_bool(name: str, value: Any, error: type[ValueError] = ValueError) -> bool:
    """``value`` if it is ``True`` or ``False`` (not merely truthy), else an ``error`` naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise error(f"{name} must be true or false; got {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Iterable[str], error: type[ValueError] = ValueError) -> str:
    """``value`` if it is one of ``choices``, else an ``error`` naming ``name`` and the choices."""
    choices = list(choices)
    if not (isinstance(value, str) and value in choices):
        raise error(f"{name} must be one of {choices}; got {value!r}")
    return value


def is_sizes(value: Any) -> bool:
    """A list (or tuple) of integers ``>= 1``."""
    return (
        not isinstance(value, (str, bytes))
        and isinstance(value, Sequence)
        and all(is_int(size) and size >= 1 for size in value)
    )


def check_sizes(name: str, value: Any, allow_empty: bool = True, note: str = "") -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``value`` is a list (or tuple) of integers
    ``>= 1``; ``note`` is added to the message (e.g. ``" (non-empty for conv)"``)."""
    if not is_sizes(value) or (not allow_empty and len(value) == 0):
        raise ValueError(f"{name} must be a list of positive ints{note}; got {value!r}")


def network_parameters(
    architecture: str,
    input_shape: Sequence[int],
    hidden_dims: Sequence[int],
    latent_dim: int,
    encoder_out_features: int,
) -> int:
    """The number of weights of :func:`~vae_zoo.nn.build_encoder` plus :func:`~vae_zoo.nn.build_decoder`
    for these sizes, computed without building them (exact for valid sizes)."""
    inputs = math.prod(input_shape)

    def dense(sizes: Sequence[int]) -> int:
        return sum(a * b + b for a, b in itertools.pairwise(sizes))

    if architecture != "conv" or len(input_shape) != 3:
        return dense([inputs, *hidden_dims, encoder_out_features]) + dense(
            [latent_dim, *reversed(hidden_dims), inputs]
        )
    channels = [input_shape[0], *hidden_dims]
    convolutions = sum(16 * a * b + b for a, b in itertools.pairwise(channels))
    convolutions += sum(16 * a * b + a for a, b in itertools.pairwise(channels))
    cells = (input_shape[1] >> len(hidden_dims)) * (input_shape[2] >> len(hidden_dims))
    flat = channels[-1] * max(cells, 1)
    return convolutions + flat * encoder_out_features + encoder_out_features + latent_dim * flat + flat


def check_parameter_budget(count: int, names: dict[str, Any]) -> None:
    """Raise a ``ValueError`` naming the size arguments ``names`` when ``count`` weights exceed
    :data:`MAX_PARAMETERS`."""
    if count > MAX_PARAMETERS:
        given = ", ".join(f"{name}={value!r}" for name, value in names.items())
        *first, last = names
        listed = f"{', '.join(first)} or {last}" if first else last
        raise ValueError(
            f"these sizes need {magnitude(count)} weights, more than the {magnitude(MAX_PARAMETERS)} "
            "(8 GiB of float32) "
            f"this library allows; reduce {listed} (got {given})"
        )


def magnitude(count: int) -> str:
    """``2.15e+09`` for an integer of any size (float formatting overflows above 1e308)."""
    digits = str(count)
    if len(digits) <= 300:
        return f"{count:.3g}"
    return f"{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"
