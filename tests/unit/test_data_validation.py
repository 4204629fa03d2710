"""Bad data and bad arguments: every one a ValueError or FileNotFoundError that names the argument
or file, the value found and what is valid. Also MNIST's corrupt files and its ``test_split``."""

from __future__ import annotations

import logging
import re
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_mnist_folder, write_idx
from vae_zoo.data import ArrayDataModule, DataError, MNISTDataModule

# ----------------------------------------------------------------------------- ArrayDataModule


def csv_file(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def good_rows(n: int = 6, with_header: bool = True) -> list[str]:
    rows = [f"{i / 10},{(i + 1) / 10},{i % 2}" for i in range(n)]
    return (["a,b,label"] if with_header else []) + rows


def arrays(tmp_path: Path, **arrays: np.ndarray) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def npy(tmp_path: Path, array: np.ndarray, name: str = "data.npy") -> str:
    path = tmp_path / name
    np.save(path, array)
    return str(path)


def raises(error: type[Exception], *fragments: str, **kwargs) -> str:
    """Construct ArrayDataModule(**kwargs) expecting ``error`` whose message has every fragment."""
    kwargs.setdefault("batch_size", 2)
    with pytest.raises(error) as caught:
        ArrayDataModule(**kwargs)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "\n" not in message  # one line for the command's one-line report
    return message


def test_missing_file(tmp_path: Path) -> None:
    raises(FileNotFoundError, "path=", "nope.csv", "no such file", path=str(tmp_path / "nope.csv"))
    raises(
        FileNotFoundError,
        "test_path=",
        "t.npy",
        "no such file",
        path=npy(tmp_path, np.zeros((4, 2))),
        test_path=str(tmp_path / "t.npy"),
    )


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    raises(DataError, f"path={str(tmp_path)!r}", "is a folder, not a file", path=str(tmp_path))


def test_unknown_extension(tmp_path: Path) -> None:
    raises(
        DataError,
        "data.txt",
        "unknown extension '.txt'",
        ".npy, .npz, .pt, .csv",
        path=csv_file(tmp_path / "data.txt", "1,2\n"),
    )


def test_npz_keys(tmp_path: Path) -> None:
    path = arrays(tmp_path, x=np.zeros((4, 2)), y=np.zeros(4))
    raises(DataError, "inputs_key='z'", "not among", "['x', 'y']", path=path, inputs_key="z")
    raises(DataError, "labels_key='labels'", "['x', 'y']", path=path, labels_key="labels")
    raises(DataError, "holds the keys ['x', 'y']", "set inputs_key", path=path)
    raises(DataError, "same key 'x'", path=path, inputs_key="x", labels_key="x")


def test_arguments_of_another_format_are_refused(tmp_path: Path) -> None:
    csv = csv_file(tmp_path / "d.csv", "\n".join(good_rows()))
    raises(
        DataError,
        "labels_key='y'",
        "applies to .npz and dict-valued .pt",
        "use label_column",
        path=csv,
        labels_key="y",
    )
    npz = arrays(tmp_path, x=np.zeros((4, 2)))
    raises(DataError, "label_column=0", "applies to .csv files only", path=npz, label_column=0)
    raises(DataError, "header=True", "applies to .csv files only", path=npz, header=True)
    raises(
        DataError,
        "inputs_key='x'",
        "a .npy file holds one array",
        path=npy(tmp_path, np.zeros((4, 2))),
        inputs_key="x",
    )
    pt = tmp_path / "t.pt"
    torch.save(torch.zeros(4, 2), pt)
    raises(DataError, "labels_key='y'", "applies to a dict", "holds a Tensor", path=str(pt), labels_key="y")


def test_non_numeric_csv_cells_are_named_with_their_line_and_column(tmp_path: Path) -> None:
    rows = good_rows()
    rows[3] = "0.2,abc,1"
    rows[5] = "0.4,,1"
    raises(
        DataError,
        "d.csv",
        "2 cells are not numbers",
        "'abc' at line 4",
        "column 1 ('b')",
        path=csv_file(tmp_path / "d.csv", "\n".join(rows)),
        label_column="label",
    )
    rows = good_rows()
    rows[2] = "0.1,0.2,cat"
    raises(
        DataError,
        "1 cell is not a number; the first is 'cat' at line 3",
        "the label column: labels must be integer",
        path=csv_file(tmp_path / "e.csv", "\n".join(rows)),
        label_column="label",
    )


def test_csv_shape_problems(tmp_path: Path) -> None:
    rows = good_rows()
    rows[4] = "0.1,0.2"
    raises(
        DataError,
        "line 5 has 2 cells, line 1 has 3; every line must have the same number",
        path=csv_file(tmp_path / "r.csv", "\n".join(rows)),
    )
    raises(DataError, "is empty", path=csv_file(tmp_path / "empty.csv", ""))
    raises(DataError, "a header row (line 1) and no examples", path=csv_file(tmp_path / "h.csv", "a,b\n"))
    raises(
        DataError,
        "line 1 mixes numbers and text",
        "['b']",
        "header=true",
        path=csv_file(tmp_path / "m.csv", "0.5,b\n0.1,0.2\n"),
    )
    raises(
        DataError,
        "label_column='label' is a column name, but the file has no header row",
        path=csv_file(tmp_path / "n.csv", "\n".join(good_rows(with_header=False))),
        label_column="label",
    )
    path = csv_file(tmp_path / "o.csv", "\n".join(good_rows()))
    raises(
        DataError,
        "label_column='kind' is not a column of the header ['a', 'b', 'label']",
        path=path,
        label_column="kind",
    )
    raises(DataError, "label_column=3 is out of range", "3 columns", path=path, label_column=3)
    raises(
        DataError, "no feature columns", path=csv_file(tmp_path / "one.csv", "y\n1\n2\n3\n"), label_column="y"
    )


def test_a_numeric_header_is_read_as_one_when_asked(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "d.csv", "1,2\n0.5,0.25\n0.75,0.125\n0,1\n")
    assert ArrayDataModule(path, header=True, val_size=0, batch_size=2).splits["train"][0].shape == (3, 2)
    assert ArrayDataModule(path, val_size=0, batch_size=2).splits["train"][0].shape == (4, 2)


def test_a_likely_label_column_read_as_a_feature_is_warned_about(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "d.csv", "\n".join(good_rows()))
    with pytest.warns(UserWarning, match="column 'label' is read as a feature; set label_column='label'"):
        ArrayDataModule(path, val_size=0, batch_size=2)


@pytest.mark.parametrize("kind", ["npy", "csv"])
def test_nan_and_inf_are_counted_and_the_first_row_named(tmp_path: Path, kind: str) -> None:
    x = np.full((8, 3), 0.5)
    x[5, 2] = np.nan
    x[6, 0] = np.inf
    x[7, 1] = np.nan
    if kind == "npy":
        path = npy(tmp_path, x)
        where = "the first at index 5, value 2"
    else:
        path = csv_file(tmp_path / "d.csv", "a,b,c\n" + "\n".join(",".join(map(str, row)) for row in x))
        where = "the first at line 7 (example 5, counting from 0), column 2 ('c')"
    raises(DataError, Path(path).name, "3 input values are not finite (2 NaN, 1 infinite)", where, path=path)


def test_values_beyond_float32_are_not_silently_infinite(tmp_path: Path) -> None:
    x = np.full((4, 2), 0.5)
    x[2, 1] = 1e300
    raises(
        DataError, "1 input value is not finite", "beyond float32's range", "index 2", path=npy(tmp_path, x)
    )


def test_wrong_dimensions_and_dtypes(tmp_path: Path) -> None:
    raises(DataError, "the inputs have shape [5]", "reshape to [N, 1]", path=npy(tmp_path, np.zeros(5)))
    raises(DataError, "no examples", path=npy(tmp_path, np.zeros((0, 3)), "empty.npy"))
    raises(DataError, "dtype <U1", "expected numbers", path=npy(tmp_path, np.array([["a"], ["b"]]), "s.npy"))
    raises(DataError, "complex", path=npy(tmp_path, np.zeros((3, 2), dtype=complex), "c.npy"))
    objects = tmp_path / "o.npy"
    np.save(objects, np.array([[1], [None]], dtype=object), allow_pickle=True)
    raises(DataError, "o.npy", "cannot be read as a .npy array", path=str(objects))


def test_labels_must_match_the_inputs_and_be_class_indices(tmp_path: Path) -> None:
    x = np.zeros((5, 2))
    cases = [
        (np.arange(4), "4 labels for 5 examples"),
        (np.arange(5).reshape(5, 1), "the labels have shape [5, 1]; expected [N]"),
        (np.array([0, 1, 1.5, 2, 2.5]), "2 labels are not integers; the first at index 2: 1.5"),
        (np.array([0, 1, np.nan, 2, 3]), "1 label is NaN or infinite; the first at index 2: nan"),
        (np.array([0, -1, 1, 2, 3]), "1 label is negative; the first at index 1: -1"),
        (np.array(["a"] * 5), "the labels have dtype <U1"),
    ]
    for index, (y, fragment) in enumerate(cases):
        path = tmp_path / f"l{index}.npz"
        np.savez(path, x=x, y=y)
        raises(DataError, f"l{index}.npz", fragment, path=str(path), inputs_key="x", labels_key="y")
    rows = good_rows()
    rows[2] = "0.1,0.2,1.5"
    raises(
        DataError,
        "1 label is not an integer; the first at line 3 (example 1",
        path=csv_file(tmp_path / "d.csv", "\n".join(rows)),
        label_column=-1,
    )


@pytest.mark.parametrize("binarization", ["dynamic", "static"])
def test_binarization_needs_values_in_the_unit_interval(tmp_path: Path, binarization: str) -> None:
    x = np.full((6, 2), 0.5)
    x[3, 1] = 1.5
    x[4, 0] = -0.25
    raises(
        DataError,
        f"binarization={binarization!r}",
        "needs inputs in [0, 1]",
        "[-0.25, 1.5]",
        "2 values are outside, the first at index 3",
        path=npy(tmp_path, x),
        binarization=binarization,
    )
    test = npy(tmp_path, x[3:], "test.npy")
    raises(
        DataError,
        "test_path=",
        "needs inputs in [0, 1]",
        path=npy(tmp_path, np.full((6, 2), 0.5), "ok.npy"),
        test_path=test,
        binarization=binarization,
    )


def test_val_size_and_batch_size_against_the_data(tmp_path: Path) -> None:
    path = npy(tmp_path, np.zeros((10, 2)))
    raises(DataError, "val_size=10 must be smaller than the 10 examples", path=path, val_size=10)
    raises(
        DataError,
        "val_size=0.97 (holds out 10 examples) must be smaller than the 10",
        path=path,
        val_size=0.97,
    )
    raises(
        DataError,
        "val_size must be a count (an integer >= 0) or a fraction",
        "got -1",
        path=path,
        val_size=-1,
    )
    raises(DataError, "val_size must be", "got 1.0", path=path, val_size=1.0)
    raises(DataError, "val_size must be", "got True", path=path, val_size=True)
    raises(
        DataError,
        "batch_size=9 is larger than the training split: 8 examples",
        "minus 2 held out by val_size",
        "choose batch_size <= 8",
        path=path,
        val_size=2,
        batch_size=9,
    )
    ArrayDataModule(path, val_size=2, batch_size=8)  # the whole training split in one batch is fine


def test_reshape_must_keep_the_number_of_values(tmp_path: Path) -> None:
    path = npy(tmp_path, np.zeros((4, 6)))
    raises(
        DataError,
        "reshape=[4, 2] holds 8 values per example",
        "shape [6] (6 values)",
        path=path,
        reshape=[4, 2],
    )
    raises(DataError, "reshape must be a list of positive integers", "got [0, 6]", path=path, reshape=[0, 6])


def test_the_test_file_must_hold_the_same_features(tmp_path: Path) -> None:
    raises(
        DataError,
        "test_path=",
        "examples of shape [3]",
        "have shape [2]",
        path=npy(tmp_path, np.zeros((4, 2))),
        test_path=npy(tmp_path, np.zeros((4, 3)), "t.npy"),
    )


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"not a zip archive at all")
    raises(DataError, "bad.npz", "cannot be read as an .npz archive", path=str(tmp_path / "bad.npz"))
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    raises(
        DataError, "bad.pt", "cannot be read by torch.load(weights_only=True)", path=str(tmp_path / "bad.pt")
    )
    torch.save("a string", tmp_path / "str.pt")
    raises(DataError, "str.pt", "holds a str; expected a tensor", path=str(tmp_path / "str.pt"))
    with open(tmp_path / "archive.npy", "wb") as file:
        np.savez(file, x=np.zeros((3, 2)))
    raises(
        DataError, "archive.npy", "is an .npz archive, not an .npy array", path=str(tmp_path / "archive.npy")
    )
    with open(tmp_path / "array.npz", "wb") as file:
        np.save(file, np.zeros((3, 2)))
    raises(DataError, "array.npz", "is an .npy array, not an .npz archive", path=str(tmp_path / "array.npz"))
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81binary")
    raises(DataError, "bin.csv", "cannot be read as a UTF-8 text table", path=str(tmp_path / "bin.csv"))


