"""The frame feature extractor (a small CNN) in MindSpore. Its pre-training is in pretrain.py, the
extraction of video features in features.py.

Network (as the paper's authors wrote it, after PyTorch's MNIST example):
conv1 1->10 5x5 -> max-pool 2 -> ReLU -> conv2 10->20 5x5 -> dropout -> max-pool 2 -> ReLU
-> flatten 320 -> fc1 320->50 -> ReLU -> dropout -> log-softmax (the 50-d frame feature);
pre-training adds fc2 50->11 and a log-softmax.

Why the convolutions are not nn.Conv2d: MindSpore's CPU Conv2d runs this net at
~800 frames/s, and its slicing, transposes and reductions are slow too, while its
2-D matrix product is fast. So each convolution is one matrix product over bands:
a band of 6 input rows (3 row pairs) maps to the 2 output rows of one pooled row,
through a banded Toeplitz matrix built from the kernel by a product with a constant
0/1 tap-selection matrix (a gather would cost a slow scatter-add in the backward
pass). conv1 works on column blocks of 4 pooled columns, which wastes fewer
multiplications on the band's zeros. The output columns are laid out (dy, dx, x,
channel), which makes the 2x2 max-pool an element-wise maximum of four contiguous
column blocks; the pool and the two band products have hand-written backward passes
(MindSpore's own spent most of a training step in selects, concatenations and
transposes). Parameters keep nn.Conv2d's names and shapes.
"""

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from .checkpoints import load_into
from .constants import FEATURE_DIM, IMAGE_SIZE, N_NOISY_CLASSES
from .layers import MatMul, MaxPool2x2, uniform_parameter

MEAN, STD = 0.1307, 0.3081  # MNIST's pixel mean and standard deviation (of x / 255)

KERNEL = 5
CONV1_CHANNELS, CONV2_CHANNELS = 10, 20
POOLED1 = (IMAGE_SIZE - KERNEL + 1) // 2  # 12: conv1's output rows and columns after the pool
POOLED2 = (POOLED1 - KERNEL + 1) // 2  # 4: conv2's
BAND_ROWS = 2 + KERNEL - 1  # 6: the input rows that one pooled output row (2 conv rows) reads
POOL_WINDOW = 4  # the 2x2 window's (dy, dx)
FLAT = CONV2_CHANNELS * POOLED2 * POOLED2  # 320: conv2's pooled output, flattened
CONV1_BLOCK = 4  # pooled columns per conv1 column block
CONV1_BLOCKS = POOLED1 // CONV1_BLOCK
CONV1_BAND_WIDTH = 2 * CONV1_BLOCK + KERNEL - 1  # input columns of one conv1 column block


def tap_selection(band_width, pooled_width, kernel=KERNEL):
    """S[(r, c, dy, dx, px), (ki, kj)] = 1 where input (r, c) of a band meets kernel tap (ki, kj)
    for output (2*row_pair + dy, 2*px + dx); S @ kernel gives the band's Toeplitz matrix."""
    s = np.zeros((BAND_ROWS, band_width, 2, 2, pooled_width, kernel, kernel), np.float32)
    for r in range(BAND_ROWS):
        for dy in range(2):
            ki = r - dy
            if not 0 <= ki < kernel:
                continue
            for dx in range(2):
                for px in range(pooled_width):
                    for kj in range(kernel):
                        s[r, 2 * px + dx + kj, dy, dx, px, ki, kj] = 1
    return s.reshape(BAND_ROWS * band_width * POOL_WINDOW * pooled_width, kernel * kernel)


def conv1_band_index():
    """Pixel index (into a flattened 28x28 frame) of each entry of conv1's bands, ordered
    (pooled row, column block, r, c): rows 2*py..2*py+5, columns 2*B*q..2*B*q+2B+3."""
    py, q, r, c = np.meshgrid(
        np.arange(POOLED1),
        np.arange(CONV1_BLOCKS),
        np.arange(BAND_ROWS),
        np.arange(CONV1_BAND_WIDTH),
        indexing="ij",
    )
    return ((2 * py + r) * IMAGE_SIZE + 2 * CONV1_BLOCK * q + c).astype(np.int32).ravel()


