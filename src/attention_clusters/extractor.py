"""The frame feature extractor (a small CNN) in MindSpore, its pre-training and feature extraction.

Network (as the paper's authors wrote it, after PyTorch's MNIST example):
conv1 1->10 5x5 -> max-pool 2 -> ReLU -> conv2 10->20 5x5 -> dropout -> max-pool 2 -> ReLU
-> flatten 320 -> fc1 320->50 -> ReLU -> dropout -> log-softmax (the 50-d frame feature);
pre-training adds fc2 50->11 and a log-softmax.

Why the convolutions are not nn.Conv2d: MindSpore's CPU Conv2d runs this net at
~800 frames/s, and its slicing, transposes and reductions are slow too, while its
2-D matrix product is fast. So each convolution is one matrix product over row
bands: a band of 6 input rows (3 row pairs) maps to the 2 output rows of one pooled
row, through a banded Toeplitz matrix gathered from the kernel (the gather is
differentiable, so the kernel trains as usual). The output columns are laid out
(dy, dx, x, channel), which makes the 2x2 max-pool an element-wise maximum of four
contiguous column blocks. Parameters keep nn.Conv2d's names and shapes.
"""

import logging
import time

import numpy as np

from .progress import Progress

log = logging.getLogger("attention_clusters")
MEAN, STD = 0.1307, 0.3081
FEATURE_DIM = 50
N_NOISY_CLASSES = 11


def band_index(in_rows_per_band, in_width, in_channels, out_channels, kernel, out_pooled_width):
    """Index into [kernel.ravel(), 0] for each entry of the banded matrix of one pooled row.

    Band rows: (r, c, ci) over `in_rows_per_band` x `in_width` x `in_channels`;
    columns: (dy, dx, px, co). Entry = kernel[co, ci, r - dy, c - 2px - dx], or the
    trailing zero where the kernel does not reach.
    """
    zero = out_channels * in_channels * kernel * kernel
    index = np.full((in_rows_per_band, in_width, in_channels, 2, 2, out_pooled_width, out_channels), zero, np.int32)
    for r in range(in_rows_per_band):
        for dy in range(2):
            ki = r - dy
            if not 0 <= ki < kernel:
                continue
            for dx in range(2):
                for px in range(out_pooled_width):
                    for kj in range(kernel):
                        c = 2 * px + dx + kj
                        for ci in range(in_channels):
                            index[r, c, ci, dy, dx, px, :] = (
                                np.arange(out_channels) * in_channels * kernel * kernel
                                + ci * kernel * kernel + ki * kernel + kj)
    return index.reshape(in_rows_per_band * in_width * in_channels, 4 * out_pooled_width * out_channels)