def test_no_test_data_at_all(tmp_path: Path) -> None:
    data = ArrayDataModule(npy(tmp_path, np.zeros((4, 2))), val_size=0, batch_size=2)
    with pytest.raises(DataError, match=r"no test data: test_path is not set and val_size=0"):
        data.test_dataloader()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"path": None}, "path must be a path (a non-empty string); got None"),
        ({"path": 3}, "path must be a path (a non-empty string); got 3"),
        ({"path": ""}, "path must be a path (a non-empty string); got ''"),
        ({"batch_size": 0}, "batch_size must be a positive integer; got 0"),
        ({"eval_batch_size": -5}, "eval_batch_size must be a positive integer; got -5"),
        ({"binarization": "otsu"}, "binarization must be one of ['none', 'dynamic', 'static']; got 'otsu'"),
        ({"seed": -1}, "seed must be an integer in [0, 2**32); got -1"),
        ({"on_device": "yes"}, "on_device must be true or false; got 'yes'"),
        ({"header": 1}, "header must be true or false; got 1"),
        ({"label_column": 1.5}, "label_column must be a column name, a column index or None; got 1.5"),
        ({"inputs_key": 0}, "inputs_key must be a string or None; got 0"),
    ],
)
def test_bad_array_arguments(tmp_path: Path, kwargs: dict, fragment: str) -> None:
    kwargs = {"path": npy(tmp_path, np.zeros((4, 2))), **kwargs}
    raises(DataError, fragment, **kwargs)


