"""The AttentionCluster network (Long et al., CVPR 2018) in MindSpore.

Input x: (N, L, F) frame features. With n attention units:
    scores  s = g(x) in (N, L, n): fc=1 a per-frame linear map F->n,
            fc=2 F->128, tanh, 128->n;
    weights a = softmax of s over the L frames, per unit;
    pooled  v_i = sum_t a_{i,t} x_t  (one batched matrix product for all units);
    shift   o_i = alpha_i * v_i + beta_i, then o_i / (sqrt(n) * ||o_i||_2 + eps),
            so the unit-major concatenation has unit L2 norm;
    logits  dropout(0.5) -> Dense(F*n -> 1024).
Ablations of the paper: attention="noshift" uses o_i = v_i (no alpha, beta, nor
normalisation); attention="average" also replaces a by uniform weights 1/L.

`AttentionCluster` is one network, laid out for MindSpore's CPU kernels; `PlainAttentionCluster`
computes the same logits from the same parameters with plain operations and autodiff
everywhere; `StackedAttentionCluster` is M AttentionClusters of one (fc, natt, attention) with
every parameter stacked on a leading model axis, as training runs them (each model on its own
batch). The tests compare the three, values and gradients.

alpha and beta start N(0, n^(-1/4)) as in the authors' code (the MindSpore port passed
the arguments of its initializer in the wrong order, giving every unit the same constant). The
score layer starts at zero (uniform weights over the frames); the other layers as PyTorch's
default, which the authors trained with.
"""

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal, initializer

from .checkpoints import load_into, plain_name
from .constants import ATTENTION_KINDS, FEATURE_DIM, FRAMES, N_CLASSES
from .layers import Affine, Shift, StackedAffine, StackedDense, StackedShift, uniform_parameter

HIDDEN = 128  # fc=2's hidden width
# The attention's scoring network g: the layers that read the raw frame features (training may give
# them a learning rate of their own: train.TrainConfig.scoring_lr_scale).
SCORING = ("hidden_weight", "hidden_bias", "score_weight", "score_bias")