class FrameFeatureExtractor(nn.Cell):
    """construct(frames (B, 28, 28) uint8) -> (B, 50) features, eval mode.

    Its pre-training head (fc2) lives in the same Cell so that one checkpoint holds both;
    PretrainWithDropout and NoisyMnistClassifier wrap it for training and for noisy-test accuracy.
    """

    def __init__(self):
        super().__init__()
        c1, c2, k2 = CONV1_CHANNELS, CONV2_CHANNELS, KERNEL * KERNEL
        self.conv1_weight = uniform_parameter((c1, 1, KERNEL, KERNEL), k2)
        self.conv1_bias = uniform_parameter((c1,), k2)
        self.conv2_weight = uniform_parameter((c2, c1, KERNEL, KERNEL), c1 * k2)
        self.conv2_bias = uniform_parameter((c2,), c1 * k2)
        self.fc1_weight = uniform_parameter((FEATURE_DIM, FLAT), FLAT)
        self.fc1_bias = uniform_parameter((FEATURE_DIM,), FLAT)
        self.fc2_weight = uniform_parameter((N_NOISY_CLASSES, FEATURE_DIM), FEATURE_DIM)
        self.fc2_bias = uniform_parameter((N_NOISY_CLASSES,), FEATURE_DIM)
        self.conv1_taps = Tensor(tap_selection(CONV1_BAND_WIDTH, CONV1_BLOCK))  # (6*8*4*4, 25)
        self.conv2_taps = Tensor(tap_selection(POOLED1, POOLED2))  # (6*12*4*4, 25)
        self.conv1_bands = Tensor(conv1_band_index())
        self.conv1_pool = MaxPool2x2(c1 * CONV1_BLOCK)
        self.conv2_pool = MaxPool2x2(c2 * POOLED2)
        self.conv1_product = MatMul()
        self.conv2_product = MatMul()
        self.matmul_nt = ops.MatMul(transpose_b=True)  # x @ w.T without a transposed copy of w

    def trunk(self, frames, conv2_keep, fc1_keep):
        """(B, 28, 28) uint8 -> (B, 50) log-softmax features.

        conv2_keep (B*4, 320) and fc1_keep (B, 50) are dropout masks already scaled by
        1/(1-p) (dropout_masks()), or None in eval mode.
        """
        b, c1, c2 = frames.shape[0], CONV1_CHANNELS, CONV2_CHANNELS
        x = (
            ops.cast(frames.reshape(b, IMAGE_SIZE * IMAGE_SIZE), ms.float32) * (1.0 / (255.0 * STD))
            - MEAN / STD
        )
        # conv1: one band of 6 rows x 12 columns per (pooled row, column block).
        bands = ops.gather(x, self.conv1_bands, 1).reshape(
            b * POOLED1 * CONV1_BLOCKS, BAND_ROWS * CONV1_BAND_WIDTH
        )
        # (ki kj, co) -> rows (r, c, dy, dx, px), columns co: the Toeplitz matrix (6*W, (dy, dx, px, co)).
        toeplitz = self.matmul_nt(self.conv1_taps, self.conv1_weight.reshape(c1, KERNEL * KERNEL))
        toeplitz = toeplitz.reshape(BAND_ROWS * CONV1_BAND_WIDTH, POOL_WINDOW * CONV1_BLOCK * c1)
        y = self.conv1_product(bands, toeplitz)  # (B*12*3, (dy, dx, px, co))
        h = self.conv1_pool(y).reshape(b * POOLED1, POOLED1 * c1)  # (B*12, (px, co))
        h = ops.relu(h + ops.tile(self.conv1_bias, (POOLED1,)))
        # conv2: pooled row p reads conv1's row pairs p, p+1, p+2 (rows 2p..2p+5).
        pairs = h.reshape(b, POOLED1 // 2, 2 * POOLED1 * c1)  # (B, 6, 240)
        bands = ops.concat(
            (pairs[:, 0:POOLED2], pairs[:, 1 : 1 + POOLED2], pairs[:, 2 : 2 + POOLED2]), axis=2
        )
        bands = bands.reshape(b * POOLED2, BAND_ROWS * POOLED1 * c1)  # (B*4, 720)
        # (ki kj, (ci, co)) -> ((r, c, dy, dx, px), (ci, co)) -> ((r, c, ci), (dy, dx, px, co)).
        toeplitz = ops.matmul(
            self.conv2_taps, self.conv2_weight.transpose(2, 3, 1, 0).reshape(KERNEL * KERNEL, c1 * c2)
        )
        toeplitz = toeplitz.reshape(BAND_ROWS * POOLED1, POOL_WINDOW * POOLED2, c1, c2).transpose(0, 2, 1, 3)
        toeplitz = toeplitz.reshape(BAND_ROWS * POOLED1 * c1, POOL_WINDOW * POOLED2 * c2)  # (720, 320)
        y = self.conv2_product(bands, toeplitz) + ops.tile(
            self.conv2_bias, (POOL_WINDOW * POOLED2,)
        )  # (B*4, 320)
        if conv2_keep is not None:
            y = y * conv2_keep
        h = ops.relu(self.conv2_pool(y)).reshape(b, FLAT)  # (B, (y, x, c))
        # fc1 is stored in nn.Conv2d's (c, h, w) flatten order; ours is (h, w, c).
        fc1 = (
            self.fc1_weight.reshape(FEATURE_DIM, c2, POOLED2, POOLED2)
            .transpose(0, 2, 3, 1)
            .reshape(FEATURE_DIM, FLAT)
        )
        h = ops.relu(self.matmul_nt(h, fc1) + self.fc1_bias)
        if fc1_keep is not None:
            h = h * fc1_keep
        return ops.log_softmax(h, axis=1)

    def logits(self, features):
        """(B, 50) features -> (B, 11) logits of the pre-training head."""
        return self.matmul_nt(features, self.fc2_weight) + self.fc2_bias

    def head(self, features):
        return ops.log_softmax(self.logits(features), axis=1)

    def construct(self, frames):
        return self.trunk(frames, None, None)


class PlainFrameFeatureExtractor(nn.Cell):
    """The same features written plainly with nn.Conv2d and nn.MaxPool2d, as the ModelZoo did: the
    reference for FrameFeatureExtractor (load_plain() copies its parameters; the tests compare
    features and gradients)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, CONV1_CHANNELS, KERNEL, pad_mode="valid", has_bias=True)
        self.conv2 = nn.Conv2d(CONV1_CHANNELS, CONV2_CHANNELS, KERNEL, pad_mode="valid", has_bias=True)
        self.fc1 = nn.Dense(FLAT, FEATURE_DIM)
        self.pool = nn.MaxPool2d(2, 2)

    def construct(self, frames):
        x = (ops.cast(frames, ms.float32) / 255.0 - MEAN) / STD
        x = x.reshape(x.shape[0], 1, IMAGE_SIZE, IMAGE_SIZE)
        x = ops.relu(self.pool(self.conv1(x)))  # (B, 10, 12, 12)
        x = ops.relu(self.pool(self.conv2(x)))  # (B, 20, 4, 4)
        x = x.reshape(x.shape[0], -1)  # (B, 320)
        return ops.log_softmax(ops.relu(self.fc1(x)), axis=1)

    def load_from(self, net):
        """Copy a FrameFeatureExtractor's conv1, conv2 and fc1 parameters (same names and shapes)."""
        for name in ("conv1", "conv2", "fc1"):
            getattr(self, name).weight.set_data(getattr(net, f"{name}_weight").value())
            getattr(self, name).bias.set_data(getattr(net, f"{name}_bias").value())
        return self


def build_network(seed=1):
    """A freshly initialised FrameFeatureExtractor; the same seed gives the same weights."""
    ms.set_seed(seed)
    return FrameFeatureExtractor()


def load_extractor(checkpoint):
    return load_into(build_network(), checkpoint, "the frame feature extractor")