# ----------------------------------------------------------------------------- MNISTDataModule


def mnist(root: Path, **kwargs) -> MNISTDataModule:
    data = MNISTDataModule(data_dir=str(root), download=False, **{"val_size": 40, "batch_size": 32, **kwargs})
    data.setup("fit")
    return data


def test_a_data_dir_that_does_not_exist_is_named_as_such(tmp_path: Path) -> None:
    data = MNISTDataModule(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(FileNotFoundError, match=r"data_dir='.*nowhere' does not exist \(download=False\)"):
        data.prepare_data()
    # an existing folder without the files gets the other message
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"mnist not found in .*empty/MNIST/raw \(download=False\)"):
        MNISTDataModule(data_dir=str(tmp_path / "empty"), download=False).prepare_data()
    (tmp_path / "file").write_text("")
    with pytest.raises(FileNotFoundError, match=r"data_dir='.*file' is a file, not a folder"):
        MNISTDataModule(data_dir=str(tmp_path / "file"), download=False).prepare_data()


def raw(root: Path) -> Path:
    return root / "MNIST" / "raw"


def test_a_truncated_images_file(synthetic_mnist: Path) -> None:
    path = raw(synthetic_mnist) / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    expected = 16 + 240 * 28 * 28
    message = (
        f"{path}: {expected - 100} bytes, but its header (shape [240, 28, 28]) needs 16 + {expected - 16}"
    )
    with pytest.raises(ValueError, match=re.escape(message) + ".* the file is truncated"):
        mnist(synthetic_mnist)