class AttentionCluster(nn.Cell):
    """construct(x (N, L, F)) -> logits (N, 1024) in eval mode; logits(x, keep) with a dropout mask."""

    def __init__(self, fc, natt, feature_dim=FEATURE_DIM, frames=FRAMES, attention="shift", eps=1e-12):
        super().__init__()
        if fc not in (1, 2):
            raise ValueError(f"fc must be 1 or 2, not {fc}")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, not {attention!r}")
        self.fc, self.natt, self.attention = fc, natt, attention
        self.frames, self.feature_dim = frames, feature_dim
        if attention != "average":
            # The score layer starts at zero: every unit weighs the frames uniformly (1/L), so every
            # digit's frames take part from the first step. With PyTorch's default init the frame
            # features (norm ~50-70) gave scores several units apart and near one-hot weights at
            # step 0, and a digit whose frames scored low could stay invisible for the whole run
            # (docs/real-digits.md). The units still differ: alpha, beta and the classifier do.
            inputs = feature_dim if fc == 1 else HIDDEN
            if fc == 2:
                self.hidden_weight = uniform_parameter((feature_dim, HIDDEN), feature_dim)
                self.hidden_bias = uniform_parameter((HIDDEN,), feature_dim)
            self.score_weight = Parameter(ms.Tensor(np.zeros((inputs, natt), np.float32)))
            self.score_bias = Parameter(ms.Tensor(np.zeros(natt, np.float32)))
        if attention == "shift":
            std = float(natt) ** -0.25
            self.alpha = Parameter(initializer(Normal(sigma=std, mean=0.0), (natt,), ms.float32))
            self.beta = Parameter(initializer(Normal(sigma=std, mean=0.0), (natt,), ms.float32))
            self.norm_scale = float(np.sqrt(natt))
        # Stored (out, in) like nn.Dense and applied with transpose_b: with the (in, out) layout,
        # MindSpore's CPU backward for the input's gradient made a fc2/natt128 step 40 ms slower.
        width = feature_dim * natt
        self.classifier_weight = uniform_parameter((N_CLASSES, width), width)
        self.classifier_bias = uniform_parameter((N_CLASSES,), width)
        self.classify = ops.MatMul(transpose_b=True)
        self.pool = ops.BatchMatMul()
        self.affine, self.shift = Affine(), Shift()
        self.sum_features = ops.MatMul()
        self.eps = eps

    def unit_weights(self, x):
        """(N, L, F) -> (N, n, L): each unit's weights over the frames (sum to 1 over L).

        Unit-major, so that the softmax runs over the last axis and pooling is a plain batched
        product: 20 % faster on MindSpore's CPU kernels than frame-major with transposes."""
        b = x.shape[0]
        if self.attention == "average":
            return ops.ones((b, self.natt, self.frames), ms.float32) / self.frames
        flat = x.reshape(b * self.frames, self.feature_dim)  # (N*L, F)
        if self.fc == 2:
            flat = ops.tanh(self.affine(flat, self.hidden_weight, self.hidden_bias))  # (N*L, 128)
        scores = self.affine(flat, self.score_weight, self.score_bias).reshape(b, self.frames, self.natt)
        return ops.softmax(scores.transpose(0, 2, 1), axis=-1)

    def attention_weights(self, x):
        """(N, L, F) -> (N, L, n): each unit's weights over the frames, frame-major."""
        return self.unit_weights(x).transpose(0, 2, 1)

    def unit_outputs(self, x):
        """(N, L, F) -> (N, n, F): the units' outputs after the shifting operation."""
        pooled = self.pool(self.unit_weights(x), x)  # (N, n, F)
        if self.attention != "shift":
            return pooled
        # alpha and beta repeated per feature and applied to the flat (N, n*F) view: MindSpore's
        # CPU kernels broadcast (1, n, 1) over (N, n, F), and reduce their gradients, 2-3x slower.
        b, f = x.shape[0], self.feature_dim
        alpha = ops.tile(self.alpha.reshape(-1, 1), (1, f)).reshape(1, self.natt * f)
        beta = ops.tile(self.beta.reshape(-1, 1), (1, f)).reshape(1, self.natt * f)
        shifted = self.shift(pooled.reshape(b, self.natt * f), alpha, beta).reshape(b, self.natt, f)
        # Each unit's sum of squares as a product with a column of ones: MindSpore's CPU ReduceSum
        # over the last axis took 1 ms of a fc2/natt128 step.
        squares = (shifted * shifted).reshape(b * self.natt, f)
        norm = ops.sqrt(self.sum_features(squares, ops.ones((f, 1), ms.float32))).reshape(b, self.natt, 1)
        return shifted / (self.norm_scale * norm + self.eps)

    def logits(self, x, keep):
        """(N, L, F) -> (N, 1024); keep: (N, F*n) dropout mask scaled by 1/(1-p), or None in eval mode."""
        b = x.shape[0]
        h = self.unit_outputs(x).reshape(b, self.natt * self.feature_dim)  # (N, n*F)
        if keep is not None:
            h = h * keep
        return self.classify(h, self.classifier_weight) + self.classifier_bias

    def construct(self, x):
        return self.logits(x, None)


