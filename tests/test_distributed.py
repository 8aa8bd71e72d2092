"""Data-parallel training with msrun: real ranks (processes on this CPU), gradients averaged."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from attention_clusters import StepFailed
from attention_clusters.distributed import launch_training
from attention_clusters.features import write_features
from attention_clusters.train import rank_rows

sys.path.insert(0, str(Path(__file__).parent))
from conftest import synthetic_flash_features  # noqa: E402

pytestmark = pytest.mark.slow
# The settings of test_model's short training, which reaches > 20 % top-1 with one worker.
JOB = dict(
    fc=1,
    natt=16,
    attention="shift",
    epochs=6,
    lr=5e-3,
    weight_decay=0.0,
    batch_size=64,
    val_fraction=0.1,
    seed=1,
)


def test_ranks_take_disjoint_slices_of_each_global_batch():
    order = np.random.default_rng(0).permutation(1000)
    for step in range(3):
        rows = [order[rank_rows(step, 64, rank, 4)] for rank in range(4)]
        together = np.concatenate(rows)
        assert together.size == 256 and np.unique(together).size == 256
        np.testing.assert_array_equal(together, order[step * 256 : (step + 1) * 256])
    assert rank_rows(5, 64) == slice(320, 384)  # one worker: the plain batches


def _features(path, k, seed, poison=False):
    feats, labels = synthetic_flash_features(k, seed)
    if (
        poison
    ):  # finite (the pickle's check refuses NaN), but the first products overflow: the loss is not finite
        feats[:] = np.float32(3e38)
    write_features(path, [(feats, labels, np.arange(labels.size))])
    return path


def _launch(tmp_path, features, **overrides):
    out = tmp_path / "model"
    spec = dict(
        jobs=[dict(JOB, **overrides)],
        features=str(features),
        device="CPU",
        threads=2,
        state_dir=str(out / "state"),
        outputs=[dict(checkpoint_out=str(out / "model.ckpt"), history_out=str(out / "history.tsv"))],
    )
    rule_log = tmp_path / "train.log"
    rule_log.touch()
    (summary,) = launch_training(spec, 2, tmp_path / "workers", rule_log)
    return summary, out, rule_log


def test_two_workers_average_gradients_and_reach_the_one_worker_range(tmp_path):
    from attention_clusters.devices import use_device
    from attention_clusters.metrics import evaluate
    from attention_clusters.model import load_model

    use_device("CPU", 2)
    summary, out, rule_log = _launch(tmp_path, _features(tmp_path / "feature_train.pkl", 6, 0))
    assert summary["workers"] == 2 and summary["epochs"] == 6
    assert (out / "model.ckpt").exists() and (out / "state/state.json").exists()
    assert len((out / "history.tsv").read_text().splitlines()) == 7
    # Same weights on both ranks although each trained on other videos: the gradients were averaged.
    logs = [(tmp_path / f"workers/worker_{rank}.log").read_text() for rank in (0, 1)]
    digests = [
        re.search(r"rank %d of 2: final weights sha256 (\w+)" % rank, text).group(1)
        for rank, text in enumerate(logs)
    ]
    assert digests[0] == digests[1]
    # Rank 0 alone evaluates and writes, into the rule's log; rank 1 only reports its shard.
    assert "validation top-1" in rule_log.read_text() and "rank 1" not in rule_log.read_text()
    assert "validation top-1" not in logs[1] and "epoch 6: 43 steps" in logs[1]
    # Accuracy in the range of one worker (test_model's short training: > 20 % top-1, chance 1/1024).
    test_feats, test_labels = synthetic_flash_features(1, seed=5)
    top1, top5, _ = evaluate(load_model(out / "model.ckpt", 1, 16), test_feats, test_labels)
    print(f"2 workers: top-1 {top1:.3f}, top-5 {top5:.3f}")
    assert top1 > 0.2 and top5 > top1, (top1, top5, summary)


def test_a_failing_rank_fails_the_job_naming_its_log(tmp_path):
    features = _features(tmp_path / "feature_train.pkl", 1, 0, poison=True)
    with pytest.raises(StepFailed, match=r"msrun exit code .*worker_\d\.log: .*loss is (nan|inf)"):
        _launch(tmp_path, features, epochs=2)
    assert not (tmp_path / "model/model.ckpt").exists()
    assert not (tmp_path / "workers/result.json").exists()
    assert json.loads((tmp_path / "workers/spec.json").read_text())["workers"] == 2
