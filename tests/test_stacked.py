"""Several models trained by one stacked step: each equals the same model computed or trained alone."""

import mindspore as ms
import numpy as np
import pytest
from conftest import synthetic_flash_features

from attention_clusters import WorkflowInputError
from attention_clusters.checkpoints import plain_name
from attention_clusters.devices import use_device
from attention_clusters.layers import dropout_keep
from attention_clusters.model import StackedAttentionCluster, build_model, load_model
from attention_clusters.schedules import learning_rates
from attention_clusters.train import (
    RNGS,
    LossWithDropout,
    StackedLoss,
    TrainConfig,
    make_train_step,
    split_validation,
    train_models,
)


@pytest.fixture(scope="module", autouse=True)
def cpu():
    use_device("CPU", 2)


@pytest.mark.parametrize(
    "fc,natt,attention", [(1, 2, "shift"), (2, 4, "shift"), (2, 3, "noshift"), (1, 2, "average")]
)
def test_a_stack_computes_each_model_and_its_gradients(fc, natt, attention):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (3, 8, 25, 50)).astype(np.float32)
    y = rng.integers(0, 1024, (3, 8)).astype(np.int32)
    keep = np.stack([dropout_keep(rng, 8, natt * 50) for _ in range(3)])
    models = [build_model(fc, natt, attention=attention, seed=seed) for seed in (1, 2, 3)]
    for model in models if attention != "average" else []:
        # A trained network's scores: the initial zeros would give fc2's hidden layer no gradient.
        scores = rng.uniform(-0.3, 0.3, model.score_weight.shape).astype(np.float32)
        model.score_weight.set_data(ms.Tensor(scores))
    stack = StackedAttentionCluster(models)
    stacked_loss = StackedLoss(stack)
    losses = stacked_loss(ms.Tensor(x), ms.Tensor(y), ms.Tensor(keep)).asnumpy()
    grads = ms.grad(stacked_loss, None, stack.trainable_params())(ms.Tensor(x), ms.Tensor(y), ms.Tensor(keep))
    stacked_grads = {plain_name(p): g.asnumpy() for p, g in zip(stack.trainable_params(), grads, strict=True)}
    eval_logits = stack(ms.Tensor(x)).asnumpy()
    for i, model in enumerate(models):
        alone = LossWithDropout(model)
        loss = alone(ms.Tensor(x[i]), ms.Tensor(y[i]), ms.Tensor(keep[i])).asnumpy()
        np.testing.assert_allclose(losses[i], loss, rtol=1e-5)
        np.testing.assert_allclose(eval_logits[i], model(ms.Tensor(x[i])).asnumpy(), rtol=1e-4, atol=1e-5)
        model_grads = ms.grad(alone, None, model.trainable_params())(
            ms.Tensor(x[i]), ms.Tensor(y[i]), ms.Tensor(keep[i])
        )
        for param, grad in zip(model.trainable_params(), model_grads, strict=True):
            np.testing.assert_allclose(
                stacked_grads[plain_name(param)][i], grad.asnumpy(), rtol=1e-4, atol=1e-5, err_msg=param.name
            )
        for name, value in stack.model_parameters(i).items():
            np.testing.assert_array_equal(value, getattr(model, name).asnumpy())


def train_alone(features, labels, config, epochs=1):
    """The reference: one AttentionCluster with nn.Adam (make_train_step), fed the batches and
    dropout masks of its seed's generators, as the workflow trained each model before stacking.
    Returns (the model, each step's mean loss per video)."""
    train_rows, _ = split_validation(labels, config.val_fraction, config.seed)
    steps = train_rows.size // config.batch_size
    model = build_model(config.fc, config.natt, attention=config.attention, seed=config.seed)
    rates = learning_rates(config.schedule, config.lr, config.epochs, steps, config.warmup_epochs)
    step, _ = make_train_step(model, rates, config.weight_decay, config.scoring_lr_scale)
    rngs = {
        name: np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(key,)))
        for name, key in RNGS
    }
    losses = []
    for _ in range(epochs):
        order = train_rows[rngs["batch"].permutation(train_rows.size)]
        for i in range(steps):
            rows = order[i * config.batch_size : (i + 1) * config.batch_size]
            keep = dropout_keep(rngs["dropout"], config.batch_size, config.natt * 50)
            loss = step(ms.Tensor(features[rows]), ms.Tensor(labels[rows].astype(np.int32)), ms.Tensor(keep))
            losses.append(float(loss.asnumpy()) / config.batch_size)
    return model, losses


