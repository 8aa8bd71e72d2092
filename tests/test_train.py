"""Training: the stacked step, validation and best epochs, resumable state, stopping rules."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from conftest import synthetic_flash_features

from attention_clusters import WorkflowInputError  # noqa: E402
from attention_clusters.devices import use_device  # noqa: E402
from attention_clusters.layers import dropout_keep  # noqa: E402
from attention_clusters.metrics import evaluate  # noqa: E402
from attention_clusters.model import (
    build_model,
    load_model,  # noqa: E402
    parameter_count,
)
from attention_clusters.train import TrainConfig, split_validation, train_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def cpu():
    use_device("CPU", 2)


def test_short_training_is_far_above_chance(tmp_path):
    feats, labels = synthetic_flash_features(6)
    config = TrainConfig(fc=1, natt=16, epochs=6, lr=5e-3, weight_decay=0.0, batch_size=64)
    summary = train_model(
        feats,
        labels,
        config,
        state_dir=tmp_path / "state",
        checkpoint_out=tmp_path / "model.ckpt",
        history_out=tmp_path / "history.tsv",
    )
    test_feats, test_labels = synthetic_flash_features(1, seed=5)
    model = load_model(tmp_path / "model.ckpt", 1, 16)
    top1, top5, _ = evaluate(model, test_feats, test_labels)
    assert top1 > 0.2 and top5 > top1, (top1, top5, summary)  # chance is 1/1024
    history = (tmp_path / "history.tsv").read_text().splitlines()
    assert (
        history[0].split("\t") == ["epoch", "loss", "val_top1", "val_top5", "seconds"] and len(history) == 7
    )
    assert 1 <= summary["best_epoch"] <= 6 and summary["parameters"] == parameter_count(model)


def test_dropout_masks_are_seeded_scaled_and_balanced():
    masks = dropout_keep(np.random.default_rng(5), 64, 6400)
    assert masks.dtype == np.float32 and masks.shape == (64, 6400)
    assert set(np.unique(masks)) == {0.0, 2.0}  # kept units scaled by 1 / (1 - 0.5)
    assert abs(float((masks > 0).mean()) - 0.5) < 0.01
    assert np.array_equal(masks, dropout_keep(np.random.default_rng(5), 64, 6400))
    assert not np.array_equal(masks, dropout_keep(np.random.default_rng(6), 64, 6400))
    for bit in range(8):  # each bit position of the packed random bytes is a fair coin
        assert abs(float((masks[:, bit::8] > 0).mean()) - 0.5) < 0.02
    odd = dropout_keep(np.random.default_rng(5), 3, 13)  # widths that are not whole bytes
    assert odd.shape == (3, 13) and set(np.unique(odd)) <= {0.0, 2.0}


def test_validation_split_is_held_out():
    labels = np.repeat(np.arange(1024), 3)
    train, val = split_validation(labels, 0.1, 1)
    assert val.size == round(0.1 * labels.size) and not set(train) & set(val)
    assert train.size + val.size == labels.size


def test_validation_videos_choose_the_best_epoch_and_every_training_video_trains(tmp_path):
    feats, labels = synthetic_flash_features(1)
    val_feats, val_labels = synthetic_flash_features(1, seed=9)
    config = TrainConfig(fc=1, natt=4, epochs=3, lr=5e-3, weight_decay=0.0, batch_size=128, val_fraction=0.0)
    out = dict(checkpoint_out=tmp_path / "model.ckpt", history_out=tmp_path / "history.tsv")
    summary = train_model(
        feats, labels, config, tmp_path / "state", **out, validation=(val_feats, val_labels)
    )
    assert summary["videos"] == 1024 and summary["validation_videos"] == 1024
    history = np.loadtxt(tmp_path / "history.tsv", skiprows=1, ndmin=2)
    assert summary["best_epoch"] == 1 + int(np.argmax(history[:, 2]))
    top1, _, _ = evaluate(load_model(tmp_path / "model.ckpt", 1, 4), val_feats, val_labels)
    assert top1 == pytest.approx(summary["best_val_top1"], abs=1e-6)
    with pytest.raises(WorkflowInputError, match="val_fraction is 0.1 but validation videos are given"):
        held_out = TrainConfig(fc=1, natt=4, epochs=1, lr=5e-3, weight_decay=0.0, batch_size=128)
        train_model(feats, labels, held_out, tmp_path / "other", **out, validation=(val_feats, val_labels))


TRAIN_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from attention_clusters.devices import use_device
from attention_clusters.train import TrainConfig, train_models
from conftest import synthetic_flash_features
use_device("CPU", 2)
feats, labels = synthetic_flash_features(2)
out = sys.argv[1]
common = dict(fc=2, natt=4, epochs=6, weight_decay=1e-4, batch_size=64)
configs = [TrainConfig(**common, lr=1e-3, seed=1), TrainConfig(**common, lr=3e-3, seed=2, schedule="cosine")]
outputs = [dict(checkpoint_out=out + "/model%d.ckpt" % i, history_out=out + "/history%d.tsv" % i) for i in range(2)]
train_models(feats, labels, configs, out + "/state", outputs)
"""


