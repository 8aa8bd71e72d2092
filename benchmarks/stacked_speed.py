"""Do M models trained by one stacked step train more samples/s than M separate steps?

    python benchmarks/stacked_speed.py                     # fc1/natt1, fc2/natt8, fc2/natt16, fc2/natt128
    python benchmarks/stacked_speed.py --models 1:1:128 --stacks 3 --seconds 5 --rounds 5

For each model (fc:natt:batch) it times, on one MindSpore kernel thread (the workflow's
training jobs run with one each):

- `separate`: the workflow's own step (train.make_train_step) on one model, batch B;
- `stacked M`: StackedStep below, M models of the same (fc, natt) with a leading model axis on
  every parameter, each with its own batch of B videos, dropout masks and learning rate, updated
  by one step (batched matrix products with the model's hand-written backward passes, and Adam
  with a learning rate per model);
- `one model, batch M*B`: the workflow's step on one model with M times the batch. A stacked step
  does at least this work (every product, the loss and the update over M*B videos) with at least
  as many kernels, so its speed bounds what any stacking can reach on this backend.

It prints samples/s of each and the ratio to the separate steps. Measurements alternate per
round, so each sees the same phases of this VM's drifting speed; the median round is given.
`--dtypes` also times the classifier's matrix product in float32, bfloat16 and float16.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import mindspore as ms  # noqa: E402
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops  # noqa: E402

from attention_clusters.constants import N_CLASSES  # noqa: E402
from attention_clusters.layers import dropout_keep  # noqa: E402
from attention_clusters.model import build_model  # noqa: E402
from attention_clusters.train import make_train_step  # noqa: E402


class StackedAffine(nn.Cell):
    """x (M, R, K) @ w (M, K, N) + b (M, N), per model; backward by batched products only."""

    def __init__(self):
        super().__init__()
        self.mm = ops.BatchMatMul()
        self.mm_nt = ops.BatchMatMul(transpose_b=True)
        self.mm_tn = ops.BatchMatMul(transpose_a=True)

    def construct(self, x, w, b):
        return self.mm(x, w) + b.reshape(b.shape[0], 1, b.shape[1])

    def bprop(self, x, w, b, out, dout):
        ones = ops.ones((x.shape[0], 1, x.shape[1]), ms.float32)
        return self.mm_nt(dout, w), self.mm_tn(x, dout), self.mm(ones, dout).reshape(b.shape)


class StackedClassifier(StackedAffine):
    """x (M, R, K) @ w (M, N, K)^T + b (M, N): the classifier's (out, in) layout."""

    def construct(self, x, w, b):
        return self.mm_nt(x, w) + b.reshape(b.shape[0], 1, b.shape[1])

    def bprop(self, x, w, b, out, dout):
        ones = ops.ones((x.shape[0], 1, x.shape[1]), ms.float32)
        return self.mm(dout, w), self.mm_tn(dout, x), self.mm(ones, dout).reshape(b.shape)


class StackedShift(nn.Cell):
    """x (M, R, K) * alpha (M, 1, K) + beta (M, 1, K); alpha's and beta's gradients by products."""

    def __init__(self):
        super().__init__()
        self.mm = ops.BatchMatMul()

    def construct(self, x, alpha, beta):
        return x * alpha + beta

    def bprop(self, x, alpha, beta, out, dout):
        ones = ops.ones((x.shape[0], 1, x.shape[1]), ms.float32)
        return dout * alpha, self.mm(ones, dout * x), self.mm(ones, dout)


