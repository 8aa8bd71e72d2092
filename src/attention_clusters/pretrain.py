"""Pre-training of the frame feature extractor (extractor.py) on Noisy-MNIST: the extractor
with an 11-class head, NLL loss and dropout, trained with Adam through the package's one training
loop (loop.py), so a killed pre-training resumes after its last complete epoch.
"""

import logging
import time

import mindspore as ms
import numpy as np
from mindspore import nn

from .checkpoints import save_model
from .constants import FEATURE_DIM
from .extractor import CONV2_CHANNELS, POOL_WINDOW, POOLED2, build_network
from .layers import dropout_keep
from .loop import TrainState, generators, resume, save_epoch, train_epoch
from .progress import Progress
from .schedules import adam_learning_rate, learning_rates

log = logging.getLogger("attention_clusters")
# The pre-training's random generators, with their SeedSequence spawn keys: batch order, dropout masks.
RNGS = (("batch", 7), ("dropout", 8))


class PretrainWithDropout(nn.Cell):
    """NLL loss of the extractor's 11-class head, with the given dropout masks."""

    def __init__(self, extractor):
        super().__init__()
        self.extractor = extractor
        # Not the fused ops.SparseSoftmaxCrossEntropyWithLogits: on CPU it returns inf once a
        # target's logit is ~90 below the largest.
        self.loss = nn.NLLLoss()

    def construct(self, frames, labels, conv2_keep, fc1_keep):
        return self.loss(self.extractor.head(self.extractor.trunk(frames, conv2_keep, fc1_keep)), labels)


class NoisyMnistClassifier(nn.Cell):
    """frames -> log-probabilities of the 11 Noisy-MNIST classes, eval mode."""

    def __init__(self, extractor):
        super().__init__()
        self.extractor = extractor

    def construct(self, frames):
        return self.extractor.head(self.extractor.trunk(frames, None, None))


def pretraining_cells(net):
    """(loss cell taking labels and dropout masks, eval classifier) around an extractor."""
    return PretrainWithDropout(net), NoisyMnistClassifier(net)


def dropout_masks(rng, batch):
    """Keep-masks (rate 0.5) for conv2's pre-pool output (B*4, (dy, dx, px, co)) = (B*4, 320) and
    fc1's output (B, 50), scaled by 2."""
    conv2_width = POOL_WINDOW * POOLED2 * CONV2_CHANNELS
    return dropout_keep(rng, batch * POOLED2, conv2_width), dropout_keep(rng, batch, FEATURE_DIM)


def evaluate(classifier, images, labels, batch_size=2048):
    """Top-1 accuracy of a NoisyMnistClassifier on (N, 28, 28) images."""
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        out = classifier(ms.Tensor(images[start : start + batch_size])).asnumpy()
        correct += int((out.argmax(axis=1) == labels[start : start + batch_size]).sum())
    return correct / max(1, images.shape[0])


def pretraining_batches(images, labels, batch_size, rngs):
    """One epoch's whole batches (frames (B, 28, 28), labels (B,), conv2 and fc1 keep-masks) in an
    order drawn from rngs["batch"], with masks from rngs["dropout"]."""
    order = rngs["batch"].permutation(images.shape[0])
    for start in range(0, images.shape[0] - images.shape[0] % batch_size, batch_size):
        batch = order[start : start + batch_size]
        yield (images[batch], labels[batch].astype(np.int32), *dropout_masks(rngs["dropout"], batch.size))


def train_extractor(
    train_images,
    train_labels,
    test_images,
    test_labels,
    *,
    epochs,
    batch_size,
    lr,
    seed,
    checkpoint_out,
    state_dir,
    schedule="constant",
    warmup_epochs=0.0,
    inputs=None,
):
    """Pre-train on Noisy-MNIST with Adam and NLL loss; save the checkpoint; return metrics.

    `schedule` as the sweep's (schedules.learning_rates): `constant` is the ModelZoo's; `cosine` anneals
    lr to 0, which settles the weights: on real digits a constant lr oscillated between 97.1 and
    97.7 % from epoch 4 on, 40 cosine epochs reached 98.8 % on held-out digits (docs/real-digits.md).
    After every epoch the state (weights, Adam's moments, the generators, the history) is saved in
    `state_dir`, keyed by the settings, the images' count and `inputs` (digests of the images and
    the code); a job run again with the same ones resumes after the last complete epoch.
    """
    settings = dict(
        epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, warmup_epochs=warmup_epochs, seed=seed
    )
    net = build_network(seed)
    pretrain, classifier = pretraining_cells(net)
    steps = train_images.shape[0] // batch_size
    rates = learning_rates(schedule, lr, epochs, steps, warmup_epochs)
    optimizer = nn.Adam(net.trainable_params(), learning_rate=adam_learning_rate(rates))
    # nn.TrainOneStepCell: an @ms.jit function around ms.value_and_grad ran several times
    # slower on MindSpore 2.10's CPU backend.
    train_step = nn.TrainOneStepCell(pretrain, optimizer)
    train_step.set_train(True)
    rngs = generators(seed, RNGS)
    store = TrainState(state_dir)
    keys = {**settings, "images": int(train_images.shape[0]), **(inputs or {})}
    state = resume(store, keys, [net, optimizer], [rngs], epochs, fresh={"history": [], "train_seconds": 0.0})
    started = time.perf_counter()
    compile_step(train_step, train_images, train_labels, batch_size)
    log.info("extractor training graph compiled in %.1f s", time.perf_counter() - started)
    history = state["history"]
    for epoch in range(state["epoch"] + 1, epochs + 1):
        progress = Progress(
            f"extractor epoch {epoch}/{epochs}",
            steps * batch_size,
            "images",
            then=(epochs - epoch) * steps * batch_size,
        )
        batches = pretraining_batches(train_images, train_labels, batch_size, rngs)
        (mean_loss, last_loss), seconds = train_epoch(train_step, batches, progress, batch_size)
        mean_loss, last_loss = float(mean_loss), float(last_loss)
        accuracy = evaluate(classifier, test_images, test_labels)
        rate = steps * batch_size / seconds
        log.info("epoch: %d step: %d, loss is %.6f (epoch mean %.6f)", epoch, steps, last_loss, mean_loss)
        log.info(
            "epoch time: %.3f ms, per step time: %.3f ms, %.0f images/s, noisy-test accuracy %.4f",
            *(seconds * 1e3, seconds * 1e3 / max(1, steps), rate, accuracy),
        )
        history.append(dict(epoch=epoch, loss=last_loss, mean_loss=mean_loss, seconds=seconds))
        history[-1].update(images_per_second=rate, test_accuracy=accuracy)
        state["train_seconds"] += seconds
        save_epoch(store, [net, optimizer], state, epoch, [rngs])
    save_model(net, checkpoint_out)
    return {
        **settings,
        "train_images": int(train_images.shape[0]),
        "test_images": int(test_images.shape[0]),
        "test_accuracy": history[-1]["test_accuracy"],
        "train_seconds": state["train_seconds"],
        "history": history,
    }


def compile_step(train_step, images, labels, batch_size):
    """Compile the step's graph before the first epoch's clock starts (shapes only, no update)."""
    conv2_keep, fc1_keep = (np.ones_like(m) for m in dropout_masks(np.random.default_rng(0), batch_size))
    train_step.compile(
        ms.Tensor(images[:batch_size]),
        ms.Tensor(labels[:batch_size].astype(np.int32)),
        ms.Tensor(conv2_keep),
        ms.Tensor(fc1_keep),
    )