def _train(out, kill_after_epoch=None):
    script = TRAIN_SCRIPT.format(tests=str(ROOT / "tests"))
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(out)],
        env=dict(os.environ, GLOG_v="3"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if kill_after_epoch is None:
        assert proc.wait(timeout=600) == 0
        return
    state = Path(out) / "state/state.json"
    deadline = time.time() + 600
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["epoch"] >= kill_after_epoch:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    _train(tmp_path / "straight")
    _train(tmp_path / "killed", kill_after_epoch=2)
    assert not (tmp_path / "killed/model0.ckpt").exists()
    done = json.loads((tmp_path / "killed/state/state.json").read_text())["epoch"]
    assert 2 <= done < 6
    _train(tmp_path / "killed")
    for i in range(2):  # both models of the stack
        straight = ms.load_checkpoint(str(tmp_path / f"straight/model{i}.ckpt"))
        resumed = ms.load_checkpoint(str(tmp_path / f"killed/model{i}.ckpt"))
        assert straight.keys() == resumed.keys()
        for name in straight:
            np.testing.assert_array_equal(straight[name].asnumpy(), resumed[name].asnumpy(), err_msg=name)
        history = [
            (tmp_path / run / f"history{i}.tsv").read_text().splitlines() for run in ("straight", "killed")
        ]
        # The same epochs, validation figures and (to float rounding: MindSpore's summing kernels
        # need not add in the same order in a new process) mean losses.
        table = [np.array([line.split("\t")[:4] for line in h[1:]], float) for h in history]
        assert history[0][0] == history[1][0] and table[0].shape == table[1].shape == (6, 4)
        np.testing.assert_array_equal(table[0][:, [0, 2, 3]], table[1][:, [0, 2, 3]])
        np.testing.assert_allclose(table[0][:, 1], table[1][:, 1], rtol=1e-6)


def test_nan_loss_stops_with_clear_error(tmp_path):
    feats, labels = synthetic_flash_features(1)
    feats[:] = np.nan
    with pytest.raises(FloatingPointError, match=r"epoch 1 step 1: loss is nan; stopping"):
        train_model(
            feats,
            labels,
            TrainConfig(fc=1, natt=2, epochs=2, lr=1e-3, weight_decay=0.0, batch_size=64),
            tmp_path / "s",
            tmp_path / "m.ckpt",
            tmp_path / "h.tsv",
        )
    assert not (tmp_path / "m.ckpt").exists()


def test_weight_decay_applies_to_every_parameter():
    # nn.Adam's default would exempt parameters named like "beta" (the shifting operation's beta).
    from attention_clusters.train import make_train_step

    model = build_model(2, 4)
    _, optimizer = make_train_step(model, 1e-3, 1e-4)
    names = [p.name for p in optimizer.parameters]
    assert any(name.endswith("beta") for name in names) and all(optimizer.decay_flags), names
    _, optimizer = make_train_step(model, 1e-3, 0.0)
    assert not any(optimizer.decay_flags)


def summed_cross_entropy(logits, labels):
    """The batch's summed softmax cross-entropy in float64, computed stably in NumPy."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(labels.size), labels].sum()


def test_step_loss_is_summed_over_the_batch_as_in_the_seed():
    """The ModelZoo's loss had reduction "none" (MindSpore differentiates it as the sum); with Adam the
    loss's scale sets the weight decay's strength, so the step must use the sum, not the mean."""
    import mindspore as ms

    from attention_clusters.train import make_train_step

    model = build_model(1, 4)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (16, 25, 50)).astype(np.float32)
    y = rng.integers(0, 1024, 16).astype(np.int32)
    model.set_train(False)
    summed = summed_cross_entropy(model(ms.Tensor(x)).asnumpy(), y)
    step, _ = make_train_step(model, 1e-3, 1e-4)
    loss = float(step(ms.Tensor(x), ms.Tensor(y), ms.Tensor(np.ones((16, 200), np.float32))).asnumpy())
    np.testing.assert_allclose(loss, summed, rtol=1e-4)


def test_step_loss_stays_finite_for_large_logit_gaps():
    """MindSpore's fused SparseSoftmaxCrossEntropyWithLogits returns inf on CPU once a target's logit is
    ~90 below the largest; the step's loss must be the true (large, finite) cross-entropy."""
    from attention_clusters.train import make_train_step

    model = build_model(1, 4, seed=5)
    model.classifier_weight.set_data(ms.Tensor(model.classifier_weight.asnumpy() * 2000))
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (8, 25, 50)).astype(np.float32)
    y = rng.integers(0, 1024, 8).astype(np.int32)
    model.set_train(False)
    logits = model(ms.Tensor(x)).asnumpy().astype(np.float64)
    assert (logits.max(axis=1) - logits[np.arange(8), y]).max() > 200
    expected = summed_cross_entropy(logits, y)
    step, _ = make_train_step(model, 1e-3, 0.0)
    loss = float(step(ms.Tensor(x), ms.Tensor(y), ms.Tensor(np.ones((8, 200), np.float32))).asnumpy())
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def _short_run(tmp_path, feats, labels, epochs, inputs, caplog, **schedule):
    caplog.clear()
    config = TrainConfig(fc=1, natt=2, epochs=epochs, lr=1e-3, weight_decay=0.0, batch_size=64, **schedule)
    with caplog.at_level(logging.INFO, logger="attention_clusters"):
        summary = train_model(
            feats, labels, config, tmp_path / "state", tmp_path / "m.ckpt", tmp_path / "h.tsv", inputs=inputs
        )
    return summary, caplog.text


