import json

import numpy as np
import pytest

from attention_clusters import WorkflowInputError  # noqa: E402
from attention_clusters.checkpoints import save_model  # noqa: E402
from attention_clusters.devices import use_device  # noqa: E402
from attention_clusters.inference import export_mindir, infer, load_mindir, postprocess, read_raw  # noqa: E402
from attention_clusters.metrics import evaluate  # noqa: E402
from attention_clusters.model import (
    build_model,  # noqa: E402
    load_model,  # noqa: E402
)


@pytest.fixture(scope="module", autouse=True)
def cpu():
    use_device("CPU", 2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inference")
    save_model(build_model(2, 4, seed=7), tmp / "model.ckpt")
    export_mindir(tmp / "model.ckpt", 2, 4, "shift", 64, 25, 50, tmp / "model.mindir")  # fixed batch of 64
    export_mindir(tmp / "model.ckpt", 2, 4, "shift", None, 25, 50, tmp / "dynamic.mindir")
    rng = np.random.default_rng(0)
    feats = rng.normal(0, 1, (150, 25, 50)).astype(np.float32)  # 150 = 2 batches of 64 + 22
    labels = rng.integers(0, 1024, 150)
    feats.astype("<f4").tofile(tmp / "features.bin")
    labels.astype("<f4").tofile(tmp / "labels.bin")
    return tmp, feats, labels


@pytest.mark.parametrize("batch", [1, 64, 100])
def test_dynamic_batch_mindir_runs_any_batch_and_equals_eval(exported, batch, tmp_path):
    tmp, feats, labels = exported
    infer(
        tmp / "dynamic.mindir",
        tmp / "features.bin",
        batch,
        25,
        50,
        tmp_path / "logits.bin",
        tmp_path / "t.json",
    )
    logits = read_raw(tmp_path / "logits.bin", (1024,), "logits")
    _, _, predictions = evaluate(load_model(tmp / "model.ckpt", 2, 4), feats, labels)
    assert logits.shape == (150, 1024) and np.array_equal(logits.argmax(axis=1), predictions)
    timing = json.loads((tmp_path / "t.json").read_text())
    assert timing["batches"] == -(-150 // batch) and timing["batch_size"] == batch


def test_mindir_inference_equals_eval(exported):
    tmp, feats, labels = exported
    infer(
        tmp / "model.mindir",
        tmp / "features.bin",
        64,
        25,
        50,
        tmp / "logits.bin",
        tmp / "latency.json",
        fixed_batch=True,
    )
    logits = read_raw(tmp / "logits.bin", (1024,), "logits")
    assert logits.shape == (150, 1024)
    _, _, predictions = evaluate(load_model(tmp / "model.ckpt", 2, 4), feats, labels)
    np.save(tmp / "eval.npy", predictions)
    assert np.array_equal(logits.argmax(axis=1), predictions)
    postprocess(
        tmp / "logits.bin", tmp / "labels.bin", tmp / "latency.json", tmp / "eval.npy", tmp / "m.json"
    )
    metrics = json.loads((tmp / "m.json").read_text())
    assert metrics["agrees_with_eval"] and metrics["videos"] == 150 and metrics["batches"] == 3
    assert metrics["videos_per_second"] > 0 and 0 <= metrics["top1"] <= metrics["top5"] <= 1


def test_missing_and_corrupt_mindir(tmp_path):
    with pytest.raises(WorkflowInputError, match=r"nothing\.mindir: MINDIR file is missing"):
        load_mindir(tmp_path / "nothing.mindir")
    (tmp_path / "bad.mindir").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(WorkflowInputError, match=r"bad\.mindir: not a readable MINDIR model"):
        load_mindir(tmp_path / "bad.mindir")


def test_bad_input_files(exported, tmp_path):
    tmp, _, _ = exported
    (tmp_path / "short.bin").write_bytes(b"\x00" * (25 * 50 * 4 + 12))
    with pytest.raises(
        WorkflowInputError, match=r"short\.bin: 5012 bytes is not a whole number of feature rows"
    ):
        infer(
            tmp / "model.mindir", tmp_path / "short.bin", 64, 25, 50, tmp_path / "l.bin", tmp_path / "t.json"
        )
    assert not (tmp_path / "l.bin").exists()
    with pytest.raises(WorkflowInputError, match=r"gone\.bin: feature file is missing"):
        infer(
            tmp / "model.mindir", tmp_path / "gone.bin", 64, 25, 50, tmp_path / "l.bin", tmp_path / "t.json"
        )
    np.zeros((149, 25, 50), "<f4").tofile(tmp_path / "cut.bin")  # a whole video short of the labels
    with pytest.raises(
        WorkflowInputError, match=r"cut\.bin: 149 videos of features for 150 labels in .*labels\.bin"
    ):
        infer(
            tmp / "dynamic.mindir",
            tmp_path / "cut.bin",
            64,
            25,
            50,
            tmp_path / "l.bin",
            tmp_path / "t.json",
            labels_bin=tmp / "labels.bin",
        )
    assert not (tmp_path / "l.bin").exists()
    np.zeros((3, 1024), "<f4").tofile(tmp_path / "logits.bin")
    with pytest.raises(WorkflowInputError, match=r"logits\.bin: 3 rows of logits for 150 labels"):
        postprocess(
            tmp_path / "logits.bin",
            tmp / "labels.bin",
            tmp / "latency.json",
            tmp / "eval.npy",
            tmp_path / "m.json",
        )
