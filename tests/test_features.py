import os
import pickle

import numpy as np
import pytest

from attention_clusters import WorkflowInputError
from attention_clusters.features import load_features, write_features


def test_stream_reads_like_one_pickle(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.random((2100, 25, 50), dtype=np.float32)
    labels = np.arange(2100) % 1024
    chunks = (
        (feats[s : s + 500], labels[s : s + 500], np.arange(s, min(s + 500, 2100)))
        for s in range(0, 2100, 500)
    )
    write_features(tmp_path / "f.pkl", chunks)
    # The ModelZoo's own loader.
    with open(tmp_path / "f.pkl", "rb") as handle:
        obj = pickle.load(handle, encoding="bytes")
    assert isinstance(obj, tuple) and len(obj) == 3
    assert len(obj[0]) == 2100 and all(a.shape == (25, 50) and a.dtype == np.float32 for a in obj[0])
    assert np.array_equal(np.stack(obj[0]), feats)
    assert obj[1] == [int(x) for x in labels] and obj[2] == list(range(2100))
    loaded, loaded_labels, indexes = load_features(tmp_path / "f.pkl", frames=25)
    assert np.array_equal(loaded, feats) and np.array_equal(loaded_labels, labels)


def test_restricted_unpickler_refuses_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(([Exploit()], [0], [0])))
    with pytest.raises(
        WorkflowInputError, match=r"bad\.pkl: refused: global '(posix|os)\.system' is not allowed"
    ):
        load_features(tmp_path / "bad.pkl")
    assert not (tmp_path / "pwned").exists()


def test_structure_checks(tmp_path):
    def dump(obj):
        (tmp_path / "x.pkl").write_bytes(pickle.dumps(obj))
        return tmp_path / "x.pkl"

    with pytest.raises(WorkflowInputError, match="expected a tuple"):
        load_features(dump([1, 2, 3]))
    with pytest.raises(WorkflowInputError, match="expected equal counts"):
        load_features(dump(([np.zeros((25, 50), np.float32)], [0, 1], [0])))
    with pytest.raises(WorkflowInputError, match=r"feature 0 is float32 \(25, 49\)"):
        load_features(dump(([np.zeros((25, 49), np.float32)], [0], [0])))
    with pytest.raises(WorkflowInputError, match=r"labels must be integers in \[0, 1024\)"):
        load_features(dump(([np.zeros((25, 50), np.float32)], [1024], [0])))
    (tmp_path / "t.pkl").write_bytes(pickle.dumps(([np.zeros((25, 50), np.float32)], [0], [0]))[:-20])
    with pytest.raises(WorkflowInputError, match=r"t\.pkl: not a readable feature pickle"):
        load_features(tmp_path / "t.pkl")


@pytest.mark.parametrize(
    "obj,match",
    [
        ((5, [0], [0]), r"feats is int, expected a list"),
        (([np.zeros((25, 50), np.float32)], None, [0]), r"labels is NoneType, expected a list"),
        (
            ([np.zeros((25, 50), np.float32), np.zeros((24, 50), np.float32)], [0, 1], [0, 1]),
            r"feature 1 is float32 \(24, 50\), expected float \(25, 50\) like the first",
        ),
        (([np.zeros((25, 50), np.float32)], [], [0]), r"1 features, 0 labels, 1 indexes"),
        (
            ([np.zeros((25, 50), np.float32), np.full((25, 50), np.nan, np.float32)], [0, 1], [0, 1]),
            r"feature 1 holds NaN or infinite values \(1 of 2 videos\)",
        ),
    ],
    ids=["feats-not-a-list", "labels-missing", "mixed-frame-counts", "labels-short", "nan"],
)
def test_malformed_pickles_are_one_error_naming_the_file(tmp_path, obj, match):
    (tmp_path / "x.pkl").write_bytes(pickle.dumps(obj))
    with pytest.raises(WorkflowInputError, match=r"x\.pkl: " + match):
        load_features(tmp_path / "x.pkl")


def test_frame_count_is_checked_against_the_config(tmp_path):
    (tmp_path / "x.pkl").write_bytes(pickle.dumps(([np.zeros((24, 50), np.float32)], [0], [0])))
    assert load_features(tmp_path / "x.pkl")[0].shape == (1, 24, 50)
    with pytest.raises(
        WorkflowInputError, match=r"x\.pkl: feature 0 is float32 \(24, 50\), expected float \(25, 50\)"
    ):
        load_features(tmp_path / "x.pkl", frames=25)
