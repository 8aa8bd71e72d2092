import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops  # noqa: E402

from attention_clusters.devices import use_device  # noqa: E402
from attention_clusters.extractor import PlainFrameFeatureExtractor, build_network, load_extractor
from attention_clusters.features import extract_video_features, feature_function
from attention_clusters.noise import NoiseSampler, pixel_histogram  # noqa: E402
from attention_clusters.noisy_mnist import write_noisy_mnist  # noqa: E402
from attention_clusters.pretrain import dropout_masks, pretraining_cells, train_extractor


@pytest.fixture(scope="module", autouse=True)
def cpu():
    use_device("CPU", 2)


def test_banded_network_equals_conv2d_reference():
    net = build_network(3)
    ref = PlainFrameFeatureExtractor().load_from(net)
    ref.set_train(False)
    frames = np.random.default_rng(0).integers(0, 256, (96, 28, 28)).astype(np.uint8)
    ours = feature_function(net)(frames)
    theirs = ref(ms.Tensor(frames)).asnumpy()
    assert ours.shape == (96, 50)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
    np.testing.assert_allclose(np.exp(ours).sum(axis=1), 1.0, atol=1e-5)


def test_hand_written_backward_equals_conv2d_reference_gradients():
    """The band products' and max-pools' own backward passes give the gradients that
    MindSpore's autodiff gives for the plain nn.Conv2d / nn.MaxPool2d network."""

    class ReferencePretraining(nn.Cell):
        def __init__(self):
            super().__init__()
            self.trunk = PlainFrameFeatureExtractor()
            self.fc2 = nn.Dense(50, 11)
            self.loss = nn.NLLLoss()

        def construct(self, frames, labels):
            return self.loss(ops.log_softmax(self.fc2(self.trunk(frames)), axis=1), labels)

    net = build_network(5)
    ref = ReferencePretraining()
    for name, cell in (
        ("conv1", ref.trunk.conv1),
        ("conv2", ref.trunk.conv2),
        ("fc1", ref.trunk.fc1),
        ("fc2", ref.fc2),
    ):
        cell.weight.set_data(getattr(net, f"{name}_weight").value())
        cell.bias.set_data(getattr(net, f"{name}_bias").value())
    rng = np.random.default_rng(1)
    frames = ms.Tensor(rng.integers(0, 256, (64, 28, 28)).astype(np.uint8))
    labels = ms.Tensor(rng.integers(0, 11, 64).astype(np.int32))
    no_dropout = [ms.Tensor(np.ones_like(m)) for m in dropout_masks(rng, 64)]
    pretrain, _ = pretraining_cells(net)
    ours = nn.ForwardValueAndGrad(pretrain, weights=pretrain.trainable_params(), get_by_list=True)
    theirs = nn.ForwardValueAndGrad(ref, weights=ref.trainable_params(), get_by_list=True)
    our_loss, our_grads = ours(frames, labels, *no_dropout)
    their_loss, their_grads = theirs(frames, labels)
    np.testing.assert_allclose(our_loss.asnumpy(), their_loss.asnumpy(), rtol=1e-5)
    our_by_name = {p.name: g.asnumpy() for p, g in zip(pretrain.trainable_params(), our_grads, strict=True)}
    their_by_name = {p.name: g.asnumpy() for p, g in zip(ref.trainable_params(), their_grads, strict=True)}
    for layer, cell_path in (
        ("conv1", "trunk.conv1"),
        ("conv2", "trunk.conv2"),
        ("fc1", "trunk.fc1"),
        ("fc2", "fc2"),
    ):
        for kind in ("weight", "bias"):
            theirs_grad = their_by_name[f"{cell_path}.{kind}"]
            ours_grad = next(g for name, g in our_by_name.items() if name.endswith(f"{layer}_{kind}"))
            assert np.abs(theirs_grad).max() > 0, (layer, kind)
            np.testing.assert_allclose(
                ours_grad,
                theirs_grad,
                rtol=1e-4,
                atol=1e-6 * np.abs(theirs_grad).max(),
                err_msg=f"{layer}_{kind}",
            )