def build_network(seed=1):
    """The extractor as a MindSpore Cell: construct(frames) gives the 50-d features.

    Its pre-training head (fc2) lives in the same Cell so that one checkpoint holds
    both; `pretraining_cells` wraps it for training and for noisy-test accuracy.
    """
    import mindspore as ms
    from mindspore import Parameter, Tensor, nn, ops
    from mindspore.common.initializer import Uniform, initializer

    class FrameFeatureExtractor(nn.Cell):
        def __init__(self):
            super().__init__()

            def uniform(shape, fan_in):
                # PyTorch's default init, which the authors' network was trained with.
                return Parameter(initializer(Uniform(1.0 / np.sqrt(fan_in)), shape, ms.float32))

            self.conv1_weight = uniform((10, 1, 5, 5), 25)
            self.conv1_bias = uniform((10,), 25)
            self.conv2_weight = uniform((20, 10, 5, 5), 250)
            self.conv2_bias = uniform((20,), 250)
            self.fc1_weight = uniform((50, 320), 320)
            self.fc1_bias = uniform((50,), 320)
            self.fc2_weight = uniform((11, 50), 50)
            self.fc2_bias = uniform((11,), 50)
            self.band1 = Tensor(band_index(6, 28, 1, 10, 5, 12))     # (168, 480)
            self.band2 = Tensor(band_index(6, 12, 10, 20, 5, 4))     # (720, 320)
            # fc1 is stored in nn.Conv2d's (c, h, w) flatten order; ours is (h, w, c).
            hwc_to_chw = np.arange(320).reshape(20, 4, 4).transpose(1, 2, 0).ravel()
            self.fc1_order = Tensor(hwc_to_chw.astype(np.int32))
            self.zero = Tensor(np.zeros(1, np.float32))

        def banded(self, weight, index):
            flat = ops.concat((weight.reshape(-1), self.zero))
            return ops.gather(flat, index, 0)

        def trunk(self, frames, conv2_keep, fc1_keep):
            """(B, 28, 28) uint8 -> (B, 50) log-softmax features.

            conv2_keep (B*4, 320) and fc1_keep (B, 50) are dropout masks already scaled by
            1/(1-p), or None in eval mode. They come from the caller's seeded NumPy
            generator: MindSpore's own Dropout gave different masks from run to run when
            its kernels ran on 2 threads.
            """
            b = frames.shape[0]
            x = ops.cast(frames, ms.float32) * (1.0 / (255.0 * STD)) - MEAN / STD
            pairs = x.reshape(b, 14, 56)
            bands = ops.concat((pairs[:, 0:12], pairs[:, 1:13], pairs[:, 2:14]), axis=2).reshape(b * 12, 168)
            y = ops.matmul(bands, self.banded(self.conv1_weight, self.band1))           # (B*12, 480)
            y = ops.maximum(ops.maximum(y[:, 0:120], y[:, 120:240]), ops.maximum(y[:, 240:360], y[:, 360:480]))
            h = ops.relu(y + ops.tile(self.conv1_bias, (12,)))                           # (B*12, 12*10)
            pairs = h.reshape(b, 6, 240)
            bands = ops.concat((pairs[:, 0:4], pairs[:, 1:5], pairs[:, 2:6]), axis=2).reshape(b * 4, 720)
            y = ops.matmul(bands, self.banded(self.conv2_weight, self.band2))           # (B*4, 320)
            y = y + ops.tile(self.conv2_bias, (16,))
            if conv2_keep is not None:
                y = y * conv2_keep
            y = ops.maximum(ops.maximum(y[:, 0:80], y[:, 80:160]), ops.maximum(y[:, 160:240], y[:, 240:320]))
            h = ops.relu(y).reshape(b, 320)
            fc1 = ops.gather(self.fc1_weight, self.fc1_order, 1)
            h = ops.relu(ops.matmul(h, fc1.T) + self.fc1_bias)
            if fc1_keep is not None:
                h = h * fc1_keep
            return ops.log_softmax(h, axis=1)

        def head(self, features):
            return ops.log_softmax(ops.matmul(features, self.fc2_weight.T) + self.fc2_bias, axis=1)

        def construct(self, frames):
            return self.trunk(frames, None, None)

    ms.set_seed(seed)
    return FrameFeatureExtractor()


def pretraining_cells(net):
    """(loss cell taking labels and dropout masks, eval classifier) around an extractor."""
    from mindspore import nn

    class PretrainWithDropout(nn.Cell):
        """NLL loss of the 11-class head, with the given dropout masks."""

        def __init__(self, extractor):
            super().__init__()
            self.extractor = extractor
            self.loss = nn.NLLLoss()

        def construct(self, frames, labels, conv2_keep, fc1_keep):
            return self.loss(self.extractor.head(self.extractor.trunk(frames, conv2_keep, fc1_keep)), labels)

    class NoisyMnistClassifier(nn.Cell):
        def __init__(self, extractor):
            super().__init__()
            self.extractor = extractor

        def construct(self, frames):
            return self.extractor.head(self.extractor.trunk(frames, None, None))

    return PretrainWithDropout(net), NoisyMnistClassifier(net)


def dropout_masks(rng, batch, p=0.5):
    """Keep-masks for conv2's pre-pool output and fc1's output, scaled by 1/(1-p)."""
    from .train import dropout_keep
    return dropout_keep(rng, batch * 4, 320, p), dropout_keep(rng, batch, 50, p)


def _batches(n, batch_size, rng, drop_remainder):
    order = rng.permutation(n)
    stop = n - n % batch_size if drop_remainder else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def evaluate(classifier, images, labels, batch_size=2048):
    import mindspore as ms
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        out = classifier(ms.Tensor(images[start:start + batch_size])).asnumpy()
        correct += int((out.argmax(axis=1) == labels[start:start + batch_size]).sum())
    return correct / max(1, images.shape[0])