def test_a_file_shorter_than_its_header(synthetic_mnist: Path) -> None:
    path = raw(synthetic_mnist) / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:6])
    with pytest.raises(ValueError, match=re.escape(f"{path}: 6 bytes, shorter than the 8-byte header")):
        mnist(synthetic_mnist)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=re.escape(f"{path}: 0 bytes, too short for an IDX file")):
        mnist(synthetic_mnist)


def test_a_wrong_magic_number(synthetic_mnist: Path) -> None:
    path = raw(synthetic_mnist) / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x1f\x8b\x08\x00" + path.read_bytes()[4:])  # what a .gz file starts with
    message = f"{path}: magic number 0x1f8b0800, expected 0x00000801"
    with pytest.raises(ValueError, match=re.escape(message) + ".*compressed"):
        mnist(synthetic_mnist)


def test_header_sizes_that_do_not_fit_the_data_set(synthetic_mnist: Path) -> None:
    path = raw(synthetic_mnist) / "t10k-images-idx3-ubyte"
    write_idx(path, np.zeros((60, 27, 28)))
    with pytest.raises(
        ValueError, match=re.escape(f"{path}: header gives shape [60, 27, 28], expected [N, 28, 28]")
    ):
        mnist(synthetic_mnist)


def test_images_and_labels_of_different_counts(synthetic_mnist: Path) -> None:
    write_idx(raw(synthetic_mnist) / "train-labels-idx1-ubyte", np.arange(239) % 10)
    with pytest.raises(ValueError, match=r"holds 240 images but .*train-labels-idx1-ubyte holds 239 labels"):
        mnist(synthetic_mnist)


