"""Reading and writing MNIST's IDX files (gzip-compressed, big-endian header)."""

import gzip
import struct
import zlib

import numpy as np

from . import WorkflowInputError
from .atomic import atomic_open

MNIST_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def read_idx(path, expect=None):
    """Read one `.gz` IDX file into a uint8 array; `expect` is "images" or "labels"."""
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as err:
        raise WorkflowInputError(f"{path}: not a complete gzip file ({err})") from err
    if len(data) < 8:
        raise WorkflowInputError(f"{path}: IDX header truncated ({len(data)} bytes)")
    magic, count = struct.unpack(">II", data[:8])
    if magic == IMAGES_MAGIC:
        kind, header = "images", 16
        if len(data) < header:
            raise WorkflowInputError(f"{path}: IDX image header truncated")
        rows, cols = struct.unpack(">II", data[8:16])
        shape = (count, rows, cols)
    elif magic == LABELS_MAGIC:
        kind, header, shape = "labels", 8, (count,)
    else:
        raise WorkflowInputError(
            f"{path}: IDX magic number 0x{magic:08x}, expected 0x{IMAGES_MAGIC:08x} "
            f"(images) or 0x{LABELS_MAGIC:08x} (labels)"
        )
    if expect is not None and kind != expect:
        raise WorkflowInputError(f"{path}: holds IDX {kind}, expected {expect}")
    expected_bytes = int(np.prod(shape))
    if len(data) - header != expected_bytes:
        raise WorkflowInputError(
            f"{path}: header says {count} {kind} of shape {shape[1:]} ({expected_bytes} bytes) "
            f"but the file holds {len(data) - header} bytes of data"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path, array):
    """Write a uint8 array (N,) or (N, rows, cols) as a gzip IDX file, atomically.

    gzip's header time is fixed at 0 so the same array gives the same bytes.
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if array.ndim == 3:
        header = struct.pack(">IIII", IMAGES_MAGIC, *array.shape)
    elif array.ndim == 1:
        header = struct.pack(">II", LABELS_MAGIC, array.shape[0])
    else:
        raise ValueError(f"IDX arrays are (N,) or (N, rows, cols), not {array.shape}")
    with atomic_open(path) as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle:
            handle.write(header)
            handle.write(array.tobytes())


def load_mnist(paths):
    """Load the four MNIST files; `paths` maps train_images, train_labels, test_images, test_labels."""
    data = {key: read_idx(paths[key], "images" if key.endswith("images") else "labels") for key in MNIST_KEYS}
    for split in ("train", "test"):
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise WorkflowInputError(
                f"{paths[f'{split}_labels']}: {labels.shape[0]} labels for "
                f"{images.shape[0]} images in {paths[f'{split}_images']}"
            )
        if images.shape[1:] != (28, 28):
            raise WorkflowInputError(
                f"{paths[f'{split}_images']}: images are {images.shape[1:]}, expected (28, 28)"
            )
        if labels.size and labels.max() > 9:
            raise WorkflowInputError(
                f"{paths[f'{split}_labels']}: label {int(labels.max())} found, expected 0..9"
            )
    return data