def train_extractor(train_images, train_labels, test_images, test_labels, epochs, batch_size, lr, seed,
                    checkpoint_out):
    """Pre-train on Noisy-MNIST with Adam and NLL loss; save the checkpoint; return metrics."""
    import mindspore as ms
    from mindspore import nn

    net = build_network(seed)
    pretrain, classifier = pretraining_cells(net)
    optimizer = nn.Adam(net.trainable_params(), learning_rate=lr)
    # nn.TrainOneStepCell: an @ms.jit function around ms.value_and_grad ran several times
    # slower on MindSpore 2.10's CPU backend.
    train_step = nn.TrainOneStepCell(pretrain, optimizer)
    train_step.set_train(True)

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    dropout_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(8,)))
    steps_per_epoch = train_images.shape[0] // batch_size
    history = []
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        progress = Progress(f"extractor epoch {epoch}/{epochs}", steps_per_epoch * batch_size, "images")
        epoch_start, loss_sum = time.perf_counter(), 0.0
        for batch in _batches(train_images.shape[0], batch_size, rng, drop_remainder=True):
            conv2_keep, fc1_keep = dropout_masks(dropout_rng, batch.size)
            loss = float(train_step(ms.Tensor(train_images[batch]), ms.Tensor(train_labels[batch].astype(np.int32)),
                                    ms.Tensor(conv2_keep), ms.Tensor(fc1_keep)).asnumpy())
            if not np.isfinite(loss):
                raise FloatingPointError(
                    f"extractor epoch {epoch}, step {progress.done // batch_size + 1}: loss is {loss}; stopping")
            loss_sum += loss
            progress.update(batch.size)
        last_loss = loss
        seconds = time.perf_counter() - epoch_start
        accuracy = evaluate(classifier, test_images, test_labels)
        log.info("epoch: %d step: %d, loss is %.6f (epoch mean %.6f)", epoch, steps_per_epoch, last_loss,
                 loss_sum / max(1, steps_per_epoch))
        log.info("epoch time: %.3f ms, per step time: %.3f ms, %.0f images/s, noisy-test accuracy %.4f",
                 seconds * 1e3, seconds * 1e3 / max(1, steps_per_epoch),
                 steps_per_epoch * batch_size / seconds, accuracy)
        history.append({"epoch": epoch, "loss": last_loss, "mean_loss": loss_sum / max(1, steps_per_epoch),
                        "seconds": seconds,
                        "images_per_second": steps_per_epoch * batch_size / seconds,
                        "test_accuracy": accuracy})
    save_extractor(net, checkpoint_out)
    return {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
            "train_images": int(train_images.shape[0]), "test_images": int(test_images.shape[0]),
            "test_accuracy": history[-1]["test_accuracy"],
            "train_seconds": time.perf_counter() - started, "history": history}


def save_extractor(net, path):
    from .checkpoints import save_model
    save_model(net, path)


def load_extractor(checkpoint):
    from .checkpoints import load_into
    return load_into(build_network(), checkpoint, "the frame feature extractor")


def feature_function(net):
    """(B, 28, 28) uint8 -> (B, 50) float32 features, eval mode, as a NumPy function."""
    import mindspore as ms
    net.set_train(False)
    return lambda frames: net(ms.Tensor(frames)).asnumpy()


def extract_video_features(videos_npy, net, videos_per_chunk=200):
    """Yield (start, (n, frames, 50) float32) feature chunks for a (N, frames, 28, 28) .npy file."""
    from .npy_stream import iter_npy_chunks, npy_shape
    features = feature_function(net)
    (total, frames, _, _), _ = npy_shape(videos_npy)
    progress = Progress("extract_features", total * frames, "frames")
    for start, chunk in iter_npy_chunks(videos_npy, videos_per_chunk):
        n = chunk.shape[0]
        # Pad the last chunk so every call has the same shape (one compiled graph).
        if n < videos_per_chunk:
            chunk = np.concatenate([chunk, np.zeros((videos_per_chunk - n,) + chunk.shape[1:], np.uint8)])
        out = features(chunk.reshape(-1, 28, 28)).reshape(videos_per_chunk, frames, FEATURE_DIM)[:n]
        progress.update(n * frames)
        yield start, np.ascontiguousarray(out, dtype=np.float32)