def test_a_label_out_of_range(synthetic_mnist: Path) -> None:
    labels = np.arange(60) % 10
    labels[7] = 200
    write_idx(raw(synthetic_mnist) / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(ValueError, match="label 200 at index 7; expected labels 0 to 9"):
        mnist(synthetic_mnist)


def test_the_real_files_pass_the_checks() -> None:
    from vae_zoo.data.mnist import default_data_dir, expected_files, missing_files, read_idx

    if missing_files("mnist", default_data_dir()):
        pytest.skip(f"real MNIST not found below {default_data_dir()} (set VAE_ZOO_DATA)")
    folder, _ = expected_files("mnist", default_data_dir())

    header = (folder / "train-images-idx3-ubyte").read_bytes()[:16]
    assert struct.unpack(">IIII", header) == (0x803, 60000, 28, 28)
    assert read_idx(folder / "t10k-labels-idx1-ubyte", (None,), "labels").shape == (10000,)


def test_mnist_batch_size_larger_than_the_training_split(synthetic_mnist: Path) -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            "batch_size=201 is larger than the training split: 200 examples (240 training images minus "
            "val_size=40); choose batch_size <= 200"
        ),
    ):
        mnist(synthetic_mnist, batch_size=201)
    mnist(synthetic_mnist, batch_size=200)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"data_dir": 5}, "data_dir must be a path (a non-empty string); got 5"),
        ({"eval_batch_size": 0}, "eval_batch_size must be a positive integer; got 0"),
        ({"seed": 2**40}, "seed must be an integer in [0, 2**32)"),
        ({"download": "no"}, "download must be true or false; got 'no'"),
        ({"test_split": "train"}, "test_split must be one of ['test', 'all']; got 'train'"),
        ({"val_size": 60000}, "val_size must be an integer in [0, 60000); got 60000"),
    ],
)
def test_bad_mnist_arguments(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        MNISTDataModule(**kwargs)


@pytest.mark.parametrize("binarization", ["none", "dynamic", "static"])
def test_test_split_all_serves_training_and_test_images(
    tmp_path: Path, binarization: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_mnist_folder(tmp_path / "data", n_train=240, n_test=60)
    with caplog.at_level(logging.INFO):
        data = mnist(root, binarization=binarization, test_split="all")
    assert "the test split is all 300 images (240 training + 60 test)" in caplog.text
    usual = mnist(root, binarization=binarization)
    x, y = (torch.cat(parts) for parts in zip(*data.test_dataloader(), strict=True))
    assert x.shape == (300, 1, 28, 28) and y.shape == (300,) and y.dtype == torch.int64
    torch.testing.assert_close(y, torch.cat([torch.arange(240) % 10, torch.arange(60) % 10]))
    torch.testing.assert_close(x[240:], usual.splits["test"][0])  # the test images, drawn as usual
    torch.testing.assert_close(data.splits["val"][0], usual.splits["val"][0])  # fit is unchanged
    # the training images in file order, as an evaluation split holds them
    from vae_zoo.data.base import split_indices

    train_index, val_index = split_indices(240, 40, seed=0)
    torch.testing.assert_close(x[val_index], usual.splits["val"][0])
    if binarization == "none":
        grey = torch.from_numpy(np.fromfile(raw(root) / "train-images-idx3-ubyte", np.uint8, offset=16))
        torch.testing.assert_close(x[:240], grey.reshape(240, 1, 28, 28).float() / 255)
    else:
        assert set(x.unique().tolist()) == {0.0, 1.0}
    if binarization == "static":
        torch.testing.assert_close(x[train_index], usual.splits["train"][0])  # the draws trained on


def test_test_split_defaults_to_the_test_images(synthetic_mnist: Path) -> None:
    assert len(mnist(synthetic_mnist).splits["test"][0]) == 60


# ----------------------------------------------------------------------------- fuzzing the constructors

ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 3, -1, 8, 2**31, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.1, 0.5, 0.99, 1.0]),
    st.text(max_size=12),
    st.sampled_from(["none", "dynamic", "static", "mnist", "kmnist", "test", "all", "label", "x", "y"]),
    st.lists(st.integers(min_value=-3, max_value=40), max_size=3),
)