class PlainAttentionCluster(nn.Cell):
    """The logits of `model` (an AttentionCluster with shift attention) written with plain
    operations, on its parameters: broadcasts, reductions and autodiff everywhere. The reference
    for the layout and the hand-written backward passes of AttentionCluster."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def construct(self, x, keep):
        m = self.m
        b, frames, f = x.shape
        flat = x.reshape(b * frames, f)
        if m.fc == 2:
            flat = ops.tanh(ops.matmul(flat, m.hidden_weight) + m.hidden_bias)
        scores = (ops.matmul(flat, m.score_weight) + m.score_bias).reshape(b, frames, m.natt)
        weights = ops.softmax(scores, axis=1)  # (N, L, n), over the frames
        pooled = ops.matmul(weights.transpose(0, 2, 1), x)  # (N, n, F)
        shifted = pooled * m.alpha.reshape(1, -1, 1) + m.beta.reshape(1, -1, 1)
        norm = ops.sqrt((shifted * shifted).sum(axis=2, keepdims=True))  # (N, n, 1)
        units = shifted / (m.norm_scale * norm + m.eps)
        h = units.reshape(b, m.natt * f) * keep
        return ops.matmul(h, m.classifier_weight.transpose(1, 0)) + m.classifier_bias


class StackedAttentionCluster(nn.Cell):
    """M AttentionClusters of one (fc, natt, attention) as one network: each parameter of `models`
    stacked on a leading model axis (score_weight (M, F, n), alpha (M, n), classifier_weight
    (M, 1024, F*n), ...), under the single model's names. Model i sees only x[i]:
    logits(x (M, N, L, F), keep (M, N, F*n) or None) -> (M, N, 1024), the same as models[i].logits
    on x[i] with keep[i]. The same layout as AttentionCluster, with batched products."""

    def __init__(self, models):
        super().__init__()
        first = models[0]
        self.count, self.fc, self.natt, self.attention = len(models), first.fc, first.natt, first.attention
        self.frames, self.feature_dim, self.eps = first.frames, first.feature_dim, first.eps
        self.names = [plain_name(p) for p in first.trainable_params()]
        for model in models:
            kind = (model.fc, model.natt, model.attention, model.frames, model.feature_dim)
            if kind != (self.fc, self.natt, self.attention, self.frames, self.feature_dim):
                raise ValueError(f"a stack holds models of one kind; {kind} differs from the first")
        for name in self.names:
            stacked = np.stack([getattr(model, name).asnumpy() for model in models])
            setattr(self, name, Parameter(ms.Tensor(stacked), name=name))
        if self.attention == "shift":
            self.norm_scale = float(np.sqrt(self.natt))
        self.affine, self.shift, self.classify = StackedAffine(), StackedShift(), StackedDense()
        self.pool, self.sum_features = ops.BatchMatMul(), ops.MatMul()

    def unit_weights(self, x):
        """(M, N, L, F) -> (M*N, n, L): each unit's weights over the frames."""
        m, b = x.shape[0], x.shape[1]
        if self.attention == "average":
            return ops.ones((m * b, self.natt, self.frames), ms.float32) / self.frames
        flat = x.reshape(m, b * self.frames, self.feature_dim)  # (M, N*L, F)
        if self.fc == 2:
            flat = ops.tanh(self.affine(flat, self.hidden_weight, self.hidden_bias))  # (M, N*L, 128)
        scores = self.affine(flat, self.score_weight, self.score_bias)  # (M, N*L, n)
        return ops.softmax(scores.reshape(m * b, self.frames, self.natt).transpose(0, 2, 1), axis=-1)

    def unit_outputs(self, x):
        """(M, N, L, F) -> (M, N, n*F): the units' outputs after the shifting operation, unit-major."""
        m, b, n, f = x.shape[0], x.shape[1], self.natt, self.feature_dim
        pooled = self.pool(self.unit_weights(x), x.reshape(m * b, self.frames, f))  # (M*N, n, F)
        if self.attention != "shift":
            return pooled.reshape(m, b, n * f)
        alpha = ops.tile(self.alpha.reshape(m, n, 1), (1, 1, f)).reshape(m, 1, n * f)
        beta = ops.tile(self.beta.reshape(m, n, 1), (1, 1, f)).reshape(m, 1, n * f)
        shifted = self.shift(pooled.reshape(m, b, n * f), alpha, beta)  # (M, N, n*F)
        squares = (shifted * shifted).reshape(m * b * n, f)
        norm = ops.sqrt(self.sum_features(squares, ops.ones((f, 1), ms.float32))).reshape(m, b * n, 1)
        return (shifted.reshape(m, b * n, f) / (self.norm_scale * norm + self.eps)).reshape(m, b, n * f)

    def logits(self, x, keep):
        """(M, N, L, F) -> (M, N, 1024); keep: (M, N, F*n) dropout masks, or None in eval mode."""
        h = self.unit_outputs(x)
        if keep is not None:
            h = h * keep
        return self.classify(h, self.classifier_weight, self.classifier_bias)

    def construct(self, x):
        return self.logits(x, None)

    def model_parameters(self, i):
        """{name: array}: model i's parameters under the single model's names (load_model reads them)."""
        return {name: getattr(self, name).asnumpy()[i] for name in self.names}


def build_model(fc, natt, feature_dim=FEATURE_DIM, frames=FRAMES, attention="shift", seed=1, eps=1e-12):
    """A freshly initialised AttentionCluster; the same seed gives the same weights."""
    ms.set_seed(seed)
    return AttentionCluster(fc, natt, feature_dim, frames, attention, eps)


def load_model(checkpoint, fc, natt, attention="shift", feature_dim=FEATURE_DIM, frames=FRAMES):
    """The AttentionCluster saved in `checkpoint` (a clear error if it holds another network)."""
    model = build_model(fc, natt, feature_dim, frames, attention)
    return load_into(model, checkpoint, f"fc={fc} natt={natt} attention={attention}")


class Inspection(nn.Cell):
    """x -> (attention weights (N, L, n), unit outputs (N, n, F), logits (N, 1024)) in eval mode."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def construct(self, x):
        return self.inner.attention_weights(x), self.inner.unit_outputs(x), self.inner.logits(x, None)


def inspection_cell(model):
    """An Inspection of `model`, in eval mode. Run through graph mode: MindSpore 2.10's PyNative
    mode (calling the model's methods directly) fails with NumPy 2 ("compiled using NumPy 1.x")."""
    cell = Inspection(model)
    cell.set_train(False)
    return cell


def parameter_count(model):
    return int(sum(np.prod(p.shape) for p in model.trainable_params()))