class StackedLoss(nn.Cell):
    """M shift-attention AttentionClusters (the parameters of `models`, stacked on a leading axis):
    (x (M, N, L, F), labels (M, N), keep (M, N, F*n)) -> each model's summed loss (M,)."""

    def __init__(self, models):
        super().__init__()
        first = models[0]
        self.count, self.fc, self.natt = len(models), first.fc, first.natt
        self.frames, self.feature_dim = first.frames, first.feature_dim
        names = ["score_weight", "score_bias", "alpha", "beta", "classifier_weight", "classifier_bias"]
        if self.fc == 2:
            names += ["hidden_weight", "hidden_bias"]
        for name in names:
            stacked = np.stack([getattr(model, name).asnumpy() for model in models])
            setattr(self, name, Parameter(Tensor(stacked), name=name))
        self.affine, self.shift, self.classify = StackedAffine(), StackedShift(), StackedClassifier()
        self.pool, self.sum_features = ops.BatchMatMul(), ops.MatMul()
        self.norm_scale = float(np.sqrt(self.natt))
        self.loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="none")

    def construct(self, x, y, keep):
        m, b, frames, f, n = self.count, x.shape[1], self.frames, self.feature_dim, self.natt
        flat = x.reshape(m, b * frames, f)  # (M, N*L, F)
        if self.fc == 2:
            flat = ops.tanh(self.affine(flat, self.hidden_weight, self.hidden_bias))  # (M, N*L, 128)
        scores = self.affine(flat, self.score_weight, self.score_bias).reshape(m * b, frames, n)
        weights = ops.softmax(scores.transpose(0, 2, 1), axis=-1)  # (M*N, n, L)
        pooled = self.pool(weights, x.reshape(m * b, frames, f))  # (M*N, n, F)
        alpha = ops.tile(self.alpha.reshape(m, n, 1), (1, 1, f)).reshape(m, 1, n * f)
        beta = ops.tile(self.beta.reshape(m, n, 1), (1, 1, f)).reshape(m, 1, n * f)
        shifted = self.shift(pooled.reshape(m, b, n * f), alpha, beta)  # (M, N, n*F)
        squares = (shifted * shifted).reshape(m * b * n, f)
        norm = ops.sqrt(self.sum_features(squares, ops.ones((f, 1), ms.float32))).reshape(m, b * n, 1)
        units = shifted.reshape(m, b * n, f) / (self.norm_scale * norm + 1e-12)
        h = units.reshape(m, b, n * f) * keep
        logits = self.classify(h, self.classifier_weight, self.classifier_bias)  # (M, N, 1024)
        losses = self.loss(logits.reshape(m * b, N_CLASSES), y.reshape(m * b))
        return losses.reshape(m, b).sum(axis=1)