def test_synthetic_digits_are_learnable(tmp_path, tiny_mnist):
    """Pre-training on synthetic Noisy-MNIST gets far above the 1/11 chance level."""
    sampler = NoiseSampler(pixel_histogram(tiny_mnist["train_images"], tiny_mnist["test_images"]))
    for split, repeats, noise in (("train", 12, 400), ("test", 1, 20)):
        write_noisy_mnist(
            tiny_mnist[f"{split}_images"],
            tiny_mnist[f"{split}_labels"],
            sampler,
            repeats=repeats,
            noise_count=noise,
            seed=1,
            split=split,
            images_out=tmp_path / f"{split}_i.npy",
            labels_out=tmp_path / f"{split}_l.npy",
        )
    splits = [np.load(tmp_path / f"{split}_{part}.npy") for split in ("train", "test") for part in "il"]
    settings = dict(epochs=2, batch_size=64, lr=1e-3, seed=1)
    metrics = train_extractor(
        *splits, **settings, checkpoint_out=tmp_path / "x.ckpt", state_dir=tmp_path / "s1"
    )
    assert metrics["test_accuracy"] > 0.6, metrics
    # Same seed, same weights: training is reproducible on CPU whatever the thread count.
    train_extractor(*splits, **settings, checkpoint_out=tmp_path / "y.ckpt", state_dir=tmp_path / "s2")
    first, second = ms.load_checkpoint(str(tmp_path / "x.ckpt")), ms.load_checkpoint(str(tmp_path / "y.ckpt"))
    assert all(np.array_equal(first[k].asnumpy(), second[k].asnumpy()) for k in first)
    # The checkpoint reloads into the same function, and videos go through it in chunks.
    net = load_extractor(tmp_path / "x.ckpt")
    videos = np.load(tmp_path / "test_i.npy")[:100].reshape(4, 25, 28, 28)
    np.save(tmp_path / "videos.npy", videos)
    chunks = list(extract_video_features(tmp_path / "videos.npy", net, videos_per_chunk=3))
    assert [start for start, _ in chunks] == [0, 3]
    feats = np.concatenate([f for _, f in chunks])
    assert feats.shape == (4, 25, 50) and feats.dtype == np.float32
    np.testing.assert_allclose(
        feats.reshape(100, 50), feature_function(net)(videos.reshape(100, 28, 28)), atol=1e-5
    )


def test_a_pretraining_cut_short_resumes_to_the_same_weights(tmp_path, tiny_mnist, monkeypatch):
    images, labels = tiny_mnist["train_images"], tiny_mnist["train_labels"]
    splits = (images, labels, images[:64], labels[:64])
    settings = dict(epochs=3, batch_size=64, lr=1e-3, seed=2, schedule="cosine", warmup_epochs=0.5)
    straight = train_extractor(
        *splits, **settings, checkpoint_out=tmp_path / "a.ckpt", state_dir=tmp_path / "s"
    )
    # Cut short once epoch 2 is committed, as a kill would; then run again with the same settings.
    import attention_clusters.pretrain as pretraining

    commit = pretraining.save_epoch

    def cut_after_two(store, cells, state, epoch, rngs):
        commit(store, cells, state, epoch, rngs)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(pretraining, "save_epoch", cut_after_two)
    with pytest.raises(KeyboardInterrupt):
        train_extractor(*splits, **settings, checkpoint_out=tmp_path / "b.ckpt", state_dir=tmp_path / "t")
    monkeypatch.setattr(pretraining, "save_epoch", commit)
    assert not (tmp_path / "b.ckpt").exists()
    resumed = train_extractor(
        *splits, **settings, checkpoint_out=tmp_path / "b.ckpt", state_dir=tmp_path / "t"
    )
    first, second = ms.load_checkpoint(str(tmp_path / "a.ckpt")), ms.load_checkpoint(str(tmp_path / "b.ckpt"))
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name].asnumpy(), second[name].asnumpy(), err_msg=name)
    assert [e["test_accuracy"] for e in resumed["history"]] == [
        e["test_accuracy"] for e in straight["history"]
    ]
    # Other settings do not resume from that state.
    other = train_extractor(
        *splits, **dict(settings, lr=2e-3), checkpoint_out=tmp_path / "c.ckpt", state_dir=tmp_path / "t"
    )
    assert len(other["history"]) == 3


def test_unavailable_device_is_one_clear_error():
    from attention_clusters import WorkflowInputError

    with pytest.raises(
        WorkflowInputError, match=r"device 'Ascend' was asked for, but this MindSpore .* can use only: CPU"
    ):
        use_device("Ascend")
    use_device("CPU", 2)


def test_corrupt_checkpoint_names_file(tmp_path):
    from attention_clusters import WorkflowInputError

    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(WorkflowInputError, match=r"bad\.ckpt: not a readable MindSpore checkpoint"):
        load_extractor(tmp_path / "bad.ckpt")


def test_pretraining_loss_stays_finite_for_large_logit_gaps():
    """The pre-training loss is the true cross-entropy even when a target's logit is far below the largest
    (MindSpore's fused SparseSoftmaxCrossEntropyWithLogits returns inf there on CPU)."""
    net = build_network(2)
    net.fc2_weight.set_data(ms.Tensor(net.fc2_weight.asnumpy() * 500))
    pretrain, classifier = pretraining_cells(net)
    rng = np.random.default_rng(6)
    frames = rng.integers(0, 256, (16, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 11, 16).astype(np.int32)
    log_probs = classifier(ms.Tensor(frames)).asnumpy().astype(np.float64)
    assert (log_probs.max(axis=1) - log_probs[np.arange(16), labels]).max() > 200
    no_dropout = [ms.Tensor(np.ones_like(m)) for m in dropout_masks(rng, 16)]
    loss = float(pretrain(ms.Tensor(frames), ms.Tensor(labels), *no_dropout).asnumpy())
    np.testing.assert_allclose(loss, -log_probs[np.arange(16), labels].mean(), rtol=1e-4)