def expect_clean_outcome(build, allowed: tuple[type[Exception], ...] = (ValueError, TypeError)) -> None:
    """``build()`` returns an object or raises one of ``allowed`` with a non-empty message; any
    other exception fails the test."""
    try:
        build()
    except allowed as error:
        assert str(error).strip(), f"empty message from {type(error).__name__}"


def names_no_file(value: object) -> bool:
    return isinstance(value, str) and bool(value) and "\x00" not in value and not Path(value).exists()


@pytest.fixture(scope="module")
def fuzz_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Files of 200 examples (3 values each), so that the default batch size fits."""
    folder = tmp_path_factory.mktemp("fuzz")
    x = np.random.default_rng(0).random((200, 3))
    np.save(folder / "x.npy", x)
    np.savez(folder / "x.npz", x=x, y=np.arange(200) % 2)
    rows = (f"{a},{b},{c},{i % 2}" for i, (a, b, c) in enumerate(x))
    (folder / "x.csv").write_text("a,b,c,label\n" + "\n".join(rows))
    return [str(folder / name) for name in ("x.npy", "x.npz", "x.csv")]


# values a user could well mean, so that the fuzzer also builds valid objects and combines them
PLAUSIBLE_ARRAY = {
    "val_size": [0, 5, 0.1, 0.5],
    "batch_size": [1, 16, 128],
    "eval_batch_size": [None, 1, 1000],
    "label_column": [None, "label", -1, 3, 0],
    "header": [None, True, False],
    "inputs_key": [None, "x", "y"],
    "labels_key": [None, "x", "y"],
    "binarization": ["none", "dynamic", "static"],
    "reshape": [None, [3], [1, 3], [3, 1]],
    "seed": [0, 1, 2**32 - 1],
    "on_device": [True, False],
}
PLAUSIBLE_MNIST = {
    "data_dir": [None, "./data", "/nonexistent"],
    "dataset": ["mnist", "fashion_mnist", "kmnist"],
    "batch_size": [1, 128],
    "eval_batch_size": [None, 1000],
    "val_size": [0, 5000, 59999],
    "binarization": ["none", "dynamic", "static"],
    "seed": [0, 2**32 - 1],
    "download": [True, False],
    "on_device": [True, False],
    "test_split": ["test", "all"],
}


def draw_arguments(data: st.DataObject, plausible: dict[str, list]) -> dict:
    names = data.draw(st.lists(st.sampled_from(sorted(plausible)), max_size=5, unique=True), label="names")
    return {name: draw_mostly(data, plausible[name], name) for name in names}


def draw_mostly(data: st.DataObject, plausible: list, label: str) -> object:
    """One of ``plausible`` three times in four, else anything at all."""
    wild = data.draw(st.sampled_from([False, False, False, True]), label=f"{label} is wild")
    return data.draw(ANY if wild else st.sampled_from(plausible), label=label)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_array_constructor(fuzz_files: list[str], data: st.DataObject) -> None:
    path = draw_mostly(data, fuzz_files, "path")
    kwargs = draw_arguments(data, {**PLAUSIBLE_ARRAY, "test_path": [None, *fuzz_files]})
    missing = names_no_file(path) or names_no_file(kwargs.get("test_path"))
    allowed = (ValueError, TypeError, FileNotFoundError) if missing else (ValueError, TypeError)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the hint about a column named 'label' read as a feature
        expect_clean_outcome(lambda: ArrayDataModule(path, **kwargs), allowed)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_fuzz_mnist_constructor(data: st.DataObject) -> None:
    expect_clean_outcome(lambda: MNISTDataModule(**draw_arguments(data, PLAUSIBLE_MNIST)))


def test_the_fuzzer_reaches_valid_objects(fuzz_files: list[str]) -> None:
    """The fuzz tests would pass vacuously if every draw raised: its plausible values do build."""
    data = ArrayDataModule(fuzz_files[2], label_column="label", val_size=0.0, reshape=[1, 3], on_device=False)
    assert data.input_shape == (1, 3) and data.splits["train"][1] is not None
    assert ArrayDataModule(fuzz_files[1], inputs_key="x", val_size=0.5, batch_size=16).val_size == 100
    assert MNISTDataModule(data_dir="/nonexistent", seed=2**32 - 1, test_split="all").test_split == "all"