class StackedAdam(nn.Cell):
    """Adam over stacked parameters with one learning rate per model: MindSpore's Adam kernel
    computes each update with a learning rate of 1 (AdamNoUpdateParam), scaled per model."""

    def __init__(self, params, rates, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__()
        self.parameters = ParameterTuple(params)
        self.moment1 = self.parameters.clone(prefix="moment1", init="zeros")
        self.moment2 = self.parameters.clone(prefix="moment2", init="zeros")
        self.rates = Tensor(rates)  # (M,)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.beta1_power = Parameter(Tensor(1.0, ms.float32), name="beta1_power")
        self.beta2_power = Parameter(Tensor(1.0, ms.float32), name="beta2_power")
        self.adam = ops.AdamNoUpdateParam()
        self.per_model = [(p.shape[0],) + (1,) * (len(p.shape) - 1) for p in params]

    def construct(self, gradients):
        beta1_power = self.beta1_power * self.beta1
        beta2_power = self.beta2_power * self.beta2
        ops.assign(self.beta1_power, beta1_power)
        ops.assign(self.beta2_power, beta2_power)
        done = True
        for i in range(len(self.per_model)):
            delta = self.adam(
                self.moment1[i], self.moment2[i], beta1_power, beta2_power, 1.0,
                self.beta1, self.beta2, self.eps, gradients[i],
            )  # fmt: skip
            rate = self.rates.reshape(self.per_model[i])
            done = ops.depend(done, ops.assign_add(self.parameters[i], delta * rate))
        return done


def data(rng):
    features = rng.normal(0, 1, (8192, 25, 50)).astype(np.float32)
    return features, rng.integers(0, N_CLASSES, 8192).astype(np.int32)


def single_stepper(fc, natt, batch, rng, features, labels):
    step, _ = make_train_step(build_model(fc, natt), 1e-3, 0.0)

    def one():
        rows = rng.integers(0, labels.size, batch)
        keep = dropout_keep(rng, batch, natt * 50)
        step(ms.from_numpy(features[rows]), ms.from_numpy(labels[rows]), ms.from_numpy(keep)).asnumpy()

    return one


def stacked_stepper(fc, natt, batch, count, rng, features, labels):
    net = StackedLoss([build_model(fc, natt, seed=seed) for seed in range(1, count + 1)])
    rates = np.geomspace(3e-4, 3e-3, count).astype(np.float32)  # one learning rate per model
    step = nn.TrainOneStepCell(net, StackedAdam(net.trainable_params(), rates))
    step.set_train(True)

    def one():
        rows = rng.integers(0, labels.size, (count, batch))  # each model its own batch
        keep = np.stack([dropout_keep(rng, batch, natt * 50) for _ in range(count)])
        step(ms.from_numpy(features[rows]), ms.from_numpy(labels[rows]), ms.from_numpy(keep)).asnumpy()

    return one


def timed(one, seconds):
    """Seconds per step over at least `seconds` (and 5 steps)."""
    steps, start = 0, time.perf_counter()
    while steps < 5 or time.perf_counter() - start < seconds:
        one()
        steps += 1
    return (time.perf_counter() - start) / steps


def compare(fc, natt, batch, stacks, seconds, rounds):
    rng = np.random.default_rng(0)
    features, labels = data(rng)
    steppers = {("separate", 1): single_stepper(fc, natt, batch, rng, features, labels)}
    for count in stacks:
        steppers[("stacked", count)] = stacked_stepper(fc, natt, batch, count, rng, features, labels)
        steppers[("one model, batch M*B", count)] = single_stepper(
            fc, natt, batch * count, rng, features, labels
        )
    for one in steppers.values():  # compile and warm up
        for _ in range(5):
            one()
    times = {key: [] for key in steppers}
    for _ in range(rounds):
        for key, one in steppers.items():
            times[key].append(timed(one, seconds))
    separate = statistics.median(times[("separate", 1)])
    print(f"fc{fc}/natt{natt}, batch {batch} per model:", flush=True)
    print(f"  separate steps        {batch / separate:8,.0f} samples/s ({separate * 1e3:.2f} ms/step)")
    for count in stacks:
        for kind in ("stacked", "one model, batch M*B"):
            median = statistics.median(times[(kind, count)])
            label = f"{kind} M={count}" if kind == "stacked" else f"{kind} (M={count})"
            print(
                f"  {label:<30} {batch * count / median:8,.0f} samples/s ({median * 1e3:.2f} ms/step), "
                f"{separate * count / median:.2f}x the separate steps",
                flush=True,
            )


def dtypes(rounds=20):
    """The classifier's product (batch x F*n by 1024 x F*n) in each float type, or why it cannot run."""

    class Product(nn.Cell):
        def __init__(self):
            super().__init__()
            self.mm = ops.MatMul(transpose_b=True)

        def construct(self, a, b):
            return self.mm(a, b)

    rng = np.random.default_rng(0)
    for m, k in ((384, 50), (256, 6400)):
        a32 = Tensor(rng.normal(0, 1, (m, k)).astype(np.float32))
        b32 = Tensor(rng.normal(0, 1, (N_CLASSES, k)).astype(np.float32))
        for dtype in (ms.float32, ms.bfloat16, ms.float16):
            a, b, product = a32.astype(dtype), b32.astype(dtype), Product()
            try:
                product(a, b).astype(ms.float32).asnumpy()
                start = time.perf_counter()
                for _ in range(rounds):
                    out = product(a, b)
                out.astype(ms.float32).asnumpy()
                seconds = (time.perf_counter() - start) / rounds
                result = f"{seconds * 1e3:.2f} ms, {2 * m * k * N_CLASSES / seconds / 1e9:.0f} GFLOP/s"
            except (RuntimeError, TypeError, ValueError) as err:
                result = "cannot run: " + next(
                    (line for line in str(err).splitlines() if "fail" in line), "?"
                )
            print(f"  MatMul {m}x{k} by {k}x{N_CLASSES} in {dtype}: {result}", flush=True)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", default=["1:1:128", "2:8:128", "2:16:128", "2:128:256"], help="fc:natt:batch"
    )
    parser.add_argument("--stacks", nargs="+", type=int, default=[3, 8], help="models per stacked step (M)")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--dtypes", action="store_true", help="also time the classifier's product per float type"
    )
    args = parser.parse_args()
    from attention_clusters.devices import use_device

    use_device("CPU", 1)
    print("Stacked training steps against separate ones, 1 kernel thread", flush=True)
    for spec in args.models:
        fc, natt, batch = map(int, spec.split(":"))
        compare(fc, natt, batch, args.stacks, args.seconds, args.rounds)
    if args.dtypes:
        dtypes()


if __name__ == "__main__":
    main()
