"""A user's own data: ``.npy``, ``.npz``, ``.pt`` or ``.csv`` files as an in-memory data module.

The files are read and checked when the module is constructed, not in ``setup``: the model's
``input_shape`` comes from the data (the ``vae-zoo`` command links ``data.input_shape`` into the
model when it instantiates the classes), and bad data should stop a run before anything is built.
Every problem raises an error that names the argument or file, the value found and what is valid;
nothing is dropped, clamped or rescaled on the way.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from vae_zoo.data.base import (
    DataError,
    InMemoryDataModule,
    binarize_once,
    check_optional_path,
    evaluation_copy,
    split_indices,
)
from vae_zoo.validation import check_bool, is_int

FORMATS: tuple[str, ...] = (".npy", ".npz", ".pt", ".csv")
FLOAT32_MAX = float(np.finfo(np.float32).max)
LABEL_NAMES = ("label", "labels", "target", "targets", "class", "y")  # warned about when read as features

Locate = Callable[[int], str]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _are(count: int, noun: str) -> str:
    """``"1 label is"``, ``"2 labels are"``."""
    return f"1 {noun} is" if count == 1 else f"{count} {noun}s are"


def _at_index(index: int) -> str:
    return f"index {index}"


class _Table:
    """What one file holds: inputs, labels (or ``None``), and how to name where example ``i`` is."""

    def __init__(
        self,
        inputs: Any,
        labels: Any,
        locate: Locate = _at_index,
        column: Callable[[int], str] | None = None,
    ) -> None:
        self.inputs = inputs
        self.labels = labels
        self.locate = locate
        self.column = column  # names the feature column j of a table (CSV), else None


class _Reader:
    """Reads and checks one file given as argument ``argument`` (``path`` or ``test_path``)."""

    def __init__(
        self,
        argument: str,
        path: str,
        label_column: int | str | None,
        header: bool | None,
        inputs_key: str | None,
        labels_key: str | None,
    ) -> None:
        self.path = Path(path)
        self.name = f"{argument}={path!r}"
        self.label_column = label_column
        self.header = header
        self.inputs_key = inputs_key
        self.labels_key = labels_key

    def error(self, message: str) -> DataError:
        return DataError(f"{self.name}: {message}")

    # ----------------------------------------------------------------- the file
    def read(self) -> _Table:
        try:
            return self._read()
        except OSError as error:  # unreadable (permissions, a name too long...), not missing
            if isinstance(error, FileNotFoundError):
                raise
            raise self.error(f"cannot be read ({type(error).__name__}: {error})") from None

    def _read(self) -> _Table:
        path = self.path
        if not path.exists():
            folder = path.parent if str(path.parent) else Path(".")
            where = "" if folder.is_dir() else f"; its folder {str(folder)!r} does not exist either"
            raise FileNotFoundError(f"{self.name}: no such file (absolute: {path.absolute()}){where}")
        if not path.is_file():
            raise self.error("is a folder, not a file; give the path of a .npy, .npz, .pt or .csv file")
        suffix = path.suffix.lower()
        if suffix not in FORMATS:
            raise self.error(
                f"unknown extension {path.suffix!r}; expected one of {', '.join(FORMATS)} "
                f"(rename the file if it is one of these formats)"
            )
        self.check_arguments_apply(suffix)
        if suffix == ".csv":
            return self.read_csv()
        if suffix == ".npy":
            return _Table(self.load_numpy(), None)
        if suffix == ".npz":
            return self.read_npz()
        return self.read_pt()

    def check_arguments_apply(self, suffix: str) -> None:
        """Refuse an argument that the format of the file would ignore."""
        if suffix != ".csv":
            for name in ("label_column", "header"):
                if getattr(self, name) is not None:
                    hint = (
                        " (labels come from labels_key in .npz and .pt files)"
                        if name == "label_column"
                        else ""
                    )
                    raise self.error(
                        f"{name}={getattr(self, name)!r} applies to .csv files only; this is a "
                        f"{suffix} file{hint}"
                    )
        if suffix not in (".npz", ".pt"):
            for name in ("inputs_key", "labels_key"):
                if getattr(self, name) is not None:
                    hint = "use label_column" if suffix == ".csv" else "a .npy file holds one array"
                    raise self.error(
                        f"{name}={getattr(self, name)!r} applies to .npz and dict-valued .pt files; "
                        f"this is a {suffix} file ({hint})"
                    )

    def load_numpy(self) -> np.ndarray:
        try:
            array = np.load(self.path, allow_pickle=False)
        except Exception as error:  # any failure to read is reported the same way
            raise self.error(f"cannot be read as a .npy array ({type(error).__name__}: {error})") from None
        if not isinstance(array, np.ndarray):
            array.close()
            raise self.error("is an .npz archive, not an .npy array; rename it to .npz")
        return array

    # ----------------------------------------------------------------- keyed files
    def pick(self, keys: Sequence[Any], what: str) -> tuple[Any, Any]:
        """The keys of the inputs and of the labels (or ``None``) among ``keys`` of the file."""
        listed = sorted(map(str, keys))
        for name in ("inputs_key", "labels_key"):
            value = getattr(self, name)
            if value is not None and value not in keys:
                raise self.error(f"{name}={value!r} is not among the {what}'s keys {listed}")
        inputs_key = self.inputs_key
        if inputs_key is None:
            others = [key for key in keys if key != self.labels_key]
            if len(others) != 1:
                raise self.error(
                    f"holds the keys {listed}; set inputs_key to the one holding the inputs "
                    f"(and labels_key to the one holding labels, if any)"
                )
            inputs_key = others[0]
        if self.labels_key is not None and self.labels_key == inputs_key:
            raise self.error(f"inputs_key and labels_key are the same key {inputs_key!r}")
        return inputs_key, self.labels_key

    def read_npz(self) -> _Table:
        try:
            archive = np.load(self.path, allow_pickle=False)
        except Exception as error:
            raise self.error(f"cannot be read as an .npz archive ({type(error).__name__}: {error})") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise self.error("is an .npy array, not an .npz archive; rename it to .npy")
        with archive:
            inputs_key, labels_key = self.pick(archive.files, "archive")
            arrays = []
            for key in (inputs_key, labels_key):
                if key is None:
                    arrays.append(None)
                    continue
                try:
                    arrays.append(archive[key])
                except Exception as error:
                    raise self.error(
                        f"array {key!r} cannot be read ({type(error).__name__}: {error})"
                    ) from None
        return _Table(arrays[0], arrays[1])

    def read_pt(self) -> _Table:
        try:
            content = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:
            message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            raise self.error(
                f"cannot be read by torch.load(weights_only=True) ({type(error).__name__}: {message}); "
                f"save a tensor, a dict of tensors or a tuple (inputs, labels) with torch.save"
            ) from None
        if isinstance(content, dict):
            inputs_key, labels_key = self.pick(list(content), "dict")
            return _Table(content[inputs_key], None if labels_key is None else content[labels_key])
        for name in ("inputs_key", "labels_key"):
            if getattr(self, name) is not None:
                raise self.error(
                    f"{name}={getattr(self, name)!r} applies to a dict; the file holds a "
                    f"{type(content).__name__}"
                )
        if isinstance(content, (torch.Tensor, np.ndarray)):
            return _Table(content, None)
        if isinstance(content, (tuple, list)) and len(content) in (1, 2):
            return _Table(content[0], content[1] if len(content) == 2 else None)
        kind = f"a {type(content).__name__}" + (
            f" of {len(content)}" if isinstance(content, (tuple, list)) else ""
        )
        raise self.error(
            f"holds {kind}; expected a tensor of inputs, a tuple (inputs,) or (inputs, labels), or a dict "
            f"of tensors (with inputs_key and labels_key)"
        )

    # ----------------------------------------------------------------- CSV
    def read_csv(self) -> _Table:
        rows: list[list[str]] = []
        lines: list[int] = []
        try:
            with open(self.path, newline="", encoding="utf-8-sig") as file:
                reader = csv.reader(file)
                for row in reader:
                    if row:  # an empty line holds no cells: not an example
                        rows.append(row)
                        lines.append(reader.line_num)
        except (UnicodeDecodeError, csv.Error) as error:
            raise self.error(
                f"cannot be read as a UTF-8 text table ({type(error).__name__}: {error})"
            ) from None
        if not rows:
            raise self.error("is empty: no rows")
        header = self.header
        if header is None:
            numeric = [_is_number(cell) for cell in rows[0]]
            if all(numeric):
                header = False
            elif not any(numeric):
                header = True
            else:
                text = [cell for cell, number in zip(rows[0], numeric, strict=True) if not number]
                raise self.error(
                    f"line {lines[0]} mixes numbers and text (text cells {text[:5]}): set header=true if "
                    f"it is a header row; otherwise fix those cells (every cell must be a number)"
                )
        names = [name.strip() for name in rows[0]] if header else None
        data, data_lines = (rows[1:], lines[1:]) if header else (rows, lines)
        if not data:
            raise self.error(f"holds a header row (line {lines[0]}) and no examples")
        width = len(rows[0])
        for row, line in zip(data, data_lines, strict=True):
            if len(row) != width:
                raise self.error(
                    f"line {line} has {len(row)} cell{'s' * (len(row) != 1)}, line {lines[0]} has {width}; "
                    f"every line must have "
                    f"the same number of comma-separated cells"
                )
        label_index = self.label_index(names, width)
        if label_index is None and names:
            likely = [name for name in names if name.lower() in LABEL_NAMES]
            if likely:
                rank_zero_warn(
                    f"{self.name}: no label_column given, so column {likely[0]!r} is read as a feature; "
                    f"set label_column={likely[0]!r} if it holds labels"
                )
        features = [j for j in range(width) if j != label_index]
        if not features:
            raise self.error(f"has one column, the label column {self.label_column!r}; no feature columns")

        def column(j: int) -> str:
            return f"column {j} ({names[j]!r})" if names else f"column {j} (counting from 0)"

        cells = np.array(data, dtype=str)
        try:
            values = cells.astype(np.float64)
        except ValueError as error:
            raise self.non_numeric(data, data_lines, column, label_index, error) from None
        locate = self.line_locator(data_lines)
        labels = None if label_index is None else values[:, label_index]
        return _Table(values[:, features], labels, locate, lambda j: column(features[j]))

    def label_index(self, names: list[str] | None, width: int) -> int | None:
        label_column = self.label_column
        if label_column is None:
            return None
        if isinstance(label_column, str):
            if names is None:
                raise self.error(
                    f"label_column={label_column!r} is a column name, but the file has no header row; "
                    f"give the column's index (0 to {width - 1}, or -1 for the last) or set header=true"
                )
            if names.count(label_column) != 1:
                problem = "is not a column" if label_column not in names else "names more than one column"
                raise self.error(f"label_column={label_column!r} {problem} of the header {names}")
            return names.index(label_column)
        if not -width <= label_column < width:
            raise self.error(
                f"label_column={label_column} is out of range: the file has {width} columns "
                f"(indices 0 to {width - 1}, or -{width} to -1)"
            )
        return label_column % width

    def non_numeric(
        self,
        data: list[list[str]],
        lines: list[int],
        column: Callable[[int], str],
        label_index: int | None,
        error: ValueError,
    ) -> DataError:
        bad = [(i, j) for i, row in enumerate(data) for j, cell in enumerate(row) if not _is_number(cell)]
        if not bad:
            return self.error(f"holds a cell that is not a number ({error})")
        i, j = bad[0]
        role = " (the label column: labels must be integer class indices)" if j == label_index else ""
        return self.error(
            f"{_are(len(bad), 'cell')} not {'a number' if len(bad) == 1 else 'numbers'}; the first is "
            f"{data[i][j]!r} at line {lines[i]}, "
            f"{column(j)}{role}. Every cell below the header must be a number (cells are separated by "
            f"commas; a missing value must be filled in, not left empty)"
        )

    @staticmethod
    def line_locator(lines: list[int]) -> Locate:
        return lambda i: f"line {lines[i]} (example {i}, counting from 0)"

    # ----------------------------------------------------------------- checks of any file
    def to_numpy(self, value: Any, what: str) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            if value.is_complex() or value.layout != torch.strided:
                raise self.error(
                    f"the {what} are a {value.dtype} tensor of layout {value.layout}; expected real numbers"
                )
            value = value.detach().cpu()
            value = value.float() if value.dtype == torch.bfloat16 else value
            value = value.numpy()
        if not isinstance(value, np.ndarray):
            raise self.error(f"the {what} are a {type(value).__name__}; expected an array or tensor")
        if value.dtype.kind not in "biuf":
            raise self.error(
                f"the {what} have dtype {value.dtype}; expected numbers (bool, integer or float)"
            )
        return value

    def inputs(self, table: _Table) -> torch.Tensor:
        """The inputs as a float32 tensor [N, *shape], all finite."""
        x = self.to_numpy(table.inputs, "inputs")
        if x.ndim < 2:
            raise self.error(
                f"the inputs have shape {list(x.shape)}; expected one row per example, [N, features] or "
                f"[N, *shape] (a single feature per example: reshape to [N, 1])"
            )
        if x.shape[0] == 0 or math.prod(x.shape[1:]) == 0:
            raise self.error(f"the inputs have shape {list(x.shape)}: no examples or no values per example")
        with np.errstate(over="ignore", invalid="ignore"):
            x32 = np.asarray(x, dtype=np.float32)
        flat = x32.reshape(x32.shape[0], -1)
        finite = np.isfinite(flat)
        if not finite.all():
            nan = int(np.isnan(flat).sum())
            inf = flat.size - int(finite.sum()) - nan
            overflow = x.dtype.kind == "f" and int(np.isinf(x).sum()) < inf
            i = int(np.flatnonzero(~finite.all(1))[0])
            j = int(np.flatnonzero(~finite[i])[0])
            where = table.locate(i) + (f", {table.column(j)}" if table.column else f", value {j}")
            note = f", some beyond float32's range of +-{FLOAT32_MAX:.3g}" if overflow else ""
            raise self.error(
                f"{_are(flat.size - int(finite.sum()), 'input value')} not finite ({nan} NaN, {inf} infinite"
                f"{note}); the first at {where}. Remove or fill in those values: training needs finite "
                f"numbers"
            )
        if not x32.flags.writeable:
            x32 = x32.copy()
        return torch.from_numpy(x32)

    def labels(self, table: _Table, num_examples: int) -> torch.Tensor | None:
        """The labels as an int64 tensor [N] of class indices >= 0, or ``None``."""
        if table.labels is None:
            return None
        y = self.to_numpy(table.labels, "labels")
        if y.ndim != 1:
            raise self.error(f"the labels have shape {list(y.shape)}; expected [N], one integer per example")
        if y.shape[0] != num_examples:
            raise self.error(
                f"{y.shape[0]} labels for {num_examples} examples; expected one label per example"
            )
        if y.dtype.kind == "f":
            finite = np.isfinite(y)
            if not finite.all():
                i = int(np.flatnonzero(~finite)[0])
                raise self.error(
                    f"{_are(int((~finite).sum()), 'label')} NaN or infinite; the first at {table.locate(i)}: "
                    f"{float(y[i])}. Labels must be integer class indices"
                )
            fractional = y != np.round(y)
            if fractional.any():
                i, count = int(np.flatnonzero(fractional)[0]), int(fractional.sum())
                raise self.error(
                    f"{_are(count, 'label')} not {'an integer' if count == 1 else 'integers'}; the first "
                    f"at {table.locate(i)}: "
                    f"{float(y[i])!r}. Labels must be integer class indices"
                )
            if np.abs(y).max() >= 2**62:
                i = int(np.argmax(np.abs(y)))
                raise self.error(f"label {float(y[i])} at {table.locate(i)} is too large for a class index")
        if y.dtype.kind == "u" and y.size and int(y.max()) >= 2**63:
            raise self.error(f"label {int(y.max())} is too large for a class index")
        y = y.astype(np.int64)
        if (y < 0).any():
            i = int(np.flatnonzero(y < 0)[0])
            raise self.error(
                f"{_are(int((y < 0).sum()), 'label')} negative; the first at {table.locate(i)}: {int(y[i])}. "
                f"Labels must be class indices 0, 1, 2, ..."
            )
        return torch.from_numpy(y)

    def check_unit_interval(self, x: torch.Tensor, table: _Table, binarization: str) -> None:
        flat = x.reshape(x.shape[0], -1)
        outside = (flat < 0) | (flat > 1)
        if outside.any():
            i = int(outside.any(1).nonzero()[0])
            raise self.error(
                f"binarization={binarization!r} treats each value as a probability and needs inputs in "
                f"[0, 1]; the inputs lie in [{float(flat.min()):g}, {float(flat.max()):g}] ("
                f"{_are(int(outside.sum()), 'value')} outside, the first at {table.locate(i)}). Rescale "
                f"the data "
                f"or use binarization='none'"
            )


class ArrayDataModule(InMemoryDataModule):
    """A user's own data from one file (and an optional test file), as ``[B, *input_shape]`` float
    batches, with int64 labels when the file has them: batches are ``(x, y)``, or ``(x,)``
    without labels.

    Formats, by extension:

    * ``.npy``: one array ``[N, *shape]`` of numbers; no labels.
    * ``.npz``: arrays chosen by ``inputs_key`` (may be left out when the archive holds one array
      besides ``labels_key``) and ``labels_key`` (optional).
    * ``.pt`` (``torch.save``, read with ``weights_only=True``): a tensor; a tuple ``(inputs,)`` or
      ``(inputs, labels)``; or a dict of tensors chosen by ``inputs_key`` / ``labels_key``.
    * ``.csv``: comma-separated numbers, one example per line, features in columns; an optional
      header row; an optional label column chosen by ``label_column``.

    Inputs become float32 and must be finite; labels must be integers >= 0 (class indices). The
    files are read and checked by the constructor, so that ``input_shape`` is known when the
    ``vae-zoo`` command builds the model from it and bad data stop the command at once.

    Args:
        path: the training file; ``val_size`` examples of it are held out for validation.
        test_path: a test file of the same format and features. Without one, ``test`` evaluates
            the validation split (and says so in a log line); ``predict`` encodes the test file,
            or else every example of ``path`` in file order.
        val_size: examples of ``path`` held out for validation: a count (int >= 0), or a fraction
            (float in [0, 1)), chosen at random by ``seed``. With 0 there is no validation: set
            ``--checkpoint.monitor null`` in the ``vae-zoo`` command (it monitors ``val/loss``).
        batch_size: training batch size; at most the number of training examples.
        eval_batch_size: validation/test batch size (default: ``batch_size``).
        label_column: CSV only: the column holding integer labels, by header name or by index
            (0-based; negative counts from the end); every other column is a feature.
        header: CSV only: whether the first line names the columns; by default it is a header when
            none of its cells is a number, data when all are (a mix is an error).
        inputs_key: ``.npz`` / dict ``.pt`` only: the key of the inputs.
        labels_key: ``.npz`` / dict ``.pt`` only: the key of the labels.
        binarization: ``"none"`` (values as they are: continuous data), ``"dynamic"`` (a fresh
            Bernoulli draw of every training value each time it is seen; evaluation drawn once) or
            ``"static"`` (every split drawn once). The last two need values in [0, 1].
        reshape: the shape to give each example (same number of values), e.g. ``[1, 28, 28]`` for
            flattened images; default: the file's per-example shape, ``[D]`` for a table of D
            features. The result is the module's ``input_shape``, which the ``vae-zoo`` command
            passes to the model. (Not called ``input_shape``: Lightning logs the model's and the
            data module's hyperparameters together and refuses one name with two values.)
        seed: seed of the validation split, the shuffling and the binarization; in [0, 2**32).
        on_device: keep the tensors on the training device (GPU) instead of the CPU.
    """

    def __init__(
        self,
        path: str,
        test_path: str | None = None,
        val_size: int | float = 0.1,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        label_column: int | str | None = None,
        header: bool | None = None,
        inputs_key: str | None = None,
        labels_key: str | None = None,
        binarization: Literal["none", "dynamic", "static"] = "none",
        reshape: list[int] | None = None,
        seed: int = 0,
        on_device: bool = True,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, binarization, seed, on_device)
        path = check_optional_path("path", path)
        if path is None:
            raise DataError("path must be a path (a non-empty string); got None")
        test_path = check_optional_path("test_path", test_path)
        val_size = self._check_val_size(val_size)
        if label_column is not None and not isinstance(label_column, str) and not is_int(label_column):
            raise DataError(
                f"label_column must be a column name, a column index or None; got {label_column!r}"
            )
        if header is not None:
            check_bool("header", header, DataError)
        for name, key in (("inputs_key", inputs_key), ("labels_key", labels_key)):
            if key is not None and not isinstance(key, str):
                raise DataError(f"{name} must be a string or None; got {key!r}")
        if reshape is not None:
            if isinstance(reshape, (str, bytes)) or not isinstance(reshape, Sequence):
                raise DataError(f"reshape must be a list of positive integers or None; got {reshape!r}")
            if not reshape or not all(is_int(size) and size > 0 for size in reshape):
                raise DataError(f"reshape must be a list of positive integers or None; got {reshape!r}")
        self.save_hyperparameters()
        self.path = path
        self.test_path = test_path

        def reader(argument: str, file: str) -> _Reader:
            return _Reader(argument, file, label_column, header, inputs_key, labels_key)

        train_reader = reader("path", path)
        table = train_reader.read()
        inputs = train_reader.inputs(table)
        labels = train_reader.labels(table, inputs.shape[0])
        example_shape = tuple(inputs.shape[1:])
        self.input_shape: tuple[int, ...] = tuple(reshape) if reshape else example_shape
        if math.prod(self.input_shape) != math.prod(example_shape):
            raise DataError(
                f"reshape={list(self.input_shape)} holds {math.prod(self.input_shape)} values per "
                f"example, but the examples of path={path!r} have shape {list(example_shape)} "
                f"({math.prod(example_shape)} values)"
            )
        if binarization != "none":
            train_reader.check_unit_interval(inputs, table, binarization)
        num_examples = inputs.shape[0]
        num_val = round(val_size * num_examples) if isinstance(val_size, float) else val_size
        if num_val >= num_examples:
            fraction = f" (holds out {num_val} examples)" if isinstance(val_size, float) else ""
            raise DataError(
                f"val_size={val_size!r}{fraction} must be smaller than the {num_examples} examples of "
                f"path={path!r}"
            )
        self._check_batch_size(
            num_examples - num_val, f"{num_examples} in path={path!r} minus {num_val} held out by val_size"
        )
        inputs = inputs.reshape(num_examples, *self.input_shape)

        test = None
        if test_path is not None:
            test_reader = reader("test_path", test_path)
            test_table = test_reader.read()
            test_inputs = test_reader.inputs(test_table)
            if tuple(test_inputs.shape[1:]) != example_shape:
                raise DataError(
                    f"test_path={test_path!r}: examples of shape {list(test_inputs.shape[1:])}, but those "
                    f"of path={path!r} have shape {list(example_shape)}; the two files must hold the "
                    f"same features"
                )
            if binarization != "none":
                test_reader.check_unit_interval(test_inputs, test_table, binarization)
            test_labels = test_reader.labels(test_table, test_inputs.shape[0])
            test = (test_inputs.reshape(-1, *self.input_shape), test_labels)

        self.val_size = num_val
        self._split(inputs, labels, test)

    @staticmethod
    def _check_val_size(val_size: Any) -> int | float:
        valid = (is_int(val_size) and val_size >= 0) or (
            isinstance(val_size, float) and math.isfinite(val_size) and 0 <= val_size < 1
        )
        if not valid:
            raise DataError(
                f"val_size must be a count (an integer >= 0) or a fraction (a float in [0, 1)); "
                f"got {val_size!r}"
            )
        return val_size

    def _split(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor | None,
        test: tuple[torch.Tensor, torch.Tensor | None] | None,
    ) -> None:
        num_examples = inputs.shape[0]
        train_index, val_index = split_indices(num_examples, self.val_size, self.seed)
        splits = {
            "train": (inputs[train_index], None if labels is None else labels[train_index]),
            "val": (inputs[val_index], None if labels is None else labels[val_index]),
            "test": test,
        }
        for offset, (name, split) in enumerate(splits.items()):
            if split is None:
                continue
            x, y = split
            if self.binarization == "static" or (self.binarization == "dynamic" and name != "train"):
                x = binarize_once(x, self.seed + 1000 + offset)
            self.splits[name] = (x, y)
        whole = evaluation_copy(inputs, train_index, val_index, self.splits, self.binarization, self.seed)
        self.splits["file"] = (whole, labels)

    def setup(self, stage: str | None = None) -> None:
        """Nothing left to do: the constructor has read, checked and split the data."""

    def test_dataloader(self) -> Any:
        if "test" in self.splits:
            return self._batches("test", self.eval_batch_size, shuffle=False)
        if self.val_size == 0:
            raise DataError(
                f"no test data: test_path is not set and val_size=0 holds out nothing of path={self.path!r}; "
                f"set test_path, or val_size > 0 to test on the validation split"
            )
        rank_zero_info(
            f"{type(self).__name__}: no test_path given: testing on the validation split "
            f"({self.val_size} examples held out of path={self.path!r})"
        )
        return self._batches("val", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> Any:
        split = "test" if "test" in self.splits else "file"
        return self._batches(split, self.eval_batch_size, shuffle=False)