@pytest.mark.parametrize("fc,natt", [(1, 2), (2, 4)])
def test_a_model_trained_in_a_stack_equals_it_trained_alone(tmp_path, fc, natt):
    """Four models (two seeds, the first seed again with another schedule and weight decay, and with
    a slower scoring network) trained together for one epoch end with the weights and losses of
    each trained alone."""
    feats, labels = synthetic_flash_features(2)
    common = dict(fc=fc, natt=natt, epochs=1, batch_size=64)
    configs = [
        TrainConfig(**common, lr=3e-3, weight_decay=0.0, seed=1, schedule="cosine", warmup_epochs=1),
        TrainConfig(**common, lr=3e-3, weight_decay=0.0, seed=2, schedule="cosine", warmup_epochs=1),
        TrainConfig(**common, lr=1e-3, weight_decay=1e-4, seed=1),
        TrainConfig(**common, lr=3e-3, weight_decay=0.0, seed=1, schedule="cosine", scoring_lr_scale=0.1),
    ]
    outputs = [
        {"checkpoint_out": tmp_path / f"m{i}.ckpt", "history_out": tmp_path / f"h{i}.tsv"} for i in range(4)
    ]
    summaries = train_models(feats, labels, configs, tmp_path / "state", outputs)
    for i, config in enumerate(configs):
        model, losses = train_alone(feats, labels, config)
        trained = load_model(tmp_path / f"m{i}.ckpt", fc, natt)
        for param in model.trainable_params():
            name = plain_name(param)
            if name == "score_bias":
                # The softmax over the frames ignores a constant added to a unit's scores, so this
                # gradient is zero but for rounding, which Adam scales up to steps of the full rate.
                continue
            np.testing.assert_allclose(
                getattr(trained, name).asnumpy(),
                param.asnumpy(),
                rtol=1e-4,
                atol=2e-5,
                err_msg=f"model {i} {name}",
            )
        history = (tmp_path / f"h{i}.tsv").read_text().splitlines()
        assert len(history) == 2
        np.testing.assert_allclose(float(history[1].split("\t")[1]), np.mean(losses), rtol=1e-4)
        assert summaries[i]["seed"] == config.seed and summaries[i]["models_in_job"] == 4
    assert not np.allclose(
        load_model(tmp_path / "m0.ckpt", fc, natt).classifier_weight.asnumpy(),
        load_model(tmp_path / "m1.ckpt", fc, natt).classifier_weight.asnumpy(),
    )
    # The slower scoring network moved less from the same start, the other layers alike.
    start = build_model(fc, natt, seed=1)
    moved = [
        np.abs(
            load_model(tmp_path / f"m{i}.ckpt", fc, natt).score_weight.asnumpy()
            - start.score_weight.asnumpy()
        )
        for i in (0, 3)
    ]
    assert moved[1].mean() < 0.2 * moved[0].mean()


def test_models_of_other_networks_or_steps_cannot_share_a_stack(tmp_path):
    feats, labels = synthetic_flash_features(1)
    a = TrainConfig(fc=1, natt=2, epochs=2, lr=1e-3, weight_decay=0.0, batch_size=64, seed=1)
    b = TrainConfig(fc=1, natt=2, epochs=2, lr=1e-3, weight_decay=0.0, batch_size=128, seed=2)
    outputs = [
        {"checkpoint_out": tmp_path / f"m{i}.ckpt", "history_out": tmp_path / f"h{i}.tsv"} for i in range(2)
    ]
    with pytest.raises(WorkflowInputError, match=r"must agree on .*seed 2 differs from seed 1 in batch_size"):
        train_models(feats, labels, [a, b], tmp_path / "state", outputs)
    with pytest.raises(ValueError, match="a stack holds models of one kind"):
        StackedAttentionCluster([build_model(1, 2), build_model(1, 4)])
    assert not (tmp_path / "state").exists()


def test_a_model_that_stops_early_keeps_its_own_record(tmp_path, caplog):
    feats, labels = synthetic_flash_features(1)
    labels = np.random.default_rng(0).permutation(labels)  # nothing to learn: validation stalls at once
    common = dict(fc=1, natt=2, epochs=6, lr=1e-3, weight_decay=0.0, batch_size=64)
    configs = [TrainConfig(**common, seed=1, patience=1), TrainConfig(**common, seed=2)]
    outputs = [
        {"checkpoint_out": tmp_path / f"m{i}.ckpt", "history_out": tmp_path / f"h{i}.tsv"} for i in range(2)
    ]
    with caplog.at_level("INFO", logger="attention_clusters"):
        summaries = train_models(feats, labels, configs, tmp_path / "state", outputs)
    trained = [len((tmp_path / f"h{i}.tsv").read_text().splitlines()) - 1 for i in range(2)]
    assert trained[0] == summaries[0]["best_epoch"] + 1 < 6 and trained[1] == 6
    assert "seed 1, lr 0.001: stopping after epoch" in caplog.text


@pytest.mark.parametrize("short", ["feature_train.pkl", "feature_val.pkl"])
def test_a_training_job_refuses_features_with_another_frame_count(tmp_path, short):
    from attention_clusters.features import write_features
    from attention_clusters.steps import train_model as train_step

    feats, labels = synthetic_flash_features(1)
    for name in ("feature_train.pkl", "feature_val.pkl"):
        frames = 10 if name == short else 25
        write_features(tmp_path / name, [(feats[:, :frames], labels, np.arange(labels.size))])
    job = dict(fc=1, natt=2, epochs=1, lr=1e-3, weight_decay=0.0, batch_size=64, val_fraction=0.0)
    outputs = {
        name: [str(tmp_path / f"{name}.out")] for name in ("checkpoint_out", "history_out", "summary_out")
    }
    with pytest.raises(
        WorkflowInputError,
        match=short.replace(".", r"\.") + r": feature 0 is float32 \(10, 50\), expected float \(25, 50\)",
    ):
        train_step(
            features=str(tmp_path / "feature_train.pkl"),
            validation=str(tmp_path / "feature_val.pkl"),
            sweep_device="CPU",
            device="CPU",
            threads=2,
            jobs=[job],
            state_dir=str(tmp_path / "state"),
            frames=25,
            **outputs,
        )
    assert not list(tmp_path.glob("*.out")) and not (tmp_path / "state").exists()
