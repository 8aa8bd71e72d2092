"""Building blocks shared by the AttentionCluster model and the frame feature extractor.

The cells give their products backward passes made of matrix products only. With autodiff,
MindSpore's CPU runtime ran the gradients of broadcast additions as ReduceSums over the batch
axis and materialised transposed operands as copies; both were slow. Each cell's docstring
gives the plain formulation it computes.
"""

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Uniform, initializer


def uniform_parameter(shape, fan_in):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default init, which the authors trained with."""
    return Parameter(initializer(Uniform(1.0 / np.sqrt(fan_in)), shape, ms.float32))


class MatMul(nn.Cell):
    """x @ w for x (M, K), w (K, N); the backward uses the product's transpose flags
    (dx = dout @ w.T, dw = x.T @ dout) instead of transposed copies."""

    def __init__(self):
        super().__init__()
        self.matmul = ops.MatMul()
        self.matmul_nt = ops.MatMul(transpose_b=True)
        self.matmul_tn = ops.MatMul(transpose_a=True)

    def construct(self, x, w):
        return self.matmul(x, w)

    def bprop(self, x, w, out, dout):
        return self.matmul_nt(dout, w), self.matmul_tn(x, dout)


class Affine(MatMul):
    """x @ w + b for x (M, K), w (K, N), b (N,); b's gradient is ones (1, M) @ dout, not a ReduceSum."""

    def construct(self, x, w, b):
        return self.matmul(x, w) + b

    def bprop(self, x, w, b, out, dout):
        ones = ops.ones((1, x.shape[0]), ms.float32)
        return self.matmul_nt(dout, w), self.matmul_tn(x, dout), self.matmul(ones, dout).reshape(-1)


class Shift(nn.Cell):
    """x * alpha + beta for x (M, K) and alpha, beta (1, K): the shifting operation on a flat view;
    the gradients of alpha and beta are products with a row of ones."""

    def __init__(self):
        super().__init__()
        self.matmul = ops.MatMul()

    def construct(self, x, alpha, beta):
        return x * alpha + beta

    def bprop(self, x, alpha, beta, out, dout):
        ones = ops.ones((1, x.shape[0]), ms.float32)
        return dout * alpha, self.matmul(ones, dout * x), self.matmul(ones, dout)


class StackedAffine(nn.Cell):
    """x @ w + b per model for x (M, R, K), w (M, K, N), b (M, N): Affine with a leading model axis.
    The backward is batched products only, as Affine's."""

    def __init__(self):
        super().__init__()
        self.matmul = ops.BatchMatMul()
        self.matmul_nt = ops.BatchMatMul(transpose_b=True)
        self.matmul_tn = ops.BatchMatMul(transpose_a=True)

    def construct(self, x, w, b):
        return self.matmul(x, w) + b.reshape(b.shape[0], 1, b.shape[1])

    def bprop(self, x, w, b, out, dout):
        ones = ops.ones((x.shape[0], 1, x.shape[1]), ms.float32)
        return self.matmul_nt(dout, w), self.matmul_tn(x, dout), self.matmul(ones, dout).reshape(b.shape)


class StackedDense(StackedAffine):
    """x @ w.T + b per model for x (M, R, K), w (M, N, K) stored (out, in) as nn.Dense, b (M, N)."""

    def construct(self, x, w, b):
        return self.matmul_nt(x, w) + b.reshape(b.shape[0], 1, b.shape[1])

    def bprop(self, x, w, b, out, dout):
        ones = ops.ones((x.shape[0], 1, x.shape[1]), ms.float32)
        return self.matmul(dout, w), self.matmul_tn(dout, x), self.matmul(ones, dout).reshape(b.shape)


class StackedShift(nn.Cell):
    """x * alpha + beta per model for x (M, R, K) and alpha, beta (M, 1, K): Shift with a leading
    model axis; the gradients of alpha and beta are batched products with a row of ones."""

    def __init__(self):
        super().__init__()
        self.matmul = ops.BatchMatMul()

    def construct(self, x, alpha, beta):
        return x * alpha + beta

    def bprop(self, x, alpha, beta, out, dout):
        ones = ops.ones((x.shape[0], 1, x.shape[1]), ms.float32)
        return dout * alpha, self.matmul(ones, dout * x), self.matmul(ones, dout)


class MaxPool2x2(nn.Cell):
    """A 2x2 max-pool on columns laid out (dy, dx, rest): the maximum of four contiguous column
    blocks of `width`. (M, 4 * width) -> (M, width)."""

    def __init__(self, width):
        super().__init__()
        self.width = width

    def construct(self, y):
        w = self.width
        return ops.maximum(
            ops.maximum(y[:, 0:w], y[:, w : 2 * w]), ops.maximum(y[:, 2 * w : 3 * w], y[:, 3 * w :])
        )

    def bprop(self, y, out, dout):
        # The gradient goes to the first maximal element, as in PyTorch's max-pool.
        w = self.width
        y0, y1, y2, y3 = y[:, 0:w], y[:, w : 2 * w], y[:, 2 * w : 3 * w], y[:, 3 * w :]
        zero = ops.zeros_like(dout)
        g01 = ops.select(ops.maximum(y0, y1) >= ops.maximum(y2, y3), dout, zero)
        g23 = dout - g01
        g0 = ops.select(y0 >= y1, g01, zero)
        g2 = ops.select(y2 >= y3, g23, zero)
        return (ops.concat((g0, g01 - g0, g2, g23 - g2), axis=1),)


def dropout_keep(rng, batch, width):
    """A (batch, width) keep-mask for the networks' dropout rate 0.5, scaled by 1/(1-0.5) = 2, from
    a seeded NumPy generator: one random bit per element. The masks come from NumPy because
    MindSpore's own Dropout gave different masks from run to run when its kernels ran on 2 threads;
    bits rather than float draws: a fc2/natt128 mask (64 x 6,400) took 1 ms per step as floats,
    0.15 ms as bits."""
    packed = rng.integers(0, 256, size=(batch, (width + 7) // 8), dtype=np.uint8)
    return np.unpackbits(packed, axis=1, count=width).astype(np.float32) * np.float32(2.0)
