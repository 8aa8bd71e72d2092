import gzip
import struct

import numpy as np
import pytest

from attention_clusters import WorkflowInputError
from attention_clusters.idx import load_mnist, read_idx, write_idx


def test_round_trip_and_deterministic_bytes(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "a.gz", images)
    write_idx(tmp_path / "b.gz", images)
    assert np.array_equal(read_idx(tmp_path / "a.gz", "images"), images)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    labels = np.arange(7, dtype=np.uint8)
    write_idx(tmp_path / "l.gz", labels)
    assert np.array_equal(read_idx(tmp_path / "l.gz", "labels"), labels)
    assert not list(tmp_path.glob("*.part"))


def test_truncated_gzip_names_file(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((50, 28, 28), np.uint8) + 3)
    data = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(WorkflowInputError, match=r"x\.gz.*gzip"):
        read_idx(tmp_path / "x.gz")


def test_wrong_magic_names_file_and_expected(tmp_path):
    with gzip.open(tmp_path / "m.gz", "wb") as handle:
        handle.write(struct.pack(">IIII", 0x00000804, 1, 28, 28) + bytes(784))
    with pytest.raises(WorkflowInputError, match=r"m\.gz: IDX magic number 0x00000804, expected 0x00000803"):
        read_idx(tmp_path / "m.gz")


def test_count_mismatch(tmp_path):
    with gzip.open(tmp_path / "c.gz", "wb") as handle:
        handle.write(struct.pack(">IIII", 0x00000803, 5, 28, 28) + bytes(784 * 4))
    with pytest.raises(WorkflowInputError, match=r"c\.gz: header says 5 images"):
        read_idx(tmp_path / "c.gz")


def test_images_and_labels_disagree(tmp_path):
    paths = {k: tmp_path / f"{k}.gz" for k in ("train_images", "train_labels", "test_images", "test_labels")}
    write_idx(paths["train_images"], np.zeros((4, 28, 28), np.uint8))
    write_idx(paths["train_labels"], np.zeros(3, np.uint8))
    write_idx(paths["test_images"], np.zeros((2, 28, 28), np.uint8))
    write_idx(paths["test_labels"], np.zeros(2, np.uint8))
    with pytest.raises(WorkflowInputError, match=r"train_labels\.gz: 3 labels for 4 images"):
        load_mnist(paths)
    with pytest.raises(WorkflowInputError, match="holds IDX labels, expected images"):
        read_idx(paths["train_labels"], "images")