def test_a_state_from_other_inputs_or_code_is_discarded(tmp_path, caplog):
    feats, labels = synthetic_flash_features(1)
    _short_run(tmp_path, feats, labels, 2, {"features_sha256": "aaa", "code": "c1"}, caplog)
    # Same settings and inputs: the finished state is resumed (no epoch is trained again).
    _, text = _short_run(tmp_path, feats, labels, 2, {"features_sha256": "aaa", "code": "c1"}, caplog)
    assert "resuming after epoch 2 of 2" in text and "epoch 1/2" not in text
    # Other features or other code: discarded, with a line saying what differs, and trained afresh.
    _, text = _short_run(tmp_path, feats, labels, 2, {"features_sha256": "bbb", "code": "c1"}, caplog)
    assert "discarding it and starting afresh" in text and "features_sha256" in text and "epoch 1/2" in text
    _, text = _short_run(tmp_path, feats, labels, 2, {"features_sha256": "bbb", "code": "c2"}, caplog)
    assert "(code differ)" in text and "epoch 1/2" in text


def test_a_damaged_state_is_discarded_with_a_warning(tmp_path, caplog):
    feats, labels = synthetic_flash_features(1)
    inputs = {"features_sha256": "aaa"}
    _short_run(tmp_path, feats, labels, 2, inputs, caplog)
    (tmp_path / "state/state.json").write_text('{"epoch": 2, "sett')
    _, text = _short_run(tmp_path, feats, labels, 2, inputs, caplog)
    assert "is unreadable (JSONDecodeError" in text and "epoch 1/2" in text
    next(iter((tmp_path / "state").glob("epoch-*.ckpt"))).write_bytes(b"not a checkpoint")
    _, text = _short_run(tmp_path, feats, labels, 2, inputs, caplog)
    assert "state checkpoint" in text and "is unreadable" in text and "epoch 1/2" in text


def test_patience_stops_training_when_validation_stalls(tmp_path, caplog):
    feats, labels = synthetic_flash_features(1)
    labels = np.random.default_rng(0).permutation(labels)  # nothing to learn: validation stalls at once
    summary, text = _short_run(
        tmp_path, feats, labels, 30, None, caplog, patience=2, schedule="cosine", warmup_epochs=1
    )
    trained = len((tmp_path / "h.tsv").read_text().splitlines()) - 1
    assert trained == summary["best_epoch"] + 2 < 30
    assert f"stopping after epoch {trained}: validation top-1 has not improved for 2 epochs" in text


def test_a_state_directory_that_is_a_link_is_refused_before_training(tmp_path):
    feats, labels = synthetic_flash_features(1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "epoch-0001.ckpt").write_text("the user's file")
    (tmp_path / "state").symlink_to(elsewhere, target_is_directory=True)
    config = TrainConfig(fc=1, natt=2, epochs=1, lr=1e-3, weight_decay=0.0, batch_size=64)
    out = dict(checkpoint_out=tmp_path / "model.ckpt", history_out=tmp_path / "history.tsv")
    with pytest.raises(WorkflowInputError, match="state directory .*state is a symbolic link"):
        train_model(feats, labels, config, tmp_path / "state", **out)
    assert [p.name for p in elsewhere.iterdir()] == ["epoch-0001.ckpt"] and not (
        tmp_path / "model.ckpt"
    ).exists()
